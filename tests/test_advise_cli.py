"""`cchsweep advise` through the real command line."""

import duckdb
import pytest

from conftest import SHARED_DATA, run_cli

BRCA = SHARED_DATA / "tcga" / "brca"


@pytest.mark.slow
def test_advise_prints_ranks_stores_and_reports(tmp_path):
    db = tmp_path / "a.duckdb"
    out = run_cli("advise", str(BRCA), "--student", "cnv", "--estimator", "ksg", "--repeats", "2", "--db", str(db),
                  "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "CCH advice for student cnv" in out.stdout
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
    with duckdb.connect(str(db), read_only=True) as con:
        trials = con.execute("select count(*), count(distinct teacher_modality), min(status), "
                             "bool_and(cohort = ?) "
                             "from results where study = 'tcga_noise'", [str(BRCA.resolve())]).fetchall()
        advice = con.execute("select count(*) from advice").fetchall()
    assert trials == [(4, 2, "ok", True)]  # top teacher + control, 2 seeds each, the cohort named by its path
    assert advice == [(2,)]
    assert (tmp_path / "r" / "verification.png").exists()


def test_verify_needs_a_database():
    out = run_cli("advise", str(BRCA), "--student", "cnv", "--verify", "1")
    assert out.returncode == 2 and "add --db PATH" in out.stderr
