"""The results schema, version 1. README.md documents it; bump SCHEMA_VERSION on any change."""

SCHEMA_VERSION = 1

# Grid parameters that get a typed column of their own in `trials` (NULL where a study lacks them).
AXIS_COLUMNS = {
    "gamma": "DOUBLE", "temperature": "DOUBLE", "lam": "DOUBLE", "sigma12": "DOUBLE",
    "sigma13": "DOUBLE", "sigma23": "DOUBLE", "noise": "DOUBLE", "alpha": "DOUBLE",
    "seed": "INTEGER", "cohort": "VARCHAR", "teacher_modality": "VARCHAR", "student_modality": "VARCHAR",
}
MODELS = ("teacher", "nokd", "kd")
METRICS = ("mse", "acc", "f1_weighted", "f1_macro", "auc")
QUANTITIES = ("i_ts", "i_sl", "i_tl")


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


_axis_ddl = ",\n    ".join(f"{name} {sql_type}" for name, sql_type in AXIS_COLUMNS.items())

TABLES = f"""
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
CREATE TABLE trials (
    trial_key VARCHAR PRIMARY KEY,
    run_id VARCHAR NOT NULL,
    study VARCHAR NOT NULL,
    profile VARCHAR NOT NULL,
    {_axis_ddl},
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
    CHECK (status = 'error' OR (kd_gain IS NOT NULL AND error IS NULL)),
    CHECK (status = 'ok' OR error IS NOT NULL)
);
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
CREATE TABLE cache_events (
    trial_key VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    artifact_key VARCHAR NOT NULL,
    hit BOOLEAN NOT NULL,
    PRIMARY KEY (trial_key, kind)
);
"""


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

# One row per trial and MI estimator: parameters, metrics, MI, gap and the CCH prediction.
VIEWS = f"""
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
SELECT t.*, m.* EXCLUDE (trial_key), i.* EXCLUDE (trial_key),
    i.i_ts - i.i_sl AS mi_gap,
    i.i_ts_truth - i.i_sl_truth AS mi_gap_truth,
    i.i_ts - i.i_sl > 0 AS cch_predicts_gain,
    t.kd_gain > 0 AS kd_helped
FROM trials t
LEFT JOIN m USING (trial_key)
LEFT JOIN i USING (trial_key);
"""
