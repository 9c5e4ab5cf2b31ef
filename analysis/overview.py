"""`cchsweep report --all`: one offline index over a whole database.

out/index.html holds the scorecard (analysis.scorecard: per estimator, how well sign(gap) predicted
sign(KD gain) over every study with KD trials, and per study), the calibration summary
(analysis.calibration) and a link to each study's page, which is written beside it
(analysis.report.write_report). Every page loads one shared copy of the Vega libraries,
out/vega-bundle.js, so the folder works offline without repeating ~1 MB per page.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from analysis.agreement import verdict_line
from analysis.frame import load_results, read_sql
from analysis.page import Page, esc, vega_bundle
from analysis.report import CALIBRATION, write_report
from analysis.scorecard import by_study, scorecard, scorecard_lines
from cchsweep.errors import UsageError

BUNDLE = "vega-bundle.js"


def stored_studies(db_path: str | Path) -> list[str]:
    return read_sql(db_path, "SELECT DISTINCT study FROM trials WHERE status = 'ok' ORDER BY study")["study"].to_list()


def write_all(db_path: str | Path, out_dir: str | Path) -> Path:
    """Write every stored study's page and the index under out_dir; return the index's path."""
    studies = stored_studies(db_path)
    if not studies:
        raise UsageError(f"no completed trials in {db_path}; run a study first (`cchsweep run STUDY`)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / BUNDLE).write_text(vega_bundle(), encoding="utf-8")
    pages = {study: write_report(db_path, study, out, shared_bundle=f"../{BUNDLE}") for study in studies}
    page = Page(out)
    page.text(
        f"<h1>cchsweep: every study in {esc(str(db_path))}</h1><p>The Cross-modal Complementarity Hypothesis: KD "
        "from a teacher helps a student when I(H_T;H_S) &gt; I(H_S;Y). Below, how often the sign of the "
        "estimated gap I(H_T;H_S) - I(H_S;Y) predicted the sign of the measured KD gain, per MI estimator, "
        "and how far each estimator reads from known MI.</p>"
    )
    from analysis.findings import findings_frame

    page.table(
        "findings",
        "Paper vs measured: each study's headline finding (analysis/findings.py states the rules)",
        findings_frame(db_path, studies),
    )
    card = scorecard(db_path)
    page.text("<h2>Scorecard: predicted vs realised</h2>")
    if card.is_empty():
        page.text("<p>No study with KD trials and MI estimates is stored yet.</p>")
    else:
        page.text("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in scorecard_lines(card)) + "</ul>")
        page.table("scorecard", "Per estimator over every study (cch_scorecard view)", card)
        page.table("scorecard_by_study", "Per estimator and study (cch_agreement, estimated gaps)", by_study(db_path))
    if CALIBRATION in studies:
        from analysis.calibration import load_calibration, summary, summary_lines

        cal = load_calibration(db_path)
        page.text(
            "<h2>Calibration on known MI</h2><ul>"
            + "".join(f"<li>{esc(line)}</li>" for line in summary_lines(cal))
            + f"</ul><p>Details: <a href='{CALIBRATION}/index.html'>{CALIBRATION}</a>.</p>"
        )
        page.table("calibration_summary", "Per estimator: relative bias over every calibrated shape", summary(cal))
    page.text("<h2>Studies</h2><ul>")
    for study, path in pages.items():
        line = "" if study == CALIBRATION else esc(verdict_line(_ok(db_path, study)))
        page.text(f"<li><a href='{esc(path.relative_to(out).as_posix())}'>{esc(study)}</a> {line}</li>")
    page.text("</ul>")
    return page.write("all studies", BUNDLE)


def _ok(db_path: str | Path, study: str) -> pl.DataFrame:
    frame = load_results(db_path, study)
    return frame.filter(pl.col("status") == "ok")
