"""`cchsweep reproduce`: studies in turn into one database, one report index; resumable; checked first."""

import re

import polars as pl

from conftest import EMBED, QUICK, decode_spec, q, run_cli


def _pages_decode(index):
    """Every page the index links exists, and each of its charts is a Vega-Lite spec that parses."""
    text = index.read_text()
    links = re.findall(r"href='([^']+/index\.html)'", text)
    for page in [index, *(index.parent / link for link in links)]:
        html = page.read_text()
        specs = EMBED.findall(html)
        assert html.count("vegaEmbed(") == len(specs), page
        for div, spec in specs:
            decoded = decode_spec(spec)
            assert "/schema/vega-lite/" in decoded["$schema"], (page, div)  # a Vega-Lite spec (nothing fetched)
            assert f"id='{div}'" in html
        assert "src='../vega-bundle.js'" in html or page == index
    return links


def test_reproduce_runs_each_study_and_writes_one_index(tmp_path):
    db, out = tmp_path / "r.duckdb", tmp_path / "reports"
    args = ("reproduce", "--profile", "smoke", "--studies", "synthetic_sigma12,mi_calibration", "--db", str(db),
            "--out", str(out))
    dry = run_cli(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "plan: synthetic_sigma12 (smoke)" in dry.stdout and "plan: mi_calibration (smoke)" in dry.stdout
    assert dry.stdout.splitlines()[-1].startswith("reproduce (smoke): 2 studies, ~")
    assert not db.exists()
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "synthetic_sigma12 (smoke): 4 ok" in first.stdout and "mi_calibration (smoke): 4 ok" in first.stdout
    assert "paper vs measured:" in first.stdout and "  synthetic_sigma12: " in first.stdout
    assert q(db, "SELECT study, count(*) FROM trials GROUP BY study ORDER BY study") == [
        ("mi_calibration", 4), ("synthetic_sigma12", 4)]
    links = _pages_decode(out / "index.html")
    assert sorted(set(links)) == ["mi_calibration/index.html", "synthetic_sigma12/index.html"]
    findings = pl.read_csv(out / "findings.csv")
    assert findings["study"].to_list() == ["mi_calibration", "synthetic_sigma12"]
    assert set(findings["agree"]) <= {"yes", "partly", "no", "n/a"}
    again = run_cli(*args)  # resumes: everything is stored
    assert again.returncode == 0, again.stderr
    assert "synthetic_sigma12 (smoke): 0 ok, 0 failed, 4 already stored" in again.stdout
    assert q(db, "SELECT count(*) FROM trials") == [(8,)]


def test_reproduce_checks_every_study_before_running_any(tmp_path):
    db = tmp_path / "r.duckdb"
    out = run_cli("reproduce", "--profile", "smoke", "--studies", "synthetic_sigma12,nope", "--db", str(db))
    assert out.returncode == 2 and out.stderr.strip() == (
        "cchsweep: error: unknown study 'nope'; `cchsweep list` shows: " + out.stderr.split("shows: ")[1].strip())
    out = run_cli("reproduce", "--profile", "paper_kipan", "--studies", "tcga_noise,synthetic_sigma12",
                  "--db", str(db))
    assert out.returncode == 2
    assert "study synthetic_sigma12 has no profile 'paper_kipan'; leave it out with --studies" in out.stderr
    assert not db.exists()


def test_findings_against_the_papers_signs(tmp_path):
    """A real smoke mnist_blur run with 2 seeds: each condition's gain sign set against Table 1's."""
    from analysis.findings import findings_frame

    db = tmp_path / "m.duckdb"
    out = run_cli("run", "mnist_blur", "--profile", "smoke", "--db", str(db), "--seeds", "2", *QUICK)
    assert out.returncode == 0, out.stderr
    row = findings_frame(db, ["mnist_blur"]).row(0, named=True)
    assert row["paper"].startswith("KD helps with a sharp teacher")
    gains = q(db, "SELECT gamma, temperature, avg(kd_gain) FROM results GROUP BY ALL ORDER BY ALL")
    for gamma, t, gain in gains:
        assert f"{gamma:g}/{t:g}: {gain:+.3f}" in row["measured"]
    assert row["agree"] in ("yes", "partly", "no", "n/a")


def test_findings_verdict_rule():
    from analysis.findings import _verdict

    assert _verdict(2, 2, 2) == "yes" and _verdict(2, 2, 4) == "yes"  # every determined sign, half determined
    assert _verdict(2, 2, 5) == "partly"  # tcga_noise at quick scale: right where determined, most undetermined
    assert _verdict(3, 4, 4) == "partly" and _verdict(1, 2, 2) == "no" and _verdict(0, 0, 3) == "n/a"
