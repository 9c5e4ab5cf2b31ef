"""The paper's central test: does sign(I(H_T;H_S) - I(H_S;Y)) agree with sign(KD gain)?

A *condition* is a study's parameters without the seed (analysis.frame.condition_columns), and
also the MI estimator, so estimators are never pooled. Per condition the seeds are averaged, and
BOTH sides of the test carry their uncertainty (cchsweep.rules: a mean decides a sign only when its
95% t interval, mean -+ t(0.975, n_seeds - 1) * SE, excludes zero, on at least 2 seeds):

- n_seeds            number of completed grid trials (status 'ok', finite gap and kd_gain; a boundary
                     search's trials, mode 'boundary:...', are one seed each at values of its own
                     choosing, so they enter no condition);
- gain_se, gap_se    std(ddof=1) / sqrt(n_seeds) over the seeds (null for a single seed);
- gain_undetermined  n_seeds < 2 or |gain_mean| <= t * gain_se: KD's effect is not resolved;
- gap_undetermined   n_seeds < 2 or |gap_mean| <= t * gap_se: the predictor makes no call
                     (a closed-form gap is the same for every seed: se 0, so only an exact zero);
- undetermined       either of the two; such a condition is left out of the test;
- agrees             sign(gap_mean) == sign(gain_mean) where both are determined, null otherwise.

A mean of exactly 0 is always undetermined (|0| <= t * se holds for any se >= 0), on either side.

Where several MI estimators judged a condition, a `(consensus)` row joins them: its gap is
determined only when every estimator whose gap is determined has the same sign (and at least one
has); then gap_mean is those estimators' mean gap, else (no call, or "estimators disagree") the
mean over all of them and gap_se null. Its gain is over every trial of the condition that some
estimator's gap holds, once each (an estimator's own row counts only the trials its gap holds, so a
NaN gap can leave estimators with different seeds; the consensus takes none of their gains).

`agreement` summarises conditions per study plus one study = '(all)' row (per gap source and
MI estimator): counts (n_undetermined = conditions left out; n_gain_undetermined and
n_gap_undetermined count each side's unresolved conditions and may overlap), the agreement rate
over the conditions determined on both sides with a Wilson 95% interval, the exact two-sided
binomial p-value of that count against 0.5 (H0: the gap's sign says nothing about the gain's),
precision/recall of "gap > 0" for "gain > 0" over those conditions, and Spearman's rho between
gap_mean and gain_mean over all conditions (determined or not).
cchsweep/views.py computes the same numbers in SQL (views cch_conditions, cch_agreement).
"""

from __future__ import annotations

import math
import warnings

import polars as pl
from scipy import stats

from analysis.frame import condition_columns
from cchsweep.rules import undetermined_expr

ALL = "(all)"
CONSENSUS = "(consensus)"
Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)
GAP_SOURCES = {"mi_gap": "estimated", "mi_gap_truth": "closed_form"}

CONDITION_STATS = (
    "n_seeds",
    "gain_mean",
    "gain_se",
    "gap_mean",
    "gap_se",
    "gain_undetermined",
    "gap_undetermined",
    "undetermined",
    "agrees",
)
AGREEMENT_COLUMNS = (
    "gap_source",
    "mi_estimator",
    "study",
    "n_conditions",
    "n_determined",
    "n_undetermined",
    "n_gain_undetermined",
    "n_gap_undetermined",
    "n_agree",
    "rate",
    "wilson_lo",
    "wilson_hi",
    "p_value",
    "precision",
    "recall",
    "spearman_rho",
)
AGREEMENT_SCHEMA = {
    "gap_source": pl.String,
    "mi_estimator": pl.String,
    "study": pl.String,
    "n_conditions": pl.Int64,
    "n_determined": pl.Int64,
    "n_undetermined": pl.Int64,
    "n_gain_undetermined": pl.Int64,
    "n_gap_undetermined": pl.Int64,
    "n_agree": pl.Int64,
    "rate": pl.Float64,
    "wilson_lo": pl.Float64,
    "wilson_hi": pl.Float64,
    "p_value": pl.Float64,
    "precision": pl.Float64,
    "recall": pl.Float64,
    "spearman_rho": pl.Float64,
}


def gap_source(gap: str) -> str:
    return GAP_SOURCES.get(gap, gap)


def condition_keys(frame: pl.DataFrame) -> list[str]:
    """The grouping columns of a condition: condition_columns plus mi_estimator when present."""
    keys = condition_columns(frame)
    if "mi_estimator" in frame.columns:
        keys.append("mi_estimator")
    return keys


def _finite(name: str) -> pl.Expr:
    return pl.col(name).is_not_null() & pl.col(name).cast(pl.Float64).is_finite()


def conditions(frame: pl.DataFrame, gap: str = "mi_gap") -> pl.DataFrame:
    """One row per condition: gap_source, the condition keys, then CONDITION_STATS (see module doc)."""
    if gap not in frame.columns or "kd_gain" not in frame.columns:
        return pl.DataFrame(schema={"gap_source": pl.String})
    grid = pl.col("mode") == "grid" if "mode" in frame.columns else pl.lit(True)
    ok = frame.filter((pl.col("status") == "ok") & grid & _finite(gap) & _finite("kd_gain"))
    keys = condition_keys(frame)
    n = pl.len()
    table = ok.group_by(keys, maintain_order=True).agg(
        n.cast(pl.Int64).alias("n_seeds"),
        pl.col("kd_gain").mean().alias("gain_mean"),
        (pl.col("kd_gain").std(ddof=1) / n.cast(pl.Float64).sqrt()).alias("gain_se"),
        pl.col(gap).mean().alias("gap_mean"),
        (pl.col(gap).std(ddof=1) / n.cast(pl.Float64).sqrt()).alias("gap_se"),
    )
    table = table.with_columns(
        undetermined_expr("gain_mean", "gain_se", "n_seeds").alias("gain_undetermined"),
        undetermined_expr("gap_mean", "gap_se", "n_seeds").alias("gap_undetermined"),
    ).with_columns((pl.col("gain_undetermined") | pl.col("gap_undetermined")).alias("undetermined"))
    table = _with_consensus(table, keys, ok)
    table = table.with_columns(
        pl.when(pl.col("undetermined"))
        .then(None)
        .otherwise(pl.col("gap_mean").sign() == pl.col("gain_mean").sign())
        .alias("agrees"),
        pl.lit(gap_source(gap)).alias("gap_source"),
    )
    return table.select("gap_source", *keys, *CONDITION_STATS).sort(keys, nulls_last=True)


def _with_consensus(table: pl.DataFrame, keys: list[str], ok: pl.DataFrame) -> pl.DataFrame:
    """The per-estimator conditions plus a CONSENSUS row per condition with several estimators; `ok`
    holds the usable rows (one per trial and estimator) its gain is taken from."""
    if "mi_estimator" not in keys or table["mi_estimator"].n_unique() < 2:
        return table
    base = [k for k in keys if k != "mi_estimator"]
    trial = "trial_key" if "trial_key" in ok.columns else "seed"
    n = pl.len()
    gains = (
        ok.unique([*base, trial], maintain_order=True)
        .group_by(base, maintain_order=True)
        .agg(
            n.cast(pl.Int64).alias("n_seeds"),
            pl.col("kd_gain").mean().alias("gain_mean"),
            (pl.col("kd_gain").std(ddof=1) / n.cast(pl.Float64).sqrt()).alias("gain_se"),
        )
    )
    det = ~pl.col("gap_undetermined")
    pos, neg = (det & (pl.col("gap_mean") > 0)).sum(), (det & (pl.col("gap_mean") < 0)).sum()
    joined = (
        table.group_by(base, maintain_order=True)
        .agg(
            pl.col("mi_estimator").n_unique().alias("n_estimators"),
            pos.alias("pos"),
            neg.alias("neg"),
            pl.col("gap_mean").mean().alias("all_mean"),
            pl.col("gap_mean").filter(det).mean().alias("det_mean"),
        )
        .filter(pl.col("n_estimators") > 1)
        .join(gains, on=base, how="left", nulls_equal=True)
    )
    one_sign = (pl.col("pos") > 0) != (pl.col("neg") > 0)
    consensus = joined.with_columns(
        pl.lit(CONSENSUS).alias("mi_estimator"),
        pl.when(one_sign).then(pl.col("det_mean")).otherwise(pl.col("all_mean")).alias("gap_mean"),
        pl.lit(None, dtype=pl.Float64).alias("gap_se"),
        undetermined_expr("gain_mean", "gain_se", "n_seeds").alias("gain_undetermined"),
        (~one_sign).alias("gap_undetermined"),
    ).with_columns((pl.col("gain_undetermined") | pl.col("gap_undetermined")).alias("undetermined"))
    return pl.concat([table, consensus.select(table.columns)], how="vertical_relaxed")


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval for k successes in n trials (None, None when n == 0)."""
    if n == 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _spearman(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(stats.spearmanr(x, y).statistic)
    return None if math.isnan(rho) else rho


def _summarise(cond: pl.DataFrame) -> dict:
    det = cond.filter(~pl.col("undetermined"))
    n_det, n_agree = det.height, int(det["agrees"].sum()) if det.height else 0
    lo, hi = wilson(n_agree, n_det)
    gap_pos, gain_pos = det["gap_mean"] > 0, det["gain_mean"] > 0
    tp, pred_pos, actual_pos = int((gap_pos & gain_pos).sum()), int(gap_pos.sum()), int(gain_pos.sum())
    return {
        "n_conditions": cond.height,
        "n_determined": n_det,
        "n_undetermined": cond.height - n_det,
        "n_gain_undetermined": int(cond["gain_undetermined"].sum()),
        "n_gap_undetermined": int(cond["gap_undetermined"].sum()),
        "n_agree": n_agree,
        "rate": n_agree / n_det if n_det else None,
        "wilson_lo": lo,
        "wilson_hi": hi,
        "p_value": float(stats.binomtest(n_agree, n_det, 0.5).pvalue) if n_det else None,
        "precision": tp / pred_pos if pred_pos else None,
        "recall": tp / actual_pos if actual_pos else None,
        "spearman_rho": _spearman(cond["gap_mean"].to_list(), cond["gain_mean"].to_list()),
    }


def agreement(frame: pl.DataFrame, gap: str = "mi_gap", by_study: bool = True) -> pl.DataFrame:
    """Per (MI estimator, study) plus a study = '(all)' row per estimator; columns AGREEMENT_COLUMNS.

    mi_estimator is null when the frame has no such column. Rows are sorted by estimator (the
    '(consensus)' rows after the estimators), then study with '(all)' last. An empty frame (no completed
    trials with the gap) gives zero rows.
    """
    cond = conditions(frame, gap)
    if "study" not in cond.columns or cond.is_empty():
        return pl.DataFrame(schema=AGREEMENT_SCHEMA)
    if "mi_estimator" not in cond.columns:
        cond = cond.with_columns(pl.lit(None, dtype=pl.String).alias("mi_estimator"))
    rows = []
    estimators = sorted(cond["mi_estimator"].unique().to_list(), key=lambda e: (e is None, e == CONSENSUS, e or ""))
    for est in estimators:
        sub = cond.filter(pl.col("mi_estimator").is_null() if est is None else pl.col("mi_estimator") == est)
        groups = (
            [(s, sub.filter(pl.col("study") == s)) for s in sorted(sub["study"].unique().to_list())] if by_study else []
        )
        groups.append((ALL, sub))
        for study, part in groups:
            rows.append({"gap_source": gap_source(gap), "mi_estimator": est, "study": study, **_summarise(part)})
    return pl.DataFrame(rows, schema=AGREEMENT_SCHEMA)


def _has_values(frame: pl.DataFrame, column: str) -> bool:
    return column in frame.columns and frame[column].null_count() < frame.height


def agreement_both(frame: pl.DataFrame, by_study: bool = True) -> pl.DataFrame:
    """The estimated-gap table stacked on the closed-form-gap table (the latter only where
    mi_gap_truth has values), so estimator error and a CCH failure can be told apart."""
    parts = [agreement(frame, gap, by_study) for gap in GAP_SOURCES if _has_values(frame, gap)]
    parts = [p for p in parts if not p.is_empty()]
    return pl.concat(parts) if parts else pl.DataFrame(schema=AGREEMENT_SCHEMA)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def _describe(row: dict) -> str:
    undet = (
        f"{row['n_undetermined']} undetermined: {row['n_gain_undetermined']} on the gain, "
        f"{row['n_gap_undetermined']} on the gap"
    )
    if not row["n_determined"]:
        return f"0 determined conditions ({undet})"
    return (
        f"{row['n_agree']}/{row['n_determined']} determined conditions "
        f"({100 * row['rate']:.1f}%, 95% CI {_pct(row['wilson_lo'])}-{_pct(row['wilson_hi'])}%, "
        f"binomial p={row['p_value']:.3g} against signs unrelated; {undet})"
    )


ONE_SEED_HINT = "every condition has one seed, too few to tell a gain from noise: rerun with --seeds 3"


def verdict_items(frame: pl.DataFrame) -> list[tuple[str, str]]:
    """(gap name, what it found) per gap source and MI estimator, from the '(all)' rows of
    agreement_both. With several MI estimators each gets its own item; the closed-form items (the
    same truth is stored with every estimator) are shown once when they are identical."""
    table = agreement_both(frame, by_study=False)
    if table.is_empty():
        return []
    several = table["mi_estimator"].n_unique() > 1
    items: list[tuple[str, str]] = []
    for source, label in (("estimated", "estimated gap"), ("closed_form", "closed-form gap")):
        rows = [
            (row["mi_estimator"], _describe(row))
            for row in table.filter(pl.col("gap_source") == source).iter_rows(named=True)
        ]
        if source == "closed_form" and len({text for _, text in rows}) == 1:
            rows = rows[:1]
            per_estimator = False
        else:
            per_estimator = several
        for estimator, text in rows:
            shown = "estimators' consensus" if estimator == CONSENSUS else estimator
            items.append((f"{label} ({shown})" if per_estimator and estimator is not None else label, text))
    return items


def one_seed(frame: pl.DataFrame) -> bool:
    cond = conditions(frame)
    return not cond.is_empty() and bool(cond["n_seeds"].max() < 2)  # type: ignore[operator]


def verdict_line(frame: pl.DataFrame) -> str:
    """One line for the end of a run: verdict_items joined, then the one-seed hint where it applies."""
    items = verdict_items(frame)
    if not items and "mode" in frame.columns and frame.filter(pl.col("mode") != "grid").height:
        return (
            "CCH: no grid trials to judge; a boundary search's trials (one seed each at values of its own) "
            "are left out of the agreement test: run the study's grid for a verdict"
        )
    if not items:
        return "CCH: no completed trials with MI estimates to judge"
    parts = [name + (" agreed with KD gain in " if i == 0 else ": ") + text for i, (name, text) in enumerate(items)]
    return "CCH: " + "; ".join(parts) + (f" -- {ONE_SEED_HINT}" if one_seed(frame) else "")
