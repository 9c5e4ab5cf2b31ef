"""The estimator protocol. Imports nothing from the package so estimators plug in freely."""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np


class MIEstimator(Protocol):
    name: str

    def config(self) -> dict[str, Any]:
        """The settings that determine the estimate (recorded beside every value)."""

    def estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        """I(X; Y) in nats for paired samples x (n, dx) and y (n, dy)."""


def estimate_repeated(estimator: MIEstimator, x: np.ndarray, y: np.ndarray, *, repeats: int,
                      seed: int) -> tuple[float, float | None]:
    """Mean and standard error over `repeats` independently seeded estimates (SE None for 1)."""
    values = [estimator.estimate(x, y, seed=seed * 1000 + r) for r in range(repeats)]
    mean = float(np.mean(values))
    if repeats < 2:
        return mean, None
    return mean, float(np.std(values, ddof=1) / math.sqrt(repeats))
