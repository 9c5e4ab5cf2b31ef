"""The paper's synthetic Gaussian regression model (Section 4.1, Appendix B).

Y ~ N(0, 1);  X2 | Y ~ N(s23 Y 1_p, (1 - s23^2) I_p);  X1 | X2, Y ~ N(a X2 + b Y, v I_p).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Coefficients:
    a: float
    b: float
    v: float


def coefficients(sigma12: float, sigma13: float, sigma23: float) -> Coefficients:
    """Appendix B's a, b, v; raises ValueError when the covariance is not positive definite."""
    for name, value in (("sigma12", sigma12), ("sigma13", sigma13), ("sigma23", sigma23)):
        if not -1.0 < value < 1.0:
            raise ValueError(f"{name}={value} must lie strictly between -1 and 1")
    phi = 1.0 - sigma23**2
    a = (sigma12 - sigma13 * sigma23) / phi
    b = (sigma13 - sigma12 * sigma23) / phi
    v = 1.0 - (sigma12**2 + sigma13**2 - 2.0 * sigma12 * sigma13 * sigma23) / phi
    if v <= 0.0:
        lo, hi = valid_sigma12_interval(sigma13, sigma23)
        raise ValueError(
            f"sigma12={sigma12} gives conditional variance v={v:.4f} <= 0 for sigma13={sigma13}, "
            f"sigma23={sigma23}; choose sigma12 in ({lo:.3f}, {hi:.3f})"
        )
    return Coefficients(a, b, v)


def valid_sigma12_interval(sigma13: float, sigma23: float) -> tuple[float, float]:
    """The open interval of sigma12 for which v > 0 (roots of a quadratic in sigma12)."""
    phi = 1.0 - sigma23**2
    # v > 0  <=>  sigma12^2 - 2 s13 s23 sigma12 + (s13^2 - phi) < 0
    centre = sigma13 * sigma23
    half = np.sqrt(centre**2 - (sigma13**2 - phi))
    return centre - half, centre + half


def sample(
    n: int, p: int, sigma12: float, sigma13: float, sigma23: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (X1, X2, y) as float32 arrays of shapes (n, p), (n, p), (n,)."""
    c = coefficients(sigma12, sigma13, sigma23)
    y = rng.standard_normal(n)
    x2 = sigma23 * y[:, None] + np.sqrt(1.0 - sigma23**2) * rng.standard_normal((n, p))
    x1 = c.a * x2 + c.b * y[:, None] + np.sqrt(c.v) * rng.standard_normal((n, p))
    return x1.astype(np.float32), x2.astype(np.float32), y.astype(np.float32)


def covariance_blocks(p: int, sigma12: float, sigma13: float, sigma23: float) -> dict[str, np.ndarray]:
    """The covariance blocks that the generator implies (J is the all-ones matrix)."""
    coefficients(sigma12, sigma13, sigma23)  # validate
    eye, ones = np.eye(p), np.ones((p, p))
    return {
        "11": (1 - sigma13**2) * eye + sigma13**2 * ones,
        "22": (1 - sigma23**2) * eye + sigma23**2 * ones,
        "12": (sigma12 - sigma13 * sigma23) * eye + sigma13 * sigma23 * ones,
        "13": np.full(p, sigma13),
        "23": np.full(p, sigma23),
        "33": np.array(1.0),
    }
