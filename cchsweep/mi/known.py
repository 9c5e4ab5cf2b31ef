"""Pairs with known mutual information (nats) in the shapes the studies produce.

* `gaussian_pair`: x in dx dims, y in dy dims, the information carried by `informative` coordinate
  pairs (equal correlation each), then each side rotated by a random orthogonal matrix so it is
  spread over every coordinate, as in a learned representation. MI is invariant under invertible
  maps of either side, so the truth is m * -1/2 log(1 - rho^2) exactly.
* `label_pair`: x | class c ~ N(mu_c, I) in d dims with classes uniform, y one-hot; the truth
  I = log C + E[log p(c | x)], integrated by Monte Carlo on 200,000 fresh samples (SE ~ 0.002).
* `calibration_pair`: the mi_calibration study's families on top of those two (PAIRS):
  information in a few directions or spread over all; information and variance in a few
  directions (as in a learned representation whose variance sits in a few directions); the
  same pairs under invertible nonlinear maps of each side (half-cube on x, asinh on y) or with
  Student-t (3 dof) marginals (heavy tails, a Gaussian copula: an invertible map per
  coordinate), whose truth is the Gaussian pair's; and representation-vs-label pairs whose
  class separation is solved for the wanted MI.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import stats
from scipy.special import logsumexp

# family -> what it is; the quantity it stands in for: a representation pair is I(H_T; H_S)'s shape,
# a representation-vs-label pair I(H_S; Y)'s
PAIRS = {
    "few": "Gaussian pair, MI in 2 directions, rotated over every coordinate",
    "lowrank": "Gaussian pair, MI and variance in 4 directions (the rest std 0.1), rotated",
    "many": "Gaussian pair, MI spread evenly over every dimension",
    "nonlinear": "the 'few' pair under invertible maps: x -> x|x|^0.5, y -> asinh(y)",
    "heavy": "the 'few' pair with Student-t (3 dof) marginals (Gaussian copula)",
    "label": "Gaussian mixture vs one-hot label, 10 classes",
}
QUANTITY = {"few": "i_ts", "lowrank": "i_ts", "many": "i_ts", "nonlinear": "i_ts", "heavy": "i_ts", "label": "i_sl"}
CLASSES = 10
HEAVY_DOF = 3


def _rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def gaussian_pair(
    n: int, dx: int, dy: int, mi: float, seed: int, informative: int | None = None, spread: float = 1.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """(x [n, dx], y [n, dy], true MI in nats); `informative` defaults to min(dx, dy, 4). The
    uninformative coordinates have std `spread` before the rotation (an invertible linear map of
    each side: the MI is the same whatever it is)."""
    m = informative or min(dx, dy, 4)
    if m > min(dx, dy):
        raise ValueError(f"informative={m} exceeds min(dx, dy)={min(dx, dy)}")
    rho = math.sqrt(1.0 - math.exp(-2.0 * mi / m))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dx))
    y = rng.standard_normal((n, dy))
    y[:, :m] = rho * x[:, :m] + math.sqrt(1.0 - rho**2) * y[:, :m]
    x[:, m:] *= spread
    y[:, m:] *= spread
    geometry = np.random.default_rng(10_000 + dx * 1000 + dy)  # one fixed rotation per shape
    return x @ _rotation(dx, geometry), y @ _rotation(dy, geometry), m * -0.5 * math.log(1.0 - rho**2)


def _class_means(d: int, classes: int, separation: float) -> np.ndarray:
    return separation * np.random.default_rng(20_000 + d * 100 + classes).standard_normal((classes, d)) / math.sqrt(2)


def label_pair(n: int, d: int, classes: int, separation: float, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(x [n, d], one-hot y [n, classes], true MI in nats) for a Gaussian mixture with fixed means."""
    means = _class_means(d, classes, separation)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = means[labels] + rng.standard_normal((n, d))
    return x, np.eye(classes)[labels], label_mi(d, classes, separation)


def label_mi(d: int, classes: int, separation: float, samples: int = 200_000, seed: int = 1) -> float:
    """I(x; c) in nats by Monte Carlo over `samples` fresh draws (in chunks: 256-d stays small)."""
    means = _class_means(d, classes, separation)
    rng = np.random.default_rng(seed)
    total = 0.0
    for start in range(0, samples, 20_000):
        m = min(20_000, samples - start)
        labels = rng.integers(0, classes, m)
        x = means[labels] + rng.standard_normal((m, d))
        # log p(c | x) with equal priors and unit covariance: softmax of -|x - mu_c|^2 / 2
        logits = x @ means.T - 0.5 * (means**2).sum(1)
        total += float((logits[np.arange(m), labels] - logsumexp(logits, axis=1)).sum())
    return math.log(classes) + total / samples


@lru_cache(maxsize=64)
def label_separation(d: int, classes: int, target: float) -> float:
    """The class separation whose label MI is `target` nats (bisection on 20,000 common draws)."""
    if not 0 < target < math.log(classes):
        raise ValueError(f"a {classes}-class label carries between 0 and log {classes} = {math.log(classes):.3f} nats")
    lo, hi = 0.0, 1.0
    while label_mi(d, classes, hi, 20_000, seed=2) < target:
        lo, hi = hi, 2 * hi
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if label_mi(d, classes, mid, 20_000, seed=2) < target else (lo, mid)
    return (lo + hi) / 2


def _half_cube(a: np.ndarray) -> np.ndarray:
    return a * np.sqrt(np.abs(a))


def _student_t(a: np.ndarray, dof: int = HEAVY_DOF) -> np.ndarray:
    """Each N(0, 1) coordinate mapped to Student-t(dof) by quantiles, from the tail that keeps precision."""
    return np.sign(a) * stats.t.isf(stats.norm.sf(np.abs(a)), dof)


def calibration_pair(pair: str, dim: int, mi: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(x, y, true MI in nats) of one family of PAIRS. A label pair's MI is capped 0.1 nats below
    log CLASSES (what 10 classes can carry); the truth returned is the one the samples have."""
    if pair == "label":
        target = min(mi, math.log(CLASSES) - 0.1)
        x, y, _ = label_pair(n, dim, CLASSES, label_separation(dim, CLASSES, target), seed)
        return x, y, label_mi(dim, CLASSES, label_separation(dim, CLASSES, target))
    if pair not in PAIRS:
        raise ValueError(f"unknown calibration pair {pair!r}; choose one of {', '.join(PAIRS)}")
    if pair == "lowrank":
        return gaussian_pair(n, dim, dim, mi, seed, informative=min(dim, 4), spread=0.1)
    x, y, truth = gaussian_pair(n, dim, dim, mi, seed, informative=dim if pair == "many" else 2)
    if pair == "nonlinear":
        return _half_cube(x), np.arcsinh(y), truth
    if pair == "heavy":
        return _student_t(x), _student_t(y), truth
    return x, y, truth
