"""Estimates above what the data can hold: the synthetic studies' data-processing bounds.

A representation is a function of its input, so I(H1; H2) <= I(X1; X2), I(H2; Y) <= I(X2; Y) and
I(H1; Y) <= I(X1; Y), all in closed form for the Appendix B generator
(cchsweep.mi.gaussian.data_processing_bounds). An MI estimate above its bound is an estimator
error, whatever the networks learned; `violations` lists them.
"""

from __future__ import annotations

import polars as pl

from cchsweep.mi.gaussian import data_processing_bounds

QUANTITIES = ("i_ts", "i_sl", "i_tl")
COLUMNS = ("trial_key", "mi_estimator", "quantity", "value", "se", "bound", "excess", "beyond_2se")
NEEDED = ("sigma12", "sigma13", "sigma23")


def with_bounds(frame: pl.DataFrame) -> pl.DataFrame:
    """The synthetic rows of `frame` (those with sigma12, sigma13, sigma23 and a p setting) with
    bound_i_ts, bound_i_sl and bound_i_tl; other rows are dropped."""
    if any(c not in frame.columns for c in NEEDED) or "settings" not in frame.columns:
        return frame.clear()
    rows = frame.with_columns(pl.col("settings").str.json_path_match("$.p").cast(pl.Int64, strict=False).alias("p"))
    rows = rows.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in (*NEEDED, "p")))
    if rows.is_empty():
        return rows
    keys = rows.select("p", *NEEDED).unique()
    bounds = [
        data_processing_bounds(int(r["p"]), r["sigma12"], r["sigma13"], r["sigma23"])
        for r in keys.iter_rows(named=True)
    ]
    table = keys.with_columns(*(pl.Series(f"bound_{q}", [b[q] for b in bounds], dtype=pl.Float64) for q in QUANTITIES))
    return rows.join(table, on=["p", *NEEDED], how="left")


def violations(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per MI estimate above its bound: value, se, bound, excess = value - bound, and whether
    the excess exceeds 2 SE of the estimate (COLUMNS)."""
    rows = with_bounds(frame.filter(pl.col("status") == "ok") if "status" in frame.columns else frame)
    parts = []
    for q in QUANTITIES:
        if q not in rows.columns or f"bound_{q}" not in rows.columns:
            continue
        se = pl.col(f"{q}_se") if f"{q}_se" in rows.columns else pl.lit(None, dtype=pl.Float64)
        parts.append(
            rows.filter(pl.col(q) > pl.col(f"bound_{q}")).select(
                "trial_key",
                "mi_estimator",
                pl.lit(q).alias("quantity"),
                pl.col(q).alias("value"),
                se.alias("se"),
                pl.col(f"bound_{q}").alias("bound"),
                (pl.col(q) - pl.col(f"bound_{q}")).alias("excess"),
                # an SE of 0 (KSG's: its repeats vary only a tie-breaking jitter) measures no noise at all
                (((pl.col(q) - pl.col(f"bound_{q}")) > 2 * se) & (se > 0)).fill_null(False).alias("beyond_2se"),
            )
        )
    if not parts:
        return pl.DataFrame(schema=dict.fromkeys(COLUMNS, pl.String))
    return pl.concat(parts).sort("trial_key", "quantity")


def bound_line(frame: pl.DataFrame) -> str | None:
    """One line for the run summary, or None when no row has a closed-form bound."""
    rows = with_bounds(frame)
    if rows.is_empty():
        return None
    found = violations(frame)
    n = sum(rows[q].drop_nulls().len() for q in QUANTITIES if q in rows.columns)
    if found.is_empty():
        return f"MI bounds: no estimate above its data-processing bound ({n} estimates checked)"
    worst = found.sort("excess", descending=True).row(0, named=True)
    return (
        f"MI bounds: {found.height} of {n} estimates exceed their data-processing bound "
        f"({int(found['beyond_2se'].sum())} by more than 2 SE; worst {worst['quantity']} = {worst['value']:.3f} > "
        f"{worst['bound']:.3f} nats, {worst['mi_estimator']})"
    )
