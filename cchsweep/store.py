"""The DuckDB results store.

Contract (tests/test_store.py checks each point against a real file):
- `ensure_schema()` creates schema version SCHEMA_VERSION in a new or empty file exactly once,
  migrates a file of an older version (a copy of it first, cchsweep/migrate.py), accepts a file
  at this version, and refuses anything else with a UsageError. It (re)creates the views from the
  study registry, so every registered axis is a `results` column.
- `write_trials(records)` upserts a batch of TrialRecords in one transaction, keyed by
  trial_key: writing the same records again changes nothing, a newer record for a key replaces
  the old one and its metrics, MI and cache rows. A failed trial is a row too (status 'error').
- All SQL of the package lives here (and its DDL in schema.py, views.py); callers use methods.
- Every call opens the file, does its work and closes it, so other processes (a reader
  running `cchsweep query`, a second sweep) get their turn; a locked file is retried briefly.
- `query()` opens the file read-only.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from cchsweep.errors import UsageError
from cchsweep.record import TrialRecord
from cchsweep.schema import ADVICE_COLUMNS, SCHEMA_VERSION, TABLES, TRIAL_COLUMNS, axis_columns, results_view
from cchsweep.views import cch_views

LOCK_RETRY_SECONDS = 10.0

RUN_COLUMNS = (
    "run_id",
    "study",
    "profile",
    "started_at",
    "finished_at",
    "status",
    "n_trials",
    "n_ok",
    "n_error",
    "n_skipped",
    "cchsweep_version",
    "git_commit",
    "git_dirty",
    "host",
    "pid",
    "ray_address",
    "cluster_resources",
    "storage",
    "command",
)


class Store:
    def __init__(
        self, path: str | Path, lock_retry_seconds: float = LOCK_RETRY_SECONDS, axes: dict[str, str] | None = None
    ):
        self.path = Path(path)
        self.lock_retry_seconds = lock_retry_seconds
        self._axes = axes  # None: every registered study's (schema.axis_columns)

    @property
    def axes(self) -> dict[str, str]:
        if self._axes is None:
            self._axes = axis_columns()
        return self._axes

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        deadline = time.monotonic() + self.lock_retry_seconds
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" in str(exc).lower() and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise UsageError(_explain_open_error(self.path, exc)) from None
            except duckdb.Error as exc:
                raise UsageError(_explain_open_error(self.path, exc)) from None
        try:
            yield con
        finally:
            con.close()

    # --- schema -----------------------------------------------------------------------
    def ensure_schema(self) -> None:
        version = self._version()
        if version is not None and version < SCHEMA_VERSION:
            from cchsweep.migrate import migrate

            migrate(self, version)
        with self.connect() as con:
            if version is None:
                con.begin()
                con.execute(TABLES)
                con.execute("INSERT INTO cchsweep_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
                self.create_views(con)
                con.commit()
                return
            # Views hold no data: (re)create them so the file gains this release's views and columns.
            self.create_views(con)

    def create_views(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(results_view(self.axes))
        con.execute(cch_views(self.axes))

    def _version(self) -> int | None:
        """The file's schema version; None for a new or empty file; UsageError for a foreign or newer one."""
        with self.connect() as con:
            tables = {
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
                ).fetchall()
            }
            if not tables:
                return None
            if "cchsweep_meta" not in tables:
                raise UsageError(
                    f"{self.path} is a DuckDB file but not a cchsweep database "
                    f"(no cchsweep_meta table); pass another --db path"
                )
            row = con.execute("SELECT value FROM cchsweep_meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else None
        if version is None or not 1 <= version <= SCHEMA_VERSION:
            raise UsageError(
                f"{self.path} has cchsweep schema version {version}, this cchsweep reads versions 1 "
                f"to {SCHEMA_VERSION}; use a new --db path or a newer cchsweep"
            )
        return version

    def check_readable(self) -> None:
        """Raise a UsageError unless the file exists and is a cchsweep database."""
        if not self.path.exists():
            raise UsageError(f"no results database at {self.path}; run a study first or pass --db")
        with self.connect(read_only=True) as con:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "cchsweep_meta" not in tables:
            raise UsageError(f"{self.path} is not a cchsweep database; pass another --db path")

    # --- runs ---------------------------------------------------------------------------
    def start_run(self, run: dict[str, Any]) -> None:
        row = {c: run.get(c) for c in RUN_COLUMNS}
        row["cluster_resources"] = json.dumps(row["cluster_resources"]) if row["cluster_resources"] else None
        with self.connect() as con:
            con.execute(
                f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                [row[c] for c in RUN_COLUMNS],
            )

    def mark_stale_runs(self, study: str) -> list[str]:
        """Runs of `study` on this host still 'running' whose driver process is gone: 'interrupted'.

        A killed driver cannot update its own row; the next run of the study does. A driver that
        is still alive (a second sweep on the same file) is left alone.
        """
        with self.connect() as con:
            rows = con.execute(
                "SELECT run_id, pid FROM runs WHERE study = ? AND status = 'running' AND host = ?",
                [study, socket.gethostname()],
            ).fetchall()
            stale = [run_id for run_id, pid in rows if not _alive(pid)]
            if stale:
                con.executemany("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", [[r] for r in stale])
        return stale

    def finish_run(self, run_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.connect() as con:
            con.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*fields.values(), run_id])

    # --- trials -------------------------------------------------------------------------
    def write_trials(self, records: Sequence[TrialRecord]) -> None:
        """Upsert trial records (with their metrics, MI and cache events) in one transaction."""
        if not records:
            return
        keys = [[r.trial_key] for r in records]
        columns = ("trial_key", *TRIAL_COLUMNS)
        trial_values = [[_trial_value(r, c) for c in columns] for r in records]
        updates = ", ".join(f"{c} = excluded.{c}" for c in TRIAL_COLUMNS)
        metric_rows = [
            [r.trial_key, model, metric, value]
            for r in records
            for model, values in r.metrics.items()
            for metric, value in values.items()
        ]
        mi_rows = [
            [r.trial_key, m.quantity, m.estimator, m.value, m.se, m.repeats, m.truth, m.n_samples]
            for r in records
            for m in r.mi
        ]
        cache_rows = [[r.trial_key, e.kind, e.key, e.hit] for r in records for e in r.cache]
        with self.transaction() as con:
            for table in ("metrics", "mi", "cache_events"):
                con.executemany(f"DELETE FROM {table} WHERE trial_key = ?", keys)
            con.executemany(
                f"INSERT INTO trials ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                f"ON CONFLICT (trial_key) DO UPDATE SET {updates}",
                trial_values,
            )
            if metric_rows:
                con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", metric_rows)
            if mi_rows:
                con.executemany("INSERT INTO mi VALUES (?, ?, ?, ?, ?, ?, ?, ?)", mi_rows)
            if cache_rows:
                con.executemany("INSERT INTO cache_events VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", cache_rows)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside one transaction: committed on success, rolled back on any error."""
        with self.connect() as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def done_keys(self, keys: Sequence[str]) -> set[str]:
        """The subset of `keys` already stored with status 'ok'."""
        if not self.path.exists() or not keys:
            return set()
        with self.connect(read_only=True) as con:
            found = con.execute(
                "SELECT trial_key FROM trials WHERE status = 'ok' AND trial_key IN (SELECT unnest(?::VARCHAR[]))",
                [list(keys)],
            ).fetchall()
        return {r[0] for r in found}

    def run_counts(self, run_id: str) -> dict[str, int]:
        """Trials a run completed, by status: the writer's own count at the end of the experiment,
        else (a run cut short) the rows that still name this run, recorded now."""
        with self.connect() as con:
            n_ok, n_error = con.execute("SELECT n_ok, n_error FROM runs WHERE run_id = ?", [run_id]).fetchone() or (
                None,
                None,
            )
            if n_ok is not None:
                return {"ok": n_ok, "error": n_error}
            rows = dict(
                con.execute("SELECT status, count(*) FROM trials WHERE run_id = ? GROUP BY status", [run_id]).fetchall()
            )
            con.execute(
                "UPDATE runs SET n_ok = ?, n_error = ? WHERE run_id = ?",
                [rows.get("ok", 0), rows.get("error", 0), run_id],
            )
        return rows

    def points(self, run_id: str, param: str, target: str) -> list[tuple[float, float | None]]:
        """(param, target) of a run's ok trials, from `results` (a boundary search's evaluations)."""
        if param not in self.axes or target not in ("mi_gap", "mi_gap_truth", "kd_gain"):
            raise ValueError(f"no such axis or target: {param}, {target}")
        with self.connect(read_only=True) as con:
            return con.execute(
                f"SELECT {param}, {target} FROM results WHERE run_id = ? AND status = 'ok'", [run_id]
            ).fetchall()

    def run_table(self) -> tuple[list[str], list[tuple]]:
        """`cchsweep status`: one row per run with its trial counts."""
        return self.query("""
            SELECT r.run_id, r.study, r.profile, r.status, strftime(r.started_at, '%Y-%m-%d %H:%M') AS started,
                   r.n_trials AS trials, r.n_skipped AS skipped,
                   count(*) FILTER (WHERE t.status = 'ok') AS ok, count(*) FILTER (WHERE t.status = 'error') AS error
            FROM runs r LEFT JOIN trials t USING (run_id)
            GROUP BY ALL ORDER BY started""")

    def write_advice(self, run_id: str, rows: Sequence[Sequence[Any]]) -> None:
        """Replace run_id's rows of the `advice` table (ADVICE_COLUMNS order) in one transaction."""
        with self.transaction() as con:
            con.execute("DELETE FROM advice WHERE run_id = ?", [run_id])
            if rows:
                con.executemany(
                    f"INSERT INTO advice ({', '.join(ADVICE_COLUMNS)}) VALUES ({', '.join('?' * len(ADVICE_COLUMNS))})",
                    [list(r) for r in rows],
                )

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        self.check_readable()
        with self.connect(read_only=True) as con:
            try:
                cur = con.execute(sql)
            except duckdb.Error as exc:
                first = str(exc).strip().splitlines()[0]
                raise UsageError(f"SQL failed: {first}") from None
            if cur.description is None:
                return [], []
            return [d[0] for d in cur.description], cur.fetchall()


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _trial_value(record: TrialRecord, column: str) -> Any:
    if column in ("params", "settings"):
        return json.dumps(getattr(record, column), sort_keys=True)
    return getattr(record, column)


def _explain_open_error(path: Path, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "lock" in text.lower():
        return f"{path} is locked by another process; wait for it or pass another --db"
    if "not a valid duckdb" in text.lower() or "invalid" in text.lower() or "magic" in text.lower():
        return f"{path} is not a DuckDB database file; pass another --db path"
    return f"cannot open {path}: {text}"
