"""Schema v5: study axes without DDL; v1, v2 and v4 files of earlier releases migrated with nothing lost.

`tests/data/v1.duckdb.gz` was written by cchsweep at commit 98f0157 (schema v1): a real smoke sweep
of synthetic_sigma12 (4 trials), a real boundary search (4 trials), a real `advise` (1 row), and
12 hand-made mnist_blur and tcga_noise rows (one an error, one with an overridden setting).
"""

import gzip
import shutil
from dataclasses import replace

import duckdb
import pytest

from analysis.agreement import conditions
from analysis.frame import load_results
from cchsweep.record import TrialRecord
from cchsweep.schema import ADVICE_DDL, ADVICE_V5_COLUMNS, CACHE_EVENTS_DDL, SCHEMA_VERSION, axis_columns
from cchsweep.store import Store
from cchsweep.study import Param, Profile, Study
from conftest import ROOT, q
from searchspaces import STUDIES

V1 = ROOT / "tests" / "data" / "v1.duckdb.gz"
TABLES = ("runs", "metrics", "mi", "cache_events", "advice")
V1_AXES = ("gamma", "temperature", "lam", "sigma12", "sigma13", "sigma23", "noise", "alpha", "seed", "cohort",
           "teacher_modality", "student_modality")


def _all(con, sql):
    return sorted(con.execute(sql).fetchall(), key=repr)


def _kept(table: str) -> str:
    """A table's rows as an older file held them: advice's v6 columns (seed, n_patients, settings) are new."""
    return f"SELECT {', '.join(ADVICE_V5_COLUMNS) if table == 'advice' else '*'} FROM {table}"


def _named(con, sql):
    """Rows as sorted (column, value) tuples: equal whatever order the columns come in."""
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return sorted((tuple(sorted(zip(names, row), key=lambda cv: cv[0])) for row in cur.fetchall()), key=repr)


@pytest.fixture
def v1_file(tmp_path):
    path = tmp_path / "old.duckdb"
    with gzip.open(V1) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def test_a_v1_file_is_migrated_with_every_row_kept(v1_file, capsys):
    with duckdb.connect(str(v1_file), read_only=True) as con:
        before = {t: _all(con, f"SELECT * FROM {t}") for t in TABLES}
        trials = {r[0]: r for r in con.execute(f"SELECT trial_key, {', '.join(V1_AXES)}, run_id, study, profile, "
                                               "settings, mode, status, error, kd_gain, seconds FROM trials").fetchall()}
        results = _all(con, "SELECT trial_key, mi_estimator, mi_gap, mi_gap_truth, kd_acc, teacher_mse FROM results")
        cch = _named(con, "SELECT * FROM cch_conditions")
        searched = {r[0] for r in con.execute("SELECT settings FROM trials WHERE mode <> 'grid'").fetchall()}
        cch_columns = [d[0] for d in con.execute("SELECT * FROM cch_conditions LIMIT 0").description]
    original = v1_file.read_bytes()

    Store(v1_file).ensure_schema()

    backup = v1_file.with_name("old.duckdb.v1-backup")
    assert backup.read_bytes() == original  # the v1 file, byte for byte, named in the output
    assert str(backup) in capsys.readouterr().err
    with duckdb.connect(str(v1_file), read_only=True) as con:
        assert con.execute("SELECT value FROM cchsweep_meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)
        for table in TABLES:
            assert _all(con, _kept(table)) == before[table], table
        assert con.execute("SELECT count(*), count(seed) FROM advice").fetchone()[1] == 0  # not recorded then
        after = {r[0]: r for r in con.execute(f"SELECT trial_key, {', '.join(V1_AXES)}, run_id, study, profile, "
                                              "settings, mode, status, error, kd_gain, seconds FROM results").fetchall()}
        assert after == trials and len(after) == 20  # every column of every trial, through the view
        assert _all(con, "SELECT trial_key, mi_estimator, mi_gap, mi_gap_truth, kd_acc, teacher_mse "
                         "FROM results") == results
        # the same conditions and statistics; the same verdicts wherever the views now call one (they
        # also leave out conditions whose gap's 95% t interval holds zero, and call a gain only beyond
        # its t interval: stricter than v1's 2 SE up to 61 seeds, so every call now is one v1 made)
        stats = [c for c in cch_columns if c not in ("undetermined", "agrees")]
        strip = lambda rows: sorted((tuple(cv for cv in row if cv[0] in stats) for row in rows), key=repr)  # noqa: E731
        # and no longer the boundary search's trials (one seed each, their own settings here): 4 trials x 2
        # gap sources, which the v1 views counted as conditions
        grid_only = [row for row in cch if dict(row)["settings"] not in searched]
        assert len(cch) - len(grid_only) == 8
        assert strip(_named(con, "SELECT * FROM cch_conditions")) == strip(grid_only)
        resolved = _named(con, f"SELECT {', '.join(cch_columns)} FROM cch_conditions WHERE NOT undetermined")
        assert resolved and set(resolved) <= set(grid_only)
        # the grid point as JSON: the key's names, the v1 columns' values (sigma13 was a setting)
        params = dict(con.execute("SELECT trial_key, params FROM trials").fetchall())
    key = "synthetic_sigma12/smoke/lam=0.3,seed=1,sigma12=0.6/mi_epochs=2"
    assert params[key] == '{"lam": 0.3, "seed": 1, "sigma12": 0.6}'
    Store(v1_file).ensure_schema()  # now a v2 file: nothing more to do
    assert not v1_file.with_name("old.duckdb.v1-backup2").exists()


def test_a_failed_migration_leaves_the_file_as_it_was(v1_file, monkeypatch):
    from cchsweep import migrate

    original = v1_file.read_bytes()

    def broken(row, name):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(migrate, "_v2_value", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        Store(v1_file).ensure_schema()
    with duckdb.connect(str(v1_file), read_only=True) as con:
        assert con.execute("SELECT value FROM cchsweep_meta").fetchone() == ("1",)
        assert con.execute("SELECT count(*), count(gamma) FROM trials").fetchone() == (20, 6)
        assert con.execute("SELECT count(DISTINCT trial_key) FROM results").fetchone() == (20,)  # views intact
    assert v1_file.with_name("old.duckdb.v1-backup").read_bytes() == original


NEW = Study(
    name="toy_dropout",
    description="a study with an axis no other study has",
    reproduces="-",
    task="classification",
    params={"dropout": Param(float, 0.0, 1.0), "seed": Param(int, 0, 99), "epochs": Param(int, 1, 9)},
    profiles={"smoke": Profile(grid={"dropout": [0.1, 0.5], "seed": [0, 1, 2]}, settings={"epochs": 2})},
    trial=lambda params, settings, ctx: None,
)


def _record(dropout, seed, gain, gap):
    key = f"toy_dropout/smoke/dropout={dropout},seed={seed}"
    mi = [{"quantity": "i_ts", "estimator": "ksg", "value": 1.0 + gap}, {"quantity": "i_sl", "estimator": "ksg",
                                                                          "value": 1.0}]
    return TrialRecord.from_dict({"trial_key": key, "run_id": "r", "study": "toy_dropout", "profile": "smoke",
                                  "params": {"dropout": dropout, "seed": seed}, "settings": {"epochs": 2},
                                  "task": "classification", "gain_metric": "acc", "kd_gain": gain, "mi": mi})


def test_a_new_axis_is_stored_queryable_and_splits_conditions(tmp_path, monkeypatch):
    db = tmp_path / "r.duckdb"
    Store(db).ensure_schema()  # a file made before the study existed
    monkeypatch.setitem(STUDIES, NEW.name, NEW)
    assert axis_columns()["dropout"] == "DOUBLE"
    store = Store(db)
    store.ensure_schema()  # no migration, no DDL: the views gain the column
    records = [_record(dropout, seed, gain + noise, gap + noise)
               for dropout, gain, gap in ((0.1, 0.2, 0.3), (0.5, -0.2, -0.3))
               for seed, noise in zip((0, 1, 2), (-0.01, 0.0, 0.01))]
    store.write_trials(records)
    assert q(db, "SELECT value FROM cchsweep_meta") == [(str(SCHEMA_VERSION),)]
    assert q(db, "SELECT dropout, round(avg(kd_gain), 6) FROM results GROUP BY dropout ORDER BY dropout") == [
        (0.1, 0.2), (0.5, -0.2)]
    # two conditions (one per dropout), three seeds each: the seeds pool, the dropouts do not
    assert q(db, "SELECT dropout, n_seeds, agrees FROM cch_conditions WHERE gap_source = 'estimated' "
                 "ORDER BY dropout") == [(0.1, 3, True), (0.5, 3, True)]
    table = conditions(load_results(db)).sort("dropout")
    assert table["dropout"].to_list() == [0.1, 0.5] and table["n_seeds"].to_list() == [3, 3]
    # with the axis unknown (the registry without the study), the six trials would pool as one
    monkeypatch.delitem(STUDIES, NEW.name)
    assert "dropout" not in axis_columns()


def test_one_name_one_type_across_studies():
    clash = replace(NEW, name="clash", params={**NEW.params, "dropout": Param(str, choices=("a",))})
    with pytest.raises(ValueError, match="'dropout' of study clash is VARCHAR, elsewhere DOUBLE"):
        axis_columns([NEW, clash])


def _older_file(path, version, undo):
    """A file as the release of schema `version` left it: today's schema with one trial, `undo(con)`
    taking back what came after that version, and the version set."""
    from test_agreement import db_row

    store = Store(path)
    store.ensure_schema()
    store.write_trials([TrialRecord.from_dict(db_row("g1/0", "g1", {"sigma12": 0.1, "seed": 0}, 0.2, {"lmi": 0.1}))])
    with duckdb.connect(str(path)) as con:
        undo(con)
        con.execute("UPDATE cchsweep_meta SET value = ? WHERE key = 'schema_version'", [str(version)])
    return path


def _v2_file(path):
    """A version-2 file: advice keyed by (run_id, teacher), with rows."""

    def undo(con):
        con.execute("DROP TABLE advice")
        con.execute(ADVICE_DDL.replace("PRIMARY KEY (run_id, teacher, estimator)", "PRIMARY KEY (run_id, teacher)")
                    .replace(" seed INTEGER, n_patients INTEGER, settings JSON,", ""))
        for teacher, gap in (("mrna", 0.1), ("rppa", -0.2)):
            con.execute("INSERT INTO advice VALUES ('a1', 'd', 'cnv', ?, 'ksg', 2, 1, 0.1, 0.9, 0.1, 1.2, 0.1, ?, 0.1, "
                        "'undetermined', 1, TIMESTAMP '2026-11-01 10:00:00')", [teacher, gap])

    return _older_file(path, 2, undo)


def test_a_v2_file_is_migrated_and_advice_takes_several_estimators(tmp_path, capsys):
    path = _v2_file(tmp_path / "v2.duckdb")
    with duckdb.connect(str(path), read_only=True) as con:
        before = {t: _all(con, f"SELECT * FROM {t}") for t in ("trials", *TABLES)}
    Store(path).ensure_schema()
    backup = path.with_name("v2.duckdb.v2-backup")
    assert backup.exists() and str(backup) in capsys.readouterr().err
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT value FROM cchsweep_meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)
        for table, rows in before.items():
            assert _all(con, _kept(table)) == rows, table  # nothing lost, nothing changed
        # the same run and teacher under a second estimator: the v3 key allows it
        con.execute(f"INSERT INTO advice ({', '.join(ADVICE_V5_COLUMNS)}) SELECT run_id, data, student, teacher, "
                    "'lmi', repeats, i_ts, i_ts_se, i_sl, i_sl_se, i_tl, i_tl_se, gap, gap_se, verdict, rank, created_at "
                    "FROM advice")
        assert con.execute("SELECT count(*), count(DISTINCT estimator) FROM advice").fetchone() == (4, 2)
        with pytest.raises(duckdb.ConstraintException):
            con.execute("INSERT INTO advice SELECT * FROM advice LIMIT 1")


def _v4_file(path):
    """A version-4 file: cache_events keyed by (trial_key, kind), with rows."""

    def undo(con):
        con.execute("DROP TABLE cache_events")
        con.execute(CACHE_EVENTS_DDL.replace("(trial_key, kind, artifact_key)", "(trial_key, kind)"))
        con.execute("INSERT INTO cache_events VALUES ('g1/0', 'synthetic_mi', 'a1', false), "
                    "('g1/0', 'synthetic_teacher', 't1', true)")
        with pytest.raises(duckdb.ConstraintException):  # v4 keeps one event of a kind per trial
            con.execute("INSERT INTO cache_events VALUES ('g1/0', 'synthetic_mi', 'a2', false)")

    return _older_file(path, 4, undo)


def test_a_v4_file_is_read_as_it_is_and_migrated_to_keep_every_artifact_a_trial_used(tmp_path, capsys):
    path = _v4_file(tmp_path / "v4.duckdb")
    with duckdb.connect(str(path), read_only=True) as con:
        before = {t: _all(con, f"SELECT * FROM {t}") for t in ("trials", *TABLES)}
    # reports read a v4 file as it is (its views are v5's), and reading does not migrate it
    assert load_results(path)["trial_key"].to_list() == ["g1/0"]
    assert q(path, "SELECT value FROM cchsweep_meta WHERE key = 'schema_version'") == [("4",)]
    Store(path).ensure_schema()
    backup = path.with_name("v4.duckdb.v4-backup")
    assert backup.exists() and f"from results schema v4 to v{SCHEMA_VERSION}" in capsys.readouterr().err
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT value FROM cchsweep_meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)
        for table, rows in before.items():
            assert _all(con, f"SELECT * FROM {table}") == rows, table  # nothing lost, nothing changed
        # a second MI artifact of the same kind (another estimator's) now has a row of its own
        con.execute("INSERT INTO cache_events VALUES ('g1/0', 'synthetic_mi', 'a2', false)")
        assert con.execute("SELECT count(*) FROM cache_events WHERE kind = 'synthetic_mi'").fetchone() == (2,)
        with pytest.raises(duckdb.ConstraintException):
            con.execute("INSERT INTO cache_events VALUES ('g1/0', 'synthetic_mi', 'a2', true)")


def _v5_file(path):
    """A version-5 file: advice without seed, n_patients and settings, with a row."""

    def undo(con):
        for column in ("seed", "n_patients", "settings"):
            con.execute(f"ALTER TABLE advice DROP COLUMN {column}")
        con.execute("INSERT INTO advice VALUES ('a1', '/d', 'cnv', 'mrna', 'ksg', 3, 1, 0.1, 0.9, 0.1, 1.2, 0.1, 0.1, "
                    "0.1, 'undetermined', 1, TIMESTAMP '2026-11-01 10:00:00')")

    return _older_file(path, 5, undo)


def test_a_v5_file_keeps_its_advice_and_records_what_reproduces_new_rows(tmp_path, capsys):
    """v6: an advice row records its first seed, the teacher's patients and the settings (v5 kept the
    numbers but not how to make them again); the v5 rows keep every value, NULL in the new columns."""
    from cchsweep.schema import ADVICE_COLUMNS

    path = _v5_file(tmp_path / "v5.duckdb")
    with duckdb.connect(str(path), read_only=True) as con:
        before = {t: _all(con, f"SELECT * FROM {t}") for t in ("trials", *TABLES)}
    Store(path).ensure_schema()
    assert path.with_name("v5.duckdb.v5-backup").exists()
    assert f"from results schema v5 to v{SCHEMA_VERSION}" in capsys.readouterr().err
    with duckdb.connect(str(path)) as con:
        for table, rows in before.items():
            assert _all(con, _kept(table)) == rows, table  # nothing lost, nothing changed
        assert con.execute("SELECT seed, n_patients, settings FROM advice").fetchall() == [(None, None, None)]
    row = ("a2", "/d", "cnv", "rppa", "ksg", 3, 1, 0.1, 0.9, 0.1, 1.2, 0.1, 0.1, 0.1, "undetermined", 1,
           None, 4, 861, '{"epochs": 200, "mi_estimator": "ksg"}')
    assert len(row) == len(ADVICE_COLUMNS)
    Store(path).write_advice("a2", [row])
    assert q(path, "SELECT seed, n_patients, settings->>'epochs' FROM advice WHERE run_id = 'a2'") == [(4, 861, "200")]


def test_reports_of_a_migrated_v1_file_draw_what_its_rows_hold(v1_file, tmp_path):
    # v1's tcga_noise rows measured accuracy, not weighted F1: the F1 chart once failed the whole
    # report with polars' ColumnNotFoundError; now that chart says it has nothing to draw
    from analysis.report import write_report

    Store(v1_file).ensure_schema()
    index = write_report(v1_file, "tcga_noise", tmp_path / "r")
    page = index.read_text()
    assert "no weighted F1 among these trials' metrics" in page
    assert "mi_vs_noise" in page and not (tmp_path / "r" / "tcga_noise" / "f1_vs_noise.png").exists()
