"""The DuckDB results store.

Contract (tests/test_store.py checks each point against a real file):
- `ensure_schema()` creates schema version SCHEMA_VERSION in a new or empty file exactly once,
  migrates a file of an older version (a copy of it first, cchsweep/migrate.py), accepts a file
  at this version, and refuses anything else with a UsageError. It (re)creates the views from the
  study registry, so every registered axis is a `results` column.
- `write_trials(records)` upserts a batch of TrialRecords in one transaction, keyed by
  trial_key: writing the same records again changes nothing, a newer record for a key replaces
  the old one and its metrics, MI and cache rows. A failed trial is a row too (status 'error'),
  but an error never replaces a stored ok result (a failed --force rerun keeps the result).
- All SQL of the package lives here (and its DDL in schema.py, views.py); callers use methods.
- Every call opens the file, does its work and closes it, so other processes (a reader
  running `cchsweep query`, a second sweep) get their turn; a locked file is retried briefly, then
  is a `DatabaseLocked` UsageError (the sweep's writer holds its records and tries again).
- `query()` opens the file read-only, without access to other files or extensions (no COPY TO, EXPORT,
  INSTALL, ATTACH): `cchsweep query --format csv|json` is the way to export.
- A file is looked at read-only before anything reads or writes it (`inspect()`): a damaged or
  truncated file, a foreign DuckDB file, and an unknown (newer or non-integer) schema version are
  refused with a UsageError, and the refused file keeps its bytes. `ensure_schema()`, the step
  before every write, also reads every table once first; a damaged block met later is a UsageError too.
"""

from __future__ import annotations

import json
import os
import re
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
FINAL_WAIT_SECONDS = 600.0  # a writer holding results that exist nowhere else waits this long for a lock
FILE_HEADER_BYTES = 3 * 4096  # a DuckDB file: its main header and two database headers, then whole blocks
# A file another process holds ("Could not set lock on file ...: Conflicting lock is held in ..."); not
# "lock" alone, which "block at location" of a damaged block's error holds too.
LOCKED = re.compile(r"could not set lock|conflicting lock", re.IGNORECASE)


class DatabaseLocked(UsageError):
    """The file stayed locked by another process (a notebook, the DuckDB CLI, another writer)
    for the whole retry time."""


# What a DuckDB read of a damaged or truncated file raises (an IOException or a plain duckdb.Error).
DAMAGE = re.compile(
    r"could not read enough bytes|corrupt database file|corrupt wal|does not match stored checksum", re.IGNORECASE
)
# Settings of `query`'s connection: it reads the database and nothing else.
SANDBOX: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,  # no COPY TO, EXPORT DATABASE, ATTACH, read_csv, INSTALL or LOAD
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,  # and no SET to undo the above
}

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
    def connect(self, read_only: bool = False, sandbox: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the file (read-only: nothing in it changes; sandbox: nor anything outside it,
        see SANDBOX). A damaged block met by the caller's SQL is a UsageError."""
        deadline = time.monotonic() + self.lock_retry_seconds
        config = dict(SANDBOX) if sandbox else {}
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only, config=config)
                break
            except duckdb.IOException as exc:
                if LOCKED.search(str(exc)):
                    if time.monotonic() < deadline:
                        time.sleep(0.2)
                        continue
                    raise DatabaseLocked(_explain_open_error(self.path, exc)) from None
                raise UsageError(_explain_open_error(self.path, exc)) from None
            except duckdb.Error as exc:
                raise UsageError(_explain_open_error(self.path, exc)) from None
        try:
            yield con
        except duckdb.Error as exc:
            if _is_damage(exc):
                raise UsageError(_damaged(self.path, exc)) from None
            raise
        finally:
            con.close()

    # --- schema -----------------------------------------------------------------------
    def ensure_schema(self) -> None:
        version = self.inspect(deep=True)  # read-only: a file it refuses keeps its bytes
        if version is None:
            with self.connect() as con:  # one read-write process at a time: no other creates it now
                if not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'cchsweep_meta'").fetchall():
                    con.begin()
                    con.execute(TABLES)
                    con.execute("INSERT INTO cchsweep_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
                    self.create_views(con)
                    con.commit()
                    return
            version = self.inspect(deep=True)  # another run created it since: check it as any file
            assert version is not None
        if version < SCHEMA_VERSION:
            from cchsweep.migrate import migrate

            migrate(self, version)
        with self.connect() as con:
            # Views hold no data: (re)create them so the file gains this release's views and columns.
            self.create_views(con)

    def create_views(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(results_view(self.axes))
        con.execute(cch_views(self.axes))

    def inspect(self, deep: bool = False) -> int | None:
        """The file's schema version, looked up read-only; None for a missing file or a DuckDB file
        without tables (a new database). UsageError for a damaged, foreign or unknown-version file.

        A truncated file is found by its size: fewer bytes than the blocks its header counts in use.
        `deep` (before a write) also reads every table and the primary-key index of each
        single-column key, so a damaged block is found before anything is written.
        """
        if not self.path.exists():
            return None
        with self.connect(read_only=True) as con:
            block_size, used = con.execute(
                "SELECT block_size, used_blocks FROM pragma_database_size() WHERE database_name = current_database()"
            ).fetchone() or (0, 0)
            size = self.path.stat().st_size
            if size < FILE_HEADER_BYTES + used * block_size:
                raise UsageError(
                    _damaged(
                        self.path,
                        f"{size:,} bytes, too few for the {used} blocks of {block_size:,} bytes its header "
                        f"counts in use",
                    )
                )
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
            text = None if row is None or row[0] is None else str(row[0])
            version = int(text) if text is not None and text.strip().isdigit() else None
            if version is None or not 1 <= version <= SCHEMA_VERSION:
                shown = text if version is not None or text is None else repr(text)
                raise UsageError(
                    f"{self.path} has cchsweep schema version {shown}, this cchsweep reads versions 1 "
                    f"to {SCHEMA_VERSION}; use a new --db path or a newer cchsweep"
                )
            if deep:
                _read_everything(con)
        return version

    def check_readable(self) -> int:
        """The file's schema version; a UsageError unless the file exists and is an intact cchsweep
        database of a version this cchsweep reads (an older one too: reading does not migrate it)."""
        if not self.path.exists():
            raise UsageError(f"no results database at {self.path}; run a study first or pass --db")
        version = self.inspect()
        if version is None:
            raise UsageError(
                f"{self.path} is a DuckDB file but not a cchsweep database (no cchsweep_meta table); "
                f"pass another --db path"
            )
        return version

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
    def write_trials(self, records: Sequence[TrialRecord]) -> list[str]:
        """Upsert trial records (with their metrics, MI and cache events) in one transaction.

        An error never replaces a stored result: an error record whose key is stored as ok (a
        --force rerun that failed, or another run on the same file that had finished it) is not
        written, and its key is returned, so the user's result stays with its metrics and MI."""
        if not records:
            return []
        with self.transaction() as con:
            kept = _ok_keys(con, [r.trial_key for r in records if r.status == "error"])
            self._upsert(con, [r for r in records if not (r.status == "error" and r.trial_key in kept)])
        return sorted(kept)

    @staticmethod
    def _upsert(con: duckdb.DuckDBPyConnection, records: Sequence[TrialRecord]) -> None:
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
            return _ok_keys(con, keys)

    def stored_settings(self, keys: Sequence[str]) -> dict[str, dict]:
        """The settings each of `keys` stored as 'ok' ran with (the keys not stored are absent)."""
        if not self.path.exists() or not keys:
            return {}
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT trial_key, settings FROM trials WHERE status = 'ok' "
                "AND trial_key IN (SELECT unnest(?::VARCHAR[]))",
                [list(keys)],
            ).fetchall()
        return {key: json.loads(text) for key, text in rows}

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

    def points(
        self, run_id: str, param: str, target: str, estimator: str | None = None
    ) -> list[tuple[float, float | None]]:
        """(param, target) of a run's ok trials, from `results` (a boundary search's evaluations):
        one point per trial, from `estimator`'s rows where the trials estimated the MI (a trial with
        several estimators has a row per estimator)."""
        if param not in self.axes or target not in ("mi_gap", "mi_gap_truth", "kd_gain"):
            raise ValueError(f"no such axis or target: {param}, {target}")
        which = "" if estimator is None else " AND mi_estimator = ?"
        with self.connect(read_only=True) as con:
            return con.execute(
                f"SELECT {param}, {target} FROM results WHERE run_id = ? AND status = 'ok'{which}",
                [run_id, *([] if estimator is None else [estimator])],
            ).fetchall()

    def run_table(self) -> tuple[list[str], list[tuple]]:
        """`cchsweep status`: one row per run, oldest first, with its trial counts: what the run
        completed (its own n_ok, n_error, written when it ends; a later --force rerun takes the rows
        over), else, for a run still going or one that died, the rows it holds now."""
        return self.query("""
            SELECT r.run_id, r.study, r.profile, r.status, strftime(r.started_at, '%Y-%m-%d %H:%M:%S') AS started,
                   r.n_trials AS trials, r.n_skipped AS skipped,
                   coalesce(r.n_ok, count(*) FILTER (WHERE t.status = 'ok')) AS ok,
                   coalesce(r.n_error, count(*) FILTER (WHERE t.status = 'error')) AS error
            FROM runs r LEFT JOIN trials t USING (run_id)
            GROUP BY r.run_id, r.study, r.profile, r.status, r.started_at, r.n_trials, r.n_skipped, r.n_ok, r.n_error
            ORDER BY r.started_at""")

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
        """Run SQL on a read-only, sandboxed connection (SANDBOX): (column names, rows)."""
        self.check_readable()
        try:
            statements = len(duckdb.extract_statements(sql))
        except duckdb.Error as exc:
            raise UsageError(f"SQL failed: {_first_line(exc)}") from None
        if statements > 1:  # DuckDB would run them all and return the last one's rows alone
            raise UsageError(f"query runs one SQL statement and this has {statements}; run them one at a time")
        with self.connect(read_only=True, sandbox=True) as con:
            try:
                cur = con.execute(sql)
            except duckdb.PermissionException as exc:
                raise UsageError(
                    f"query only reads the results database, it writes no files and loads no extensions "
                    f"({_first_line(exc)}); to export rows, use --format csv or --format json and redirect "
                    f"the output, e.g. > rows.csv"
                ) from None
            except duckdb.Error as exc:
                if _is_damage(exc):
                    raise UsageError(_damaged(self.path, exc)) from None
                raise UsageError(f"SQL failed: {_first_line(exc)}") from None
            if cur is None:  # DuckDB runs nothing for empty SQL, ';' or a comment alone
                raise UsageError(
                    "the SQL ran no query (it is empty or only comments): give a SELECT, "
                    "e.g. 'select * from results limit 10'"
                )
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


def _read_everything(con: duckdb.DuckDBPyConnection) -> None:
    """Read every column of every table (DuckDB checks each block it reads), and probe the index of
    each single-column primary key with a stored key (an index scan reads the index's blocks); a
    damaged block raises here (see _is_damage)."""
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary"
    ).fetchall()
    for (table,) in tables:
        con.execute(f"SELECT max(hash(COLUMNS(*))) FROM {_ident(table)}").fetchall()
    keys = con.execute(
        "SELECT table_name, constraint_column_names[1] FROM duckdb_constraints() "
        "WHERE database_name = current_database() AND constraint_type = 'PRIMARY KEY' "
        "AND len(constraint_column_names) = 1"
    ).fetchall()
    for table, column in keys:
        row = con.execute(f"SELECT {_ident(column)} FROM {_ident(table)} LIMIT 1").fetchone()
        if row is not None:
            con.execute(f"SELECT count(*) FROM {_ident(table)} WHERE {_ident(column)} = ?", [row[0]]).fetchall()


def _is_damage(exc: Exception) -> bool:
    """A read of a damaged file: an IO error or DuckDB's own corruption error, not the SQL's fault."""
    kinds = (duckdb.IOException, duckdb.InternalException, duckdb.SerializationException)
    return (isinstance(exc, kinds) or type(exc) is duckdb.Error) and DAMAGE.search(str(exc)) is not None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _damaged(path: Path, what: Exception | str) -> str:
    detail = re.sub(r'\s*(from|in) file "[^"]*"', "", _first_line(what)) if isinstance(what, Exception) else what
    return f"{path} is damaged or truncated ({detail}): restore it from a copy, or give a new --db path"


def _ok_keys(con: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> set[str]:
    """The subset of `keys` stored with status 'ok'."""
    if not keys:
        return set()
    found = con.execute(
        "SELECT trial_key FROM trials WHERE status = 'ok' AND trial_key IN (SELECT unnest(?::VARCHAR[]))", [list(keys)]
    ).fetchall()
    return {r[0] for r in found}


def _explain_open_error(path: Path, exc: Exception) -> str:
    text = _first_line(exc)
    if _is_damage(exc):
        return _damaged(path, exc)
    if LOCKED.search(text):
        return f"{path} is locked by another process; wait for it or pass another --db"
    if "not a valid duckdb" in text.lower() or "invalid" in text.lower() or "magic" in text.lower():
        return f"{path} is not a DuckDB database file; pass another --db path"
    if path.is_dir():
        return f"{path} is a directory; pass the database file inside it, e.g. --db {path / 'cchsweep.duckdb'}"
    return f"cannot open {path}: {text}"
