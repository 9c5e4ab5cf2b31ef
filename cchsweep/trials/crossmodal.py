"""The one cross-modal KD pipeline: teacher -> no-KD student -> KD student -> MI triplet, per estimator.

The TCGA (cchsweep.trials.tcga) and CMU-MOSEI (cchsweep.trials.mosei) trials differ only in their
data, networks and optimiser; each builds a `Pairing` per grid point and calls `run` (one point, one
network at a time: the reference) or `run_bundle` (many points, their networks trained as stacks):

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

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cchsweep.kd import classification_kd_loss, stacked_classification_kd_losses
from cchsweep.metrics import classification_metrics
from cchsweep.mi.triplet import MIRequest, cached_mi, mi_values
from cchsweep.stack import Member, Recipe, train_single, train_stacked
from cchsweep.study import BASELINES, MIValue, TrainFn, TrialContext, TrialOutput, counted
from cchsweep.train import cpu_state, predict, represent, with_state

ROLES = ("teacher", "student")
KINDS = {"teacher": "teacher", "student": "nokd"}


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
    recipes: Mapping[str, Recipe]  # role -> how its network is built and trained (shared by a bundle's pairings)
    keys: Mapping[str, dict]  # role -> cache key of its network; "mi" -> base key of its MI
    noise_key: dict  # what of the noise I_TS depends on
    seed: int = 0

    def member(self, role: str, teacher_logits: torch.Tensor | None = None, coefs=None) -> Member:
        """Role's network as a stack member: init and batch order 2*seed (teacher), 2*seed+1 (students);
        cross-entropy alone unless teacher logits and (temperature, lam) are given."""
        init = 2 * self.seed if role == "teacher" else 2 * self.seed + 1
        if teacher_logits is None:  # unused at lam = 0; the stacked loss still wants a tensor
            teacher_logits = torch.zeros(len(self.y_train), self.labels.shape[1], device=self.y_train.device)
        return Member(init, init, self.x_train[role], {"y": self.y_train, "teacher": teacher_logits}, coefs or PLAIN)


PLAIN = {"temperature": 1.0, "lam": 0.0}  # eq. (2) at lam = 0: plain cross-entropy


def kd_loss(out: torch.Tensor, batch: Mapping[str, torch.Tensor], coefs: Mapping[str, float]) -> torch.Tensor:
    return classification_kd_loss(out, batch["y"], batch["teacher"], coefs["temperature"], coefs["lam"])


def stacked_kd_loss(out, batch, coefs) -> torch.Tensor:
    return stacked_classification_kd_losses(out, batch["y"], batch["teacher"], coefs["temperature"], coefs["lam"])


def train_grouped(train: TrainFn, members: Sequence[tuple[Recipe, Member]], device) -> list[nn.Module]:
    """Train (recipe, member) pairs, one stack per recipe; the models come back in the given order."""
    out: list[nn.Module | None] = [None] * len(members)
    by_recipe: dict[int, list[int]] = {}
    for i, (recipe, _) in enumerate(members):
        by_recipe.setdefault(id(recipe), []).append(i)
    for indices in by_recipe.values():
        recipe = members[indices[0]][0]
        for i, model in zip(indices, train(recipe, [members[i][1] for i in indices], device)):
            out[i] = model
    return out  # type: ignore[return-value]


def no_kd_networks(
    ctx: TrialContext, pairings: Sequence[Pairing], train: TrainFn = train_single
) -> list[tuple[nn.Module, nn.Module]]:
    """Each pairing's teacher and no-KD student: trained with cross-entropy once (the missing ones
    together), then read from the cache."""
    roles = [(p, role) for p in pairings for role in ROLES]
    items = [(f"{p.prefix}_{KINDS[role]}", p.keys[role]) for p, role in roles]

    def build(missing: list[int]) -> list[dict[str, torch.Tensor]]:
        members = [(roles[i][0].recipes[roles[i][1]], roles[i][0].member(roles[i][1])) for i in missing]
        ctx.progress(f"training {counted(len(members), *BASELINES)}")
        return [cpu_state(m) for m in train_grouped(train, members, _device(pairings[0]))]

    states = ctx.cached_many(items, build)
    nets = [with_state(p.recipes[role].build().to(_device(p)), st) for (p, role), st in zip(roles, states)]
    return [(nets[2 * i], nets[2 * i + 1]) for i in range(len(pairings))]


def run(ctx: TrialContext, s: Mapping[str, Any], p: Pairing, estimators: Sequence[str]) -> TrialOutput:
    """One grid point, one network at a time (the reference path)."""
    return run_bundle(ctx, [s], [p], estimators, train_single)[0]


def run_bundle(
    ctx: TrialContext,
    points: Sequence[Mapping[str, Any]],
    pairings: Sequence[Pairing],
    estimators: Sequence[str],
    train: TrainFn = train_stacked,
) -> list[TrialOutput]:
    """Grid points (merged settings) with their pairings: baselines, then every KD student together."""
    distinct: dict[str, Pairing] = {}
    for p in pairings:
        distinct.setdefault(repr((p.keys["teacher"], p.keys["student"])), p)
    baselines = dict(zip(distinct, no_kd_networks(ctx, list(distinct.values()), train)))
    nets = [baselines[repr((p.keys["teacher"], p.keys["student"]))] for p in pairings]
    kd_members = []
    for s, p, (teacher, _) in zip(points, pairings, nets):
        t_logits = predict(teacher, p.teacher_noisy[0])  # the frozen teacher's soft targets, noisy input
        coefs = {"temperature": float(s["temperature"]), "lam": float(s["lam"])}
        kd_members.append((p.recipes["student"], p.member("student", t_logits, coefs)))
    ctx.progress(f"training {counted(len(kd_members), 'KD student')}")
    kd_nets = train_grouped(train, kd_members, _device(pairings[0]))
    # every point's MI for every estimator: the missing estimates made together (lmi stacks them)
    requests, reps = [], []
    for s, p, (teacher, nokd) in zip(points, pairings, nets):
        rep = _representations(p, teacher, nokd)
        reps.append(rep)
        requests += [r for estimator in estimators for r in _mi_requests(s, p, rep, estimator, len(estimators) > 1)]
    values = cached_mi(ctx, requests, ctx.device)
    outputs = []
    for i, (s, p, (teacher, nokd), kd) in enumerate(zip(points, pairings, nets, kd_nets)):
        mine = values[2 * len(estimators) * i : 2 * len(estimators) * (i + 1)]
        outputs.append(_output(s, p, teacher, nokd, kd, estimators, mine))
    return outputs


def _output(s, p: Pairing, teacher, nokd, kd, estimators: Sequence[str], values: list) -> TrialOutput:
    metrics = {
        "teacher": classification_metrics(predict(teacher, p.x_test["teacher"]), p.y_test),
        "nokd": classification_metrics(predict(nokd, p.x_test["student"]), p.y_test),
        "kd": classification_metrics(predict(kd, p.x_test["student"]), p.y_test),
    }
    mi: list[MIValue] = []
    for j, estimator in enumerate(estimators):
        i_ts, label_mi = values[2 * j], values[2 * j + 1]
        mi += mi_values({"i_ts": i_ts, **label_mi}, estimator, s["mi_repeats"], len(p.labels))
    gain = metrics["kd"]["f1_weighted"] - metrics["nokd"]["f1_weighted"]
    return TrialOutput(metrics=metrics, gain_metric="f1_weighted", kd_gain=gain, mi=mi)


def _representations(p: Pairing, teacher: nn.Module, nokd: nn.Module) -> Callable[[], dict[str, np.ndarray]]:
    """The MI rows' representations (computed once, on first use): the teacher on its noisy and clean
    inputs, the no-KD student."""

    @functools.cache
    def get() -> dict[str, np.ndarray]:
        return {
            "noisy": _rep(teacher, p.mi_rows(*p.teacher_noisy)),
            "teacher": _rep(teacher, p.mi_rows(p.x_train["teacher"], p.x_test["teacher"])),
            "student": _rep(nokd, p.mi_rows(p.x_train["student"], p.x_test["student"])),
        }

    return get


def _mi_requests(s, p: Pairing, rep, estimator: str, several: bool) -> list[MIRequest]:
    """I_TS (cached per noise) and I_SL, I_TL (per pairing and seed) by one estimator."""
    seed = int(s["seed"])
    se = {**s, "mi_estimator": estimator}
    suffix = f"_{estimator}" if several else ""
    key = {**p.keys["mi"], "mi_estimator": estimator}
    return [
        MIRequest(
            f"{p.prefix}_mi_ts{suffix}",
            {**key, **p.noise_key},
            se,
            lambda: {"i_ts": (rep()["noisy"], rep()["student"], seed * 10)},
            pack=lambda v: v["i_ts"],  # cached as [mean, se]
        ),
        MIRequest(
            f"{p.prefix}_mi_label{suffix}",
            key,
            se,
            lambda: {
                "i_sl": (rep()["student"], p.labels, seed * 10 + 1),
                "i_tl": (rep()["teacher"], p.labels, seed * 10 + 2),
            },
        ),
    ]


def _device(p: Pairing) -> torch.device:
    return p.y_train.device


def _rep(net: nn.Module, rows: torch.Tensor) -> np.ndarray:
    return represent(net, rows).cpu().numpy()
