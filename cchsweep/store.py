"""The DuckDB results store.

Contract (tests/test_store.py checks each point against a real file):
- `ensure_schema()` creates schema version SCHEMA_VERSION in a new or empty file exactly once,
  accepts a file at that version, and refuses anything else with a UsageError.
- `write_trials(rows)` upserts a batch in one transaction, keyed by trial_key: writing the
  same rows again changes nothing, a newer row for a key replaces the old one and its
  metrics, MI and cache rows. A failed trial is a row too (status 'error', error text).
- Every call opens the file, does its work and closes it, so other processes (a reader
  running `cchsweep query`, a second sweep) get their turn; a locked file is retried briefly.
- `query()` opens the file read-only.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb

from cchsweep.errors import UsageError
from cchsweep.schema import AXIS_COLUMNS, SCHEMA_VERSION, TABLES, VIEWS
from cchsweep.views import CCH_VIEWS

LOCK_RETRY_SECONDS = 10.0

TRIAL_COLUMNS = ("trial_key", "run_id", "study", "profile", *AXIS_COLUMNS, "settings", "mode", "status", "error",
                 "task", "gain_metric", "kd_gain", "node_id", "device", "cpus", "gpu_fraction", "attempts",
                 "started_at", "finished_at", "seconds")
RUN_COLUMNS = ("run_id", "study", "profile", "started_at", "finished_at", "status", "n_trials", "n_ok",
               "n_error", "n_skipped", "cchsweep_version", "git_commit", "git_dirty", "host", "pid", "ray_address",
               "cluster_resources", "storage", "command")


class Store:
    def __init__(self, path: str | Path, lock_retry_seconds: float = LOCK_RETRY_SECONDS):
        self.path = Path(path)
        self.lock_retry_seconds = lock_retry_seconds

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
        with self.connect() as con:
            tables = {r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
            if not tables:
                con.begin()
                con.execute(TABLES)
                con.execute("INSERT INTO cchsweep_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
                con.execute(VIEWS)
                con.execute(CCH_VIEWS)
                con.commit()
                return
            if "cchsweep_meta" not in tables:
                raise UsageError(f"{self.path} is a DuckDB file but not a cchsweep database "
                                 f"(no cchsweep_meta table); pass another --db path")
            row = con.execute("SELECT value FROM cchsweep_meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else None
            if version != SCHEMA_VERSION:
                raise UsageError(f"{self.path} has cchsweep schema version {version}, this cchsweep writes "
                                 f"version {SCHEMA_VERSION}; use a new --db path")
            # Views hold no data: (re)create them so a file gains the analysis views of this release.
            con.execute(VIEWS)
            con.execute(CCH_VIEWS)

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
            con.execute(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                        [row[c] for c in RUN_COLUMNS])

    def mark_stale_runs(self, study: str) -> list[str]:
        """Runs of `study` on this host still 'running' whose driver process is gone: 'interrupted'.

        A killed driver cannot update its own row; the next run of the study does. A driver that
        is still alive (a second sweep on the same file) is left alone.
        """
        with self.connect() as con:
            rows = con.execute("SELECT run_id, pid FROM runs WHERE study = ? AND status = 'running' AND host = ?",
                               [study, socket.gethostname()]).fetchall()
            stale = [run_id for run_id, pid in rows if not _alive(pid)]
            if stale:
                con.executemany("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", [[r] for r in stale])
        return stale

    def finish_run(self, run_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.connect() as con:
            con.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*fields.values(), run_id])

    # --- trials -------------------------------------------------------------------------
    def write_trials(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert trial rows (with their metrics, MI and cache events) in one transaction."""
        if not rows:
            return
        keys = [[r["trial_key"]] for r in rows]
        trial_values = [[_trial_value(r, c) for c in TRIAL_COLUMNS] for r in rows]
        updates = ", ".join(f"{c} = excluded.{c}" for c in TRIAL_COLUMNS if c != "trial_key")
        with self.connect() as con:
            con.begin()
            try:
                for table in ("metrics", "mi", "cache_events"):
                    con.executemany(f"DELETE FROM {table} WHERE trial_key = ?", keys)
                con.executemany(
                    f"INSERT INTO trials ({', '.join(TRIAL_COLUMNS)}) VALUES ({', '.join('?' * len(TRIAL_COLUMNS))}) "
                    f"ON CONFLICT (trial_key) DO UPDATE SET {updates}", trial_values)
                metric_rows = [[r["trial_key"], model, metric, value]
                               for r in rows for model, values in (r.get("metrics") or {}).items()
                               for metric, value in values.items()]
                mi_rows = [[r["trial_key"], m["quantity"], m["estimator"], m["value"], m.get("se"),
                            m.get("repeats", 1), m.get("truth"), m.get("n_samples")]
                           for r in rows for m in (r.get("mi") or [])]
                cache_rows = [[r["trial_key"], e["kind"], e["key"], e["hit"]] for r in rows for e in (r.get("cache") or [])]
                if metric_rows:
                    con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", metric_rows)
                if mi_rows:
                    con.executemany("INSERT INTO mi VALUES (?, ?, ?, ?, ?, ?, ?, ?)", mi_rows)
                if cache_rows:
                    con.executemany("INSERT INTO cache_events VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", cache_rows)
                con.commit()
            except Exception:
                con.rollback()
                raise

    def done_keys(self, keys: Sequence[str]) -> set[str]:
        """The subset of `keys` already stored with status 'ok'."""
        if not self.path.exists() or not keys:
            return set()
        with self.connect(read_only=True) as con:
            found = con.execute("SELECT trial_key FROM trials WHERE status = 'ok' AND trial_key IN "
                                "(SELECT unnest(?::VARCHAR[]))", [list(keys)]).fetchall()
        return {r[0] for r in found}

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


def _trial_value(row: dict[str, Any], column: str) -> Any:
    if column in AXIS_COLUMNS:
        params, settings = row.get("params") or {}, row.get("settings") or {}
        return params.get(column, settings.get(column))
    if column == "settings":
        return json.dumps(row.get("settings") or {}, sort_keys=True)
    if column == "mode":
        return row.get("mode") or "grid"
    return row.get(column)


def _explain_open_error(path: Path, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "lock" in text.lower():
        return f"{path} is locked by another process; wait for it or pass another --db"
    if "not a valid duckdb" in text.lower() or "invalid" in text.lower() or "magic" in text.lower():
        return f"{path} is not a DuckDB database file; pass another --db path"
    return f"cannot open {path}: {text}"
