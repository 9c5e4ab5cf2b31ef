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


def test_advise_needs_two_modalities(tmp_path):
    (tmp_path / "only.csv").write_text("patient,a,b\np1,1,2\np2,3,4\n")
    (tmp_path / "labels.csv").write_text("patient,subtype\np1,x\np2,y\n")
    out = run_cli("advise", str(tmp_path), "--student", "only")
    assert out.returncode == 2 and "Traceback" not in out.stderr
