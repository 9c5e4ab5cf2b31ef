"""Interrupted and concurrent runs through the real CLI and an embedded Ray: nothing lost, nothing duplicated.

(Apart from test_faults.py so that the two long files run side by side under pytest -n 2.)
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from cchsweep.store import Store
from conftest import QUICK, SMOKE, q, run_cli, wait_for_rows

pytestmark = pytest.mark.slow


def test_killed_driver_then_resume_loses_and_duplicates_nothing(tmp_path):
    db = tmp_path / "r.duckdb"
    # 6 grid points in 3 bundles of 2 on 2 workers: the driver dies between bundles
    args = [*SMOKE, "--seeds", "3", "--bundle-size", "2", "--db", str(db)]
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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_is_an_interrupted_run_and_the_rerun_finishes_it(tmp_path, sig):
    # SIGINT is what Ctrl-C sends; SIGTERM what `kill` and batch schedulers send, taken the same way
    # (it once reached Ray's handler: a C stack, exit 1, the run "failed", a point printed ok unstored)
    db = tmp_path / "r.duckdb"
    args = [*SMOKE, "--seeds", "3", "--bundle-size", "2", "--db", str(db)]
    driver = subprocess.Popen([sys.executable, "-m", "cchsweep", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    wait_for_rows(db, 1)
    driver.send_signal(sig)
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 130, err[-2000:]
    assert "interrupted" in err and "rerun the same command to finish" in err
    assert "Traceback" not in err and "SIGTERM received" not in err
    stored = q(db, "select count(*) from trials")[0][0]
    assert stored == sum("] ok " in line for line in err.splitlines())  # every point reported ok is stored
    assert q(db, "select status from runs") == [("interrupted",)]  # not "finished" with trials missing
    assert 1 <= stored < 6

    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{6 - stored} ok, 0 failed, {stored} already stored, of 6 trials" in out.stdout
    assert q(db, "select count(*), count(distinct trial_key) from trials where status = 'ok'") == [(6, 6)]


@pytest.mark.parametrize("delay", [0.0, 1.5])
def test_ctrl_c_while_ray_starts_stops_the_run(tmp_path, delay):
    """A Ctrl-C in the seconds between the plan and the first trial (imports, ray.init) used to be
    lost there: the sweep ran to the end. Now it stops the run, as one line and exit code 130."""
    db = tmp_path / "r.duckdb"
    driver = subprocess.Popen([sys.executable, "-m", "cchsweep", *SMOKE, "--db", str(db)], cwd=tmp_path,
                              start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    while not any(line.startswith("estimate:") for line in seen):  # the plan is printed: Ray starts next
        seen.append(driver.stderr.readline())
        assert seen[-1] or driver.poll() is None, seen
    time.sleep(delay)
    os.killpg(driver.pid, signal.SIGINT)  # a terminal's Ctrl-C: the driver and the Ray it started
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("cchsweep: interrupted")
    assert not any(line.startswith("[1/4") for line in err.splitlines())  # no trial ran to the end
    assert q(db, "select count(*) from trials where status = 'ok'") == [(0,)]
    assert q(db, "select status from runs") in ([], [("interrupted",)])


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
