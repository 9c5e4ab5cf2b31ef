"""The results schema, version 6. README.md documents it; bump SCHEMA_VERSION on any change and
add its migration to cchsweep/migrate.py.

A trial's grid point is stored as JSON (`trials.params`), so a study with a new axis needs no DDL.
The `results` view gives every axis of every registered study a typed column of its own
(`axis_columns()`, read from searchspaces.STUDIES), regenerated whenever a writer opens the file:
`select gamma, avg(kd_gain) from results group by gamma` keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# v3: advice is keyed by (run_id, teacher, estimator): several estimators per run
# v4: an ok trial of task 'calibration' (MI estimators on known MI, no KD) has no kd_gain
# v5: cache_events keyed by (trial_key, kind, artifact_key): a point of several estimators uses one
#     MI artifact of one kind per estimator, and v4 kept only the first
# v6: advice keeps what reproduces a row: the first repeat's seed, the teacher's patient count and the
#     settings (epochs, MI settings, split), which v5 left out
SCHEMA_VERSION = 6
VIEWS_SINCE = 4  # the oldest version whose views the analysis reads as they are (v5, v6 changed no view)
CALIBRATION_TASK = "calibration"

SQL_TYPES = {int: "INTEGER", float: "DOUBLE", str: "VARCHAR"}
REPLICATE_AXIS = "seed"  # repeats of one condition; every other axis tells conditions apart
MODELS = ("teacher", "nokd", "kd")
METRICS = ("mse", "acc", "f1_weighted", "f1_macro", "auc")
QUANTITIES = ("i_ts", "i_sl", "i_tl")


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def axis_columns(studies: Iterable | None = None) -> dict[str, str]:
    """Name -> SQL type of every grid axis (and every setting a study lists in `columns`) of the
    registered studies, in first-seen order. Two studies giving one name two types is an error."""
    if studies is None:
        from searchspaces import STUDIES

        studies = STUDIES.values()
    columns: dict[str, str] = {}
    for study in studies:
        names = [n for profile in study.profiles.values() for n in profile.grid] + list(study.columns)
        for name in dict.fromkeys(names):
            sql_type = SQL_TYPES[study.params[name].kind]
            if columns.setdefault(name, sql_type) != sql_type:
                raise ValueError(
                    f"parameter {name!r} of study {study.name} is {sql_type}, elsewhere "
                    f"{columns[name]}: one name, one type across studies"
                )
    return columns


def condition_axes(axes: Mapping[str, str]) -> list[str]:
    return [name for name in axes if name != REPLICATE_AXIS]


# the MI triplet with standard errors and the gap: one advice row's numbers (advise.COLUMNS has them too)
ADVICE_VALUES = ("i_ts", "i_ts_se", "i_sl", "i_sl_se", "i_tl", "i_tl_se", "gap", "gap_se")
ADVICE_COLUMNS = (
    "run_id",
    "data",
    "student",
    "teacher",
    "estimator",
    "repeats",
    *ADVICE_VALUES,
    "verdict",
    "rank",
    "created_at",
    "seed",
    "n_patients",
    "settings",
)
ADVICE_V5_COLUMNS = ADVICE_COLUMNS[:-3]  # what a v2-v5 advice row holds
ADVICE_DDL = """
CREATE TABLE IF NOT EXISTS advice (
    run_id VARCHAR, data VARCHAR, student VARCHAR, teacher VARCHAR, estimator VARCHAR, repeats INTEGER,
    i_ts DOUBLE, i_ts_se DOUBLE, i_sl DOUBLE, i_sl_se DOUBLE, i_tl DOUBLE, i_tl_se DOUBLE, gap DOUBLE, gap_se DOUBLE,
    verdict VARCHAR, rank INTEGER, created_at TIMESTAMP, seed INTEGER, n_patients INTEGER, settings JSON,
    PRIMARY KEY (run_id, teacher, estimator)
);
"""

TRIALS_DDL = """
CREATE TABLE trials (
    trial_key VARCHAR PRIMARY KEY,
    run_id VARCHAR NOT NULL,
    study VARCHAR NOT NULL,
    profile VARCHAR NOT NULL,
    params JSON NOT NULL,  -- the grid point: {"gamma": 0.5, "seed": 2, ...}
    settings JSON NOT NULL,
    mode VARCHAR NOT NULL,  -- 'grid', or 'boundary:PARAM:TARGET' for a boundary search's trials
    status VARCHAR NOT NULL CHECK (status IN ('ok', 'error')),
    error VARCHAR,
    task VARCHAR,
    gain_metric VARCHAR,
    kd_gain DOUBLE,
    node_id VARCHAR,
    device VARCHAR,
    cpus DOUBLE,
    gpu_fraction DOUBLE,
    attempts INTEGER,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    seconds DOUBLE,
    CHECK (status = 'error' OR ((kd_gain IS NOT NULL OR task = 'calibration') AND error IS NULL)),
    CHECK (status = 'ok' OR error IS NOT NULL)
);
"""

CACHE_EVENTS_DDL = """
CREATE TABLE cache_events (
    trial_key VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    artifact_key VARCHAR NOT NULL,
    hit BOOLEAN NOT NULL,
    PRIMARY KEY (trial_key, kind, artifact_key)
);
"""

TABLES = (
    f"""
CREATE TABLE cchsweep_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    study VARCHAR NOT NULL,
    profile VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status VARCHAR NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
    n_trials INTEGER,
    n_ok INTEGER,
    n_error INTEGER,
    n_skipped INTEGER,
    cchsweep_version VARCHAR NOT NULL,
    git_commit VARCHAR,
    git_dirty BOOLEAN,
    host VARCHAR NOT NULL,
    pid INTEGER,
    ray_address VARCHAR,
    cluster_resources JSON,
    storage VARCHAR,
    command VARCHAR
);
{TRIALS_DDL}
CREATE TABLE metrics (
    trial_key VARCHAR NOT NULL,
    model VARCHAR NOT NULL CHECK (model IN ({_in(MODELS)})),
    metric VARCHAR NOT NULL CHECK (metric IN ({_in(METRICS)})),
    value DOUBLE NOT NULL,
    PRIMARY KEY (trial_key, model, metric)
);
CREATE TABLE mi (
    trial_key VARCHAR NOT NULL,
    quantity VARCHAR NOT NULL CHECK (quantity IN ({_in(QUANTITIES)})),
    estimator VARCHAR NOT NULL,
    value DOUBLE NOT NULL,
    se DOUBLE,
    repeats INTEGER NOT NULL CHECK (repeats >= 1),
    truth DOUBLE,
    n_samples INTEGER,
    PRIMARY KEY (trial_key, quantity, estimator)
);
{CACHE_EVENTS_DDL}"""
    + ADVICE_DDL
)


def _pivot(table: str, pairs, value: str = "value") -> str:
    cols = [f"max({value}) FILTER (WHERE {cond}) AS {name}" for name, cond in pairs]
    return ",\n        ".join(cols)


_metric_cols = _pivot("metrics", [(f"{m}_{k}", f"model = '{m}' AND metric = '{k}'") for m in MODELS for k in METRICS])
_mi_cols = ",\n        ".join(
    [f"max(value) FILTER (WHERE quantity = '{q}') AS {q}" for q in QUANTITIES]
    + [f"max(se) FILTER (WHERE quantity = '{q}') AS {q}_se" for q in QUANTITIES]
    + [f"max(truth) FILTER (WHERE quantity = '{q}') AS {q}_truth" for q in QUANTITIES]
    + ["max(repeats) AS mi_repeats", "max(n_samples) AS mi_n_samples"]
)

TRIAL_COLUMNS = (
    "run_id",
    "study",
    "profile",
    "params",
    "settings",
    "mode",
    "status",
    "error",
    "task",
    "gain_metric",
    "kd_gain",
    "node_id",
    "device",
    "cpus",
    "gpu_fraction",
    "attempts",
    "started_at",
    "finished_at",
    "seconds",
)


def results_view(axes: Mapping[str, str]) -> str:
    """One row per trial and MI estimator: parameters as typed columns, metrics, MI, gap and the CCH
    prediction. An axis column holds the trial's grid value, else a fixed setting of that name."""
    axis_cols = ",\n    ".join(
        f"TRY_CAST(coalesce(t.params->>'{name}', t.settings->>'{name}') AS {sql_type}) AS {name}"
        for name, sql_type in axes.items()
    )
    return f"""
CREATE OR REPLACE VIEW results AS
WITH m AS (
    SELECT trial_key,
        {_metric_cols}
    FROM metrics GROUP BY trial_key
), i AS (
    SELECT trial_key, estimator AS mi_estimator,
        {_mi_cols}
    FROM mi GROUP BY trial_key, estimator
)
SELECT t.trial_key, t.run_id, t.study, t.profile,
    {axis_cols},
    t.* EXCLUDE (trial_key, run_id, study, profile),
    m.* EXCLUDE (trial_key), i.* EXCLUDE (trial_key),
    i.i_ts - i.i_sl AS mi_gap,
    i.i_ts_truth - i.i_sl_truth AS mi_gap_truth,
    i.i_ts - i.i_sl > 0 AS cch_predicts_gain,
    t.kd_gain > 0 AS kd_helped
FROM trials t
LEFT JOIN m USING (trial_key)
LEFT JOIN i USING (trial_key);
"""
