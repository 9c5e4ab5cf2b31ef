"""Failing trials and bad addresses through the real CLI and an embedded Ray (interrupted runs: test_resume.py)."""

import os
import subprocess
import sys
import time

import duckdb
import pytest

from cchsweep.store import Store
from conftest import QUICK, SMOKE, q, run_cli

pytestmark = pytest.mark.slow


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
