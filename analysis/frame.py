"""The one place where stored results become an analysis frame."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from cchsweep.errors import UsageError
from cchsweep.schema import SCHEMA_VERSION, VIEWS_SINCE, axis_columns, condition_axes
from cchsweep.store import Store


def read_sql(db_path: str | Path, sql: str, params: list | None = None) -> pl.DataFrame:
    """A query's rows as a polars frame, from a results database opened read-only (UsageError if none)."""
    store = Store(db_path)
    version = store.check_readable()
    if version < VIEWS_SINCE:  # its views predate the analysis: migrate first
        shown = str(SCHEMA_VERSION) if VIEWS_SINCE == SCHEMA_VERSION else f"{VIEWS_SINCE} to {SCHEMA_VERSION}"
        raise UsageError(
            f"{store.path} has cchsweep schema version {version}; reports read versions {shown}: "
            f"any `cchsweep run ... --db {store.path}` migrates it first (keeping a backup), or use `cchsweep query`"
        )
    with store.connect(read_only=True) as con:
        return con.sql(sql, params=params).pl()


def load_results(db_path: str | Path, study: str | None = None, run_id: str | None = None) -> pl.DataFrame:
    """One row per trial and MI estimator from the `results` view, as a polars frame."""
    where, args = ["TRUE"], []
    if study is not None:
        where.append("study = ?")
        args.append(study)
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    return read_sql(
        db_path, f"SELECT * FROM results WHERE {' AND '.join(where)} ORDER BY trial_key, mi_estimator NULLS LAST", args
    )


def condition_columns(frame: pl.DataFrame) -> list[str]:
    """A condition is a study's parameters without the seed (plus profile and fixed settings): the
    registered studies' axes (schema.axis_columns) that the frame holds."""
    axes = [c for c in condition_axes(axis_columns()) if c in frame.columns and frame[c].null_count() < frame.height]
    return ["study", "profile", "settings", *axes]


SETUP = ["profile", "settings"]  # what tells two runs of one grid point apart


def setup_names(table: pl.DataFrame) -> dict[tuple, str]:
    """(profile, settings) -> the words that name it in the text: none when the rows hold one setup, else
    the profile, with the settings that differ between that profile's setups (e.g. 'quick epochs=50')."""
    setups = table.select(SETUP).unique().sort(SETUP).rows()
    if len(setups) < 2:
        return {s: "" for s in setups}
    names = {}
    for profile, settings in setups:
        others = [json.loads(s or "{}") for p, s in setups if p == profile]
        mine = json.loads(settings or "{}")
        differ = sorted({k for o in others for k in {*o, *mine} if o.get(k) != mine.get(k)})
        names[(profile, settings)] = " ".join([profile, *(f"{k}={mine.get(k)}" for k in differ)])
    return names


def with_setup(table: pl.DataFrame) -> pl.DataFrame:
    """`table` with a `setup` column naming each row's setup (setup_names) when it holds several, else as
    it is: a chart keyed by its axes alone would draw one setup's points and drop the others'."""
    names = setup_names(table) if set(SETUP) <= set(table.columns) else {}
    if len(names) < 2:
        return table
    lookup = pl.DataFrame(
        [{"profile": p, "settings": s, "setup": name} for (p, s), name in names.items()],
        schema={"profile": table.schema["profile"], "settings": table.schema["settings"], "setup": pl.String},
    )
    return table.join(lookup, on=SETUP, how="left", nulls_equal=True, maintain_order="left")
