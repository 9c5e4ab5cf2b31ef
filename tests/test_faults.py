"""Faults through the real CLI and an embedded Ray: nothing lost, nothing duplicated."""

import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from cchsweep.store import Store
from conftest import q, run_cli

pytestmark = pytest.mark.slow
SMOKE = ("run", "synthetic_sigma12", "--profile", "smoke")
# Where the timing of a trial does not matter: shorter trials, the same engine paths.
QUICK = ("--set", "epochs=5", "--set", "mi_epochs=1")


def wait_for_rows(db, n: int, timeout: float = 300) -> int:
    """Poll a sweep's database (read-only) until it holds n trial rows; return the count seen."""
    deadline, stored = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and stored < n:
        time.sleep(0.5)
        if db.exists():
            try:
                stored = q(db, "select count(*) from trials")[0][0]
            except duckdb.Error:
                pass  # the writer holds the file for a moment
    return stored


def with_fault(spec, *args, cwd):
    env = dict(os.environ, CCHSWEEP_INJECT_FAULT=spec)
    return subprocess.run([sys.executable, "-m", "cchsweep", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_a_failing_trial_is_retried_then_succeeds(tmp_path):
    (tmp_path / "faults").mkdir()
    db = tmp_path / "r.duckdb"
    out = with_fault(f"sigma12=0.1:1:{tmp_path / 'faults'}", *SMOKE, *QUICK, "--db", str(db), "--max-failures", "1",
                     cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "4 ok, 0 failed" in out.stdout
    assert q(db, "select sigma12, attempts from results order by sigma12, seed") == [
        (0.1, 2), (0.1, 2), (0.7, 1), (0.7, 1)]


def test_a_trial_that_keeps_failing_is_an_error_row_and_the_rest_completes(tmp_path):
    (tmp_path / "faults").mkdir()
    db = tmp_path / "r.duckdb"
    out = with_fault(f"sigma12=0.7:-1:{tmp_path / 'faults'}", *SMOKE, *QUICK, "--db", str(db), "--max-failures", "2",
                     cwd=tmp_path)
    assert out.returncode == 1
    assert "2 ok, 2 failed" in out.stdout
    rows = q(db, "select sigma12, status, error, attempts from results order by sigma12, seed")
    assert [(r[0], r[1]) for r in rows] == [(0.1, "ok"), (0.1, "ok"), (0.7, "error"), (0.7, "error")]
    assert all("RuntimeError: injected fault (attempt 3)" in r[2] for r in rows[2:])
    assert [r[3] for r in rows[2:]] == [3, 3]  # the first try and two retries
    # each failing trial ran exactly 1 + max_failures times
    assert sorted(p.stat().st_size for p in (tmp_path / "faults").iterdir()) == [3, 3]


def test_killed_driver_then_resume_loses_and_duplicates_nothing(tmp_path):
    db = tmp_path / "r.duckdb"
    args = [*SMOKE, "--seeds", "3", "--db", str(db)]
    driver = subprocess.Popen([sys.executable, "-m", "cchsweep", *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    stored = wait_for_rows(db, 2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert 2 <= stored < 6
    kept = q(db, "select trial_key, kd_gain, i_ts from results order by trial_key")
    assert q(db, "select status from runs") == [("running",)]  # the dead driver could not say otherwise

    out = run_cli(*args, "--resume", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "died unfinished (marked interrupted)" in out.stderr
    assert f"{6 - len(kept)} ok, 0 failed, {len(kept)} already stored, of 6 trials" in out.stdout
    assert q(db, "select count(*), count(distinct trial_key), count(*) filter (where status = 'ok') from trials") == [
        (6, 6, 6)]
    after = {k: (g, i) for k, g, i in q(db, "select trial_key, kd_gain, i_ts from results")}
    assert all(after[k] == (g, i) for k, g, i in kept)  # completed trials kept as they were
    assert q(db, "select status from runs order by started_at") == [("interrupted",), ("finished",)]


def test_ctrl_c_is_an_interrupted_run_and_the_rerun_finishes_it(tmp_path):
    db = tmp_path / "r.duckdb"
    args = [*SMOKE, "--seeds", "3", "--db", str(db)]
    driver = subprocess.Popen([sys.executable, "-m", "cchsweep", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    wait_for_rows(db, 1)
    driver.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 130, err[-2000:]
    assert "interrupted" in err and "rerun the same command to finish" in err
    assert "Traceback" not in err
    stored = q(db, "select count(*) from trials")[0][0]
    assert q(db, "select status from runs") == [("interrupted",)]  # not "finished" with trials missing
    assert 1 <= stored < 6

    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{6 - stored} ok, 0 failed, {stored} already stored, of 6 trials" in out.stdout
    assert q(db, "select count(*), count(distinct trial_key) from trials where status = 'ok'") == [(6, 6)]


def test_queries_succeed_while_a_sweep_writes_and_two_sweeps_share_a_file(tmp_path):
    db = tmp_path / "r.duckdb"
    Store(db).ensure_schema()
    a = subprocess.Popen([sys.executable, "-m", "cchsweep", *SMOKE, *QUICK, "--db", str(db), "--storage",
                          str(tmp_path / "a")], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen([sys.executable, "-m", "cchsweep", *SMOKE, *QUICK, "--db", str(db), "--storage",
                          str(tmp_path / "b")], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    answers = []
    while a.poll() is None or b.poll() is None:
        out = run_cli("query", "select count(*) from trials", "--db", str(db), "--format", "csv")
        assert out.returncode == 0, out.stderr
        answers.append(int(out.stdout.splitlines()[1]))
        time.sleep(2)  # leave the two cores to the sweeps
    assert a.wait() == 0 and b.wait() == 0, (a.stderr.read()[-2000:], b.stderr.read()[-2000:])
    assert len(answers) >= 2 and max(answers) <= 4
    # both sweeps ran every trial; upserts leave one row per key and both runs finished
    assert q(db, "select count(*), count(distinct trial_key), bool_and(status = 'ok') from trials") == [(4, 4, True)]
    assert q(db, "select status, n_ok from runs") == [("finished", 4), ("finished", 4)]


def test_unreachable_address_and_old_schema_are_clean_errors(tmp_path):
    t0 = time.monotonic()
    out = run_cli(*SMOKE, "--db", str(tmp_path / "r.duckdb"), "--address", "127.0.0.1:9")
    assert out.returncode == 2 and "cannot reach a Ray cluster at --address 127.0.0.1:9" in out.stderr
    assert "Traceback" not in out.stderr and time.monotonic() - t0 < 60
    assert not (tmp_path / "r.duckdb").exists()
    old = tmp_path / "old.duckdb"
    Store(old).ensure_schema()
    with duckdb.connect(str(old)) as con:
        con.execute("update cchsweep_meta set value = '0'")
    out = run_cli(*SMOKE, "--db", str(old))
    assert out.returncode == 2 and "schema version 0" in out.stderr and "Traceback" not in out.stderr
    assert q(old, "select count(*) from runs") == [(0,)]
