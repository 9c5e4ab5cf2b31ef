"""The CCH agreement statistics (analysis/agreement.py) on hand-built frames with hand-computed
answers, and the SQL views (cchsweep/views.py) against the Python functions on a real DuckDB file."""

import json
import math

import numpy as np
import polars as pl
import pytest

from analysis.agreement import agreement, agreement_both, conditions, verdict_line, wilson
from analysis.frame import load_results
from cchsweep.record import TrialRecord
from cchsweep.store import Store

SETTINGS = json.dumps({"epochs": 3}, sort_keys=True)


def trial_rows(study, gamma, gains, gaps, estimator="latentmi", truths=None, temperature=1.0):
    """One frame row per seed of one condition, shaped like the `results` view."""
    truths = truths or [None] * len(gains)
    return [{"study": study, "profile": "smoke", "settings": SETTINGS, "gamma": gamma, "temperature": temperature,
             "seed": seed, "status": "ok", "kd_gain": g, "mi_gap": d, "mi_gap_truth": t, "mi_estimator": estimator}
            for seed, (g, d, t) in enumerate(zip(gains, gaps, truths))]


def cond(study, gamma, gain, gap, spread=0.001, estimator="latentmi", truth=None):
    """Two seeds at gain +- spread: gain_mean = gain, gain_se = spread, determined iff |gain| > t(0.975, 1)
    spread = 12.7 spread (0.0127 by default)."""
    return trial_rows(study, gamma, [gain - spread, gain + spread], [gap, gap], estimator,
                      None if truth is None else [truth, truth])


def frame(rows):
    return pl.DataFrame(rows, schema={"study": pl.String, "profile": pl.String, "settings": pl.String,
                                      "gamma": pl.Float64, "temperature": pl.Float64, "seed": pl.Int32,
                                      "status": pl.String, "kd_gain": pl.Float64, "mi_gap": pl.Float64,
                                      "mi_gap_truth": pl.Float64, "mi_estimator": pl.String})


def by(table, **keys):
    rows = table.filter(pl.all_horizontal([pl.col(k).eq_missing(v) for k, v in keys.items()]))
    assert rows.height == 1, rows
    return rows.row(0, named=True)


# --- conditions ------------------------------------------------------------------------------

def test_conditions_means_errors_and_calls():
    rows = (trial_rows("s", 0.0, [0.18, 0.2, 0.22], [0.5, 0.45, 0.55])  # agrees
            + trial_rows("s", 1.0, [0.1, -0.1, 0.05], [0.2, 0.2, 0.2])  # |mean| within the t interval: undetermined
            + trial_rows("s", 2.0, [-0.24, -0.25, -0.26], [0.1, 0.1, 0.1])  # gain < 0, gap > 0: disagrees
            + trial_rows("s", 3.0, [1.0], [0.5])  # one seed: undetermined
            + trial_rows("s", 4.0, [0.3, 0.3], [0.0, 0.0])  # zero gap: the predictor makes no call
            + trial_rows("s", 5.0, [0.0, 0.0], [0.24, 0.26])  # zero gain: undetermined
            + trial_rows("s", 6.0, [0.3, 0.31], [0.1, -0.05])  # gap within its t interval: no call either
            + trial_rows("s", 7.0, [0.04, 0.06, 0.08], [0.2, 0.2, 0.2]))  # 5.2 SE at 3 seeds: determined
    failed = dict(rows[0], seed=9, status="error", kd_gain=None)
    no_gap = dict(rows[0], seed=8, kd_gain=5.0, mi_gap=None)
    table = conditions(frame(rows + [failed, no_gap]))
    assert table.columns == ["gap_source", "study", "profile", "settings", "gamma", "temperature", "mi_estimator",
                             "n_seeds", "gain_mean", "gain_se", "gap_mean", "gap_se", "gain_undetermined",
                             "gap_undetermined", "undetermined", "agrees"]
    assert table["gamma"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert set(table["gap_source"]) == {"estimated"}
    a = by(table, gamma=0.0)
    assert a["n_seeds"] == 3  # the failed and gap-less rows are left out
    assert a["gain_mean"] == pytest.approx(0.2) and a["gain_se"] == pytest.approx(0.02 / math.sqrt(3))
    assert a["gap_mean"] == pytest.approx(0.5) and a["gap_se"] == pytest.approx(0.05 / math.sqrt(3))
    assert (a["undetermined"], a["agrees"]) == (False, True)
    assert (by(table, gamma=1.0)["undetermined"], by(table, gamma=1.0)["agrees"]) == (True, None)
    c = by(table, gamma=2.0)
    assert c["gain_se"] == pytest.approx(0.01 / math.sqrt(3)) and (c["undetermined"], c["agrees"]) == (False, False)
    d = by(table, gamma=3.0)
    assert d["n_seeds"] == 1 and d["gain_se"] is None and (d["undetermined"], d["agrees"]) == (True, None)
    e = by(table, gamma=4.0)
    assert e["gain_se"] == 0.0 and e["gap_se"] == 0.0
    assert (e["gain_undetermined"], e["gap_undetermined"], e["undetermined"], e["agrees"]) == (False, True, True, None)
    f = by(table, gamma=5.0)
    assert (f["gain_undetermined"], f["gap_undetermined"], f["agrees"]) == (True, False, None)
    g = by(table, gamma=6.0)  # gap 0.025, SE 0.075: its sign is noise, so the condition is not judged
    assert g["gap_se"] == pytest.approx(0.075) and (g["gain_undetermined"], g["gap_undetermined"]) == (False, True)
    assert (g["undetermined"], g["agrees"]) == (True, None)
    assert (d["gain_undetermined"], d["gap_undetermined"]) == (True, True)  # one seed: neither side decided
    h = by(table, gamma=7.0)  # gain 0.06, SE 0.0115: 5.2 SE, beyond t(0.975, 2) = 4.30
    assert (h["gain_undetermined"], h["undetermined"], h["agrees"]) == (False, False, True)


def test_estimators_are_never_mixed_and_closed_form_is_separate():
    rows = (cond("s", 0.0, 0.5, 0.3, estimator="latentmi", truth=-0.1)
            + cond("s", 0.0, 0.5, -0.3, estimator="ksg", truth=-0.1))
    table = conditions(frame(rows))
    assert table.height == 3  # each estimator, and their consensus
    assert by(table, mi_estimator="latentmi")["agrees"] is True
    assert by(table, mi_estimator="ksg")["agrees"] is False
    split = by(table, mi_estimator="(consensus)")  # +0.3 vs -0.3, both determined: estimators disagree
    assert (split["gap_undetermined"], split["gain_undetermined"], split["agrees"]) == (True, False, None)
    assert split["gain_mean"] == pytest.approx(0.5) and split["gap_se"] is None
    truth = conditions(frame(rows), "mi_gap_truth")
    assert set(truth["gap_source"]) == {"closed_form"} and truth["agrees"].to_list() == [False, False, False]
    both = agreement_both(frame(rows))
    assert both.select("gap_source", "mi_estimator", "study", "n_agree").rows() == [
        ("estimated", "ksg", "s", 0), ("estimated", "ksg", "(all)", 0),
        ("estimated", "latentmi", "s", 1), ("estimated", "latentmi", "(all)", 1),
        ("estimated", "(consensus)", "s", 0), ("estimated", "(consensus)", "(all)", 0),
        ("closed_form", "ksg", "s", 0), ("closed_form", "ksg", "(all)", 0),
        ("closed_form", "latentmi", "s", 0), ("closed_form", "latentmi", "(all)", 0),
        ("closed_form", "(consensus)", "s", 0), ("closed_form", "(consensus)", "(all)", 0)]


def test_consensus_calls_only_when_the_determined_estimators_agree():
    rows = (cond("s", 0.0, 0.5, 0.3, estimator="a") + cond("s", 0.0, 0.5, 0.1, estimator="b")  # both +: call +
            + cond("s", 1.0, -0.4, -0.2, estimator="a")
            + trial_rows("s", 1.0, [-0.41, -0.39], [0.05, -0.04], estimator="b")  # b undetermined: a decides
            + trial_rows("s", 2.0, [0.3, 0.31], [0.02, -0.02], estimator="a")
            + trial_rows("s", 2.0, [0.3, 0.31], [0.03, -0.01], estimator="b"))  # nobody calls it
    table = conditions(frame(rows)).filter(pl.col("mi_estimator") == "(consensus)")
    first, second, third = (by(table, gamma=g) for g in (0.0, 1.0, 2.0))
    assert (first["gap_mean"], first["agrees"]) == (pytest.approx(0.2), True)
    assert (second["gap_mean"], second["gap_undetermined"], second["agrees"]) == (pytest.approx(-0.2), False, True)
    assert (third["gap_undetermined"], third["agrees"]) == (True, None)
    row = by(agreement(frame(rows)), mi_estimator="(consensus)", study="(all)")
    assert (row["n_determined"], row["n_agree"], row["n_gap_undetermined"]) == (2, 2, 1)
    assert "estimated gap (estimators' consensus): 2/2 determined" in verdict_line(frame(rows))


def test_consensus_gain_is_over_every_trial_whatever_seeds_each_estimator_kept():
    """A NaN gap drops a seed from one estimator's row only: a's gap is NaN at seed 0, b's at seed 1.
    The consensus's gain is the condition's, over all three trials, not one estimator's two (it took
    the first of a sort on n_seeds, a tie here, so which one changed from run to run)."""
    gains = [-0.30, -0.10, -0.26]
    rows = (trial_rows("s", 0.0, gains, [math.nan, 0.2, 0.21], estimator="a")
            + trial_rows("s", 0.0, gains, [0.3, math.nan, 0.31], estimator="b"))
    table = conditions(frame(rows))
    assert (by(table, mi_estimator="a")["n_seeds"], by(table, mi_estimator="b")["n_seeds"]) == (2, 2)
    assert by(table, mi_estimator="a")["gain_mean"] == pytest.approx(-0.18)  # seeds 1 and 2
    assert by(table, mi_estimator="b")["gain_mean"] == pytest.approx(-0.28)  # seeds 0 and 2
    consensus = by(table, mi_estimator="(consensus)")
    assert consensus["n_seeds"] == 3
    assert consensus["gain_mean"] == pytest.approx(np.mean(gains))
    assert consensus["gain_se"] == pytest.approx(np.std(gains, ddof=1) / math.sqrt(3))
    for _ in range(5):  # the same answer every time
        assert by(conditions(frame(rows)), mi_estimator="(consensus)") == consensus


def test_consensus_gain_in_sql_is_the_same(tmp_path):
    rows = []
    for seed, gain in enumerate((-0.30, -0.10, -0.26)):
        gaps = {"a": math.nan if seed == 0 else 0.2 + 0.01 * seed, "b": math.nan if seed == 1 else 0.3 + 0.01 * seed}
        rows.append(db_row(f"s/{seed}", "s", {"gamma": 0.0, "seed": seed}, gain, gaps))
    store = Store(tmp_path / "r.duckdb")
    store.ensure_schema()
    store.write_trials([TrialRecord.from_dict(r) for r in rows])
    with store.connect(read_only=True) as con:
        sql = con.sql("SELECT * FROM cch_conditions WHERE gap_source = 'estimated'").pl()
    python = conditions(load_results(store.path))
    for estimator in ("a", "b", "(consensus)"):
        got, want = by(sql, mi_estimator=estimator), by(python, mi_estimator=estimator)
        assert got["n_seeds"] == want["n_seeds"]
        assert (got["gain_mean"], got["gain_se"]) == pytest.approx((want["gain_mean"], want["gain_se"]))
    assert by(sql, mi_estimator="(consensus)")["n_seeds"] == 3


# --- agreement -------------------------------------------------------------------------------

def two_studies_and_a_single_seed_one():
    return frame(
        # study a: (gain, gap) -> TP agree, TP agree, TN agree, FP disagree, undetermined
        cond("a", 0.0, 0.5, 0.3) + cond("a", 1.0, 0.4, 0.1) + cond("a", 2.0, -0.3, -0.2)
        + cond("a", 3.0, -0.2, 0.4) + cond("a", 4.0, 0.005, 0.2)
        # study b: one seed each, so nothing is determined
        + trial_rows("b", 0.0, [0.3], [0.1]) + trial_rows("b", 1.0, [-0.3], [0.1])
        # study c: all agree, tied gaps
        + cond("c", 0.0, 0.2, 0.1) + cond("c", 1.0, 0.4, 0.1) + cond("c", 2.0, 0.5, 0.3))


def avg_ranks(values):
    order = sorted(values)
    return [sum(i + 1 for i, v in enumerate(order) if v == x) / order.count(x) for x in values]


def pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def test_agreement_per_study_and_all():
    table = agreement(two_studies_and_a_single_seed_one())
    assert table.columns == ["gap_source", "mi_estimator", "study", "n_conditions", "n_determined", "n_undetermined",
                             "n_gain_undetermined", "n_gap_undetermined", "n_agree", "rate", "wilson_lo", "wilson_hi", "p_value", "precision", "recall",
                             "spearman_rho"]
    assert table["study"].to_list() == ["a", "b", "c", "(all)"]
    assert set(table["gap_source"]) == {"estimated"} and set(table["mi_estimator"]) == {"latentmi"}

    a = by(table, study="a")
    assert (a["n_conditions"], a["n_determined"], a["n_undetermined"], a["n_agree"]) == (5, 4, 1, 3)
    assert (a["n_gain_undetermined"], a["n_gap_undetermined"]) == (1, 0)
    assert a["rate"] == 0.75
    assert a["p_value"] == pytest.approx(10 / 16)  # 2 * P(X <= 1), X ~ Bin(4, 1/2) = 2 * 5/16
    assert a["precision"] == pytest.approx(2 / 3) and a["recall"] == 1.0  # gap>0: 3 (2 TP); gain>0: 2
    # gap ranks [4, 2, 1, 5, 3], gain ranks [5, 4, 1, 2, 3]: sum d^2 = 14, rho = 1 - 6*14/(5*24)
    assert a["spearman_rho"] == pytest.approx(0.3)
    z, n, p = 1.959963984540054, 4, 0.75
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (a["wilson_lo"], a["wilson_hi"]) == pytest.approx((centre - half, centre + half))
    assert (a["wilson_lo"], a["wilson_hi"]) == pytest.approx((0.3006, 0.9544), abs=1e-4)

    b = by(table, study="b")
    assert (b["n_conditions"], b["n_determined"], b["n_undetermined"], b["n_agree"]) == (2, 0, 2, 0)
    assert (b["n_gain_undetermined"], b["n_gap_undetermined"]) == (2, 2)  # single seeds: both sides open
    assert all(b[k] is None for k in ("rate", "wilson_lo", "wilson_hi", "p_value", "precision", "recall",
                                      "spearman_rho"))

    c = by(table, study="c")
    assert (c["n_determined"], c["n_agree"], c["rate"], c["precision"], c["recall"]) == (3, 3, 1.0, 1.0, 1.0)
    assert c["p_value"] == pytest.approx(0.25)
    assert c["spearman_rho"] == pytest.approx(math.sqrt(3) / 2)  # gap ranks [1.5, 1.5, 3], gain ranks [1, 2, 3]

    al = by(table, study="(all)")
    assert (al["n_conditions"], al["n_determined"], al["n_undetermined"], al["n_agree"]) == (10, 7, 3, 6)
    assert al["rate"] == pytest.approx(6 / 7) and al["p_value"] == pytest.approx(16 / 128)
    assert al["precision"] == pytest.approx(5 / 6) and al["recall"] == 1.0
    gains = [0.5, 0.4, -0.3, -0.2, 0.005, 0.3, -0.3, 0.2, 0.4, 0.5]
    gaps = [0.3, 0.1, -0.2, 0.4, 0.2, 0.1, 0.1, 0.1, 0.1, 0.3]
    assert al["spearman_rho"] == pytest.approx(pearson(avg_ranks(gaps), avg_ranks(gains)))

    assert agreement(two_studies_and_a_single_seed_one(), by_study=False)["study"].to_list() == ["(all)"]
    no_estimator = agreement(two_studies_and_a_single_seed_one().drop("mi_estimator"))
    assert no_estimator["mi_estimator"].to_list() == [None] * 4
    assert no_estimator.drop("mi_estimator").equals(table.drop("mi_estimator"))


def test_binomial_p_and_wilson_for_nine_of_ten():
    rows = []
    for i in range(10):
        rows += cond("s", float(i), 0.1 * (i + 1), 0.2 if i < 9 else -0.2)
    row = agreement(frame(rows)).row(0, named=True)
    assert (row["n_determined"], row["n_agree"]) == (10, 9)
    assert row["p_value"] == pytest.approx(0.021484375, abs=1e-12)  # 2 * (1 + 10) / 1024
    assert (row["wilson_lo"], row["wilson_hi"]) == pytest.approx((0.5958, 0.9821), abs=1e-4)  # textbook value
    assert row["precision"] == 1.0 and row["recall"] == pytest.approx(0.9)
    assert wilson(0, 0) == (None, None)


def test_constant_or_short_inputs_give_null_spearman_and_empty_frames_give_no_rows():
    rows = cond("s", 0.0, 0.5, 0.1) + cond("s", 1.0, 0.6, 0.1) + cond("s", 2.0, 0.7, 0.1)
    assert agreement(frame(rows))["spearman_rho"].to_list() == [None, None]  # constant gap
    assert agreement(frame(rows[:4]))["spearman_rho"].to_list() == [None, None]  # two conditions
    empty = frame([dict(rows[0], status="error", kd_gain=None)])
    assert agreement(empty).is_empty() and agreement_both(empty).is_empty()
    assert verdict_line(empty) == "CCH: no completed trials with MI estimates to judge"
    # only a boundary search's trials: left out of the test, and the line says so (it once said there
    # were no completed trials with MI estimates, after 12 ok ones)
    searched = frame(rows).with_columns(pl.lit("boundary:gamma:mi_gap").alias("mode"))
    assert verdict_line(searched).startswith("CCH: no grid trials to judge; a boundary search's trials")
    assert verdict_line(searched.with_columns(pl.lit("grid").alias("mode"))) == verdict_line(frame(rows))


def test_verdict_line():
    data = two_studies_and_a_single_seed_one()
    assert verdict_line(data) == ("CCH: estimated gap agreed with KD gain in 6/7 determined conditions "
                                  "(85.7%, 95% CI 49-97%, binomial p=0.125 against signs unrelated; "
                                  "3 undetermined: 3 on the gain, 2 on the gap)")
    with_truth = data.with_columns(pl.col("kd_gain").alias("mi_gap_truth"))  # a closed form that is always right
    line = verdict_line(with_truth)
    assert line.endswith("; closed-form gap: 7/7 determined conditions (100.0%, 95% CI 65-100%, binomial "
                         "p=0.0156 against signs unrelated; 3 undetermined: 3 on the gain, 3 on the gap)"), line
    two = pl.concat([with_truth, with_truth.with_columns(pl.lit("ksg").alias("mi_estimator"),
                                                         pl.col("mi_gap") * -1)])
    line = verdict_line(two)  # closed form identical across estimators: stated once
    assert line.startswith("CCH: estimated gap (ksg) agreed with KD gain in 1/7 determined conditions")
    assert "; estimated gap (latentmi): 6/7 " in line and line.count("closed-form gap") == 1


# --- the SQL views against the Python functions ----------------------------------------------

def db_row(key, study, params, gain, gaps, truth_gap=None, status="ok", settings=None, mode="grid"):
    """A Store.write_trials row; gaps maps estimator -> estimated I(H_T;H_S) - I(H_S;Y), truth_gap the closed form."""
    row = {"trial_key": key, "run_id": "r1", "study": study, "profile": "smoke", "params": params,
           "settings": settings or {"epochs": 3}, "status": status, "mode": mode}
    if status != "ok":
        row["error"] = "RuntimeError: boom"
        return row
    row.update(task="regression", gain_metric="mse", kd_gain=gain,
               metrics={"teacher": {"mse": 0.5}, "nokd": {"mse": 1.0}, "kd": {"mse": 1.0 - gain}},
               mi=[{"quantity": q, "estimator": est, "value": v, "se": 0.01, "repeats": 1, "n_samples": 100,
                    "truth": None if truth_gap is None else t}
                   for est, gap in gaps.items()
                   for q, v, t in (("i_ts", 1.0 + gap, 1.0 + (truth_gap or 0.0)), ("i_sl", 1.0, 1.0),
                                   ("i_tl", 2.0, 2.0))])
    return row


def db_rows():
    rng = np.random.default_rng(7)
    rows = []
    for sigma12 in (0.1, 0.2, 0.3, 0.4):  # study g1: 8 conditions x 3 seeds, two estimators, closed form
        for lam in (0.3, 0.6):
            centre = rng.normal(0.0, 0.2)
            for seed in range(3):
                gain = centre + rng.normal(0.0, 0.05)
                rows.append(db_row(f"g1/{sigma12}/{lam}/{seed}", "g1", {"sigma12": sigma12, "lam": lam, "seed": seed},
                                   gain, {"latentmi": centre + rng.normal(0.0, 0.1), "ksg": rng.normal(0.0, 0.3)},
                                   truth_gap=centre + 0.05 * sigma12))
    for gamma in (0.0, 0.5, 1.0, 2.0):  # study g2: other axes (NULL sigma12/lam), no truth, tied gaps
        for temperature in (1.0, 3.0):
            for seed in range(2):
                gain = 0.0 if gamma == 2.0 else (0.3 - gamma / 3) + 0.01 * seed
                rows.append(db_row(f"g2/{gamma}/{temperature}/{seed}", "g2",
                                   {"gamma": gamma, "temperature": temperature, "seed": seed},
                                   gain, {"latentmi": 0.5 - gamma / 2}))
    for noise in (0.0, 0.2, 0.4):  # study g3: a single seed
        rows.append(db_row(f"g3/{noise}", "g3", {"noise": noise, "seed": 0}, 0.1 - noise, {"latentmi": 0.2 - noise},
                           truth_gap=noise))
    rows.append(db_row("g1/failed", "g1", {"sigma12": 0.1, "lam": 0.3, "seed": 5}, None, {}, status="error"))
    for sigma12 in (0.1, 0.1234):  # a boundary search's trials: on a grid condition and off it; in neither test
        rows.append(db_row(f"g1/{sigma12}/search", "g1", {"sigma12": sigma12, "lam": 0.3, "seed": 0}, 5.0,
                           {"latentmi": -5.0, "ksg": -5.0}, truth_gap=-5.0, mode="boundary:sigma12:mi_gap"))
    return rows


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("agreement") / "r.duckdb"
    store = Store(path)
    store.ensure_schema()
    with store.connect() as con:
        store.create_views(con)  # idempotent
    store.write_trials([TrialRecord.from_dict(r) for r in db_rows()])
    with store.connect(read_only=True) as con:
        views = {name: con.sql(f"SELECT * FROM {name}").pl() for name in ("cch_conditions", "cch_agreement")}
    return load_results(path), views


def assert_close(left, right, columns):
    for column in columns:
        for x, y in zip(left[column].to_list(), right[column].to_list()):
            if x is None or y is None or isinstance(x, bool):
                assert x == y, (column, x, y)
            else:
                assert x == pytest.approx(y, rel=0, abs=1e-9), (column, x, y)


def test_conditions_view_matches_python(db):
    results, views = db
    python = pl.concat([conditions(results, "mi_gap"), conditions(results, "mi_gap_truth")], how="diagonal")
    sql = views["cch_conditions"]
    keys = [c for c in python.columns if c in ("gap_source", "study", "profile", "settings", "sigma12", "lam",
                                                "gamma", "temperature", "noise", "mi_estimator")]
    assert set(keys) >= {"gap_source", "study", "settings", "sigma12", "lam", "gamma", "temperature", "noise"}
    # estimated: g1 8 conditions x 2 estimators + their consensus, g2 8, g3 3; closed form: g1 8 x 3, g3 3
    assert sql.height == python.height == (16 + 8) + 8 + 3 + (16 + 8) + 3
    assert set(sql.filter(pl.col("study") == "g1")["n_seeds"]) == {3}  # no boundary trial joined a condition
    joined = python.join(sql, on=keys, how="inner", nulls_equal=True, suffix="_sql")
    assert joined.height == python.height
    stats = ["n_seeds", "gain_mean", "gain_se", "gap_mean", "gap_se", "gain_undetermined", "gap_undetermined",
             "undetermined", "agrees"]
    assert_close(joined.select(stats), joined.select([pl.col(f"{c}_sql").alias(c) for c in stats]), stats)
    assert joined["undetermined"].sum() > 0 and joined["agrees"].sum() > 0 and (~joined["agrees"]).sum() > 0


def test_agreement_view_matches_python(db):
    results, views = db
    python = agreement_both(results)
    sql = views["cch_agreement"]
    assert sql.columns == python.columns
    assert sql.select("gap_source", "mi_estimator", "study").rows() == python.select(
        "gap_source", "mi_estimator", "study").rows()
    # estimated: ksg g1 + (all), latentmi g1-g3 + (all), consensus g1 + (all); closed form: no g2
    assert python.height == (2 + 4 + 2) + (2 + 3 + 2)
    assert_close(python, sql, [c for c in python.columns if c not in ("gap_source", "mi_estimator", "study")])
    assert python["p_value"].drop_nulls().len() >= 6 and python["spearman_rho"].drop_nulls().len() >= 6
    line = verdict_line(results)
    assert line.startswith("CCH: estimated gap (ksg) agreed with KD gain in ")
    assert "; estimated gap (latentmi): " in line and "; closed-form gap (latentmi): " in line
