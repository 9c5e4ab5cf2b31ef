"""KSG (Kraskov et al. 2004, algorithm 1) on torch in float64, chunked: latentmi's `ksg.mi` exactly.

latentmi (after NPEET) takes eps_i, the Chebyshev distance from point i to its k-th neighbour in
the joint space, and counts in each marginal the points within eps_i - 1e-15 (itself included):

    pointwise_i = (psi(k) + psi(N) - psi(n_x,i) - psi(n_y,i)) / ln 2      [bits]

Distances are max |a - b| in float64, exact (one rounded subtraction per coordinate, then a max),
so the neighbour counts are the trees' counts and the values equal latentmi's to float rounding of
the digamma sums (1e-12 asserted in the tests). Rows are processed in chunks so memory stays
under `budget` bytes whatever N is; the same code runs on a CPU or a GPU.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import digamma

BUDGET = 256 * 1024**2  # bytes of distance matrices per chunk


def chebyshev_counts(
    x: torch.Tensor, y: torch.Tensor, k: int = 3, budget: int = BUDGET, strict: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_x, n_y) per point, int64 [N], self included: the marginal counts within eps, the joint
    distance to the k-th neighbour. latentmi's rule (default): d <= eps - 1e-15; `strict`: d < eps
    (cchsweep's `ksg` estimator, as its trees counted)."""
    _check(x, k)
    n = x.shape[0]
    n_x, n_y = [], []
    size = _chunk(n, 3, budget)
    for start in range(0, n, size):
        dx = torch.cdist(x[start : start + size], x, p=float("inf"))
        dy = torch.cdist(y[start : start + size], y, p=float("inf"))
        # k-th neighbour in the joint space: the (k+1)-th smallest distance, the point itself first
        eps = torch.maximum(dx, dy).kthvalue(k + 1, dim=1).values
        if strict:
            n_x.append((dx < eps[:, None]).sum(1))
            n_y.append((dy < eps[:, None]).sum(1))
        else:
            n_x.append((dx <= (eps - 1e-15)[:, None]).sum(1))
            n_y.append((dy <= (eps - 1e-15)[:, None]).sum(1))
    return torch.cat(n_x), torch.cat(n_y)


def kth_distance(x: torch.Tensor, k: int, budget: int = BUDGET) -> torch.Tensor:
    """Each point's Chebyshev distance to its k-th neighbour (the point itself not counted), float64 [N]."""
    _check(x, k)
    n = x.shape[0]
    out = []
    size = _chunk(n, 1, budget)
    for start in range(0, n, size):
        d = torch.cdist(x[start : start + size], x, p=float("inf"))
        out.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(out)


def count_below(x: torch.Tensor, radius: torch.Tensor, budget: int = BUDGET) -> torch.Tensor:
    """Per point, the points strictly closer than its radius (Chebyshev), itself included, int64 [N]."""
    n = x.shape[0]
    out = []
    size = _chunk(n, 1, budget)
    for start in range(0, n, size):
        d = torch.cdist(x[start : start + size], x, p=float("inf"))
        out.append((d < radius[start : start + size, None]).sum(1))
    return torch.cat(out)


def _check(x: torch.Tensor, k: int) -> None:
    if x.dtype != torch.float64:
        raise TypeError("KSG runs in float64 (the 1e-10 tie-breaking noise is below float32 resolution)")
    if x.shape[0] <= k:
        raise ValueError(f"KSG with k={k} needs more than {k} samples, got {x.shape[0]}")


def _chunk(n: int, matrices: int, budget: int) -> int:
    """Rows per chunk so `matrices` float64 [rows, n] distance matrices fit in `budget` bytes."""
    return max(1, budget // (matrices * 8 * n))


def ksg_pointwise_bits(x: torch.Tensor, y: torch.Tensor, k: int = 3, budget: int = BUDGET) -> np.ndarray:
    """latentmi.ksg.mi(x, y, k) (the noise already added): pointwise MI in bits, float64 [N]."""
    n_x, n_y = chebyshev_counts(x, y, k, budget)
    a, b = digamma(n_x.cpu().numpy()), digamma(n_y.cpu().numpy())
    return (digamma(k) + digamma(x.shape[0]) - a - b) / np.log(2)
