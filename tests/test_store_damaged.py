"""Damaged, truncated and unknown-version results files, and SQL `query` must not run: every command
refuses them in one line (exit code 2, no traceback), and a refused file keeps its bytes.

The files are real DuckDB results databases written through the Store API (a few hand-made trials),
then cut short, or with a block's bytes overwritten, or with another schema version written in.
"""

import datetime
import gzip
import hashlib
import shutil

import duckdb
import pytest

from cchsweep.cli import main
from cchsweep.errors import UsageError
from cchsweep.estimate import stored_keys
from cchsweep.grid import plan
from cchsweep.schema import SCHEMA_VERSION
from cchsweep.store import FILE_HEADER_BYTES, Store
from conftest import ROOT, trial_row
from searchspaces import STUDIES

STUDY = "synthetic_sigma12"
RUN = ("run", STUDY, "--profile", "smoke", "--seeds", "1", "--set", "sigma12=0.1")
# every command that opens --db: each must refuse a bad file before anything reads or writes it
COMMANDS = {
    "status": lambda db, out: ["status", "--db", db],
    "query": lambda db, out: ["query", "select * from results", "--db", db],
    "report": lambda db, out: ["report", STUDY, "--db", db, "--out", out],
    "report --all": lambda db, out: ["report", "--all", "--db", db, "--out", out],
    "run --dry-run": lambda db, out: [*RUN, "--db", db, "--dry-run"],
    "run": lambda db, out: [*RUN, "--db", db],
}


@pytest.fixture(scope="module")
def real_db(tmp_path_factory):
    """A results database as a sweep leaves it: schema, a run, three ok trials with metrics and MI."""
    path = tmp_path_factory.mktemp("real") / "real.duckdb"
    store = Store(path)
    store.ensure_schema()
    store.start_run({"run_id": "r1", "study": STUDY, "profile": "smoke", "started_at": datetime.datetime(2026, 1, 1),
                     "status": "finished", "cchsweep_version": "0.1.0", "host": "h", "pid": 1})
    store.write_trials([
        trial_row(STUDY, {"sigma12": 0.1, "lam": 0.3, "seed": seed},
                  {"teacher": {"mse": 0.5}, "nokd": {"mse": 1.0}, "kd": {"mse": 0.9}},
                  [("i_ts", 1.2, 1.3), ("i_sl", 1.0, 1.1), ("i_tl", 2.0, 2.1)], "mse", 0.1)
        for seed in range(3)])
    assert not path.with_name(path.name + ".wal").exists()
    return path


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(capsys, argv, *fragments):
    """main(argv) exits 2 with one stderr line holding every fragment, and no traceback."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cchsweep: error: ")
    assert "Traceback" not in out + err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def assert_refused_untouched(capsys, tmp_path, db, *fragments):
    """Every command refuses db in one line naming it; its bytes, and the folder, stay as they were."""
    digest, before = sha(db), sorted(p.name for p in tmp_path.iterdir())
    for name, argv in COMMANDS.items():
        line = refused(capsys, argv(str(db), str(tmp_path / "reports")), *fragments)
        assert db.name in line, (name, line)
        assert sha(db) == digest, f"`{name}` changed the bytes of the file it refused"
        assert sorted(p.name for p in tmp_path.iterdir()) == before, name  # no .wal, no storage folder


@pytest.mark.parametrize("length", [4096, 1_000_000, -1], ids=["4KB", "1MB", "one-byte-short"])
def test_a_truncated_file_is_refused_by_every_command_untouched(real_db, tmp_path, capsys, length):
    data = real_db.read_bytes()
    db = tmp_path / "cut.duckdb"
    db.write_bytes(data[:length])
    assert_refused_untouched(capsys, tmp_path, db, "is damaged or truncated", "restore it from a copy",
                             "give a new --db path")
    with pytest.raises(UsageError, match="damaged or truncated"):  # the plan's stored trials: refused too
        stored_keys(db, plan(STUDIES[STUDY], "smoke"))


def test_a_file_with_a_damaged_block_is_refused_by_every_command_untouched(real_db, tmp_path, capsys):
    data = bytearray(real_db.read_bytes())
    at = FILE_HEADER_BYTES + 5000  # inside the first block: DuckDB's checksum no longer matches
    data[at:at + 64] = bytes(b ^ 0xFF for b in data[at:at + 64])
    db = tmp_path / "flipped.duckdb"
    db.write_bytes(bytes(data))
    assert_refused_untouched(capsys, tmp_path, db, "is damaged or truncated", "restore it from a copy")


@pytest.mark.parametrize("version, shown", [("99", "99"), ("abc", "'abc'")])
def test_an_unknown_schema_version_is_refused_by_every_command_untouched(real_db, tmp_path, capsys, version, shown):
    db = tmp_path / "other.duckdb"
    shutil.copy(real_db, db)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE cchsweep_meta SET value = ? WHERE key = 'schema_version'", [version])
    assert_refused_untouched(capsys, tmp_path, db, f"has cchsweep schema version {shown}, this cchsweep reads "
                             f"versions 1 to", "use a new --db path or a newer cchsweep")
    # an older version (one `run` migrates) stays readable, and a read does not migrate it
    old = tmp_path / "old" / "v1.duckdb"
    old.parent.mkdir()
    with gzip.open(ROOT / "tests" / "data" / "v1.duckdb.gz") as src, open(old, "wb") as dst:
        shutil.copyfileobj(src, dst)
    digest = sha(old)
    assert main(["query", "select count(*) as n from trials", "--db", str(old), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "20"]
    assert main(["status", "--db", str(old)]) == 0
    # a report needs the current views: one line saying how to migrate, not a Catalog Error traceback
    refused(capsys, ["report", "synthetic_sigma12", "--db", str(old), "--out", str(tmp_path / "rep")],
            f"has cchsweep schema version 1; reports read versions 4 to {SCHEMA_VERSION}", "migrates it first")
    assert sha(old) == digest and sorted(p.name for p in old.parent.iterdir()) == ["v1.duckdb"]


@pytest.mark.parametrize("sql", ["", "   ", ";", "-- comment", "/* nothing */ ;"])
def test_sql_that_runs_no_query_is_one_line(real_db, capsys, sql):
    digest = sha(real_db)
    refused(capsys, ["query", sql, "--db", str(real_db)], "the SQL ran no query", "give a SELECT")
    with pytest.raises(UsageError, match="ran no query"):
        Store(real_db).query(sql)
    assert sha(real_db) == digest


@pytest.mark.parametrize("sql", [
    "copy trials to '{dir}/out.csv'",
    "copy (select * from results) to '{dir}/out.parquet' (format parquet)",
    "export database '{dir}/exp'",
    "attach '{dir}/other.duckdb' as other",
    "install httpfs",  # would download (CCHSWEEP_OFFLINE or not)
    "load httpfs",
])
def test_query_writes_no_files_and_loads_no_extensions(real_db, tmp_path, capsys, sql):
    db = tmp_path / "r.duckdb"
    shutil.copy(real_db, db)
    digest = sha(db)
    refused(capsys, ["query", sql.format(dir=tmp_path), "--db", str(db)], "query only reads the results database",
            "--format csv or --format json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.duckdb"]  # no out.csv, exp/, other.duckdb
    assert sha(db) == digest
    # the read-only connection still reads every view; --format csv is the way to export
    for view in ("results", "cch_conditions", "cch_agreement", "cch_scorecard", "mi_calibration"):
        assert main(["query", f"select * from {view}", "--db", str(db), "--format", "csv"]) == 0
        assert capsys.readouterr().out.splitlines()[0]  # the header line
    assert main(["query", "select count(*) as n, max(params->>'$.seed') as s from results", "--db", str(db),
                 "--format", "json"]) == 0  # JSON functions: built in, no extension to load
    assert '"n": 3' in capsys.readouterr().out
