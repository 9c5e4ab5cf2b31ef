"""The store contract (cchsweep/store.py docstring), against real DuckDB files."""

import subprocess
import sys
import textwrap

import duckdb
import pytest

from cchsweep.errors import UsageError
from cchsweep.record import TrialRecord
from cchsweep.schema import SCHEMA_VERSION
from cchsweep.store import Store


def make_row(key="s/smoke/seed=0", seed=0, kd_mse=0.9, status="ok") -> TrialRecord:
    row = {"trial_key": key, "run_id": "r1", "study": "s", "profile": "smoke",
           "params": {"sigma12": 0.1, "lam": 0.3, "seed": seed}, "settings": {"sigma13": 0.9, "epochs": 3},
           "status": status}
    if status == "ok":
        row.update(task="regression", gain_metric="mse", kd_gain=1.0 - kd_mse,
                   metrics={"teacher": {"mse": 0.5}, "nokd": {"mse": 1.0}, "kd": {"mse": kd_mse}},
                   mi=[{"quantity": q, "estimator": "latentmi", "value": v, "se": 0.01, "repeats": 3, "truth": v + 0.1,
                        "n_samples": 100} for q, v in (("i_ts", 1.2), ("i_sl", 1.0), ("i_tl", 2.0))],
                   cache=[{"kind": "teacher", "key": "abc", "hit": False}])
    else:
        row["error"] = "RuntimeError: boom"
    return TrialRecord.from_dict(row)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "r.duckdb")
    s.ensure_schema()
    return s


def count(store, sql):
    return store.query(sql)[1][0][0]


def test_schema_is_created_once_and_versioned(store):
    store.ensure_schema()
    store.ensure_schema()
    assert store.query("select value from cchsweep_meta where key = 'schema_version'")[1] == [(str(SCHEMA_VERSION),)]
    tables = {r[0] for r in store.query("select table_name from information_schema.tables")[1]}
    assert {"runs", "trials", "metrics", "mi", "cache_events", "results"} <= tables


def test_upserts_are_idempotent_and_replace_children(store):
    rows = [make_row(), make_row("s/smoke/seed=1", seed=1)]
    store.write_trials(rows)
    store.write_trials(rows)
    assert count(store, "select count(*) from trials") == 2
    assert count(store, "select count(*) from metrics") == 6
    assert count(store, "select count(*) from mi") == 6
    store.write_trials([make_row(kd_mse=0.7)])  # a rerun of seed 0 with a new result
    assert count(store, "select count(*) from metrics") == 6
    gain, gap, truth_gap, predicts, seed, sigma12 = store.query(
        "select kd_gain, mi_gap, mi_gap_truth, cch_predicts_gain, seed, sigma12 from results "
        "where trial_key = 's/smoke/seed=0'")[1][0]
    assert gain == pytest.approx(0.3) and gap == pytest.approx(0.2) and truth_gap == pytest.approx(0.2)
    assert predicts is True and seed == 0 and sigma12 == 0.1


def test_an_error_never_replaces_a_stored_result(store):
    """A failed --force rerun (or another run's failure of a key this file has) keeps the result."""
    store.write_trials([make_row(), make_row("s/smoke/seed=1", seed=1, status="error")])
    kept = store.write_trials([make_row(status="error"), make_row("s/smoke/seed=1", seed=1, status="error")])
    assert kept == ["s/smoke/seed=0"]
    rows = store.query("select trial_key, status, kd_gain from trials order by trial_key")[1]
    assert rows == [("s/smoke/seed=0", "ok", pytest.approx(0.1)), ("s/smoke/seed=1", "error", None)]
    assert count(store, "select count(*) from metrics where trial_key = 's/smoke/seed=0'") == 3
    assert count(store, "select count(*) from mi where trial_key = 's/smoke/seed=0'") == 3
    assert store.write_trials([make_row("s/smoke/seed=1", seed=1)]) == []  # a result replaces an error
    assert store.done_keys(["s/smoke/seed=0", "s/smoke/seed=1"]) == {"s/smoke/seed=0", "s/smoke/seed=1"}


def test_failed_trial_is_a_row_with_its_error(store):
    store.write_trials([make_row(status="error")])
    status, error, gain = store.query("select status, error, kd_gain from results")[1][0]
    assert (status, error, gain) == ("error", "RuntimeError: boom", None)
    assert store.done_keys(["s/smoke/seed=0"]) == set()
    store.write_trials([make_row()])  # the retry succeeded: the same key becomes ok, no duplicate
    assert store.query("select status, error from trials")[1] == [("ok", None)]
    assert store.done_keys(["s/smoke/seed=0", "nope"]) == {"s/smoke/seed=0"}


def test_constraints_reject_inconsistent_rows(store):
    with pytest.raises(ValueError, match="an ok record needs a kd_gain"):
        TrialRecord.from_dict({**make_row().to_dict(), "kd_gain": None})
    bad = make_row()
    bad.kd_gain = None  # past the record's own check, the schema's CHECK still refuses it
    with pytest.raises(duckdb.ConstraintException):
        store.write_trials([bad])
    bad = make_row()
    bad.metrics = {"student": {"mse": 1.0}}
    with pytest.raises(duckdb.ConstraintException):
        store.write_trials([bad])
    assert count(store, "select count(*) from trials") == 0  # the failed batch left nothing behind


def test_concurrent_read_during_writes(store):
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
        from test_store import make_row
        from cchsweep.store import Store
        s = Store({str(store.path)!r})
        for i in range(40):
            s.write_trials([make_row(f"k{{i}}-{{j}}", seed=j) for j in range(5)])
            time.sleep(0.1)  # a gap between flushes, as a sweep's writer leaves (it flushes every few
                             # seconds): else, on a loaded machine (the suite runs on 2 workers), the
                             # 40 writes can all land while the reader waits for the file lock once
        """)])
    seen = []
    while writer.poll() is None:
        seen.append(count(store, "select count(*) from trials"))
    assert writer.wait() == 0
    assert seen == sorted(seen)  # readers see whole batches, growing
    assert count(store, "select count(*) from trials") == 200
    assert all(n % 5 == 0 for n in seen)
    assert any(0 < n < 200 for n in seen)  # the reads really did interleave with the writes


def test_refuses_foreign_or_outdated_files(tmp_path):
    foreign = tmp_path / "other.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("create table t (x int)")
    with pytest.raises(UsageError, match="not a cchsweep database"):
        Store(foreign).ensure_schema()
    old = tmp_path / "old.duckdb"
    Store(old).ensure_schema()
    with duckdb.connect(str(old)) as con:
        con.execute("update cchsweep_meta set value = '0'")
    with pytest.raises(UsageError, match="schema version 0"):
        Store(old).ensure_schema()
    junk = tmp_path / "junk.duckdb"
    junk.write_text("hello, not a database\n" * 100)
    with pytest.raises(UsageError, match="not a DuckDB database|cannot open"):
        Store(junk).ensure_schema()


def test_query_errors_are_one_line(store):
    with pytest.raises(UsageError, match="^SQL failed: Parser Error") as err:
        store.query("selec nothing")
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="no results database"):
        Store(store.path.with_name("missing.duckdb")).query("select 1")


def test_two_runs_creating_one_new_file_both_go_on(tmp_path):
    """The second of two runs that both found no file (inspect() None) used to fail creating the
    tables the first had just made (a CatalogException traceback); it now takes the file as it is."""
    path = tmp_path / "new.duckdb"

    class Late(Store):
        """A run whose inspect() answered before the other run created the schema."""

        def inspect(self, deep=False):
            version = super().inspect(deep)
            if version is None and not path.exists():
                Store(path).ensure_schema()  # the other run, between this run's look and its write
                Store(path).write_trials([make_row()])
            return version

    Late(path).ensure_schema()
    store = Store(path)
    assert store.query("select value from cchsweep_meta")[1] == [(str(SCHEMA_VERSION),)]
    assert store.done_keys(["s/smoke/seed=0"]) == {"s/smoke/seed=0"}  # the other run's row is kept


def test_status_lists_runs_oldest_first_with_what_each_completed(store):
    # a --force rerun takes the rows over: the first run's own counts (n_ok) still say what it did;
    # runs started within one minute are ordered by time, not by a minute-resolution string
    from dataclasses import replace
    from datetime import datetime

    for run_id, second in (("r2", 31), ("r1", 49), ("r3", 5)):
        store.start_run({"run_id": run_id, "study": "s", "profile": "smoke", "status": "running", "n_trials": 1,
                         "cchsweep_version": "test", "host": "here",
                         "started_at": datetime(2026, 12, 1, 21, 24 + (run_id == "r3"), second)})  # TIMESTAMP: naive
    store.write_trials([make_row()])  # run r1's row
    store.finish_run("r1", status="finished", n_ok=1, n_error=0)
    store.write_trials([replace(make_row(), run_id="r2")])  # r2 (--force) now holds it
    store.finish_run("r2", status="finished", n_ok=1, n_error=0)
    columns, rows = store.run_table()
    table = [dict(zip(columns, r)) for r in rows]
    assert [r["run_id"] for r in table] == ["r2", "r1", "r3"]
    assert [r["started"] for r in table] == ["2026-12-01 21:24:31", "2026-12-01 21:24:49", "2026-12-01 21:25:05"]
    assert [(r["ok"], r["error"]) for r in table] == [(1, 0), (1, 0), (0, 0)]  # r3 never finished: the rows it holds
