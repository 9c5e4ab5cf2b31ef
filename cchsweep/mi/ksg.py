"""The paper's "ksg" estimator: KSG (Kraskov et al., 2004) and, for a label, Ross (2014).

Two continuous variables get KSG's algorithm 1 under the max-norm (Chebyshev):

    I(X; Y) = psi(k) + psi(N) - < psi(n_x + 1) + psi(n_y + 1) >

where eps_i is the distance from point i to its k-th neighbour in the joint space and
n_x (n_y) counts the other points strictly closer than eps_i in the X (Y) marginal.

A continuous X with a discrete label Y gets Ross's (2014) estimator:

    I(X; Y) = psi(N) - < psi(N_c) > + < psi(k_c) > - < psi(m) >

where N_c is the size of point i's class, k_c = min(k, N_c - 1), d_i is the distance
from point i to its k_c-th neighbour within its own class, and m_i counts the points of
the whole set strictly closer than d_i, point i included (equivalently the other points
within d_i, the k_c-th neighbour included, as in Ross and scikit-learn). Points whose
class occurs only once carry no information about their neighbourhood and are dropped
(as scikit-learn does); N is the number of points left.

Neither estimate is clipped at zero, so averages over repeats stay unbiased around 0.
As NPEET and latentmi's ksg do, continuous inputs get uniform jitter of 1e-10 (seeded) to
break ties, in float64, after the optional z-scoring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import digamma

from cchsweep.mi.interface import recorded_config, two_d
from cchsweep.mi.knn import chebyshev_counts, count_below, kth_distance

_JITTER = 1e-10


@dataclass(frozen=True)
class KSG:
    """KSG for continuous pairs; Ross (2014) when one argument is a class label. Nats.

    Which estimator runs is decided by the arguments (`discrete_y=None`, the default):

    * ``y`` is a **label** when it is 1-D (or a single column) and every value is a whole
      number (integer or bool dtype, or floats like 0., 1., 2.), or when it is a **one-hot**
      matrix: at least two columns, every entry 0 or 1 and exactly one 1 in each row.
      Then Ross's estimator of I(X; Y) runs, with the classes being the distinct integers
      or the index of the hot column (so one-hot and integer labels give the same value).
    * The same rule is applied to ``x`` when ``y`` is not a label (MI is symmetric).
    * Otherwise both are continuous and KSG runs.
    * Both being labels raises ValueError (a plug-in discrete estimator is the right tool).

    ``discrete_y=True`` forces ``y`` to be read as labels (1-D/one column: its distinct
    values; several columns: one-hot, else its distinct rows); ``discrete_y=False`` forces
    KSG on whatever is given. ``standardize`` z-scores each continuous column (population
    std; constant columns are only centred) before the jitter.
    """

    k: int = 3
    standardize: bool = True
    discrete_y: bool | None = None
    workers: int = 1  # kept for old configs; torch's threads do the work (does not change the value)
    name: str = "ksg"

    def config(self) -> dict:
        return recorded_config(self, "workers")

    def estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        x_arr, y_arr = np.asarray(x), np.asarray(y)
        if x_arr.shape[0] != y_arr.shape[0]:
            raise ValueError(f"x has {x_arr.shape[0]} samples but y has {y_arr.shape[0]}")
        rng = np.random.default_rng(seed)

        if self.discrete_y is None:
            y_labels, x_labels = _as_labels(y_arr), _as_labels(x_arr)
            if y_labels is not None and x_labels is not None:
                raise ValueError(
                    "both x and y look like class labels; KSG/Ross needs one "
                    "continuous argument (pass discrete_y=False to force KSG)"
                )
            if y_labels is not None:
                return self._ross(x_arr, y_labels, rng)
            if x_labels is not None:
                return self._ross(y_arr, x_labels, rng)
        elif self.discrete_y:
            return self._ross(x_arr, _forced_labels(y_arr), rng)
        return self._ksg(x_arr, y_arr, rng)

    # -- estimators -------------------------------------------------------------------------

    def _ksg(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        x, y = self._prepare(x, rng), self._prepare(y, rng)
        n = x.shape[0]
        if n <= self.k:
            raise ValueError(f"KSG with k={self.k} needs more than {self.k} samples, got {n}")
        # counts strictly inside the joint k-th neighbour distance, the point itself included: n_x + 1,
        # n_y + 1 (brute-force Chebyshev distances on torch: exact, and ~8x faster than trees at 64-d)
        n_x, n_y = (c.numpy() for c in chebyshev_counts(torch.from_numpy(x), torch.from_numpy(y), self.k, strict=True))
        value = digamma(self.k) + digamma(n) - np.mean(digamma(n_x)) - np.mean(digamma(n_y))
        return float(value)

    def _ross(self, x: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> float:
        x = self._prepare(x, rng)
        _, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
        codes = codes.reshape(-1)
        keep = counts[codes] > 1  # singleton classes say nothing about their neighbourhood
        x, codes = x[keep], codes[keep]
        n = x.shape[0]
        if n < 2:
            raise ValueError("Ross's estimator needs a class with at least two samples")
        radius = np.empty(n)
        class_size = np.empty(n)
        k_used = np.empty(n)
        for c in np.unique(codes):
            idx = np.flatnonzero(codes == c)
            k_c = min(self.k, idx.size - 1)
            radius[idx] = kth_distance(torch.from_numpy(x[idx]), k_c).numpy()
            class_size[idx] = idx.size
            k_used[idx] = k_c
        m = count_below(torch.from_numpy(x), torch.from_numpy(radius)).numpy()  # strictly closer, self included
        value = digamma(n) - np.mean(digamma(class_size)) + np.mean(digamma(k_used)) - np.mean(digamma(m))
        return float(value)

    def _prepare(self, a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = two_d(a)
        if not np.all(np.isfinite(a)):
            raise ValueError("inputs must be finite")
        if self.standardize:
            a = a - a.mean(axis=0)
            std = a.std(axis=0)
            a = a / np.where(std > 0, std, 1.0)
        return a + _JITTER * rng.random(a.shape)


def _as_labels(a: np.ndarray) -> np.ndarray | None:
    """Integer class codes if `a` is a label vector or a one-hot matrix, else None."""
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 1:
        if a.dtype.kind in "biu":
            return a.astype(np.int64)
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            return a.astype(np.int64)
        return None
    if a.ndim == 2 and a.shape[1] >= 2 and a.dtype.kind in "biuf":
        if np.all((a == 0) | (a == 1)) and np.all(a.sum(axis=1) == 1):
            return np.argmax(a, axis=1).astype(np.int64)
    return None


def _forced_labels(a: np.ndarray) -> np.ndarray:
    labels = _as_labels(a)
    if labels is not None:
        return labels
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 1:
        return np.unique(a, return_inverse=True)[1].reshape(-1)
    return np.unique(a.reshape(a.shape[0], -1), axis=0, return_inverse=True)[1].reshape(-1)
