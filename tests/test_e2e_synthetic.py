"""A real smoke sweep: the CLI, an embedded Ray, real training and latentmi, a real DuckDB file."""

import shutil

import pytest

from cchsweep.mi.gaussian import optimal_linear_mi
from conftest import q, reference_records, run_cli

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    db = d / "results.duckdb"
    first = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db), cwd=d)
    assert first.returncode == 0, first.stderr[-3000:]
    return d, db, first


def test_one_row_per_grid_point_with_every_metric(sweep):
    d, db, first = sweep
    assert "synthetic_sigma12 (smoke): 4 ok, 0 failed" in first.stdout
    assert "CCH: estimated gap agreed with KD gain in" in first.stdout
    assert "\nMI bounds: " in first.stdout and "estimates" in first.stdout  # the data-processing check ran
    assert "[4/4" in first.stderr  # live progress, one line per finished trial
    assert q(db, "select count(*), count(distinct trial_key) from trials") == [(4, 4)]
    assert q(db, "select count(*) from results where status = 'ok'") == [(4,)]
    nulls = q(db, """select count(*) from results where teacher_mse is null or nokd_mse is null or kd_mse is null
                     or kd_gain is null or i_ts is null or i_sl is null or i_tl is null or mi_gap is null
                     or i_ts_truth is null or node_id is null or seconds is null""")
    assert nulls == [(0,)]
    assert q(db, "select distinct mi_estimator, gain_metric, task from results") == [("lmi", "mse", "regression")]
    assert q(db, "select sum(abs(kd_gain - (nokd_mse - kd_mse))) < 1e-12 from results") == [(True,)]


def test_bundled_rows_equal_the_per_trial_reference(sweep, tmp_path):
    _, db, first = sweep
    assert "in 2 bundles of up to 2" in first.stderr  # 4 points, 2 workers: the stacked engine ran
    rows = {k: v for k, *v in q(db, "select trial_key, teacher_mse, nokd_mse, kd_mse, kd_gain from results")}
    reference = reference_records("synthetic_sigma12", "smoke", rows, tmp_path)
    for key, (teacher, nokd, kd, gain) in rows.items():
        ref = reference[key].metrics
        assert teacher == pytest.approx(ref["teacher"]["mse"], rel=1e-3)
        assert nokd == pytest.approx(ref["nokd"]["mse"], rel=1e-3)
        assert kd == pytest.approx(ref["kd"]["mse"], rel=1e-3)
        assert gain == pytest.approx(reference[key].kd_gain, abs=1e-4)


def test_values_are_plausible_and_truth_is_closed_form(sweep):
    _, db, _ = sweep
    rows = q(db, "select sigma12, sigma13, sigma23, teacher_mse, nokd_mse, i_ts, i_sl, i_tl, i_ts_truth, i_sl_truth "
                 "from results")
    for s12, s13, s23, t_mse, s_mse, i_ts, i_sl, i_tl, ts_true, sl_true in rows:
        # the teacher sees the strong modality (sigma13 = 0.9): far lower error than the student
        assert 0 < t_mse < s_mse < 1.0
        for value in (i_ts, i_sl, i_tl):
            assert -0.3 < value < 5.0  # nats; a capped latentmi is rough but not absurd
        assert i_tl > i_sl  # the teacher's representation carries more about y than the student's
        truth = optimal_linear_mi(100, s12, s13, s23)
        assert ts_true == pytest.approx(truth["i_ts"]) and sl_true == pytest.approx(truth["i_sl"])


def test_run_is_recorded(sweep):
    _, db, _ = sweep
    (status, n_trials, n_ok, host, version, resources), = q(
        db, "select status, n_trials, n_ok, host, cchsweep_version, cluster_resources from runs")
    assert (status, n_trials, n_ok) == ("finished", 4, 4)
    assert host and version == "0.1.0" and '"CPU"' in resources


def test_rerun_skips_stored_trials_and_force_reruns_from_cache(sweep):
    d, db, _ = sweep
    before = q(db, "select trial_key, kd_gain, i_ts from results order by trial_key")
    again = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db), cwd=d)
    assert again.returncode == 0 and "0 ok, 0 failed, 4 already stored" in again.stdout
    forced = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db), "--force", cwd=d)
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert q(db, "select count(*) from trials") == [(4,)]
    assert q(db, "select count(*) from runs") == [(3,)]
    # teacher, baseline and MI came from the cache; the KD student retrained to the same numbers
    assert q(db, "select bool_and(hit), count(*) from cache_events") == [(True, 12)]
    assert q(db, "select trial_key, kd_gain, i_ts from results order by trial_key") == before


def test_concurrent_trials_share_one_teacher_per_seed(sweep):
    d, _, _ = sweep
    db = d / "lambda.duckdb"
    out = run_cli("run", "synthetic_lambda", "--profile", "smoke", "--set", "mi_estimator=ksg,mine", "--db", str(db),
                  cwd=d)
    assert out.returncode == 0, out.stderr[-2000:]
    # 2 sigma12 x 2 lambda x 1 seed: two teachers, each built once and reused by the other lambda;
    # one MI artifact per estimator, each recorded (schema v4 kept one MI event per trial)
    assert q(db, "select kind, count(*) filter (where not hit), count(*) filter (where hit) from cache_events "
                 "group by kind order by kind") == [
        ("synthetic_mi", 4, 4), ("synthetic_nokd", 2, 2), ("synthetic_teacher", 2, 2)]
    assert q(db, "select count(distinct artifact_key) from cache_events where kind = 'synthetic_mi'") == [(4,)]
    assert q(db, "select count(distinct lam), count(distinct trial_key), count(*) from results") == [(2, 4, 8)]


def test_a_failing_trial_becomes_an_error_row(sweep):
    d, _, _ = sweep
    storage = d / "broken.cchsweep"
    shutil.copytree(d / "results.cchsweep" / "cache", storage / "cache")
    for artifact in (storage / "cache" / "synthetic_teacher").glob("*.pt"):
        artifact.unlink()  # a directory in its place: unreadable, and (unlike a damaged file) not replaceable
        artifact.mkdir()
    db = d / "broken.duckdb"
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db), "--storage", str(storage),
                  "--max-failures", "0", cwd=d)
    assert out.returncode == 1
    assert "0 ok, 4 failed" in out.stdout
    rows = q(db, "select status, error, kd_gain from trials")
    assert len(rows) == 4
    assert all(s == "error" and e and g is None for s, e, g in rows)
    assert q(db, "select count(*) from metrics") == [(0,)]
    assert q(db, "select status, n_error from runs") == [("finished", 4)]


def test_a_damaged_artifact_is_rebuilt_and_the_terminal_says_which(sweep):
    # the cache's message was printed in the Ray worker, whose stderr stays in Ray's logs: the README
    # promised that stderr names the file, and the user saw nothing
    d, _, _ = sweep
    storage = d / "damaged.cchsweep"
    shutil.copytree(d / "results.cchsweep" / "cache", storage / "cache")
    artifact = sorted((storage / "cache" / "synthetic_teacher").glob("*.pt"))[0]
    artifact.write_bytes(artifact.read_bytes()[:100])  # truncated
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(d / "damaged.duckdb"),
                  "--storage", str(storage), cwd=d)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"artifact {artifact} is damaged" in out.stderr and "rebuilding it" in out.stderr
    assert "4 ok, 0 failed" in out.stdout and len(artifact.read_bytes()) > 100
