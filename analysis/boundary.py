"""Where does a per-trial quantity cross zero along one parameter? (The boundary search's answer.)"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Crossing:
    estimate: float  # linear interpolation inside the bracket
    lo: float  # the bracket: adjacent evaluated points with opposite signs
    hi: float
    n_points: int
    n_sign_changes: int  # more than 1: noise (or several roots); the bracket spans them all


def crossing(xs, ys) -> Crossing | None:
    """The zero crossing of y(x) from evaluated points, or None when y keeps one sign.

    Points at the same x are averaged first. With several sign changes (a noisy target) the
    interval runs from the first to the last change and the estimate is their midpoint.
    """
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    ux = np.unique(xs[ok])
    uy = np.array([ys[ok][xs[ok] == x].mean() for x in ux])
    if len(ux) == 0:
        return None
    exact = ux[uy == 0.0]
    signs = np.sign(uy)
    changes = [i for i in range(len(ux) - 1) if signs[i] * signs[i + 1] < 0]
    if not changes:
        if len(exact):
            return Crossing(float(exact[0]), float(exact[0]), float(exact[0]), len(ux), 0)
        return None
    first, last = changes[0], changes[-1]
    if len(changes) == 1:
        x0, x1, y0, y1 = ux[first], ux[first + 1], uy[first], uy[first + 1]
        estimate = x0 - y0 * (x1 - x0) / (y1 - y0)
        return Crossing(float(estimate), float(x0), float(x1), len(ux), 1)
    lo, hi = ux[first], ux[last + 1]
    return Crossing(float((lo + hi) / 2), float(lo), float(hi), len(ux), len(changes))
