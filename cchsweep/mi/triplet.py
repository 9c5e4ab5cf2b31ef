"""The CCH's three quantities from representations: I_TS, I_SL, I_TL (nats, with SE)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cchsweep.mi.interface import MIEstimator, estimate_all, summarize
from cchsweep.mi.ksg import KSG
from cchsweep.mi.latentmi_estimator import LatentMI
from cchsweep.mi.lmi import LMI
from cchsweep.mi.mine import MINE
from cchsweep.study import MIValue, TrialContext, counted

ESTIMATORS = ("lmi", "latentmi", "mine", "ksg")  # what a study's mi_estimator may name
COMPARED = ("latentmi", "mine", "ksg")  # the paper's Table 2 estimators (the estimators studies run each)
QUANTITIES = ("i_ts", "i_sl", "i_tl")
# The paper and quick profiles' default: three estimators, whose consensus calls a sign only when all
# that decide agree (README, "How far to trust an MI estimate": none is calibrated at 64-d)
DEFAULT_ESTIMATORS = "lmi,ksg,mine"
# The quick profiles' MI: lmi at 40 epochs, lr 1e-3 (~10 s per estimate of 1,000 rows on a CPU core;
# mi_calibration's quick profile calibrates exactly these settings)
QUICK_MI = {"mi_epochs": 40, "mi_lr": 1e-3}
MANY_ESTIMATORS = "one estimator, or several (--set mi_estimator=lmi,ksg): the networks train once, each estimates"


def estimator_names(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The estimators a trial runs: settings["mi_estimator"] is one name or several joined by commas."""
    return tuple(str(settings["mi_estimator"]).split(","))


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


# name -> (a, b, base seed): the estimates one cached MI artifact is made of (repeats: base * 1000 + r)
Pairs = dict[str, tuple[np.ndarray, np.ndarray, int]]
BATCH = 64  # estimates per batched call at most (lmi stacks 64 on a GPU); bounds the representations held


@dataclass
class MIRequest:
    """A cached MI artifact a trial needs: its cache kind and config, the estimator settings
    (mi_estimator, mi_epochs, mi_lr, mi_repeats), the pairs it is made of (computed only when it is
    missing) and how its cached value is shaped from {name: [mean, se]} (default: that dict)."""

    kind: str
    config: Mapping[str, Any]
    settings: Mapping[str, Any]
    pairs: Callable[[], Pairs]
    pack: Callable[[dict[str, list]], Any] = field(default=lambda values: values)


def triplet_pairs(h_teacher: np.ndarray, h_student: np.ndarray, labels: np.ndarray, seed: int) -> Pairs:
    """mi_triplet's pairs and seeds: I(H_T; H_S), I(H_S; Y), I(H_T; Y) at seed * 10 + 0, 1, 2."""
    return {
        "i_ts": (h_teacher, h_student, seed * 10),
        "i_sl": (h_student, labels, seed * 10 + 1),
        "i_tl": (h_teacher, labels, seed * 10 + 2),
    }


def cached_mi(ctx: TrialContext, requests: Sequence[MIRequest], device: str) -> list[Any]:
    """Every request's value from the artifact cache; the missing ones estimated together: all their
    estimates (quantities x repeats x requests) in batched calls per estimator (lmi stacks them), with
    the seeds the one-at-a-time path uses, so the values are the same estimates."""

    def build(missing: list[int]) -> list[Any]:
        out: dict[int, dict[str, list]] = {i: {} for i in missing}
        chunk: list[tuple[int, str, Any, list]] = []  # (request, name, estimator, tasks)

        def flush() -> None:
            groups: dict[str, list[tuple[int, str, Any, list]]] = {}
            for item in chunk:
                groups.setdefault(repr(item[2]), []).append(item)
            for items in groups.values():
                values = estimate_all(items[0][2], [t for *_, tasks in items for t in tasks])
                for i, name, _, tasks in items:
                    out[i][name] = list(summarize(values[: len(tasks)]))
                    values = values[len(tasks) :]
            chunk.clear()

        total = sum(requests[i].settings["mi_repeats"] for i in missing)
        ctx.progress(f"estimating MI: {counted(len(missing), 'artifact')}, {counted(total, 'estimate')} per quantity")
        for i in missing:
            r = requests[i]
            estimator, repeats = make_estimator(r.settings, device), int(r.settings["mi_repeats"])
            for name, (a, b, seed) in r.pairs().items():
                chunk.append((i, name, estimator, [(a, b, seed * 1000 + k) for k in range(repeats)]))
            if sum(len(item[3]) for item in chunk) >= BATCH:
                flush()
        flush()
        return [requests[i].pack(out[i]) for i in missing]

    return ctx.cached_many([(r.kind, r.config) for r in requests], build)
