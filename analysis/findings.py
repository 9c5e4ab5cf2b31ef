"""Each study's headline finding: what the paper reported, what this database measured, and whether
they agree -- the summary table of `cchsweep reproduce`.

The measured side is the KD gain per condition (mean and SE over seeds, one row per trial: the gain
does not depend on the MI estimator). A condition's sign is *determined* when its mean gain is
more than 2 SE from zero with 2 or more seeds (analysis.agreement's rule). Where the paper gives a
gain per condition (Tables 1, 5, 13, 20), the finding is how many determined conditions carry the
paper's sign: "yes" when all of them do and they are at least half of the conditions, "partly"
when all do but most conditions are undetermined or when most do, "no" otherwise, and "n/a" when
none is determined. The synthetic studies are judged on where the gain changes sign along sigma12
(Figure 1: the closed-form CCH crossing is 0.402, the exact small-lambda risk crossing 0.356).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from analysis.charts import paper_lookup, per_trial, seed_stats
from cchsweep.rules import undetermined_expr

SIGN_CHANGE = (0.3, 0.5)  # where Figure 1's gain should change sign along sigma12


@dataclass(frozen=True)
class Finding:
    study: str
    paper: str
    measured: str
    agree: str  # yes, partly, no, n/a


def gains(ok: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """keys, kd_gain (mean over seeds), kd_gain_se, n_seeds and `determined` per condition."""
    stats = seed_stats(per_trial(ok), keys, ["kd_gain"])
    undetermined = undetermined_expr("kd_gain", "kd_gain_se", "n_seeds")
    return stats.with_columns(determined=~undetermined)


def _verdict(k: int, n: int, n_all: int | None = None) -> str:
    """k of n determined conditions carry the paper's sign, of n_all conditions in all."""
    if n == 0:
        return "n/a"
    if k == n:
        return "yes" if n_all is None or 2 * n >= n_all else "partly"
    return "partly" if k > n / 2 else "no"


def _against_paper(study: str, ok: pl.DataFrame, keys: list[str], paper: dict, claim: str) -> Finding:
    table = gains(ok, keys)
    rows = [
        (r, paper_lookup(paper, tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]))
        for r in table.iter_rows(named=True)
    ]
    rows = [(r, p) for r, p in rows if p is not None]
    det = [(r, p) for r, p in rows if r["determined"]]
    k = sum((r["kd_gain"] > 0) == (p > 0) for r, p in det)
    cells = ", ".join(
        f"{'/'.join(f'{r[c]:g}' if isinstance(r[c], float) else str(r[c]) for c in keys)}: "
        f"{r['kd_gain']:+.3f}"
        + (f" ± {r['kd_gain_se']:.3f}" if r["kd_gain_se"] is not None else "")
        + ("" if r["determined"] else " (undetermined)")
        for r, _ in rows
    )
    measured = (
        f"{k}/{len(det)} determined conditions have the paper's sign ({len(rows) - len(det)} undetermined): {cells}"
    )
    return Finding(study, claim, measured, _verdict(k, len(det), len(rows)))


def _crossing(table: pl.DataFrame) -> tuple[str, bool | None]:
    """Where the determined gains change sign from - to + along sigma12: text, inside SIGN_CHANGE?"""
    det = table.filter(pl.col("determined")).sort("sigma12")
    if det.height < 2:
        return f"{det.height} determined sigma12 values: no crossing to judge", None
    signs = [(r["sigma12"], r["kd_gain"] > 0) for r in det.iter_rows(named=True)]
    changes = [(a[0], b[0]) for a, b in zip(signs, signs[1:]) if a[1] != b[1]]
    points = ", ".join(f"{r['sigma12']:g}: {r['kd_gain']:+.4f}" for r in table.sort("sigma12").iter_rows(named=True))
    if not changes:
        return f"no sign change among the determined gains ({points})", False
    lo, hi = changes[0]
    inside = len(changes) == 1 and not signs[0][1] and lo < SIGN_CHANGE[1] and hi > SIGN_CHANGE[0]
    return f"gain changes sign between sigma12 = {lo:g} and {hi:g} ({points})", inside


def _synthetic(study: str, ok: pl.DataFrame) -> Finding:
    claim = "KD's gain goes from negative to positive as sigma12 grows, changing sign in [0.3, 0.5]"
    lams = sorted(per_trial(ok)["lam"].unique().to_list())
    texts, calls = [], []
    for lam in lams:
        text, inside = _crossing(gains(ok.filter(pl.col("lam") == lam), ["sigma12"]))
        texts.append((f"lambda {lam:g}: " if len(lams) > 1 else "") + text)
        calls.append(inside)
    judged = [c for c in calls if c is not None]
    return Finding(study, claim, "; ".join(texts), _verdict(sum(judged), len(judged)))


def _mnist_blur(ok: pl.DataFrame, ref: dict) -> Finding:
    claim = (
        "KD helps with a sharp teacher and hurts with a blurred one (Table 1, T = 3: +0.032 at gamma 0, -0.462 at 3.5)"
    )
    paper = {k: v[0] for k, v in ref["acc_diff"].items()}
    return _against_paper("mnist_blur", ok, ["gamma", "temperature"], paper, claim)


def _mnist_alpha(ok: pl.DataFrame, ref: dict) -> Finding:
    claim = "at alpha 0.18, KD helps up to gamma 0.5 and hurts from 1.5 (Table 13: +0.015 at 0, -0.501 at 3.5)"
    paper = {g: row[7] for g, row in ref["table13"].items()}
    return _against_paper("mnist_alpha", ok, ["gamma"], paper, claim)


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


def _estimators(study: str, ok: pl.DataFrame) -> Finding:
    """Table 2's claim: estimators differ in value but agree on the ordering I(H_T;H_S) vs I(H_S;Y)."""
    claim = "absolute MI values differ by estimator; the sign of I(H_T;H_S) - I(H_S;Y) agrees across them"
    keys = ["teacher_modality", "student_modality"]
    rows = ok.filter(pl.col("mi_gap").is_not_null()).group_by([*keys, "mi_estimator"]).agg(pl.col("mi_gap").mean())
    parts, agree = [], []
    for (t, s), part in rows.group_by(keys, maintain_order=True):
        signs = {e: g for e, g in part.select("mi_estimator", "mi_gap").iter_rows()}
        agree.append(len({g > 0 for g in signs.values()}) == 1)
        parts.append(f"{t} -> {s}: " + ", ".join(f"{e} {g:+.3f}" for e, g in sorted(signs.items())))
    return Finding(study, claim, "; ".join(parts), _verdict(sum(agree), len(agree)))


def finding(study: str, ok: pl.DataFrame, reference: dict) -> Finding:
    """The study's finding from its completed rows (`ok`) and its registry reference."""
    if ok.is_empty():
        return Finding(study, "", "no completed trials", "n/a")
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
    if study in ("tcga_estimators", "mi_estimators"):
        return _estimators(study, ok)
    if study == "mi_calibration":
        return Finding(study, "none (the reviewers asked for it)", "see the calibration section", "n/a")
    return Finding(study, "no paper finding", f"{per_trial(ok).height} trials", "n/a")


def findings_frame(db_path: str | Path, studies: list[str]) -> pl.DataFrame:
    """One row per study: study, paper, measured, agree (Finding's fields)."""
    from analysis.frame import load_results
    from searchspaces import STUDIES

    rows = []
    for study in studies:
        frame = load_results(db_path, study)
        ok = frame.filter(pl.col("status") == "ok") if not frame.is_empty() else frame
        reference = dict(STUDIES[study].reference) if study in STUDIES else {}
        rows.append(asdict(finding(study, ok, reference)))
    return pl.DataFrame(rows, schema=["study", "paper", "measured", "agree"])


def finding_table(db_path: str | Path, studies: list[str]) -> str:
    """The findings as text: a line per study."""
    lines = ["paper vs measured:"]
    for r in findings_frame(db_path, studies).iter_rows(named=True):
        lines.append(f"  {r['study']}: {r['agree']}. paper: {r['paper']}. measured: {r['measured']}")
    return "\n".join(lines)
