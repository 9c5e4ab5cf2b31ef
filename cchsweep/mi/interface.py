"""The estimator protocol. Imports nothing from the package so estimators plug in freely."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Protocol

import numpy as np


class MIEstimator(Protocol):
    @property
    def name(self) -> str:
        """The estimator's name, recorded with every value."""

    def config(self) -> dict[str, Any]:
        """The settings that determine the estimate (recorded beside every value)."""

    def estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        """I(X; Y) in nats for paired samples x (n, dx) and y (n, dy)."""


def estimate_repeated(
    estimator: MIEstimator, x: np.ndarray, y: np.ndarray, *, repeats: int, seed: int
) -> tuple[float, float | None]:
    """Mean and standard error over `repeats` independently seeded estimates (SE None for 1)."""
    return summarize(estimate_all(estimator, [(x, y, seed * 1000 + r) for r in range(repeats)]))


def estimate_all(estimator: Any, tasks: list[tuple[np.ndarray, np.ndarray, int]]) -> list[float]:
    """Every (x, y, seed): in one batched call where the estimator has `estimate_many` (lmi)."""
    if hasattr(estimator, "estimate_many"):
        return list(estimator.estimate_many(tasks))
    return [estimator.estimate(x, y, seed=seed) for x, y, seed in tasks]


def summarize(values: list[float]) -> tuple[float, float | None]:
    """Mean and standard error of repeated estimates (SE None for one)."""
    repeats = len(values)
    mean = float(np.mean(values))
    if repeats < 2:
        return mean, None
    return mean, float(np.std(values, ddof=1) / math.sqrt(repeats))


def recorded_config(estimator: Any, *ignored: str) -> dict[str, Any]:
    """A dataclass estimator's fields, less those that do not change the value (device, threads)."""
    cfg = asdict(estimator)
    for name in ignored:
        cfg.pop(name)
    return cfg


def two_d(a: np.ndarray) -> np.ndarray:
    """float64 (n, d): a 1-d array becomes one column, more dimensions are flattened per sample."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(-1, 1) if a.ndim == 1 else a.reshape(a.shape[0], -1)


def paired(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y as two_d arrays with the same number of samples, or a ValueError naming both counts."""
    x, y = two_d(x), two_d(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    return x, y
