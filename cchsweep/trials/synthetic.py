"""Synthetic Gaussian regression trials (paper Section 4.1, Appendix B), a bundle of grid points at a time.

Teacher on X1, students on X2, MLP p-64(ReLU)-1 (Table 9), Adam, MSE; the KD student minimises
eq. (4). Teacher, no-KD student and the MI estimates depend only on the data and training settings,
never on lambda, so they come from the artifact cache and every lambda of a (sigma12, seed) shares
them. The KD student starts from the no-KD student's initial weights and sees the same batch order,
so kd_gain measures lambda alone.

`bundle` trains every model its points need as stacks (cchsweep.stack): first the missing teachers
and no-KD students of all its data sets together, then every KD student together. `trial` is the
same code for one point with the single-model trainer: the reference the stacked path is tested
against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from cchsweep.data.synthetic import sample
from cchsweep.kd import regression_kd_loss, stacked_regression_kd_losses
from cchsweep.mi.gaussian import optimal_linear_mi
from cchsweep.mi.triplet import MIRequest, cached_mi, estimator_names, mi_values, triplet_pairs
from cchsweep.models import MLP
from cchsweep.stack import Member, Recipe, reference_trial, train_stacked
from cchsweep.study import BASELINES, Resources, TrainFn, TrialContext, TrialOutput, counted
from cchsweep.train import cpu_state, predict, represent, with_state

DATA_KEYS = ("n_train", "n_test", "p", "sigma12", "sigma13", "sigma23", "seed")
TRAIN_KEYS = ("hidden", "epochs", "lr", "batch_size")
MI_KEYS = ("mi_estimator", "mi_epochs", "mi_lr", "mi_repeats", "mi_n")
VARY = ("seed", "sigma12", "sigma13", "sigma23", "lam")  # what may differ inside a bundle, outermost first


def bundle_bytes(points: Sequence[Mapping[str, Any]]) -> int:
    """A bundle's memory, roughly: each data set (X1, X2, Y) twice (pool copies) and, per model, a
    batch's activations (inputs, hidden, gradients) and its weights with Adam's state."""
    s = points[0]
    rows, p, h = s["n_train"] + s["n_test"], s["p"], s["hidden"]
    data_sets = len({tuple(q[k] for k in DATA_KEYS) for q in points})
    models = 2 * data_sets + len(points)
    return 8 * data_sets * rows * (2 * p + 1) + models * 4 * (3 * s["batch_size"] * (p + h) + 4 * (p + 2) * h)


def _loss(out: torch.Tensor, batch: Mapping[str, torch.Tensor], coefs: Mapping[str, float]) -> torch.Tensor:
    return regression_kd_loss(out, batch["y"], batch["teacher"], coefs["lam"])


def _stacked_loss(out, batch, coefs) -> torch.Tensor:
    return stacked_regression_kd_losses(out, batch["y"], batch["teacher"], coefs["lam"])


def bundle(
    points: Sequence[Mapping[str, Any]], settings: Mapping[str, Any], ctx: TrialContext, train: TrainFn = train_stacked
) -> list[TrialOutput]:
    pts = [{**settings, **p} for p in points]
    s0 = pts[0]
    dev = torch.device(ctx.device)
    n = s0["n_train"]
    tr, te = slice(0, n), slice(n, None)
    recipe = Recipe(
        build=lambda: MLP(s0["p"], [s0["hidden"]], 1),
        loss=_loss,
        stacked_loss=_stacked_loss,
        optimizer="adam",
        lr=s0["lr"],
        epochs=s0["epochs"],
        batch_size=s0["batch_size"],
    )

    data: dict[tuple, dict[str, Any]] = {}  # data config -> its tensors, configs and models
    for s in pts:
        key = tuple(s[k] for k in DATA_KEYS)
        if key not in data:
            data[key] = _data_set(s, dev, tr)
    configs = list(data.values())

    def build_pairs(missing: list[int]) -> list[dict[str, torch.Tensor]]:
        members = []
        for i in missing:
            d, role = configs[i // 2], ("teacher", "nokd")[i % 2]
            seed = d["seed"] * 2 + (role == "nokd")  # teacher seed*2, students seed*2+1 (init and order)
            x = d["x1"] if role == "teacher" else d["x2"]
            members.append(Member(seed, seed, x[tr], {"y": d["y"][tr], "teacher": d["y"][tr]}, {"lam": 0.0}))
        ctx.progress(f"training {counted(len(members), *BASELINES)}")
        return [cpu_state(m) for m in train(recipe, members, dev)]

    items = [(kind, d["cfg"]) for d in configs for kind in ("synthetic_teacher", "synthetic_nokd")]
    states = ctx.cached_many(items, build_pairs)
    for i, d in enumerate(configs):
        d["teacher"] = with_state(recipe.build().to(dev), states[2 * i])
        d["nokd"] = with_state(recipe.build().to(dev), states[2 * i + 1])
        d["teacher_pred"] = predict(d["teacher"], d["x1"][tr])

    kd_points = [s for s in pts if float(s["lam"]) > 0]
    kd_members = []
    for s in kd_points:
        d = data[tuple(s[k] for k in DATA_KEYS)]
        seed = d["seed"] * 2 + 1
        targets = {"y": d["y"][tr], "teacher": d["teacher_pred"]}
        kd_members.append(Member(seed, seed, d["x2"][tr], targets, {"lam": float(s["lam"])}))
    if kd_members:
        ctx.progress(f"training {counted(len(kd_members), 'KD student')}")
    kd_models = dict(zip(map(id, kd_points), train(recipe, kd_members, dev)))

    # every point's MI triplet per estimator: the missing ones estimated together (lmi stacks them)
    names = estimator_names(pts[0])
    requests = [_mi_request(s, data[tuple(s[k] for k in DATA_KEYS)], te, e) for s in pts for e in names]
    mis = cached_mi(ctx, requests, ctx.device)
    outputs = []
    for i, s in enumerate(pts):
        mi = [v for j, e in enumerate(names) for v in _mi_values(s, e, mis[i * len(names) + j])]
        d = data[tuple(s[k] for k in DATA_KEYS)]
        kd = kd_models.get(id(s), d["nokd"])

        def mse(model, x, d=d):
            return float(torch.mean((predict(model, x[te]) - d["y"][te]) ** 2))

        metrics = {
            "teacher": {"mse": mse(d["teacher"], d["x1"])},
            "nokd": {"mse": mse(d["nokd"], d["x2"])},
            "kd": {"mse": mse(kd, d["x2"])},
        }
        outputs.append(
            TrialOutput(
                metrics=metrics,
                gain_metric="mse",
                kd_gain=metrics["nokd"]["mse"] - metrics["kd"]["mse"],
                mi=mi,
            )
        )
    return outputs


trial = reference_trial(bundle)  # one point, one model at a time: the reference path
# What a synthetic study passes to Study(...): its trial, bundle and resources.
ENGINE: dict[str, Any] = dict(
    trial=trial, bundle=bundle, bundle_vary=VARY, bundle_bytes=bundle_bytes, resources=Resources(cpu=1, gpu=0.25)
)


def _data_set(s: Mapping[str, Any], dev: torch.device, tr: slice) -> dict[str, Any]:
    seed = int(s["seed"])
    rng = np.random.default_rng([seed, 20_251])  # data stream, independent of init seeds
    arrays = sample(s["n_train"] + s["n_test"], s["p"], s["sigma12"], s["sigma13"], s["sigma23"], rng)
    x1, x2, y = (torch.from_numpy(a).to(dev) for a in arrays)
    cfg = {**{k: s[k] for k in DATA_KEYS}, **{k: s[k] for k in TRAIN_KEYS}}
    return {"seed": seed, "x1": x1, "x2": x2, "y": y[:, None], "cfg": cfg}


def _mi_request(s: Mapping[str, Any], d: Mapping[str, Any], te: slice, estimator: str) -> MIRequest:
    """The MI triplet on the first mi_n test rows: the teacher's and no-KD student's hidden layers, y."""
    s = {**s, "mi_estimator": estimator}
    m = min(s["mi_n"], s["n_test"])

    def pairs():
        h_t = represent(d["teacher"], d["x1"][te][:m]).cpu().numpy()
        h_s = represent(d["nokd"], d["x2"][te][:m]).cpu().numpy()
        return triplet_pairs(h_t, h_s, d["y"][te][:m].cpu().numpy(), d["seed"])

    return MIRequest("synthetic_mi", {**d["cfg"], **{k: s[k] for k in MI_KEYS}}, s, pairs)


def _mi_values(s: Mapping[str, Any], estimator: str, mi: Mapping[str, list]):
    truth = optimal_linear_mi(s["p"], s["sigma12"], s["sigma13"], s["sigma23"])
    return mi_values(mi, estimator, s["mi_repeats"], min(s["mi_n"], s["n_test"]), truth)
