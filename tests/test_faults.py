"""Failing trials and bad addresses through the real CLI and an embedded Ray (interrupted runs: test_resume.py)."""

import os
import subprocess
import sys

import duckdb
import pytest

from cchsweep.store import Store
from conftest import QUICK, SMOKE, q, run_cli

pytestmark = pytest.mark.slow


def with_fault(spec, *args, cwd):
    env = dict(os.environ, CCHSWEEP_INJECT_FAULT=spec)
    return subprocess.run([sys.executable, "-m", "cchsweep", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_a_failing_bundle_is_retried_then_succeeds(tmp_path):
    # smoke: 2 bundles (one per seed, both sigma12 each); the seed-0 points fail their first attempt
    (tmp_path / "faults").mkdir()
    db = tmp_path / "r.duckdb"
    out = with_fault(f"seed=0:1:{tmp_path / 'faults'}", *SMOKE, *QUICK, "--db", str(db), "--max-failures", "1",
                     cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "in 2 bundles of up to 2" in out.stderr
    assert "4 ok, 0 failed" in out.stdout
    assert q(db, "select seed, attempts from results order by seed, sigma12") == [(0, 2), (0, 2), (1, 1), (1, 1)]


def test_a_bundle_that_keeps_failing_gives_each_key_an_error_row_and_the_rest_completes(tmp_path):
    (tmp_path / "faults").mkdir()
    db = tmp_path / "r.duckdb"
    out = with_fault(f"seed=1:-1:{tmp_path / 'faults'}", *SMOKE, *QUICK, "--db", str(db), "--max-failures", "2",
                     cwd=tmp_path)
    assert out.returncode == 1
    assert "2 ok, 2 failed" in out.stdout
    # one ERROR line per failed point; Tune's traceback of every attempt once filled the terminal
    assert "Traceback" not in out.stderr and "Trial task failed" not in out.stderr
    assert sum("ERROR RuntimeError: injected fault (attempt 3)" in line for line in out.stderr.splitlines()) == 2
    rows = q(db, "select seed, status, error, attempts from results order by seed, sigma12")
    assert [(r[0], r[1]) for r in rows] == [(0, "ok"), (0, "ok"), (1, "error"), (1, "error")]
    assert all("RuntimeError: injected fault (attempt 3)" in r[2] for r in rows[2:])
    assert [r[3] for r in rows[2:]] == [3, 3]  # the first try and two retries
    # the failing bundle ran exactly 1 + max_failures times
    assert sorted(p.stat().st_size for p in (tmp_path / "faults").iterdir()) == [3, 3]


def test_unreachable_address_and_old_schema_are_clean_errors(tmp_path):
    # no time bound here: a hang fails on run_cli's timeout
    out = run_cli(*SMOKE, "--db", str(tmp_path / "r.duckdb"), "--address", "127.0.0.1:9")
    assert out.returncode == 2 and "cannot reach a Ray cluster at --address 127.0.0.1:9" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "r.duckdb").exists()
    old = tmp_path / "old.duckdb"
    Store(old).ensure_schema()
    with duckdb.connect(str(old)) as con:
        con.execute("update cchsweep_meta set value = '0'")
    out = run_cli(*SMOKE, "--db", str(old))
    assert out.returncode == 2 and "schema version 0" in out.stderr and "Traceback" not in out.stderr
    assert q(old, "select count(*) from runs") == [(0,)]
