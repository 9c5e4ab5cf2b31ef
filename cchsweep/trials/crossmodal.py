"""The one cross-modal KD pipeline: teacher -> no-KD student -> KD student -> MI triplet, per estimator.

The TCGA (cchsweep.trials.tcga) and CMU-MOSEI (cchsweep.trials.mosei) trials differ only in their
data, networks and optimiser; each builds a `Pairing` and calls `run`:

1. the teacher (clean teacher modality, init and shuffle seed 2*seed) and the no-KD student
   (student modality, 2*seed+1), both trained with cross-entropy and cached (kinds
   PREFIX_teacher, PREFIX_nokd), so every noise level, temperature and lambda shares them;
2. the frozen teacher's soft targets on its NOISY train inputs, and the KD student by eq. (2),
   from the no-KD student's initial weights and batch order;
3. test metrics: the teacher on clean test inputs, the no-KD and KD students;
4. per MI estimator, I_TS = I(teacher on the noisy input; no-KD student), cached per noise
   (PREFIX_mi_ts), and I_SL, I_TL (teacher on the clean input), cached per pairing and seed
   (PREFIX_mi_label), on the rows `Pairing.mi_rows` picks, seeds seed*10 + 0, 1, 2. With several
   estimators (the estimators studies) the networks are trained once and every estimator has cache
   kinds of its own (PREFIX_mi_ts_ESTIMATOR), so each one's events are recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cchsweep.kd import classification_kd_loss
from cchsweep.metrics import classification_metrics
from cchsweep.mi.triplet import estimate_one, mi_values
from cchsweep.study import MIValue, TrialContext, TrialOutput
from cchsweep.train import LossFn, cpu_state, predict, represent, with_state

ROLES = ("teacher", "student")


@dataclass
class Pairing:
    """One (teacher modality, student modality, seed) of a study, on the trial's device."""

    prefix: str  # cache kinds start with it: "tcga", "mosei"
    x_train: Mapping[str, torch.Tensor]  # role -> train rows (clean)
    x_test: Mapping[str, torch.Tensor]
    y_train: torch.Tensor
    y_test: torch.Tensor
    teacher_noisy: tuple[torch.Tensor, torch.Tensor]  # the teacher's noisy train and test rows
    mi_rows: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (train, test) rows -> the rows MI sees
    labels: np.ndarray  # the MI rows' labels, one-hot
    build: Callable[[str, int], nn.Module]  # (role, init seed) -> an untrained network (seeds torch's RNG)
    train: Callable[[nn.Module, torch.Tensor, LossFn, int], nn.Module]  # (net, inputs, loss, order seed)
    keys: Mapping[str, dict]  # role -> cache key of its network; "mi" -> base key of its MI
    noise_key: dict  # what of the noise I_TS depends on


def no_kd_networks(ctx: TrialContext, p: Pairing, seed: int) -> tuple[nn.Module, nn.Module]:
    """The teacher and the no-KD student, trained with cross-entropy once and then read from the cache."""

    def ce(out, idx):
        return F.cross_entropy(out, p.y_train[idx])

    kinds = {"teacher": f"{p.prefix}_teacher", "student": f"{p.prefix}_nokd"}
    teacher, nokd = (
        with_state(p.build(role, 0), ctx.cached(kinds[role], p.keys[role], partial(_state, p, role, seed, ce)))
        for role in ROLES
    )
    return teacher, nokd


def _state(p: Pairing, role: str, seed: int, loss: LossFn) -> dict[str, torch.Tensor]:
    return cpu_state(_trained(p, role, seed, loss))


def _trained(p: Pairing, role: str, seed: int, loss: LossFn) -> nn.Module:
    init = 2 * seed if role == "teacher" else 2 * seed + 1
    return p.train(p.build(role, init), p.x_train[role], loss, init)


def run(ctx: TrialContext, s: Mapping[str, Any], p: Pairing, estimators: Sequence[str]) -> TrialOutput:
    seed = int(s["seed"])
    temperature, lam = float(s["temperature"]), float(s["lam"])
    teacher, nokd = no_kd_networks(ctx, p, seed)
    t_logits = predict(teacher, p.teacher_noisy[0])  # the frozen teacher's soft targets, noisy input

    def kd_loss(out, idx):
        return classification_kd_loss(out, p.y_train[idx], t_logits[idx], temperature, lam)

    kd = _trained(p, "student", seed, kd_loss)  # the no-KD student's initial weights and batch order
    metrics = {
        "teacher": classification_metrics(predict(teacher, p.x_test["teacher"]), p.y_test),
        "nokd": classification_metrics(predict(nokd, p.x_test["student"]), p.y_test),
        "kd": classification_metrics(predict(kd, p.x_test["student"]), p.y_test),
    }
    h_noisy = _rep(teacher, p.mi_rows(*p.teacher_noisy))
    h_teacher = _rep(teacher, p.mi_rows(p.x_train["teacher"], p.x_test["teacher"]))
    h_student = _rep(nokd, p.mi_rows(p.x_train["student"], p.x_test["student"]))
    mi: list[MIValue] = []
    for estimator in estimators:
        se = {**s, "mi_estimator": estimator}
        suffix = f"_{estimator}" if len(estimators) > 1 else ""
        key = {**p.keys["mi"], "mi_estimator": estimator}
        i_ts = ctx.cached(
            f"{p.prefix}_mi_ts{suffix}",
            {**key, **p.noise_key},
            partial(estimate_one, se, ctx.device, h_noisy, h_student, seed * 10),
        )
        label_mi = ctx.cached(
            f"{p.prefix}_mi_label{suffix}",
            key,
            partial(_label_mi, se, ctx.device, h_student, h_teacher, p.labels, seed),
        )
        mi += mi_values({"i_ts": i_ts, **label_mi}, estimator, s["mi_repeats"], len(p.labels))
    gain = metrics["kd"]["f1_weighted"] - metrics["nokd"]["f1_weighted"]
    return TrialOutput(metrics=metrics, gain_metric="f1_weighted", kd_gain=gain, mi=mi)


def _label_mi(
    s: Mapping[str, Any], device: str, h_student: np.ndarray, h_teacher: np.ndarray, labels: np.ndarray, seed: int
) -> dict[str, list]:
    return {
        "i_sl": estimate_one(s, device, h_student, labels, seed * 10 + 1),
        "i_tl": estimate_one(s, device, h_teacher, labels, seed * 10 + 2),
    }


def _rep(net: nn.Module, rows: torch.Tensor) -> np.ndarray:
    return represent(net, rows).cpu().numpy()
