"""analysis/report.py on a real DuckDB file with hand-made trials and hand-computed numbers."""

import html
import math
import re

import polars as pl
import pytest
from conftest import check_vocabulary
from conftest import trial_row as row

from analysis.agreement import verdict_items
from analysis.frame import load_results
from analysis.report import write_report
from cchsweep.errors import UsageError
from cchsweep.store import Store

SEEDS = (0, 1, 2)
SIGMA12 = (0.1, 0.4, 0.7)
# (gamma, T) -> KD - no-KD accuracy per seed; the Table 1 cells are their means and SEs
ACC_DIFF = {(0.0, 1.0): (0.01, 0.02, 0.03), (0.0, 3.0): (0.03, 0.04, 0.02),
            (2.5, 1.0): (-0.10, -0.12, -0.11), (2.5, 3.0): (-0.20, -0.18, -0.16)}
I_TS = {0.0: 1.5, 2.5: 1.0}  # + 0.01 * seed, the same at every temperature
I_SL = 1.2


def synthetic_rows(study="synthetic_sigma12", lams=(0.3,)):
    rows = []
    for lam in lams:
        for s12 in SIGMA12:
            for seed in SEEDS:
                nokd, kd = 1.0 + 0.01 * seed, 1.1 - 0.4 * s12 + 0.02 * seed + 0.1 * lam
                ts_truth, sl_truth = 0.5 + 2 * s12 ** 2, 0.8
                mi = [("i_ts", ts_truth + 0.01 * seed, ts_truth), ("i_sl", sl_truth - 0.01 * seed, sl_truth),
                      ("i_tl", 1.5, 1.5)]
                rows.append(row(study, {"sigma12": s12, "lam": lam, "seed": seed},
                                {"teacher": {"mse": 0.5}, "nokd": {"mse": nokd}, "kd": {"mse": kd}}, mi, "mse",
                                nokd - kd))
    return rows


def mnist_rows(study, diffs=ACC_DIFF):
    rows = []
    for (gamma, t), per_seed in diffs.items():
        for seed, diff in zip(SEEDS, per_seed):
            nokd = 0.80 + 0.01 * seed
            mi = [("i_ts", I_TS[gamma] + 0.01 * seed, None), ("i_sl", I_SL, None), ("i_tl", 2.0, None)]
            rows.append(row(study, {"alpha": 0.2, "gamma": gamma, "temperature": t, "lam": 0.5, "seed": seed},
                            {"teacher": {"acc": 0.98}, "nokd": {"acc": nokd}, "kd": {"acc": nokd + diff}},
                            mi, "acc", diff))
    return rows


STUDIES = ("synthetic_sigma12", "synthetic_lambda", "mnist_blur", "mnist_alpha", "tcga_demo")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "r.duckdb"
    store = Store(db)
    store.ensure_schema()
    t3 = {k: v for k, v in ACC_DIFF.items() if k[1] == 3.0}
    store.write_trials(synthetic_rows() + synthetic_rows("synthetic_lambda", lams=(0.2, 0.8))
                       + mnist_rows("mnist_blur") + mnist_rows("mnist_alpha", t3) + mnist_rows("tcga_demo")
                       + [row("mnist_blur", {"gamma": 9.0, "temperature": 1.0, "seed": 0}, {}, [], "acc", None,
                              "error")])
    return db, tmp / "out", {s: write_report(db, s, tmp / "out") for s in STUDIES}


def test_files_exist_and_page_is_offline(reports):
    db, out, pages = reports
    expected = {"synthetic_sigma12": ["mse_vs_sigma12", "mi_vs_sigma12", "gain_vs_sigma12", "gain_vs_gap"],
                "synthetic_lambda": ["mse_vs_sigma12_by_lambda", "gain_vs_sigma12", "gain_vs_gap"],
                "mnist_blur": ["accuracy_vs_gamma", "mi_vs_gamma", "gain_vs_gamma", "gain_vs_gap"],
                "mnist_alpha": ["accuracy_vs_gamma", "mi_vs_gamma", "gain_vs_gamma", "gain_vs_gap"],
                "tcga_demo": ["gain_vs_gamma", "gain_vs_gap"]}
    tables = {"mnist_blur": ["table1"], "mnist_alpha": ["table13"]}
    for study, page in pages.items():
        assert page == out / study / "index.html" and page.is_file()
        for name in expected[study]:
            assert (out / study / f"{name}.png").stat().st_size > 1000, (study, name)
            assert (out / study / f"{name}.svg").read_text().lstrip().startswith("<svg"), (study, name)
        for name in ["agreement", "conditions", *tables.get(study, [])]:
            assert (out / study / f"{name}.csv").is_file() and (out / study / f"{name}.html").is_file()
        text = page.read_text()
        assert not re.search(r"<script[^>]*src=", text), "the page must not load scripts from anywhere"
        assert "<script src=\"http" not in text and "<link" not in text
        assert text.count("vegaEmbed('#chart-") == len(expected[study])
        for name, found in verdict_items(load_results(db, study)):  # the verdict as a list, one item per gap
            assert f"<li><b>{html.escape(name)}</b>: agreed in {html.escape(found)}</li>" in text
    assert "table1" not in {p.stem for p in (out / "tcga_demo").iterdir()}  # the generic page has no paper tables


def test_table1_numbers(reports):
    _, out, _ = reports
    table = pl.read_csv(out / "mnist_blur" / "table1.csv").sort("gamma")
    assert table["gamma"].to_list() == [0.0, 2.5]
    for (gamma, t), diffs in ACC_DIFF.items():
        cell = table.filter(pl.col("gamma") == gamma).row(0, named=True)
        mean = sum(diffs) / 3
        se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2) / math.sqrt(3)
        assert cell[f"acc_diff_T{t:g}"] == pytest.approx(mean)
        assert cell[f"acc_diff_se_T{t:g}"] == pytest.approx(se)
        assert cell[f"n_seeds_T{t:g}"] == 3
        # the gap is per seed (shared by temperatures): mean I_TS + 0.01 * mean seed - I_SL
        assert cell["mi_gap"] == pytest.approx(I_TS[gamma] + 0.01 - I_SL)
    cell = table.filter(pl.col("gamma") == 2.5).row(0, named=True)
    paper = (cell["paper_mi_gap"], cell["paper_acc_diff_T3"], cell["paper_acc_diff_se_T3"])
    assert paper == (-0.0032, -0.1757, 0.0219)
    page = (out / "mnist_blur" / "index.html").read_text()
    assert "0.0200 ± 0.0058" in page and "-0.1757 ± 0.0219" in page  # measured and paper, side by side
    assert "1 failed" in page


def test_table13_and_generic(reports):
    _, out, _ = reports
    table = pl.read_csv(out / "mnist_alpha" / "table13.csv").sort("gamma")
    row0 = table.row(0, named=True)
    assert row0["acc_diff"] == pytest.approx(0.03) and row0["paper_acc_diff"] == 0.0146
    assert row0["i_ts"] == pytest.approx(1.51) and row0["paper_i_ts"] == 1.3956
    assert row0["kd_acc"] == pytest.approx(0.84) and row0["nokd_acc"] == pytest.approx(0.81)
    cond = pl.read_csv(out / "tcga_demo" / "conditions.csv")
    assert cond.height == 4 and set(cond["gap_source"]) == {"estimated"}
    cond = pl.read_csv(out / "synthetic_sigma12" / "conditions.csv")
    assert set(cond["gap_source"]) == {"estimated", "closed_form"} and cond.height == 6
    agreement = pl.read_csv(out / "synthetic_sigma12" / "agreement.csv")
    assert set(agreement["gap_source"]) == {"estimated", "closed_form"}


def test_missing_study_is_a_usage_error(reports, tmp_path):
    db, _, _ = reports
    with pytest.raises(UsageError) as info:
        write_report(db, "tcga_brca", tmp_path)
    assert str(info.value) == f"no ok trials of study tcga_brca in {db}; run `cchsweep run tcga_brca --db {db}` first"
    assert not (tmp_path / "tcga_brca").exists()  # no empty charts
    failed_only = tmp_path / "f.duckdb"
    Store(failed_only).ensure_schema()
    Store(failed_only).write_trials([row("mnist_blur", {"gamma": 1.0, "seed": 0}, {}, [], "acc", None, "error")])
    with pytest.raises(UsageError, match="no ok trials of study mnist_blur"):
        write_report(failed_only, "mnist_blur", tmp_path)


def test_one_visual_vocabulary_on_every_page(reports):
    _, _, pages = reports
    found = {study: check_vocabulary(page) for study, page in pages.items()}
    assert all(bars > 0 for bars, _ in found.values())
    assert found["synthetic_sigma12"][1] == 1  # Figure 1b's closed-form curves, the one reference drawn here


def _chart_specs(page: str) -> list[dict]:
    """The Vega-Lite specs a page embeds, in page order."""
    import json

    return [json.JSONDecoder().raw_decode(page, m.end())[0] for m in re.finditer(r"vegaEmbed\('#chart-\d+', ", page)]


def test_gain_chart_draws_every_setup(tmp_path):
    """Two profiles of one grid in one file: the gain chart draws both, each its own named line (it drew
    the first profile's points alone: its rows were keyed by the axes only)."""
    db = tmp_path / "r.duckdb"
    store = Store(db)
    store.ensure_schema()
    quick = [row(r.study, r.params, r.metrics, [(m.quantity, m.value, m.truth) for m in r.mi], r.gain_metric,
                 r.kd_gain + 0.5, profile="quick") for r in mnist_rows("tcga_demo")]
    store.write_trials(mnist_rows("tcga_demo") + quick)
    page = write_report(db, "tcga_demo", tmp_path / "out").read_text()
    gain = _chart_specs(page)[0]
    points = [p for values in gain["datasets"].values() for p in values]
    assert len(points) == 8  # 4 conditions x 2 profiles
    assert {p["setup"] for p in points} == {"quick", "smoke"}
    means = {(p["setup"], p["gamma"], p["temperature"]): p["gain_mean"] for p in points}
    assert means["quick", 0.0, 1.0] == pytest.approx(means["smoke", 0.0, 1.0] + 0.5)
    assert {p["series"] for p in points} == {"quick · 1.0", "quick · 3.0", "smoke · 1.0", "smoke · 3.0"}


def test_seed_stats_takes_every_value_of_a_row_from_the_same_seeds():
    """Seed 1's i_ts failed (NaN): it leaves the row for every value, so kd_gain and n_seeds come from
    seeds 0 and 2 like i_ts (kd_gain was the mean of 3 seeds and n_seeds 3 beside an i_ts of 2)."""
    from analysis.charts import seed_stats

    frame = pl.DataFrame({"noise": [0.0] * 3 + [0.2] * 3, "seed": [0, 1, 2] * 2,
                          "i_ts": [1.0, math.nan, 3.0, 1.0, None, 2.0], "kd_gain": [0.1, 0.5, 0.3, 0.2, 0.4, 0.6]})
    table = seed_stats(frame, ["noise"], ["i_ts", "kd_gain"])
    clean = table.row(0, named=True)
    assert (clean["n_seeds"], clean["i_ts"], clean["kd_gain"]) == (2, 2.0, pytest.approx(0.2))
    assert clean["kd_gain_se"] == pytest.approx(0.1)
    missing = table.row(1, named=True)  # a null is a value not measured: left out of its own mean alone
    assert (missing["n_seeds"], missing["i_ts"], missing["kd_gain"]) == (3, 1.5, pytest.approx(0.4))
    counted = seed_stats(frame, ["noise"], ["i_ts", "kd_gain"], counts=True).row(1, named=True)
    assert (counted["i_ts_n"], counted["kd_gain_n"], counted["n_seeds"]) == (2, 3, 3)


def test_a_bar_uses_the_seeds_behind_its_own_mean():
    """A series measured on 2 of 3 seeds had its 95% t interval drawn with t(0.975, 2) = 4.30 (the
    row's n_seeds) instead of t(0.975, 1) = 12.7: narrower than its verdict."""
    from analysis.charts import long_stats
    from cchsweep.rules import critical

    frame = pl.DataFrame({"noise": [0.2] * 3, "seed": [0, 1, 2], "i_ts": [1.0, None, 2.0],
                          "i_sl": [1.0, 1.5, 2.0]})
    data = {r["series"]: r for r in long_stats(frame, ["noise"], {"ts": "i_ts", "sl": "i_sl"}).iter_rows(named=True)}
    assert (data["ts"]["n_seeds"], data["sl"]["n_seeds"]) == (2, 3)
    assert data["ts"]["hi"] - data["ts"]["mean"] == pytest.approx(critical(2) * 0.5)  # SE of (1, 2) is 0.5
    assert data["sl"]["hi"] - data["sl"]["mean"] == pytest.approx(critical(3) * 0.5 / math.sqrt(3))


def test_a_small_standard_error_is_not_rounded_to_zero():
    from analysis.page import fmt

    assert fmt(-0.000252, 0.0000914) == "-0.000252 ± 9.1e-05"  # was "-0.000252 ± 0.0001"
    assert fmt(3e-5, 2e-5) == "3e-05 ± 2e-05"  # was "3e-05 ± 0.0000"
    assert fmt(0.02, 0.0058) == "0.0200 ± 0.0058" and fmt(0.5, 0.0) == "0.5000 ± 0.0000"
