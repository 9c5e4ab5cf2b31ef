"""mi_calibration: pairs with known MI (their truths checked independently), the study run for real
through the CLI into DuckDB, the mi_calibration view against the stored estimates, schema v4."""

import math

import duckdb
import numpy as np
import polars as pl
import pytest
from scipy import integrate, stats

from analysis.calibration import beside, by_shape, load_calibration, summary
from cchsweep.mi import known
from cchsweep.record import TrialRecord
from cchsweep.schema import SCHEMA_VERSION, TRIALS_DDL
from cchsweep.store import Store
from conftest import q, run_cli


def _gaussian_mi(x, y):
    """The Gaussian plug-in MI from a (large) sample's covariance: 1/2 log(det Sx det Sy / det S)."""
    c = np.cov(np.hstack([x, y]), rowvar=False)
    dx = x.shape[1]
    return 0.5 * (np.linalg.slogdet(c[:dx, :dx])[1] + np.linalg.slogdet(c[dx:, dx:])[1] - np.linalg.slogdet(c)[1])


@pytest.mark.parametrize("pair,dim,mi", [("few", 8, 1.0), ("many", 8, 0.5), ("few", 64, 2.5), ("many", 32, 0.1)])
def test_gaussian_truth_equals_a_large_sample_reference(pair, dim, mi):
    x, y, truth = known.calibration_pair(pair, dim, mi, 200_000, seed=3)
    assert truth == pytest.approx(mi, abs=1e-12)
    # plug-in bias ~ dim^2 / (2n) nats; at 64-d and 200,000 samples ~0.01
    assert _gaussian_mi(x, y) == pytest.approx(truth, abs=0.02 + dim**2 / 200_000)


def test_information_is_in_two_directions_or_spread_over_all():
    x, y, _ = known.calibration_pair("few", 16, 1.0, 50_000, seed=0)
    few = np.linalg.svd(np.corrcoef(x, y, rowvar=False)[:16, 16:], compute_uv=False)
    x, y, _ = known.calibration_pair("many", 16, 1.0, 50_000, seed=0)
    many = np.linalg.svd(np.corrcoef(x, y, rowvar=False)[:16, 16:], compute_uv=False)
    assert (few > 0.4).sum() == 2 and few[2] < 0.05  # canonical correlations: two strong, the rest noise
    rho = math.sqrt(1 - math.exp(-2 * 1.0 / 16))
    assert abs(many.mean() - rho) < 0.005 and np.all(np.abs(many - rho) < 0.04)  # sixteen equal ones (+- noise)


@pytest.mark.parametrize("pair", ["nonlinear", "heavy"])
def test_the_nonlinear_and_heavy_pairs_are_invertible_maps_of_the_gaussian_one(pair):
    """MI is invariant under a strictly monotone map of each coordinate: same ranks, same copula."""
    gx, gy, g_truth = known.calibration_pair("few", 8, 1.0, 5_000, seed=4)
    x, y, truth = known.calibration_pair(pair, 8, 1.0, 5_000, seed=4)
    assert truth == g_truth
    assert not np.allclose(x, gx) and not np.allclose(y, gy)
    for a, b in ((x, gx), (y, gy)):
        assert np.array_equal(np.argsort(a, axis=0), np.argsort(b, axis=0))
    if pair == "heavy":  # Student-t(3) marginals, mapped back exactly
        assert stats.kstest(x[:, 0], stats.t(known.HEAVY_DOF).cdf).pvalue > 0.01
        back = np.sign(x) * stats.norm.isf(stats.t.sf(np.abs(x), known.HEAVY_DOF))
        np.testing.assert_allclose(back, gx, atol=1e-8)
    else:
        np.testing.assert_allclose(np.sign(x) * np.abs(x) ** (2 / 3), gx, atol=1e-10)
        np.testing.assert_allclose(np.sinh(y), gy, atol=1e-10)


def test_label_truth_equals_numerical_integration():
    """One dimension, three classes: I = log C + E[log p(c|x)], integrated with quad."""
    means = known._class_means(1, 3, 2.0)[:, 0]

    def integrand(x):
        dens = stats.norm.pdf(x, means, 1.0) / 3
        post = dens / dens.sum()
        return float((dens * np.log(np.maximum(post, 1e-300))).sum())

    exact = math.log(3) + integrate.quad(integrand, -20, 20, limit=200)[0]
    assert known.label_mi(1, 3, 2.0) == pytest.approx(exact, abs=0.006)  # Monte Carlo SE ~0.002


@pytest.mark.parametrize("dim,target", [(8, 0.5), (64, 2.0)])
def test_label_separation_hits_the_wanted_mi(dim, target):
    x, y, truth = known.calibration_pair("label", dim, target, 1_000, seed=0)
    assert truth == pytest.approx(target, abs=0.02)
    assert y.shape == (1_000, known.CLASSES) and set(y.sum(1)) == {1.0}
    capped = known.calibration_pair("label", 8, 2.5, 100, seed=0)[2]
    assert capped == pytest.approx(math.log(10) - 0.1, abs=0.02)  # 10 classes cannot carry 2.5 nats


def test_a_run_stores_estimates_beside_the_truth_and_the_view_summarises_them(tmp_path):
    db = tmp_path / "cal.duckdb"
    out = run_cli("run", "mi_calibration", "--profile", "smoke", "--db", str(db), "--set", "mi_epochs=2")
    assert out.returncode == 0, out.stderr
    assert "calibration: lmi" in out.stdout and "calibration: ksg" in out.stdout
    assert "CCH" not in out.stdout  # no KD here, no verdict
    trials = q(db, "SELECT status, task, kd_gain, gain_metric FROM trials")
    assert trials == [("ok", "calibration", None, None)] * 4
    mi = q(db, "SELECT estimator, quantity, count(*) FROM mi GROUP BY ALL ORDER BY ALL")
    assert mi == [("ksg", "i_sl", 2), ("ksg", "i_ts", 2), ("lmi", "i_sl", 2), ("lmi", "i_ts", 2)]
    assert q(db, "SELECT count(*) FROM cch_conditions") == [(0,)]  # nothing to judge
    # the view against the stored rows, computed here
    rows = pl.DataFrame(
        q(db, "SELECT m.estimator, t.params->>'pair', m.value, m.truth FROM mi m JOIN trials t USING (trial_key)"),
        schema=["estimator", "pair", "value", "truth"], orient="row")
    mine = rows.group_by("estimator", "pair").agg(
        mean=pl.col("value").mean(), sd=pl.col("value").std(), bias=(pl.col("value") - pl.col("truth")).mean(),
        rmse=((pl.col("value") - pl.col("truth")) ** 2).mean().sqrt(), truth=pl.col("truth").mean())
    cal = load_calibration(db)
    assert cal.height == 4 and set(cal["n_seeds"]) == {2} and set(cal["dim"]) == {8} and set(cal["n"]) == {300}
    joined = cal.join(mine, on=["estimator", "pair"], suffix="_py")
    for col in ("mean", "sd", "bias", "rmse", "truth"):
        np.testing.assert_allclose(joined[col], joined[f"{col}_py"], rtol=1e-12)
    np.testing.assert_allclose(joined["rel_bias"], joined["bias_py"] / joined["truth_py"], rtol=1e-12)
    np.testing.assert_allclose(joined["bias_se"], joined["sd_py"] / math.sqrt(2), rtol=1e-12)
    # a rerun with one estimator more counts each point once per estimator (its latest estimate)
    out = run_cli("run", "mi_calibration", "--profile", "smoke", "--db", str(db), "--set", "mi_epochs=2",
                  "--set", "mi_estimator=ksg,mine")
    assert out.returncode == 0, out.stderr
    cal = load_calibration(db)
    assert sorted(cal["estimator"].unique()) == ["ksg", "lmi", "mine"] and set(cal["n_seeds"]) == {2}
    # summaries and the note a report puts beside an estimate
    s = summary(cal)
    assert set(s["estimator"]) == {"lmi (2 epochs, lr 0.001)", "ksg", "mine"} and set(s["shapes"]) == {1}
    shapes = by_shape(cal)
    assert shapes.columns == ["estimator", "pair", "8"] and set(shapes["estimator"]) == set(s["estimator"])
    ksg = cal.filter((pl.col("estimator") == "ksg") & (pl.col("pair") == "few")).row(0, named=True)
    note = beside(cal, "ksg", "i_ts", 64, 0.3)
    assert note is not None and f"{abs(ksg['rel_bias']) * 100:.0f}%" in note and "at 8-d" in note
    assert beside(cal, "latentmi", "i_ts", 64, 0.3) is None
    # the report pages: the calibration page and the index of everything
    out = run_cli("report", "--all", "--db", str(db), "--out", str(tmp_path / "reports"))
    assert out.returncode == 0, out.stderr
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "href='mi_calibration/index.html'" in index and "calibration: ksg" in index
    page = (tmp_path / "reports" / "mi_calibration" / "index.html").read_text()
    assert "src='../vega-bundle.js'" in page and page.count("vegaEmbed('#chart-") == 1
    assert "<th>pairs</th>" in page and "<td>label pairs</td>" in page and "<td>i_sl</td>" not in page


def test_a_v3_file_is_migrated_and_takes_calibration_rows(tmp_path, capsys):
    path = tmp_path / "v3.duckdb"
    store = Store(path)
    store.ensure_schema()
    from test_agreement import db_row

    store.write_trials([TrialRecord.from_dict(db_row("g1/0", "g1", {"sigma12": 0.1, "seed": 0}, 0.2, {"lmi": 0.1}))])
    v3 = TRIALS_DDL.replace("(kd_gain IS NOT NULL OR task = 'calibration')", "kd_gain IS NOT NULL")
    assert v3 != TRIALS_DDL
    with duckdb.connect(str(path)) as con:
        for view in ("cch_scorecard", "mi_calibration", "cch_agreement", "cch_conditions", "results"):
            con.execute(f"DROP VIEW {view}")
        con.execute("ALTER TABLE trials RENAME TO t")
        con.execute(v3)
        con.execute("INSERT INTO trials SELECT * FROM t")
        con.execute("DROP TABLE t")
        con.execute("UPDATE cchsweep_meta SET value = '3' WHERE key = 'schema_version'")
        before = sorted(con.execute("SELECT * FROM trials").fetchall(), key=repr)
        with pytest.raises(duckdb.ConstraintException):  # v3 refuses an ok trial without a gain
            con.execute("INSERT INTO trials (trial_key, run_id, study, profile, params, settings, mode, status, task) "
                        "VALUES ('c', 'r', 'mi_calibration', 'smoke', '{}', '{}', 'grid', 'ok', 'calibration')")
    Store(path).ensure_schema()
    assert f"from results schema v3 to v{SCHEMA_VERSION}" in capsys.readouterr().err
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT value FROM cchsweep_meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)
        assert sorted(con.execute("SELECT * FROM trials").fetchall(), key=repr) == before
        con.execute("INSERT INTO trials (trial_key, run_id, study, profile, params, settings, mode, status, task) "
                    "VALUES ('c', 'r', 'mi_calibration', 'smoke', '{}', '{}', 'grid', 'ok', 'calibration')")
        with pytest.raises(duckdb.ConstraintException):  # a KD study still needs its gain
            con.execute("INSERT INTO trials (trial_key, run_id, study, profile, params, settings, mode, status, task) "
                        "VALUES ('d', 'r', 'g1', 'smoke', '{}', '{}', 'grid', 'ok', 'regression')")
