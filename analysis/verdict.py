"""Does the sign of the MI gap agree with the sign of the KD gain? (The paper's test.)"""

from __future__ import annotations

import polars as pl

from analysis.frame import condition_columns


def conditions(frame: pl.DataFrame, gap: str = "mi_gap") -> pl.DataFrame:
    """Per condition: seeds, mean and SE of kd_gain, mean gap, and the agreement call.

    A condition is undetermined when it has fewer than 2 seeds or its mean gain lies within
    2 standard errors of zero; otherwise it agrees when sign(mean gap) = sign(mean gain).
    """
    ok = frame.filter((pl.col("status") == "ok") & pl.col(gap).is_not_null())
    if ok.is_empty():
        return pl.DataFrame()
    keys = condition_columns(ok)
    table = ok.group_by(keys).agg(
        pl.col("seed").n_unique().alias("n_seeds"),
        pl.col("kd_gain").mean().alias("gain_mean"),
        (pl.col("kd_gain").std() / pl.col("kd_gain").count().sqrt()).alias("gain_se"),
        pl.col(gap).mean().alias("gap_mean"),
    )
    determined = (pl.col("n_seeds") >= 2) & (pl.col("gain_mean").abs() > 2 * pl.col("gain_se"))
    return table.with_columns(
        pl.when(determined).then(pl.col("gap_mean").sign() == pl.col("gain_mean").sign()).otherwise(None)
        .alias("agrees")
    ).sort(keys[3:] or keys)


def verdict_line(frame: pl.DataFrame) -> str:
    """One line for the end of a run."""
    parts = []
    for gap, label in (("mi_gap", "estimated MI gap"), ("mi_gap_truth", "closed-form gap")):
        if gap not in frame.columns or frame[gap].null_count() == frame.height:
            continue
        table = conditions(frame, gap)
        if table.is_empty():
            continue
        decided = table.filter(pl.col("agrees").is_not_null())
        agree = int(decided["agrees"].sum()) if decided.height else 0
        parts.append(f"{label} sign matched KD gain sign in {agree}/{decided.height} conditions "
                     f"({table.height - decided.height} undetermined)")
    if not parts:
        return "CCH: no completed trials with MI estimates to judge"
    return "CCH: " + "; ".join(parts)
