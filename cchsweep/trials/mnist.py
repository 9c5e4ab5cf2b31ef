"""MNIST -> MNIST-M cross-modal KD trial (paper Section 4.2, Appendix C, Algorithm 1).

Teacher: the Table 11 MLP on clean MNIST, then frozen. No-KD student: the same MLP on MNIST-M
with labels only. KD student: eq. (2) with the teacher's logits on MNIST blurred by gamma,
paired sample by sample with the student's MNIST-M image of the same digit. The teacher (per
seed), the no-KD student (per alpha, seed) and the MI estimates (per alpha, gamma, seed) come
from the artifact cache, so every temperature and lambda reuses them. The KD student starts
from the no-KD student's initial weights and sees the same batch order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cchsweep.data.blur import gaussian_blur
from cchsweep.data.mnist import load_mnist
from cchsweep.data.mnistm import build_mnistm, load_bsds_luma
from cchsweep.kd import classification_kd_loss
from cchsweep.metrics import classification_metrics
from cchsweep.mi.latentmi_estimator import one_hot
from cchsweep.mi.triplet import make_estimator, mi_triplet, mi_values
from cchsweep.models import MLP
from cchsweep.study import TrialContext, TrialOutput
from cchsweep.train import cpu_state, fit, predict, represent, with_state

HIDDEN = [1024, 256]  # Table 11; the 256-unit layer is the representation H
TRAIN_KEYS = ("n_train", "n_test", "epochs", "lr", "batch_size")
MI_KEYS = ("mi_estimator", "mi_epochs", "mi_lr", "mi_repeats", "mi_n")


def check_data(data_dir) -> None:
    """Run in the driver before any trial: MNIST verified (downloaded if allowed), BSDS500 present."""
    for split in ("train", "test"):
        load_mnist(data_dir, split)
    load_bsds_luma(data_dir)


def prepare(data_dir, cache_dir, points) -> None:
    """Run in the driver before the trials start: build the MNIST-M sets they share, one line each."""
    for alpha, seed, n_tr, n_te in sorted({(p["alpha"], int(p["seed"]), p["n_train"], p["n_test"]) for p in points}):
        build_mnistm(data_dir, alpha, seed, mnistm_cache(cache_dir), n_tr, n_te)


def mnistm_cache(cache_dir) -> Path:
    return Path(cache_dir) / "mnistm"


def trial(params: Mapping[str, Any], settings: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
    s = {**settings, **params}
    seed, n_tr, n_te = int(s["seed"]), s["n_train"], s["n_test"]
    dev = torch.device(ctx.device)
    train_cfg = {k: s[k] for k in TRAIN_KEYS}

    def tensors(x: np.ndarray, y: np.ndarray, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        flat = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).reshape(len(x), 784) / scale
        return flat.to(dev), torch.from_numpy(np.asarray(y, dtype=np.int64)).to(dev)

    if ctx.data_dir is None:
        raise ValueError("the MNIST studies need a data directory")
    (img_tr, lab_tr), (img_te, lab_te) = load_mnist(ctx.data_dir, "train"), load_mnist(ctx.data_dir, "test")
    mnist_tr, y_tr = tensors(img_tr[:n_tr], lab_tr[:n_tr], 255.0)
    mnist_te, y_te = tensors(img_te[:n_te], lab_te[:n_te], 255.0)
    mm = build_mnistm(ctx.data_dir, s["alpha"], seed, mnistm_cache(ctx.cache_dir), n_tr, n_te)
    mm_tr, mm_y_tr = tensors(mm["x_train"], mm["y_train"], 1.0)
    mm_te, mm_y_te = tensors(mm["x_test"], mm["y_test"], 1.0)
    if not (torch.equal(mm_y_tr, y_tr) and torch.equal(mm_y_te, y_te)):
        raise RuntimeError("MNIST-M is not paired with MNIST digit by digit")

    def model(init_seed: int) -> MLP:
        torch.manual_seed(init_seed)
        return MLP(784, HIDDEN, 10, activation="leaky_relu").to(dev)

    def train(net: MLP, x: torch.Tensor, loss, order_seed: int) -> MLP:
        return fit(
            net, x, loss, optimizer="sgd", lr=s["lr"], epochs=s["epochs"], batch_size=s["batch_size"], seed=order_seed
        )

    def ce(out, idx):
        return F.cross_entropy(out, y_tr[idx])

    student_seed = seed * 2 + 1
    teacher = with_state(
        model(0),
        ctx.cached(
            "mnist_teacher",
            {**train_cfg, "seed": seed},
            lambda: cpu_state(train(model(seed * 2), mnist_tr, ce, seed * 2)),
        ),
    )
    nokd = with_state(
        model(0),
        ctx.cached(
            "mnistm_nokd",
            {**train_cfg, "alpha": s["alpha"], "seed": seed},
            lambda: cpu_state(train(model(student_seed), mm_tr, ce, student_seed)),
        ),
    )
    # The teacher is frozen: its soft targets on the blurred inputs are computed once.
    t_logits = predict(teacher, gaussian_blur(mnist_tr, s["gamma"]))
    temperature, lam = float(s["temperature"]), float(s["lam"])

    def kd_loss(out, idx):
        return classification_kd_loss(out, y_tr[idx], t_logits[idx], temperature, lam)

    kd = train(model(student_seed), mm_tr, kd_loss, student_seed)
    metrics = {
        "teacher": classification_metrics(predict(teacher, mnist_te), y_te),
        "nokd": classification_metrics(predict(nokd, mm_te), y_te),
        "kd": classification_metrics(predict(kd, mm_te), y_te),
    }

    m = min(s["mi_n"], n_te)

    def build_mi():
        h_t = represent(teacher, gaussian_blur(mnist_te[:m], s["gamma"])).cpu().numpy()
        h_s = represent(nokd, mm_te[:m]).cpu().numpy()
        labels = one_hot(y_te[:m].cpu().numpy(), 10)  # latentmi sees classes one-hot
        return mi_triplet(h_t, h_s, labels, make_estimator(s, ctx.device), repeats=s["mi_repeats"], seed=seed)

    mi = ctx.cached(
        "mnist_mi",
        {**train_cfg, **{k: s[k] for k in MI_KEYS}, "alpha": s["alpha"], "gamma": s["gamma"], "seed": seed},
        build_mi,
    )
    values = mi_values(mi, s["mi_estimator"], s["mi_repeats"], m)
    return TrialOutput(
        metrics=metrics, gain_metric="acc", kd_gain=metrics["kd"]["acc"] - metrics["nokd"]["acc"], mi=values
    )
