"""Closed-form mutual information for the synthetic Gaussian model, in nats."""

from __future__ import annotations

import numpy as np

from cchsweep.data.synthetic import covariance_blocks


def mi_from_correlation(rho: float) -> float:
    """I(A; B) = -1/2 log(1 - rho^2) for jointly Gaussian scalars."""
    return float(-0.5 * np.log1p(-rho * rho))


def mi_from_covariance(cov: np.ndarray, dim_a: int) -> float:
    """I(A; B) = 1/2 (log det S_AA + log det S_BB - log det S) for a Gaussian vector (A, B)."""
    _, ld_a = np.linalg.slogdet(cov[:dim_a, :dim_a])
    _, ld_b = np.linalg.slogdet(cov[dim_a:, dim_a:])
    _, ld = np.linalg.slogdet(cov)
    return float(0.5 * (ld_a + ld_b - ld))


def optimal_linear_mi(p: int, sigma12: float, sigma13: float, sigma23: float) -> dict[str, float]:
    """MI between the optimal linear teacher w1'x1, student w*'x2 and y (Theorem 1's quantities).

    w1 = S11^-1 S13 and w* = S22^-1 S23. Returns i_ts = I(w1'x1; w*'x2), i_sl = I(w*'x2; y),
    i_tl = I(w1'x1; y) and their gap i_ts - i_sl.
    """
    s = covariance_blocks(p, sigma12, sigma13, sigma23)
    w1 = np.linalg.solve(s["11"], s["13"])
    ws = np.linalg.solve(s["22"], s["23"])
    var_t = w1 @ s["11"] @ w1
    var_s = ws @ s["22"] @ ws
    rho_ts = (w1 @ s["12"] @ ws) / np.sqrt(var_t * var_s)
    rho_sl = (ws @ s["23"]) / np.sqrt(var_s)
    rho_tl = (w1 @ s["13"]) / np.sqrt(var_t)
    out = {
        "i_ts": mi_from_correlation(rho_ts),
        "i_sl": mi_from_correlation(rho_sl),
        "i_tl": mi_from_correlation(rho_tl),
    }
    out["mi_gap"] = out["i_ts"] - out["i_sl"]
    return out


def data_processing_bounds(p: int, sigma12: float, sigma13: float, sigma23: float) -> dict[str, float]:
    """Upper bounds on what any representation can carry (data processing: H1 = f(X1), H2 = g(X2)):
    i_ts <= I(X1; X2), i_sl <= I(X2; Y), i_tl <= I(X1; Y), from the generator's covariance.
    (sigma23 = 0.4, p = 100: I(X2; Y) = 1.499 nats.)"""
    s = covariance_blocks(p, sigma12, sigma13, sigma23)

    def with_y(block: str, cross: str) -> float:
        cov = np.block([[s[block], s[cross][:, None]], [s[cross][None, :], np.ones((1, 1))]])
        return mi_from_covariance(cov, p)

    x1x2 = np.block([[s["11"], s["12"]], [s["12"].T, s["22"]]])
    return {"i_ts": mi_from_covariance(x1x2, p), "i_sl": with_y("22", "23"), "i_tl": with_y("11", "13")}
