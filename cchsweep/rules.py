"""The one statistical rule every verdict shares, for Python (floats, polars) and SQL alike.

A mean decides a sign only when it lies more than Z standard errors from zero and rests on at
least MIN_SEEDS replicates; otherwise it is *undetermined*. The sign-agreement test
(analysis.agreement and the cch_conditions view), `advise` (the gap's interval) and
`advise --verify` (the realised gain) all use it.
"""

from __future__ import annotations

import math

Z = 2.0  # standard errors a mean must clear to decide a sign
MIN_SEEDS = 2


def undetermined(mean: float | None, se: float | None, n: int = MIN_SEEDS) -> bool:
    """True when the sign of `mean` is not resolved (a NaN or missing SE resolves nothing)."""
    if mean is None or se is None or n < MIN_SEEDS or math.isnan(mean) or math.isnan(se):
        return True
    return abs(mean) <= Z * se


def undetermined_sql(mean: str, se: str, n: str) -> str:
    """The same rule as a SQL boolean expression over the named columns."""
    return f"({n} < {MIN_SEEDS} OR {se} IS NULL OR isnan({se}) OR abs({mean}) <= {Z} * {se})"


def undetermined_expr(mean: str, se: str, n: str):
    """The same rule as a polars expression over the named columns."""
    import polars as pl

    return (pl.col(n) < MIN_SEEDS) | pl.col(se).is_null() | pl.col(se).is_nan() | (pl.col(mean).abs() <= Z * pl.col(se))
