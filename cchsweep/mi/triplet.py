"""The CCH's three quantities from representations: I_TS, I_SL, I_TL (nats, with SE)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cchsweep.mi.interface import MIEstimator, estimate_all, estimate_repeated, summarize
from cchsweep.mi.ksg import KSG
from cchsweep.mi.latentmi_estimator import LatentMI
from cchsweep.mi.lmi import LMI
from cchsweep.mi.mine import MINE
from cchsweep.study import MIValue

ESTIMATORS = ("lmi", "latentmi", "mine", "ksg")  # what a study's mi_estimator may name
COMPARED = ("latentmi", "mine", "ksg")  # the paper's Table 2 estimators (the estimators studies run each)
QUANTITIES = ("i_ts", "i_sl", "i_tl")


def make_estimator(settings: Mapping[str, Any], device: str) -> MIEstimator:
    """lmi and latentmi take the study's mi_epochs and mi_lr; MINE and KSG keep their own tested defaults."""
    name = settings["mi_estimator"]
    if name == "lmi":
        return LMI(epochs=settings["mi_epochs"], lr=settings["mi_lr"], device=device)
    if name == "latentmi":
        return LatentMI(epochs=settings["mi_epochs"], lr=settings["mi_lr"], device=device)
    if name == "mine":
        return MINE(device=device)
    if name == "ksg":
        return KSG(workers=-1)  # labels (one-hot) switch it to Ross's discrete-continuous estimator
    raise ValueError(f"unknown MI estimator {name!r}; choose one of {', '.join(ESTIMATORS)}")


def estimate_one(settings: Mapping[str, Any], device: str, a: np.ndarray, b: np.ndarray, seed: int) -> list:
    """[mean, se] of I(a; b) by the estimator `settings` names, over settings["mi_repeats"] seeded repeats."""
    mean, se = estimate_repeated(make_estimator(settings, device), a, b, repeats=settings["mi_repeats"], seed=seed)
    return [mean, se]


def mi_triplet(
    h_teacher: np.ndarray, h_student: np.ndarray, labels: np.ndarray, estimator: MIEstimator, *, repeats: int, seed: int
) -> dict[str, list]:
    """{quantity: [mean, se]} for I(H_T; H_S), I(H_S; Y) and I(H_T; Y).

    `labels` must already be 2-D in the form the estimator should see (one-hot for classes).
    """
    pairs = {"i_ts": (h_teacher, h_student), "i_sl": (h_student, labels), "i_tl": (h_teacher, labels)}
    # every quantity's repeats in one call (lmi trains them together), seeds as estimate_repeated's
    tasks = [
        (a, b, (seed * 10 + offset) * 1000 + r) for offset, (a, b) in enumerate(pairs.values()) for r in range(repeats)
    ]
    values = estimate_all(estimator, tasks)
    return {q: list(summarize(values[i * repeats : (i + 1) * repeats])) for i, q in enumerate(pairs)}


def mi_values(
    values: Mapping[str, list], estimator: str, repeats: int, n_samples: int, truth: Mapping[str, float] | None = None
) -> list[MIValue]:
    """The typed MIValues of a {quantity: [mean, se]} triplet (as cached), with the closed form if any."""
    return [
        MIValue(
            q, estimator, float(values[q][0]), values[q][1], repeats, None if truth is None else truth[q], n_samples
        )
        for q in QUANTITIES
    ]
