"""Each study's headline finding: what the paper reported, what this database measured, and whether
they agree -- the summary table of `cchsweep reproduce`.

The measured side is the KD gain per condition (mean and SE over seeds, one row per trial: the gain
does not depend on the MI estimator). A condition is what analysis.agreement groups by: study,
profile, settings and every axis but the seed (analysis.frame.condition_columns), over the grid's
trials only (a boundary search's are one seed each at sampled values). The text names a condition
by the paper's axes, adding the profile (and the settings that differ) where the rows hold several
and any other axis that varies. `cchsweep reproduce` judges the profile it ran (findings_frame's
`profile`); `report --all` judges every stored one.

A condition's sign is *determined* when the 95% t interval of its mean gain excludes zero, with 2
or more seeds (cchsweep.rules, analysis.agreement's rule). Where the paper gives a gain per condition (Tables 1, 5, 13,
20), the finding is how many determined conditions carry the paper's sign; where the paper gives the
gain's SE too (Tables 1 and 13, five runs), a condition whose paper interval includes zero by the same
rule is left out, as the paper did not decide its sign: "yes" when all of them
do and they are at least half of the conditions, "partly" when all do but most conditions are
undetermined or when most do, "no" otherwise, and "n/a" when none is determined. The synthetic
studies are judged on where the gain changes sign along sigma12, per lambda and setup (Figure 1:
the closed-form CCH crossing is 0.402, the exact small-lambda risk crossing 0.356).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from analysis.charts import grid_trials, paper_lookup, per_trial, seed_stats
from analysis.frame import SETUP, condition_columns, load_results, setup_names
from cchsweep.rules import undetermined, undetermined_expr

SIGN_CHANGE = (0.3, 0.5)  # where Figure 1's gain should change sign along sigma12
PAPER_RUNS = 5  # the runs behind the paper's SEs (Table 1: "estimated from five independent runs"; Table 13 alike)
AXIS_WORDS = {"lam": "lambda"}  # how the text names an axis (the others by their column name)


@dataclass(frozen=True)
class Finding:
    study: str
    paper: str
    measured: str
    agree: str  # yes, partly, no, n/a


def gains(ok: pl.DataFrame) -> pl.DataFrame:
    """Per condition (its columns, as analysis.agreement groups), kd_gain (mean over seeds), kd_gain_se,
    n_seeds and `determined`, from the grid's trials. A hand-picked key such as (gamma, T) would pool the
    trials of other profiles and settings, and seed_stats would average a smoke and a quick seed 0 as one."""
    trials = per_trial(grid_trials(ok))
    stats = seed_stats(trials, condition_columns(trials), ["kd_gain"], counts=True)
    undetermined = undetermined_expr("kd_gain", "kd_gain_se", "kd_gain_n")
    return stats.with_columns(n_seeds=pl.col("kd_gain_n"), determined=~undetermined).drop("kd_gain_n")


def _axes(table: pl.DataFrame) -> list[str]:
    """The condition's axes in `table` (its columns but study, profile and settings)."""
    return [c for c in condition_columns(table) if c not in ("study", *SETUP)]


def _varying(table: pl.DataFrame, axes: list[str]) -> list[str]:
    """Those of `axes` with several values in one profile and settings: the text must name them, as the
    setup's name tells setups apart."""
    if table.is_empty() or not axes:
        return []
    counts = table.group_by(SETUP).agg(pl.col(a).n_unique() for a in axes)
    return [a for a in axes if (counts[a] > 1).any()]


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _prefix(r: dict, setups: dict[tuple, str], axes: list[str]) -> str:
    """The setup's name and the named axes of row r, as words before the condition's own label."""
    words = [setups.get((r["profile"], r["settings"]), ""), *(f"{AXIS_WORDS.get(a, a)} {_value(r[a])}" for a in axes)]
    return " ".join(w for w in words if w)


def _verdict(k: int, n: int, n_all: int | None = None) -> str:
    """k of n determined conditions carry the paper's sign, of n_all conditions in all."""
    if n == 0:
        return "n/a"
    if k == n:
        return "yes" if n_all is None or 2 * n >= n_all else "partly"
    return "partly" if k > n / 2 else "no"


def _against_paper(
    study: str, ok: pl.DataFrame, keys: list[str], paper: dict, claim: str, paper_se: dict | None = None
) -> Finding:
    """Each condition's gain sign against the paper's number at its `keys` (the paper's axes). Where the
    paper gives the gain's SE (`paper_se`, over PAPER_RUNS runs), a condition whose paper interval
    includes zero by the same rule is not compared: the paper did not decide its sign either."""
    table = gains(ok)
    setups, named = setup_names(table), [a for a in _varying(table, _axes(table)) if a not in keys]
    rows = []
    for r in table.iter_rows(named=True):
        key = tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]
        p = paper_lookup(paper, key)
        if p is not None:
            rows.append((r, p, paper_lookup(paper_se, key) if paper_se else None))
    if not rows:  # e.g. advise --verify's trials: a user's cohort, not the paper's
        return Finding(study, claim, f"no measured condition is one the paper reports ({table.height} measured)", "n/a")

    def paper_open(p: float, se: float | None) -> bool:  # the paper's SE given, and its sign undecided
        return se is not None and undetermined(p, se, PAPER_RUNS)

    compared = [(r, p) for r, p, se in rows if not paper_open(p, se)]
    det = [(r, p) for r, p in compared if r["determined"]]
    k = sum((r["kd_gain"] > 0) == (p > 0) for r, p in det)

    def note(r: dict, p: float, se: float | None) -> str:
        if paper_open(p, se):
            return f" (not compared: the paper's {p:+.3f} ± {se:.3f} is within its interval)"
        return "" if r["determined"] else " (undetermined)"

    cells = ", ".join(
        " ".join(w for w in (_prefix(r, setups, named), "/".join(_value(r[c]) for c in keys)) if w)
        + f": {r['kd_gain']:+.3f}"
        + (f" ± {r['kd_gain_se']:.3f}" if r["kd_gain_se"] is not None else "")
        + note(r, p, se)
        for r, p, se in rows
    )
    skipped = len(rows) - len(compared)
    measured = (
        f"{k}/{len(det)} determined conditions have the paper's sign ({len(compared) - len(det)} undetermined"
        + (f"; {skipped} not compared, the paper's sign undetermined" if skipped else "")
        + f"): {cells}"
    )
    return Finding(study, claim, measured, _verdict(k, len(det), len(compared)))


def _crossing(table: pl.DataFrame) -> tuple[str, str | None]:
    """Where the determined gains change sign from - to + along sigma12, against SIGN_CHANGE: text, and
    "inside" (the bracket of determined gains lies in the window), "overlaps" (it reaches into the window
    but is wider or straddles an end of it, so the crossing may be outside), "outside" (no sign change,
    several, the wrong way, or a bracket clear of the window) or None (under 2 determined gains)."""
    det = table.filter(pl.col("determined")).sort("sigma12")
    if det.height < 2:
        return f"{det.height} determined sigma12 values: no crossing to judge", None
    signs = [(r["sigma12"], r["kd_gain"] > 0) for r in det.iter_rows(named=True)]
    changes = [(a[0], b[0]) for a, b in zip(signs, signs[1:]) if a[1] != b[1]]
    points = ", ".join(f"{r['sigma12']:g}: {r['kd_gain']:+.4f}" for r in table.sort("sigma12").iter_rows(named=True))
    if not changes:
        return f"no sign change among the determined gains ({points})", "outside"
    lo, hi = changes[0]
    text = f"gain changes sign between sigma12 = {lo:g} and {hi:g} ({points})"
    eps = 1e-9
    if len(changes) > 1 or signs[0][1] or hi <= SIGN_CHANGE[0] + eps or lo >= SIGN_CHANGE[1] - eps:
        return text, "outside"
    if lo >= SIGN_CHANGE[0] - eps and hi <= SIGN_CHANGE[1] + eps:
        return text, "inside"
    window = f"[{SIGN_CHANGE[0]:g}, {SIGN_CHANGE[1]:g}]"
    return f"{text}: the determined gains place it no closer, and that is not inside {window}", "overlaps"


CLAIMS = {
    "synthetic_sigma12": "KD's gain goes from negative to positive as sigma12 grows, changing sign in [0.3, 0.5]",
    "synthetic_lambda": (
        "Figure 4: at each lambda, as in Figure 1, KD's gain goes from negative to positive as sigma12 grows "
        "(the paper adds that a large lambda can over-regularise toward the teacher; judged here as Figure 1's "
        "sign change in [0.3, 0.5], the closed-form crossing's window, per lambda)"
    ),
}


def _synthetic(study: str, ok: pl.DataFrame) -> Finding:
    """Where the gain changes sign along sigma12, judged per series: each setup and value of the other axes
    (lambda in synthetic_lambda), named in the text where the rows hold several. "yes" only when every
    judged series crosses inside the window; "partly" when more than half cross inside it or in a
    bracket that reaches into it; else "no"."""
    table = gains(ok)
    others = [a for a in _axes(table) if a != "sigma12"]
    setups, named = setup_names(table), _varying(table, others)
    texts, calls = [], []
    for part in table.sort([*SETUP, *others], nulls_last=True).partition_by([*SETUP, *others], maintain_order=True):
        text, call = _crossing(part)
        prefix = _prefix(part.row(0, named=True), setups, named)
        texts.append((f"{prefix}: " if prefix else "") + text)
        calls.append(call)
    judged = [c for c in calls if c is not None]
    consistent = sum(c != "outside" for c in judged)  # inside, or a bracket that reaches into the window
    verdict = (
        "n/a"
        if not judged
        else "yes"
        if all(c == "inside" for c in judged)
        else "partly"
        if consistent > len(judged) / 2
        else "no"
    )
    return Finding(study, CLAIMS.get(study, CLAIMS["synthetic_sigma12"]), "; ".join(texts), verdict)


def _mnist_blur(ok: pl.DataFrame, ref: dict) -> Finding:
    claim = (
        "KD helps with a sharp teacher and hurts with a blurred one (Table 1, T = 3: +0.032 at gamma 0, -0.462 at 3.5)"
    )
    paper, se = ({k: v[i] for k, v in ref["acc_diff"].items()} for i in (0, 1))
    return _against_paper("mnist_blur", ok, ["gamma", "temperature"], paper, claim, se)


def _mnist_alpha(ok: pl.DataFrame, ref: dict) -> Finding:
    claim = "at alpha 0.18, KD helps up to gamma 0.5 and hurts from 1.5 (Table 13: +0.015 at 0, -0.501 at 3.5)"
    paper, se = ({g: row[i] for g, row in ref["table13"].items()} for i in (7, 8))
    return _against_paper("mnist_alpha", ok, ["gamma"], paper, claim, se)


def _tcga_noise(ok: pl.DataFrame, ref: dict) -> Finding:
    claim = "mRNA -> CNV (BRCA, Table 5): KD helps up to 40% teacher noise (+0.048 at 0%) and hurts from 60%"
    paper = {(c, t, s, noise): row[5] for (c, t, s), table in ref["tables"].items() for noise, row in table.items()}
    keys = ["cohort", "teacher_modality", "student_modality", "noise"]
    return _against_paper("tcga_noise", ok, keys, paper, claim)


def _tcga_fusion(ok: pl.DataFrame, ref: dict) -> Finding:
    metric = per_trial(ok)["gain_metric"].drop_nulls()
    m = str(metric[0]) if len(metric) else "f1_weighted"
    cols = list(ref["columns"])
    paper = {key: row[cols.index(f"kd_{m}")] - row[cols.index(f"nokd_{m}")] for key, row in ref["rows"].items()}
    claim = "Fusion+KD beats direct fusion when I(H_T;H_S) > I(H_S;Y) (Tables 8, 20: BRCA mRNA +0.066, RPPA +0.039)"
    return _against_paper("tcga_fusion", ok, ["cohort", "teacher_modality", "student_modality"], paper, claim)


def _f1_gain(row: dict) -> float:
    """KD minus no-KD weighted F1 of a paper row of (mean, std) cells: what MOSEI's kd_gain measures."""
    return row["kd_f1_weighted"][0] - row["nokd_f1_weighted"][0]


def _mosei_teacher(ok: pl.DataFrame, ref: dict) -> Finding:
    claim = "the text teacher's KD helps both students (Table 3, weighted F1: +0.011 vision, +0.023 audio)"
    paper = {pair: _f1_gain(row) for pair, row in ref["table3"].items()}
    return _against_paper("mosei_teacher", ok, ["teacher_modality", "student_modality"], paper, claim)


def _mosei_noise(ok: pl.DataFrame, ref: dict) -> Finding:
    claim = (
        "text -> vision: KD helps with a clean teacher (+0.011 at 0%) and hurts from 20% noise on, where "
        "I(H_T;H_S) falls below I(H_S;Y) (Table 4: -0.001 to -0.005)"
    )
    paper = {noise: _f1_gain(row) for noise, row in ref["table4"].items()}
    return _against_paper("mosei_noise", ok, ["noise"], paper, claim)


def _estimators(study: str, ok: pl.DataFrame) -> Finding:
    """Table 2's claim: estimators differ in value but agree on the ordering I(H_T;H_S) vs I(H_S;Y)."""
    claim = "absolute MI values differ by estimator; the sign of I(H_T;H_S) - I(H_S;Y) agrees across them"
    # every grid axis but the seed: a --set with two cohorts (or noise levels) must not be pooled
    axes = [c for c in ("cohort", "teacher_modality", "student_modality", "noise", "temperature", "lam") if c in ok]
    keys = [*SETUP, *axes]
    # a NaN gap (an estimator that failed on a seed) is no sign: it once averaged in and read as negative
    rows = (
        ok.filter(pl.col("mi_gap").is_finite())
        .group_by([*keys, "mi_estimator"], maintain_order=True)
        .agg(pl.col("mi_gap").mean())
    )
    rows = rows.sort(keys)
    setups = setup_names(rows)
    varying = [a for a in axes if a not in ("teacher_modality", "student_modality") and rows[a].n_unique() > 1]
    parts, agree = [], []
    for key, part in rows.group_by(keys, maintain_order=True):
        point = dict(zip(keys, key))
        signs = {e: g for e, g in part.select("mi_estimator", "mi_gap").iter_rows()}
        agree.append(len({g > 0 for g in signs.values()}) == 1)
        name = setups.get((point["profile"], point["settings"]), "")
        where = "".join(f" {a}={point[a]}" for a in varying)
        parts.append(
            f"{name + ' ' if name else ''}{point['teacher_modality']} -> {point['student_modality']}{where}: "
            + ", ".join(f"{e} {g:+.3f}" for e, g in sorted(signs.items()))
        )
    return Finding(study, claim, "; ".join(parts), _verdict(sum(agree), len(agree)))


def finding(study: str, ok: pl.DataFrame, reference: dict) -> Finding:
    """The study's finding from its completed rows (`ok`) and its registry reference: the grid's trials
    only (a boundary search's sample one axis, one seed each, and are no part of the design)."""
    if ok.is_empty():
        return Finding(study, "", "no completed trials", "n/a")
    ok = grid_trials(ok)
    if ok.is_empty():
        return Finding(study, "", "no completed grid trials (only a boundary search's)", "n/a")
    if study in ("synthetic_sigma12", "synthetic_lambda"):
        return _synthetic(study, ok)
    if study == "mnist_blur":
        return _mnist_blur(ok, reference)
    if study == "mnist_alpha":
        return _mnist_alpha(ok, reference)
    if study == "tcga_noise":
        return _tcga_noise(ok, reference)
    if study == "tcga_fusion":
        return _tcga_fusion(ok, reference)
    if study == "mosei_teacher":
        return _mosei_teacher(ok, reference)
    if study == "mosei_noise":
        return _mosei_noise(ok, reference)
    if study in ("tcga_estimators", "mi_estimators"):
        return _estimators(study, ok)
    if study == "mi_calibration":
        return Finding(study, "none (the reviewers asked for it)", "see the calibration section", "n/a")
    return Finding(study, "no paper finding", f"{per_trial(ok).height} trials", "n/a")


def findings_frame(db_path: str | Path, studies: list[str], profile: str | None = None) -> pl.DataFrame:
    """One row per study: study, paper, measured, agree (Finding's fields); of `profile`'s rows where given
    (what `reproduce --profile` ran: a smoke run in the same database is not its finding)."""
    from searchspaces import STUDIES

    rows = []
    for study in studies:
        frame = load_results(db_path, study)
        ok = frame.filter(pl.col("status") == "ok") if not frame.is_empty() else frame
        if profile is not None and not ok.is_empty():
            ok = ok.filter(pl.col("profile") == profile)
        reference = dict(STUDIES[study].reference) if study in STUDIES else {}
        rows.append(asdict(finding(study, ok, reference)))
    return pl.DataFrame(rows, schema=["study", "paper", "measured", "agree"])


def finding_table(db_path: str | Path, studies: list[str], profile: str | None = None) -> str:
    """The findings as text: a line per study (of `profile`'s rows where given)."""
    lines = ["paper vs measured:"]
    for r in findings_frame(db_path, studies, profile).iter_rows(named=True):
        lines.append(f"  {r['study']}: {r['agree']}. paper: {r['paper']}. measured: {r['measured']}")
    return "\n".join(lines)
