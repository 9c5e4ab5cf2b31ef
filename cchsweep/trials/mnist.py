"""MNIST -> MNIST-M cross-modal KD trial (paper Section 4.2, Appendix C, Algorithm 1).

Teacher: the Table 11 MLP on clean MNIST, then frozen. No-KD student: the same MLP on MNIST-M
with labels only. KD student: eq. (2) with the teacher's logits on MNIST blurred by gamma,
paired sample by sample with the student's MNIST-M image of the same digit. The teacher (per
seed), the no-KD student (per alpha, seed) and the MI estimates (per alpha, gamma, seed) come
from the artifact cache, so every temperature and lambda reuses them. The KD student starts
from the no-KD student's initial weights and sees the same batch order.

`bundle` trains the models of many grid points as stacks (cchsweep.stack): the missing teachers and
no-KD students together, then every KD student together. `trial` is the same code for one point
with the single-model trainer: the reference the stacked path is tested against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cchsweep.data import bsds500
from cchsweep.data.blur import gaussian_blur
from cchsweep.data.mnist import check_mnist, load_mnist
from cchsweep.data.mnistm import build_mnistm, load_bsds_luma
from cchsweep.kd import classification_kd_loss, stacked_classification_kd_losses
from cchsweep.metrics import classification_metrics
from cchsweep.mi.latentmi_estimator import one_hot
from cchsweep.mi.triplet import MIRequest, cached_mi, estimator_names, mi_values, triplet_pairs
from cchsweep.models import MLP
from cchsweep.stack import Member, Recipe, reference_trial, train_stacked
from cchsweep.study import BASELINES, Resources, TrainFn, TrialContext, TrialOutput, counted
from cchsweep.train import cpu_state, predict, represent, with_state

HIDDEN = [1024, 256]  # Table 11; the 256-unit layer is the representation H
TRAIN_KEYS = ("n_train", "n_test", "epochs", "lr", "batch_size")
MI_KEYS = ("mi_estimator", "mi_epochs", "mi_lr", "mi_repeats", "mi_n")
VARY = ("seed", "alpha", "gamma", "temperature", "lam")  # what may differ inside a bundle, outermost first


def check_data(data_dir, points=None, *, dry_run: bool = False) -> list[str]:
    """Run in the driver before any trial: MNIST verified (downloaded if allowed), BSDS500 present.
    A dry run downloads nothing: it verifies what is there and says what a real run would download."""
    if dry_run:
        return [line for line in (check_mnist(data_dir), bsds500.check_images(data_dir)) if line]
    for split in ("train", "test"):
        load_mnist(data_dir, split)
    load_bsds_luma(data_dir)
    return []


def prepare(data_dir, cache_dir, points) -> None:
    """Run in the driver before the trials start: build the MNIST-M sets they share, one line each."""
    for alpha, seed, n_tr, n_te in sorted({(p["alpha"], int(p["seed"]), p["n_train"], p["n_test"]) for p in points}):
        build_mnistm(data_dir, alpha, seed, mnistm_cache(cache_dir), n_tr, n_te)


def mnistm_cache(cache_dir) -> Path:
    return Path(cache_dir) / "mnistm"


def bundle_bytes(points: Sequence[Mapping[str, Any]]) -> int:
    """A bundle's memory, roughly: MNIST and each MNIST-M set (twice: pooled copies), the teacher
    logits of each (seed, gamma), and per model its weights (single, stacked, gradient) and a
    batch's activations."""
    s = points[0]
    rows = s["n_train"] + s["n_test"]
    images = 4 * rows * 784 * (2 + 2 * len({(q["alpha"], q["seed"]) for q in points}))
    logits = 8 * s["n_train"] * 10 * len({(q["gamma"], q["seed"]) for q in points})
    models = len(points) + 2 * len({(q["alpha"], q["seed"]) for q in points})
    weights = 4 * (784 * HIDDEN[0] + HIDDEN[0] * HIDDEN[1] + HIDDEN[1] * 10)
    return images + logits + models * (3 * weights + 12 * s["batch_size"] * (784 + sum(HIDDEN) + 10))


def _loss(out: torch.Tensor, batch: Mapping[str, torch.Tensor], coefs: Mapping[str, float]) -> torch.Tensor:
    return classification_kd_loss(out, batch["y"], batch["teacher"], coefs["temperature"], coefs["lam"])


def _stacked_loss(out, batch, coefs) -> torch.Tensor:
    return stacked_classification_kd_losses(out, batch["y"], batch["teacher"], coefs["temperature"], coefs["lam"])


def bundle(
    points: Sequence[Mapping[str, Any]], settings: Mapping[str, Any], ctx: TrialContext, train: TrainFn = train_stacked
) -> list[TrialOutput]:
    pts = [{**settings, **p} for p in points]
    s0 = pts[0]
    n_tr, n_te = s0["n_train"], s0["n_test"]
    dev = torch.device(ctx.device)
    train_cfg = {k: s0[k] for k in TRAIN_KEYS}

    def tensors(x: np.ndarray, y: np.ndarray, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        flat = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).reshape(len(x), 784) / scale
        return flat.to(dev), torch.from_numpy(np.asarray(y, dtype=np.int64)).to(dev)

    if ctx.data_dir is None:
        raise ValueError("the MNIST studies need a data directory")
    (img_tr, lab_tr), (img_te, lab_te) = load_mnist(ctx.data_dir, "train"), load_mnist(ctx.data_dir, "test")
    mnist_tr, y_tr = tensors(img_tr[:n_tr], lab_tr[:n_tr], 255.0)
    mnist_te, y_te = tensors(img_te[:n_te], lab_te[:n_te], 255.0)
    seeds = sorted({int(s["seed"]) for s in pts})
    students = sorted({(s["alpha"], int(s["seed"])) for s in pts})
    mm: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
    for alpha, seed in students:
        sets = build_mnistm(ctx.data_dir, alpha, seed, mnistm_cache(ctx.cache_dir), n_tr, n_te)
        mm_tr, mm_y_tr = tensors(sets["x_train"], sets["y_train"], 1.0)
        mm_te, mm_y_te = tensors(sets["x_test"], sets["y_test"], 1.0)
        if not (torch.equal(mm_y_tr, y_tr) and torch.equal(mm_y_te, y_te)):
            raise RuntimeError("MNIST-M is not paired with MNIST digit by digit")
        mm[alpha, seed] = (mm_tr, mm_te)

    recipe = Recipe(
        build=lambda: MLP(784, HIDDEN, 10, activation="leaky_relu"),
        loss=_loss,
        stacked_loss=_stacked_loss,
        optimizer="sgd",
        lr=s0["lr"],
        epochs=s0["epochs"],
        batch_size=s0["batch_size"],
    )
    no_teacher = torch.zeros(n_tr, 10, device=dev)  # lam = 0: the soft-target term is off
    plain = {"temperature": 1.0, "lam": 0.0}

    # Teachers (per seed) and no-KD students (per alpha, seed), the missing ones trained together.
    items = [("mnist_teacher", {**train_cfg, "seed": seed}) for seed in seeds]
    items += [("mnistm_nokd", {**train_cfg, "alpha": alpha, "seed": seed}) for alpha, seed in students]

    def build_baselines(missing: list[int]) -> list[dict[str, torch.Tensor]]:
        members = []
        for i in missing:
            if i < len(seeds):  # teacher: init and batch order seed * 2, clean MNIST
                members.append(Member(seeds[i] * 2, seeds[i] * 2, mnist_tr, {"y": y_tr, "teacher": no_teacher}, plain))
            else:  # no-KD student: seed * 2 + 1, its MNIST-M
                alpha, seed = students[i - len(seeds)]
                student_seed = seed * 2 + 1
                targets = {"y": y_tr, "teacher": no_teacher}
                members.append(Member(student_seed, student_seed, mm[alpha, seed][0], targets, plain))
        return [cpu_state(m) for m in _train(ctx, train, recipe, members, dev, BASELINES)]

    states = ctx.cached_many(items, build_baselines)
    nets = [with_state(recipe.build().to(dev), state) for state in states]
    teachers = dict(zip(seeds, nets[: len(seeds)]))
    nokds = dict(zip(students, nets[len(seeds) :]))

    # The teachers are frozen: their soft targets on each blurred input are computed once.
    t_logits = {
        (seed, gamma): predict(teachers[seed], gaussian_blur(mnist_tr, gamma))
        for seed, gamma in sorted({(int(s["seed"]), s["gamma"]) for s in pts})
    }
    kd_members = [
        Member(
            int(s["seed"]) * 2 + 1,  # the no-KD student's initial weights and batch order
            int(s["seed"]) * 2 + 1,
            mm[s["alpha"], int(s["seed"])][0],
            {"y": y_tr, "teacher": t_logits[int(s["seed"]), s["gamma"]]},
            {"temperature": float(s["temperature"]), "lam": float(s["lam"])},
        )
        for s in pts
    ]
    kd_models = _train(ctx, train, recipe, kd_members, dev, ("KD student", "KD students"))

    def mi_request(s: Mapping[str, Any], estimator: str) -> MIRequest:
        s = {**s, "mi_estimator": estimator}
        seed, key, m = int(s["seed"]), (s["alpha"], int(s["seed"])), min(s["mi_n"], n_te)

        def pairs():
            h_t = represent(teachers[seed], gaussian_blur(mnist_te[:m], s["gamma"])).cpu().numpy()
            h_s = represent(nokds[key], mm[key][1][:m]).cpu().numpy()
            labels = one_hot(y_te[:m].cpu().numpy(), 10)  # latentmi sees classes one-hot
            return triplet_pairs(h_t, h_s, labels, seed)

        cfg = {**train_cfg, **{k: s[k] for k in MI_KEYS}, "alpha": s["alpha"], "gamma": s["gamma"], "seed": seed}
        return MIRequest("mnist_mi", cfg, s, pairs)

    # every point's MI triplet per estimator: the missing ones estimated together (lmi stacks them)
    names = estimator_names(pts[0])
    mis = cached_mi(ctx, [mi_request(s, e) for s in pts for e in names], ctx.device)
    outputs = []
    for i, (s, kd) in enumerate(zip(pts, kd_models)):
        seed, key = int(s["seed"]), (s["alpha"], int(s["seed"]))
        metrics = {
            "teacher": classification_metrics(predict(teachers[seed], mnist_te), y_te),
            "nokd": classification_metrics(predict(nokds[key], mm[key][1]), y_te),
            "kd": classification_metrics(predict(kd, mm[key][1]), y_te),
        }
        m = min(s["mi_n"], n_te)
        values = [v for j, e in enumerate(names) for v in mi_values(mis[i * len(names) + j], e, s["mi_repeats"], m)]
        outputs.append(
            TrialOutput(
                metrics=metrics, gain_metric="acc", kd_gain=metrics["kd"]["acc"] - metrics["nokd"]["acc"], mi=values
            )
        )
    return outputs


trial = reference_trial(bundle)  # one point, one model at a time: the reference path
# What an MNIST study passes to Study(...): its trial, bundle, data hooks and resources.
ENGINE: dict[str, Any] = dict(
    trial=trial,
    bundle=bundle,
    bundle_vary=VARY,
    bundle_bytes=bundle_bytes,
    check_data=check_data,
    prepare=prepare,
    resources=Resources(cpu=1, gpu=0.25),
)


def _train(
    ctx: TrialContext, train: TrainFn, recipe: Recipe, members: list[Member], dev, what: tuple[str, str]
) -> list:
    def on_epoch(epoch: int) -> None:
        ctx.progress(f"{counted(len(members), *what)}, epoch {epoch}/{recipe.epochs}")

    ctx.progress(f"training {counted(len(members), *what)}")
    return train(recipe, members, dev, on_epoch=on_epoch)
