"""Schema migrations: a results file of an older release is upgraded in place, nothing lost.

Before anything changes, the file is copied beside itself (`NAME.duckdb.v1-backup`, named on
stderr); the upgrade is one transaction, so a failure leaves the file as it was.

v1 -> v2: v1 kept each grid parameter in a typed column of `trials` (a fixed list; a setting of
the same name filled the column when a study had no such axis), v2 keeps the grid point as JSON
in `trials.params`. The axis names of a trial are those of its key (`study/profile/k=v,...`), the
values those of the v1 columns (a name v1 had no column for is read from the key, typed by the
study's parameter). `advice`, which v1 created lazily, is created if missing.

v2 -> v3: `advice` is keyed by (run_id, teacher, estimator), so one `advise` run can store several
estimators' rows; its rows are copied over unchanged.

v3 -> v4: an ok trial of task 'calibration' may have no kd_gain; `trials` is rebuilt with the
relaxed CHECK and its rows copied over unchanged.

v4 -> v5: `cache_events` is keyed by (trial_key, kind, artifact_key), so a point of several MI
estimators keeps the use of each estimator's artifact (v4 kept the first of a kind); its rows are
copied over unchanged.

v5 -> v6: `advice` gains `seed`, `n_patients` and `settings` (what reproduces a row); older rows keep
every value and get NULL there (their settings were not recorded).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from cchsweep.schema import (
    ADVICE_DDL,
    ADVICE_V5_COLUMNS,
    CACHE_EVENTS_DDL,
    SCHEMA_VERSION,
    TRIAL_COLUMNS,
    TRIALS_DDL,
)

V1_AXES = (
    "gamma",
    "temperature",
    "lam",
    "sigma12",
    "sigma13",
    "sigma23",
    "noise",
    "alpha",
    "seed",
    "cohort",
    "teacher_modality",
    "student_modality",
)
V1_VIEWS = ("cch_agreement", "cch_conditions", "results")
VIEWS = ("cch_scorecard", "mi_calibration", *V1_VIEWS)  # every view a file may hold, dependents first


def migrate(store, version: int) -> Path:
    """Upgrade store's file from `version` to SCHEMA_VERSION; returns the backup's path."""
    if version not in (1, 2, 3, 4, 5):
        raise RuntimeError(f"no migration from schema version {version}")
    backup = _backup(store.path, version)
    print(
        f"cchsweep: upgrading {store.path} from results schema v{version} to v{SCHEMA_VERSION}; the v{version} "
        f"file is kept as {backup}",
        file=sys.stderr,
        flush=True,
    )
    with store.transaction() as con:
        if version == 1:
            _v1_to_v2(con)
        if version <= 2:
            _v2_to_v3(con)
        if version <= 3:
            _v3_to_v4(con)
        if version <= 4:
            _v4_to_v5(con)
        _v5_to_v6(con)
        con.execute("UPDATE cchsweep_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
        store.create_views(con)
    return backup


def _v1_to_v2(con) -> None:
    """trials keeps the grid point as JSON (module doc)."""
    columns = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'trials' ORDER BY ordinal_position"
        ).fetchall()
    ]
    old = [dict(zip(columns, row)) for row in con.execute("SELECT * FROM trials").fetchall()]
    for view in V1_VIEWS:
        con.execute(f"DROP VIEW IF EXISTS {view}")
    con.execute("ALTER TABLE trials RENAME TO trials_v1")
    con.execute(TRIALS_DDL)
    con.execute(ADVICE_DDL)
    names = ("trial_key", *TRIAL_COLUMNS)
    con.executemany(
        f"INSERT INTO trials ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        [[_v2_value(row, name) for name in names] for row in old],
    )
    con.execute("DROP TABLE trials_v1")


def _v2_to_v3(con) -> None:
    """advice keyed by (run_id, teacher, estimator): DuckDB cannot alter a key, so the table is rebuilt."""
    con.execute("ALTER TABLE advice RENAME TO advice_v2")
    con.execute(ADVICE_DDL)
    columns = ", ".join(ADVICE_V5_COLUMNS)
    con.execute(f"INSERT INTO advice ({columns}) SELECT {columns} FROM advice_v2")
    con.execute("DROP TABLE advice_v2")


def _v3_to_v4(con) -> None:
    """trials with the v4 CHECK: DuckDB cannot alter a constraint, so the table is rebuilt."""
    for view in VIEWS:
        con.execute(f"DROP VIEW IF EXISTS {view}")
    con.execute("ALTER TABLE trials RENAME TO trials_v3")
    con.execute(TRIALS_DDL)
    con.execute("INSERT INTO trials SELECT * FROM trials_v3")
    con.execute("DROP TABLE trials_v3")


def _v4_to_v5(con) -> None:
    """cache_events with the v5 key: rebuilt, as DuckDB cannot alter a key."""
    con.execute("ALTER TABLE cache_events RENAME TO cache_events_v4")
    con.execute(CACHE_EVENTS_DDL)
    con.execute("INSERT INTO cache_events SELECT * FROM cache_events_v4")
    con.execute("DROP TABLE cache_events_v4")


def _v5_to_v6(con) -> None:
    """advice gains seed, n_patients and settings, NULL in the rows already there (a file migrated from
    v2 or older already has them: IF NOT EXISTS)."""
    for column, sql_type in (("seed", "INTEGER"), ("n_patients", "INTEGER"), ("settings", "JSON")):
        con.execute(f"ALTER TABLE advice ADD COLUMN IF NOT EXISTS {column} {sql_type}")


def _backup(path: Path, version: int) -> Path:
    backup = path.with_name(f"{path.name}.v{version}-backup")
    n = 1
    while backup.exists():  # never overwrite an earlier copy
        n += 1
        backup = path.with_name(f"{path.name}.v{version}-backup{n}")
    shutil.copy2(path, backup)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():  # uncheckpointed changes belong to the copy too
        shutil.copy2(wal, backup.with_name(backup.name + ".wal"))
    return backup


def _v2_value(row: dict[str, Any], name: str) -> Any:
    if name == "params":
        return json.dumps(v1_params(row), sort_keys=True)
    return row.get(name)


def v1_params(row: dict[str, Any]) -> dict[str, Any]:
    """A v1 trial's grid point: names from its key, values from its typed columns."""
    study, _, rest = row["trial_key"].split("/", 2)
    point = rest.split("/", 1)[0]
    params: dict[str, Any] = {}
    for item in point.split(","):
        name, _, text = item.partition("=")
        if not name:
            continue
        params[name] = row[name] if name in V1_AXES and row.get(name) is not None else _typed(study, name, text)
    return params


def _typed(study: str, name: str, text: str) -> Any:
    from searchspaces import STUDIES

    param = STUDIES[study].params.get(name) if study in STUDIES else None
    try:
        return param.kind(text) if param is not None else text
    except ValueError:
        return text
