"""Bad input: one line on stderr naming the problem, exit code 2, no traceback, nothing written."""

import json

import duckdb
import pytest

from conftest import SHARED_DATA, run_cli


def assert_clean_error(out, message):
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("cchsweep: error: ")
    assert message in lines[0]
    assert "Traceback" not in out.stderr + out.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "nosuch"], "unknown study 'nosuch'"),
    (["run", "synthetic_sigma12", "--profile", "huge"], "no profile 'huge'"),
    (["run", "synthetic_sigma12", "--set", "temperature=3"], "has no parameter 'temperature'"),
    (["run", "synthetic_sigma12", "--set", "sigma12"], "malformed"),
    (["run", "synthetic_sigma12", "--set", "sigma12=0.95"], "conditional variance"),
    (["run", "synthetic_sigma12", "--set", "lam=-1"], "below its minimum"),
    (["run", "synthetic_sigma12", "--seeds", "two"], "invalid int value"),
    (["run", "synthetic_sigma12", "--bundle-size", "0"], "give 1 or more grid points per bundle"),
    (["frobnicate"], "invalid choice"),
    (["run", "synthetic_sigma12", "--gpu", "garbage"], "--gpu 'garbage': give auto or a GPU fraction"),
    (["run", "synthetic_sigma12", "--set", "lam=nan"], "lam=nan is not a finite number"),
    (["run", "synthetic_sigma12", "--set", "lam=0.1", "--set", "lam=0.2"], "--set lam is given twice"),
    (["run", "synthetic_sigma12", "--budget", "3"], "--budget only apply to a search: add --search boundary"),
    (["run", "synthetic_sigma12", "--search", "boundary", "--param", "sigma12", "--range", "0:0.7",
      "--set", "sigma12=0.2"], "the search chooses sigma12's values; drop this --set"),
    (["run", "synthetic_sigma12", "--search", "boundary", "--param", "sigma12", "--range", "0:0.7",
      "--budget", "1000000000"], "give at most 1,000 trials"),
    (["run", "tcga_noise", "--profile", "smoke", "--set", "teacher_modality=bogus", "--data-dir", str(SHARED_DATA)],
     "brca/bogus.csv (it has cnv, mrna, rppa)"),
    # the labels file is not a modality: refused in the driver, not by every trial (it once was)
    (["run", "tcga_noise", "--profile", "smoke", "--set", "student_modality=labels", "--data-dir", str(SHARED_DATA)],
     "the subtypes, not a modality; choose a teacher and student among cnv, mrna, rppa"),
    (["run", "synthetic_sigma12", "--seeds", "3", "--set", "seed=0"], "both set the seeds: give one of them"),
    # an embedded Ray on a machine without a GPU can never give a GPU share: it once waited forever
    (["run", "synthetic_sigma12", "--profile", "smoke", "--gpu", "0.5"], "no GPU for the embedded Ray"),
    (["run", "synthetic_sigma12", "--profile", "smoke", "--gpu", "0.5", "--dry-run"], "no GPU for the embedded Ray"),
])
def test_bad_run_arguments(tmp_path, args, message):
    out = run_cli(*args, "--db", str(tmp_path / "r.duckdb"), cwd=tmp_path) if args[0] == "run" else \
        run_cli(*args, cwd=tmp_path)
    assert_clean_error(out, message)
    assert list(tmp_path.iterdir()) == []  # no database, no storage directory


@pytest.mark.parametrize("name, choices", [("CCHSWEEP_CUDA_GRAPHS", "1 or 0"), ("CCHSWEEP_TF32", "1 or 0"),
                                           ("CCHSWEEP_COMPILE", "1, 0 or auto")])
def test_a_bad_engine_switch_fails_before_the_sweep(tmp_path, name, choices):
    import os

    env = dict(os.environ, **{name: "fast"})
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(tmp_path / "r.duckdb"), cwd=tmp_path,
                  env=env)
    assert_clean_error(out, f"{name}='fast' is not a switch; set it to {choices}")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_db_locations(tmp_path):
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(tmp_path / "nodir" / "r.duckdb"))
    assert_clean_error(out, "does not exist")
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", "/proc/sys/r.duckdb")
    assert_clean_error(out, "not writable")
    # an existing storage directory that is not writable: refused before the database is created
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(tmp_path / "r.duckdb"),
                  "--storage", "/proc/sys")
    assert_clean_error(out, "storage /proc/sys is not writable")
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(tmp_path))
    assert_clean_error(out, "is a directory")
    assert list(tmp_path.iterdir()) == []
    # storage that is a file (--storage, or a file NAME.cchsweep beside the database): refused before
    # any run row is written (it once failed in the sweep with a traceback, leaving a failed run)
    (tmp_path / "r.cchsweep").write_text("mine")
    for extra in ([], ["--dry-run"], ["--storage", str(tmp_path / "r.cchsweep")]):
        out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(tmp_path / "r.duckdb"), *extra)
        assert_clean_error(out, "r.cchsweep is a file, not a directory")
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(tmp_path / "r.cchsweep" / "x.duckdb"))
    assert_clean_error(out, "r.cchsweep is a file; choose another path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.cchsweep"] and (tmp_path / "r.cchsweep").read_text() == "mine"


def test_foreign_database_is_refused_untouched(tmp_path):
    db = tmp_path / "theirs.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("create table mine (x int); insert into mine values (42)")
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db), cwd=tmp_path)
    assert_clean_error(out, "not a cchsweep database")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select table_name from information_schema.tables").fetchall() == [("mine",)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.duckdb"]


def test_query_errors(tmp_path):
    assert_clean_error(run_cli("query", "select 1", "--db", str(tmp_path / "none.duckdb")), "no results database")
    assert not (tmp_path / "none.duckdb").exists()
    db = tmp_path / "r.duckdb"
    from cchsweep.store import Store

    Store(db).ensure_schema()
    assert_clean_error(run_cli("query", "selec * from trials", "--db", str(db)), "SQL failed: Parser Error")
    assert_clean_error(run_cli("query", "select * from nosuch", "--db", str(db)), "SQL failed: Catalog Error")
    # the connection is read-only: writes are refused, the file is unchanged
    assert_clean_error(run_cli("query", "drop table trials", "--db", str(db)), "read-only")
    ok = run_cli("query", "select count(*) as n from trials", "--db", str(db), "--format", "csv")
    assert ok.returncode == 0 and ok.stdout.splitlines() == ["n", "0"]
    # two statements: DuckDB would print the last one's rows alone, silently
    assert_clean_error(run_cli("query", "select 1; select 2", "--db", str(db)),
                       "query runs one SQL statement and this has 2; run them one at a time")
    assert run_cli("query", "select 1 as one;", "--db", str(db), "--format", "csv").stdout.splitlines() == ["one", "1"]
    # JSON output is strict JSON: a NaN or infinite value (an MI gap can be NaN) is null, not NaN / Infinity
    sql = "select 'nan'::double as gap, ['-inf'::double, 1.5] as xs, {'v': 'inf'::double} as s, 2.5::double as ok"
    out = run_cli("query", sql, "--db", str(db), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}")) == [
        {"gap": None, "xs": [None, 1.5], "s": {"v": None}, "ok": 2.5}]
    # a directory as --db: say what to pass instead
    for command in (["query", "select 1"], ["status"]):
        assert_clean_error(run_cli(*command, "--db", str(tmp_path)), f"{tmp_path} is a directory; pass the database file")


def test_list_shows_grid_sizes():
    out = run_cli("list")
    assert out.returncode == 0
    line = next(l for l in out.stdout.splitlines() if l.startswith("synthetic_sigma12"))
    assert line.split()[1:6] == ["Figure", "1", "80", "21", "4"]  # paper, quick, smoke trials
    line = next(l for l in out.stdout.splitlines() if l.startswith("mosei_noise"))
    assert " - " in line  # no quick profile (its data are not offline)


def test_reports_and_advice_refuse_bad_flags_before_any_work(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    brca = str(SHARED_DATA / "tcga" / "brca")
    for args, message in [
        (["report", "nosuch", "--db", str(tmp_path / "r.duckdb")], "unknown study 'nosuch'"),
        (["report", "synthetic_sigma12", "--out", str(a_file)], f"--out {a_file} is a file"),
        (["reproduce", "--studies", ""], "--studies is empty"),
        (["reproduce", "--profile", "bogus", "--dry-run"], "no study here has a profile 'bogus'; reproduce runs smoke, quick or paper"),
        (["reproduce", "--profile", "quick", "--studies", "mosei_noise", "--dry-run"],
         "study mosei_noise has no profile 'quick'; it has paper, smoke"),  # once: "no study here has ..."
        (["reproduce", "--studies", "tcga_noise", "--out", str(a_file)], f"--out {a_file} is a file"),
        (["run", "mnist_blur", "--data-dir", str(a_file)], "is a file, not a directory"),
        (["advise", brca, "--student", "cnv", "--teachers", ""], "no teacher modality given"),
        (["advise", brca, "--student", "cnv", "--verify-seeds", "5", "--verify-profile", "smoke"],
         "--verify-seeds, --verify-profile only apply with --verify K: add it, or drop them"),  # once ignored
        (["advise", str(a_file), "--student", "cnv"], f"cohort directory {a_file} is a file, not a directory"),
        (["advise", brca, "--student", "cnv", "--repeats", "1000000"], "--repeats 1000000: give 1 to 1000"),
        (["advise", brca, "--student", "cnv", "--out", str(a_file)], f"--out {a_file} is a file"),
        (["advise", brca, "--student", "cnv", "--verify", "1", "--verify-profile", "bogus", "--db",
          str(tmp_path / "v.duckdb")], "--verify-profile 'bogus': choose one of"),
        (["advise", brca, "--student", "cnv", "--verify", "0", "--db", str(tmp_path / "v.duckdb")],
         "--verify 0: give the number of top teachers"),
        (["advise", brca, "--student", "cnv", "--db", str(tmp_path / "nodir" / "v.duckdb")], "does not exist"),
    ]:
        out = run_cli(*args, cwd=tmp_path)
        assert_clean_error(out, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no database, report or storage made


def test_a_ctrl_c_that_library_code_swallows_still_stops_the_run():
    """cli.main's handler records every SIGINT; the runner checks the record before Ray starts and
    before the trials, so a KeyboardInterrupt that an import or ray.init caught still stops the run."""
    import os
    import signal
    import time

    from cchsweep import errors

    errors.INTERRUPTS.clear()
    previous = signal.signal(signal.SIGINT, errors.on_interrupt)
    try:
        errors.check_interrupted()  # nothing recorded: nothing raised
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            pass  # what a library's `except BaseException` (or a C extension) does with it
        with pytest.raises(KeyboardInterrupt):
            errors.check_interrupted()
    finally:
        signal.signal(signal.SIGINT, previous)
        errors.INTERRUPTS.clear()


@pytest.mark.parametrize("damage, message", [
    ("duplicate", "cnv.csv lists patient"),
    ("constant", "modality 'mrna' of brca has no feature that varies over the 171 training patients of seed 0"),
])
def test_bad_tcga_contents_are_one_line_before_the_sweep(tmp_path, damage, message):
    """A duplicated patient (or an mRNA table with no usable value) was found only in the bundles: exit 1,
    tracebacks, a retry and an error row per point; the constant one even trained on zero features and
    stored ok rows. The driver now reads each pairing and prepares each seed's split first."""
    import shutil

    brca = tmp_path / "data" / "tcga" / "brca"
    shutil.copytree(SHARED_DATA / "tcga" / "brca", brca)
    if damage == "duplicate":
        lines = (brca / "cnv.csv").read_text().splitlines()
        (brca / "cnv.csv").write_text("\n".join([*lines, lines[1]]) + "\n")
    else:
        lines = (brca / "mrna.csv").read_text().splitlines()
        width = len(lines[0].split(","))
        (brca / "mrna.csv").write_text("\n".join([lines[0], *(f"{r.split(',')[0]}" + ",NA" * (width - 1)
                                                            for r in lines[1:])]) + "\n")
    db = tmp_path / "r.duckdb"
    out = run_cli("run", "tcga_noise", "--profile", "smoke", "--set", "mi_estimator=ksg", "--db", str(db),
                  "--data-dir", str(tmp_path / "data"))
    assert_clean_error(out, message)
    assert not db.exists()


@pytest.mark.parametrize("argv,message", [
    (["run", "synthetic_sigma12"], "interrupted; stored trials are kept, rerun the same command to finish"),
    (["advise", "cohort", "--student", "cnv", "--db", "a.duckdb", "--verify", "1"],
     "interrupted; stored trials are kept, rerun the same command to finish"),
    (["advise", "cohort", "--student", "cnv"], "interrupted; no advice was stored, rerun the same command"),
    (["report", "synthetic_sigma12"], "cchsweep: interrupted\n"),
])
def test_ctrl_c_says_what_was_kept_for_what_the_command_stores(monkeypatch, capsys, argv, message):
    # advise once said "stored trials are kept" where it had stored nothing
    from cchsweep import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, argv[0], interrupted)
    assert cli.main(argv) == 130
    assert capsys.readouterr().err.endswith(message if message.endswith("\n") else message + "\n")
