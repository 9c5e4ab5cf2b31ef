"""Data-processing bounds of the synthetic model, and MI estimates above them flagged."""

import json

import polars as pl
import pytest

from analysis.bounds import bound_line, violations, with_bounds
from cchsweep.mi.gaussian import data_processing_bounds, optimal_linear_mi


def test_bounds_in_closed_form():
    b = data_processing_bounds(100, 0.3, 0.9, 0.4)
    assert b["i_sl"] == pytest.approx(1.499, abs=5e-4)  # I(X2; Y) at sigma23 = 0.4, p = 100 (the number)
    # one predictor: I(X2; Y) = -1/2 log(1 - R^2), R^2 = p s23^2 / (1 + (p - 1) s23^2)
    r2 = 100 * 0.16 / (1 + 99 * 0.16)
    assert b["i_sl"] == pytest.approx(-0.5 * __import__("math").log(1 - r2), rel=1e-9)
    # the optimal linear representations respect them (they are functions of X1, X2)
    linear = optimal_linear_mi(100, 0.3, 0.9, 0.4)
    assert all(linear[q] <= b[q] + 1e-9 for q in ("i_ts", "i_sl", "i_tl"))
    assert data_processing_bounds(100, 0.6, 0.9, 0.4)["i_ts"] > b["i_ts"]  # more shared signal, looser bound


def _frame(rows):
    settings = json.dumps({"p": 100, "epochs": 3})
    return pl.DataFrame([{"trial_key": k, "status": "ok", "settings": settings, "sigma12": 0.3, "sigma13": 0.9,
                          "sigma23": 0.4, "mi_estimator": est, "i_ts": 1.0, "i_ts_se": 0.01, "i_sl": sl,
                          "i_sl_se": se, "i_tl": 1.0, "i_tl_se": 0.01} for k, est, sl, se in rows])


def test_an_estimate_above_its_bound_is_flagged():
    frame = _frame([("a", "ksg", 1.2, 0.01), ("b", "lmi", 1.52, 0.05), ("c", "lmi", 1.7, 0.02)])
    found = violations(frame)
    assert found["trial_key"].to_list() == ["b", "c"] and set(found["quantity"]) == {"i_sl"}
    assert found["excess"].to_list() == pytest.approx([1.52 - 1.499055, 1.7 - 1.499055], abs=1e-5)
    assert found["beyond_2se"].to_list() == [False, True]  # 0.021 < 2 x 0.05; 0.201 > 2 x 0.02
    line = bound_line(frame)
    assert line.startswith("MI bounds: 2 of 9 estimates exceed their data-processing bound (1 by more than 2 SE;")
    assert "i_sl = 1.700 > 1.499 nats, lmi" in line
    assert bound_line(_frame([("a", "ksg", 1.2, 0.01)])).startswith("MI bounds: no estimate above")
    # KSG's SE is 0 (its repeats change only a tie-breaking jitter): no excess is "beyond 2 SE" of that
    assert violations(_frame([("d", "ksg", 1.6, 0.0)]))["beyond_2se"].to_list() == [False]


def test_rows_without_the_synthetic_parameters_have_no_bound():
    other = pl.DataFrame({"trial_key": ["t"], "status": ["ok"], "settings": ["{}"], "gamma": [0.5],
                          "mi_estimator": ["lmi"], "i_sl": [9.0]})
    assert with_bounds(other).is_empty() and violations(other).is_empty() and bound_line(other) is None
