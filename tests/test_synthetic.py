"""The Appendix B generator and the closed-form Gaussian MI."""

import numpy as np
import pytest

from cchsweep.data.synthetic import coefficients, covariance_blocks, sample, valid_sigma12_interval
from cchsweep.mi.gaussian import mi_from_correlation, mi_from_covariance, optimal_linear_mi


def test_sample_covariance_matches_implied_blocks():
    p, n = 5, 200_000
    x1, x2, y = sample(n, p, 0.3, 0.9, 0.4, np.random.default_rng(0))
    blocks = covariance_blocks(p, 0.3, 0.9, 0.4)
    z = np.hstack([x1, x2, y[:, None]]).astype(np.float64)
    emp = np.cov(z, rowvar=False)
    tol = 4 / np.sqrt(n)  # a few standard errors of a sample covariance with unit variances
    np.testing.assert_allclose(emp[:p, :p], blocks["11"], atol=tol)
    np.testing.assert_allclose(emp[p:2 * p, p:2 * p], blocks["22"], atol=tol)
    np.testing.assert_allclose(emp[:p, p:2 * p], blocks["12"], atol=tol)
    np.testing.assert_allclose(emp[:p, -1], blocks["13"], atol=tol)
    np.testing.assert_allclose(emp[p:2 * p, -1], blocks["23"], atol=tol)
    assert emp[-1, -1] == pytest.approx(1.0, abs=tol)


def test_invalid_parameters_raise_with_the_valid_interval():
    lo, hi = valid_sigma12_interval(0.9, 0.4)
    assert lo == pytest.approx(-0.0395, abs=1e-3) and hi == pytest.approx(0.7595, abs=1e-3)
    with pytest.raises(ValueError, match=r"v=.*<= 0.*\(-0.039, 0.759\)"):
        coefficients(0.8, 0.9, 0.4)
    with pytest.raises(ValueError, match="between -1 and 1"):
        coefficients(1.2, 0.9, 0.4)
    assert coefficients(0.75, 0.9, 0.4).v > 0


def test_closed_form_matches_log_det_of_the_projected_covariance():
    p, s12, s13, s23 = 100, 0.3, 0.9, 0.4
    b = covariance_blocks(p, s12, s13, s23)
    w1 = np.linalg.solve(b["11"], b["13"])
    ws = np.linalg.solve(b["22"], b["23"])
    # covariance of (w1'x1, w*'x2, y), then MI by log-determinants
    c = np.array([
        [w1 @ b["11"] @ w1, w1 @ b["12"] @ ws, w1 @ b["13"]],
        [w1 @ b["12"] @ ws, ws @ b["22"] @ ws, ws @ b["23"]],
        [w1 @ b["13"], ws @ b["23"], 1.0],
    ])
    got = optimal_linear_mi(p, s12, s13, s23)
    assert got["i_ts"] == pytest.approx(mi_from_covariance(c[:2, :2], 1), rel=1e-9)
    assert got["i_sl"] == pytest.approx(mi_from_covariance(c[1:, 1:], 1), rel=1e-9)
    assert got["i_tl"] == pytest.approx(mi_from_covariance(c[[0, 2]][:, [0, 2]], 1), rel=1e-9)
    # for a Gaussian model, w*'x2 is sufficient for y: I(w*'x2; y) = I(x2; y)
    full = np.block([[b["22"], b["23"][:, None]], [b["23"][None, :], np.ones((1, 1))]])
    assert got["i_sl"] == pytest.approx(mi_from_covariance(full, p), rel=1e-9)


def test_closed_form_gap_crosses_zero_near_0_402():
    below = optimal_linear_mi(100, 0.40, 0.9, 0.4)["mi_gap"]
    above = optimal_linear_mi(100, 0.41, 0.9, 0.4)["mi_gap"]
    assert below < 0 < above
    assert mi_from_correlation(0.0) == 0.0
    assert mi_from_correlation(0.8) == pytest.approx(-0.5 * np.log(0.36))
