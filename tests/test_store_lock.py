"""A results file another process holds while a sweep runs (a notebook's connection, the DuckDB CLI):
the sweep goes on, holds its records, and writes every one once the file is free. It used to abort
with "locked", exit 2, and lose the trials it had finished."""

import os
import subprocess
import sys
import time

import duckdb
import pytest

from conftest import SHARED_DATA, SMOKE, trial_row

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


def test_results_given_up_at_the_lock_are_counted_not_dropped_silently(tmp_path, monkeypatch, capsys):
    # Ctrl-C (or the wait running out) while the run's last results wait for a locked file: the run
    # once ended without a word about them; now it says how many, and that the same command redoes them
    from cchsweep.store import DatabaseLocked, Store
    from cchsweep.writer import DuckDBWriter

    writer = DuckDBWriter(str(tmp_path / "r.duckdb"), "run-1", total=2, show_progress=False)
    writer._buffer = [trial_row("synthetic_sigma12", {"seed": i}, {"kd": {"mse": 1.0}}, [], "mse", 0.1)
                      for i in range(2)]
    waits = []

    def locked(self, records):
        waits.append(len(records))
        if len(waits) == 1:
            raise DatabaseLocked("held")
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "write_trials", locked)
    with pytest.raises(KeyboardInterrupt):
        writer.on_experiment_end([])
    err = capsys.readouterr().err
    assert "waiting up to 10 min for the lock" in err and "to write 2 results" in err
    assert "2 finished results not written" in err and "the same command runs those points again" in err
    assert waits == [2, 2]  # the quick try, then the long wait, each with both records
