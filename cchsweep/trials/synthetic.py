"""Synthetic Gaussian regression trial (paper Section 4.1, Appendix B).

Teacher on X1, students on X2, MLP p-64(ReLU)-1 (Table 9), Adam, MSE; the KD student
minimises eq. (4). Teacher, no-KD student and the MI estimates depend only on the data
and training settings, never on lambda, so they come from the artifact cache and every
lambda of a (sigma12, seed) shares them. The KD student starts from the no-KD student's
initial weights and sees the same batch order, so kd_gain measures lambda alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cchsweep.data.synthetic import sample
from cchsweep.kd import regression_kd_loss
from cchsweep.mi.gaussian import optimal_linear_mi
from cchsweep.mi.triplet import make_estimator, mi_triplet, mi_values
from cchsweep.models import MLP
from cchsweep.study import TrialContext, TrialOutput
from cchsweep.train import cpu_state, fit, predict, represent, with_state

DATA_KEYS = ("n_train", "n_test", "p", "sigma12", "sigma13", "sigma23", "seed")
TRAIN_KEYS = ("hidden", "epochs", "lr", "batch_size")
MI_KEYS = ("mi_estimator", "mi_epochs", "mi_lr", "mi_repeats", "mi_n")


def trial(params: Mapping[str, Any], settings: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
    s = {**settings, **params}
    seed = int(s["seed"])
    data_cfg = {k: s[k] for k in DATA_KEYS}
    train_cfg = {k: s[k] for k in TRAIN_KEYS}
    dev = torch.device(ctx.device)

    rng = np.random.default_rng([seed, 20_251])  # data stream, independent of init seeds
    arrays = sample(s["n_train"] + s["n_test"], s["p"], s["sigma12"], s["sigma13"], s["sigma23"], rng)
    n = s["n_train"]
    x1, x2, y = (torch.from_numpy(a).to(dev) for a in arrays)
    y = y[:, None]
    tr, te = slice(0, n), slice(n, None)

    def train_student(lam: float, teacher_pred: torch.Tensor | None) -> MLP:
        torch.manual_seed(seed * 2 + 1)
        model = MLP(s["p"], [s["hidden"]], 1).to(dev)
        target = y[tr]

        def loss(out, idx):
            t = teacher_pred[idx] if teacher_pred is not None else target[idx]
            return regression_kd_loss(out, target[idx], t, lam)

        return fit(
            model,
            x2[tr],
            loss,
            optimizer="adam",
            lr=s["lr"],
            epochs=s["epochs"],
            batch_size=s["batch_size"],
            seed=seed * 2 + 1,
        )

    def build_teacher():
        torch.manual_seed(seed * 2)
        model = MLP(s["p"], [s["hidden"]], 1).to(dev)
        fit(
            model,
            x1[tr],
            lambda out, idx: torch.nn.functional.mse_loss(out, y[tr][idx]),
            optimizer="adam",
            lr=s["lr"],
            epochs=s["epochs"],
            batch_size=s["batch_size"],
            seed=seed * 2,
        )
        return cpu_state(model)

    def blank() -> MLP:
        return MLP(s["p"], [s["hidden"]], 1).to(dev)

    teacher = with_state(blank(), ctx.cached("synthetic_teacher", {**data_cfg, **train_cfg}, build_teacher))
    nokd = with_state(
        blank(), ctx.cached("synthetic_nokd", {**data_cfg, **train_cfg}, lambda: cpu_state(train_student(0.0, None)))
    )
    lam = float(s["lam"])
    kd = train_student(lam, predict(teacher, x1[tr])) if lam > 0 else nokd

    def mse(model, x):
        return float(torch.mean((predict(model, x[te]) - y[te]) ** 2))

    metrics = {"teacher": {"mse": mse(teacher, x1)}, "nokd": {"mse": mse(nokd, x2)}, "kd": {"mse": mse(kd, x2)}}

    def build_mi():
        m = min(s["mi_n"], s["n_test"])
        h_t = represent(teacher, x1[te][:m]).cpu().numpy()
        h_s = represent(nokd, x2[te][:m]).cpu().numpy()
        est = make_estimator(s, ctx.device)
        return mi_triplet(h_t, h_s, y[te][:m].cpu().numpy(), est, repeats=s["mi_repeats"], seed=seed)

    mi = ctx.cached("synthetic_mi", {**data_cfg, **train_cfg, **{k: s[k] for k in MI_KEYS}}, build_mi)
    truth = optimal_linear_mi(s["p"], s["sigma12"], s["sigma13"], s["sigma23"])
    n_mi = min(s["mi_n"], s["n_test"])
    values = mi_values(mi, s["mi_estimator"], s["mi_repeats"], n_mi, truth)
    return TrialOutput(
        metrics=metrics, gain_metric="mse", kd_gain=metrics["nokd"]["mse"] - metrics["kd"]["mse"], mi=values
    )
