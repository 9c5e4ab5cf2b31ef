"""A results file another process holds while a sweep runs (a notebook's connection, the DuckDB CLI):
the sweep goes on, holds its records, and writes every one once the file is free. It used to abort
with "locked", exit 2, and lose the trials it had finished."""

import os
import subprocess
import sys
import time

import duckdb
import pytest

from conftest import SMOKE, SHARED_DATA

HELD = ("is locked by another process: results are held", "waiting up to")


def _wait_for(path, texts, proc, timeout=300.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if any(t in text for t in texts):
            return text
        assert proc.poll() is None, f"the run ended first (rc {proc.returncode}):\n{text[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"none of {texts} within {timeout} s:\n{text[-3000:]}")


@pytest.mark.slow
def test_a_sweep_outlasts_a_reader_holding_the_file(tmp_path):
    db, log = tmp_path / "r.duckdb", tmp_path / "stderr.txt"
    env = dict(os.environ, CCHSWEEP_DATA=os.environ.get("CCHSWEEP_DATA", str(SHARED_DATA)))
    args = [*SMOKE, "--db", str(db), "--set", "mi_estimator=ksg", "--set", "epochs=2", "--bundle-size", "1"]
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "cchsweep", *args], stdout=subprocess.PIPE, stderr=err,
                                text=True, env=env, cwd=tmp_path)
        try:
            _wait_for(log, ["run synthetic_sigma12-"], proc)  # the run row is written: the file exists
            reader = duckdb.connect(str(db), read_only=True)  # held until the writer says it met the lock
            try:
                _wait_for(log, HELD, proc)
            finally:
                reader.close()
            out, _ = proc.communicate(timeout=300)
        finally:
            proc.kill()
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select status, count(*) from trials group by status").fetchall() == [("ok", 4)]
        assert con.execute("select status, n_ok, n_error from runs").fetchall() == [("finished", 4, 0)]
        assert con.execute("select count(*) from mi").fetchone()[0] == 4 * 3
