"""The scorecard (cch_scorecard view, analysis.scorecard): its numbers against an independent
computation, on hand-made rows with known answers and on a small real sweep's database."""

import math

import numpy as np
import polars as pl
import pytest

from analysis.agreement import agreement, conditions
from analysis.frame import load_results
from analysis.scorecard import by_study, scorecard, scorecard_lines
from cchsweep.record import TrialRecord
from cchsweep.store import Store
from conftest import QUICK, run_cli
from test_agreement import db_row, db_rows


def _best_threshold(cond: pl.DataFrame) -> dict:
    """Brute force: every cut between sorted gaps, the one classifying most gain-determined
    conditions right ("helped iff gap > t"), ties to the interval nearest 0."""
    c = cond.filter(~pl.col("gain_undetermined"))
    gaps, helped = np.array(c["gap_mean"]), np.array(c["gain_mean"]) > 0
    edges = [-math.inf, *sorted(set(gaps))]
    best = None
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else None
        correct = int(((gaps > lo) == helped).sum())
        dist = 0.0 if lo <= 0 and (hi is None or hi > 0) else (lo if lo > 0 else -hi)
        key = (-correct, dist, lo)
        if best is None or key < best[0]:
            best = (key, lo, hi, correct)
    _, lo, hi, correct = best
    return {"threshold_lo": None if lo == -math.inf else lo, "threshold_hi": hi,
            "threshold_rate": correct / c.height, "zero_rate": float(((gaps > 0) == helped).mean()),
            "n_gain_determined": c.height}


def _check(db):
    frame = load_results(db)
    card = scorecard(db)
    python = agreement(frame, by_study=False)
    cond = conditions(frame)
    assert sorted(card["mi_estimator"]) == sorted(python["mi_estimator"])
    for row in card.iter_rows(named=True):
        est = row["mi_estimator"]
        ref = python.filter(pl.col("mi_estimator") == est).row(0, named=True)
        for col in ("n_conditions", "n_determined", "n_gain_undetermined", "n_gap_undetermined", "n_agree"):
            assert row[col] == ref[col], (est, col)
        for col in ("rate", "wilson_lo", "wilson_hi", "p_value", "precision", "recall", "spearman_rho"):
            assert row[col] == pytest.approx(ref[col], abs=1e-9, nan_ok=True), (est, col)
        sub = cond.filter(pl.col("mi_estimator") == est)
        assert row["n_studies"] == sub["study"].n_unique()
        if sub.filter(~pl.col("gain_undetermined")).is_empty():
            assert row["n_gain_determined"] is None
            continue
        for col, value in _best_threshold(sub).items():
            assert row[col] == pytest.approx(value, abs=1e-12), (est, col)
        lo, hi = row["threshold_lo"], row["threshold_hi"]
        if lo is None:  # every cut below hi does as well: none is named
            assert row["threshold"] is None
        else:
            expected = lo if hi is None else (lo + hi) / 2
            assert row["threshold"] == pytest.approx(expected)
            # the named cut classifies as the interval says: it is inside [lo, hi), not at its open end
            assert (sub.filter(~pl.col("gain_undetermined"))
                    .select(((pl.col("gap_mean") > row["threshold"]) == (pl.col("gain_mean") > 0)).mean())
                    .item() == pytest.approx(row["threshold_rate"]))
    return card


def test_scorecard_on_hand_made_rows(tmp_path):
    db = tmp_path / "r.duckdb"
    store = Store(db)
    store.ensure_schema()
    store.write_trials([TrialRecord.from_dict(r) for r in db_rows()])
    card = _check(db)
    assert set(card["mi_estimator"]) == {"latentmi", "ksg", "(consensus)"}
    latentmi = card.filter(pl.col("mi_estimator") == "latentmi").row(0, named=True)
    assert latentmi["n_studies"] == 3
    per_study = by_study(db)
    assert set(per_study["study"]) == {"g1", "g2", "g3"} and "gap_source" not in per_study.columns
    lines = scorecard_lines(card)
    assert lines[0].startswith("ksg: sign(gap) agreed with sign(KD gain) in ")


def test_a_threshold_that_beats_zero_is_found_and_reported(tmp_path):
    """Four conditions of three seeds, gaps 0.101 to 0.401: KD helps exactly when the gap exceeds 0.25,
    so every cut in [0.201, 0.301) is right 4/4 and zero only 2/4 (0.101 and 0.201 hurt)."""
    db = tmp_path / "r.duckdb"
    store = Store(db)
    store.ensure_schema()
    rows = []
    for gap, gain in ((0.1, -0.5), (0.2, -0.4), (0.3, 0.4), (0.4, 0.5)):
        for seed in range(3):
            rows.append(db_row(f"t/{gap}/{seed}", "t", {"noise": gap, "seed": seed}, gain + 0.01 * seed,
                               {"ksg": gap + 0.001 * seed}))
    store.write_trials([TrialRecord.from_dict(r) for r in rows])
    card = _check(db)
    row = card.row(0, named=True)
    assert (row["threshold_lo"], row["threshold_hi"]) == pytest.approx((0.201, 0.301))
    assert row["threshold_rate"] == 1.0 and row["zero_rate"] == 0.5
    assert "a threshold of +0.251 nats (any in [+0.201, +0.301)) classifies 100% of 4" in scorecard_lines(card)[0]


def test_a_threshold_with_no_lower_bound_names_no_cut_outside_its_interval(tmp_path):
    """KD helps in all four conditions, two of whose gaps are negative: every cut below the lowest gap
    (-0.2) is right 4/4, zero 2/4. The interval is (-inf, -0.2): its upper end, -0.2, would call the
    -0.2 condition "hurts" (3/4), so no single cut is named (it was, -0.2, before)."""
    db = tmp_path / "r.duckdb"
    store = Store(db)
    store.ensure_schema()
    rows = []
    for gap, gain in ((-0.2, 0.3), (-0.1, 0.4), (0.3, 0.4), (0.4, 0.5)):
        for seed in range(3):
            rows.append(db_row(f"t/{gap}/{seed}", "t", {"noise": gap, "seed": seed}, gain + 0.01 * seed,
                               {"ksg": gap + 0.001 * seed}))
    store.write_trials([TrialRecord.from_dict(r) for r in rows])
    row = _check(db).row(0, named=True)
    assert (row["threshold_lo"], row["threshold"]) == (None, None)
    assert row["threshold_hi"] == pytest.approx(-0.199)
    assert row["threshold_rate"] == 1.0 and row["zero_rate"] == 0.5
    line = scorecard_lines(_check(db))[0]
    assert "; any threshold below -0.199 nats classifies 100% of 4 gain-determined conditions, 0 does 50%" in line


def test_scorecard_on_a_real_sweep(tmp_path):
    db = tmp_path / "real.duckdb"
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db), "--seeds", "3",
                  "--set", "mi_estimator=ksg,mine", *QUICK)
    assert out.returncode == 0, out.stderr
    card = _check(db)
    assert set(card["mi_estimator"]) == {"ksg", "mine", "(consensus)"}
    assert set(card["n_conditions"]) == {2}
    out = run_cli("report", "--all", "--db", str(db), "--out", str(tmp_path / "reports"))
    assert out.returncode == 0, out.stderr
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "href='synthetic_sigma12/index.html'" in index and "Scorecard" in index
    assert (tmp_path / "reports" / "scorecard.csv").is_file()
    bad = run_cli("report", "synthetic_sigma12", "--all", "--db", str(db))
    assert bad.returncode == 2 and "give a study to report on, or --all" in bad.stderr
