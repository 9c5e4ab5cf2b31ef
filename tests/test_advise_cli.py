"""`cchsweep advise` through the real command line."""

import os

import duckdb
import pytest

from conftest import SHARED_DATA, run_cli

from cchsweep.data.cohort import content_digest

BRCA = SHARED_DATA / "tcga" / "brca"


@pytest.mark.slow
def test_advise_prints_ranks_stores_and_reports(tmp_path):
    db = tmp_path / "a.duckdb"
    relative = os.path.relpath(BRCA, tmp_path)  # stored as the absolute path: meaningful from anywhere
    out = run_cli("advise", relative, "--student", "cnv", "--estimator", "ksg", "--repeats", "2", "--db", str(db),
                  "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "CCH advice for student cnv" in out.stdout
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select distinct data from advice").fetchall() == [(str(BRCA.resolve()),)]
        # what reproduces the rows (schema v6): the first seed, each teacher's patients, the settings
        assert con.execute("select teacher, seed, n_patients, settings->>'mi_estimator', settings->>'epochs' "
                           "from advice order by teacher").fetchall() == [("mrna", 0, 190, "ksg", "200"),
                                                                          ("rppa", 0, 861, "ksg", "200")]
    ranked = [l.split()[1] for l in out.stdout.splitlines() if l.strip()[:1].isdigit()]
    assert sorted(ranked) == ["mrna", "rppa"]
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select teacher, rank, verdict, gap, i_ts - i_sl from advice order by rank").fetchall()
    assert [r[0] for r in rows] == ranked and [r[1] for r in rows] == [1, 2]
    assert all(r[2] in ("distil", "do not distil", "undetermined") and r[3] == pytest.approx(r[4]) for r in rows)
    assert (tmp_path / "rep" / "advice.html").exists()


@pytest.mark.parametrize("args, message", [
    (["--student", "dna"], "unknown student modality 'dna'"),
    (["--student", "cnv", "--teachers", "rppa,proteome"], "proteome"),
    (["--student", "cnv", "--repeats", "0"], "repeats"),
    (["--student", "cnv", "--estimator", "astrology"], "astrology"),
    (["--student", "cnv", "--seed", "-5"], "--seed -5: give a whole number from 0"),  # was a split error, late
])
def test_advise_bad_input(args, message):
    out = run_cli("advise", str(BRCA), *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_database_advise_could_not_store_into_is_refused_before_the_estimates(tmp_path):
    # it was refused only after the MI estimates (minutes with lmi), the advice then lost
    (tmp_path / "notes.duckdb").write_text("not a database")
    out = run_cli("advise", str(BRCA), "--student", "cnv", "--estimator", "ksg", "--db", str(tmp_path / "notes.duckdb"))
    assert out.returncode == 2 and "is not a DuckDB database file" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == "" and len(out.stderr.strip().splitlines()) == 1  # no advice made, none printed
    assert (tmp_path / "notes.duckdb").read_text() == "not a database"


def test_advise_needs_two_modalities(tmp_path):
    (tmp_path / "only.csv").write_text("patient,a,b\np1,1,2\np2,3,4\n")
    (tmp_path / "labels.csv").write_text("patient,subtype\np1,x\np2,y\n")
    out = run_cli("advise", str(tmp_path), "--student", "only")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_pick_teachers_adds_a_failing_control():
    import polars as pl

    from cchsweep.verify import pick_teachers

    table = pl.DataFrame({"teacher": ["a", "b", "c", "d"], "rank": [1, 2, 3, 4],
                          "verdict": ["distil", "distil", "undetermined", "do not distil"]})
    assert pick_teachers(table, 1) == ["a", "d"]  # the teacher that fails the criterion, over an undetermined one
    assert pick_teachers(table, 3) == ["a", "b", "c", "d"]
    assert pick_teachers(table.filter(pl.col("verdict") != "do not distil"), 1) == ["a", "c"]  # else undetermined
    assert pick_teachers(table.filter(pl.col("verdict") == "distil"), 2) == ["a", "b"]  # no control to add


@pytest.mark.slow
def test_verify_distils_for_real_through_the_engine(tmp_path):
    db = tmp_path / "v.duckdb"
    out = run_cli("advise", str(BRCA), "--student", "cnv", "--estimator", "ksg", "--repeats", "2", "--db", str(db),
                  "--verify", "1", "--verify-seeds", "2", "--verify-profile", "smoke", "--out", str(tmp_path / "r"),
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "verified by distilling" in out.stdout
    digest = content_digest(BRCA, ["mrna", "rppa", "cnv"])
    with duckdb.connect(str(db), read_only=True) as con:
        trials = con.execute("select count(*), count(distinct teacher_modality), min(status), "
                             "bool_and(cohort = ?) "
                             "from results where study = 'tcga_noise'", [f"{BRCA.resolve()}@sha256:{digest}"]).fetchall()
        advice = con.execute("select count(*) from advice").fetchall()
        command = con.execute("select command from runs where study = 'tcga_noise'").fetchall()
    # top teacher + control, 2 seeds each, the cohort named by its path and the digest of the files read
    assert trials == [(4, 2, "ok", True)]
    assert advice == [(2,)]
    assert command[0][0].startswith("cchsweep advise ") and "--verify-seeds 2 --verify-profile smoke" in command[0][0]
    assert (tmp_path / "r" / "verification.png").exists()


@pytest.mark.slow
def test_verify_after_a_file_changed_runs_new_trials_not_the_stale_ones(tmp_path):
    """The trials were keyed by the cohort's path alone: after a teacher file changed, --verify printed
    the old file's KD gains as the verification of the new advice ("nothing to run")."""
    import shutil

    cohort = tmp_path / "brca"
    shutil.copytree(BRCA, cohort)
    db = tmp_path / "v.duckdb"
    args = ["advise", str(cohort), "--student", "cnv", "--teachers", "mrna", "--estimator", "ksg", "--repeats", "2",
            "--db", str(db), "--verify", "1", "--verify-seeds", "2", "--verify-profile", "smoke"]
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    first = content_digest(cohort, ["mrna", "cnv"])
    lines = (cohort / "mrna.csv").read_text().splitlines()
    (cohort / "mrna.csv").write_text("\n".join([lines[0], *lines[1:][::-1]]) + "\n")  # same rows, new bytes
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 0 and "nothing to run" not in out.stdout + out.stderr
    second = content_digest(cohort, ["mrna", "cnv"])
    assert second != first
    with duckdb.connect(str(db), read_only=True) as con:
        cohorts = con.execute("select cohort, count(*) from results where study = 'tcga_noise' group by cohort "
                              "order by cohort").fetchall()
    assert sorted(cohorts) == sorted([(f"{cohort.resolve()}@sha256:{first}", 2), (f"{cohort.resolve()}@sha256:{second}", 2)])
    again = run_cli(*args, cwd=tmp_path)  # the same file: its stored trials, and a hint advise's user can follow
    said = again.stdout + again.stderr
    assert again.returncode == 0 and "nothing to run" in said and "their stored gains are shown" in said
    assert "--force" not in said  # advise has no --force


def test_verify_needs_a_database():
    out = run_cli("advise", str(BRCA), "--student", "cnv", "--verify", "1")
    assert out.returncode == 2 and "add --db PATH" in out.stderr
