"""The one statistical rule every verdict shares, for Python (floats, polars) and SQL alike.

A mean of n replicates decides a sign only when its two-sided 95% Student-t interval excludes zero,
|mean| > critical(n) * SE with critical(n) = t(0.975, n - 1), and n >= MIN_SEEDS; otherwise it is
*undetermined*. On pure noise the rule calls a sign 5% of the time at any n (a fixed 2 SE called
29.5% at 2 seeds, 18.4% at 3, 11.6% at 5). The sign-agreement test (analysis.agreement and the
cch_conditions view), `advise` (the gap's interval) and `advise --verify` (the realised gain) all
use it, and the reports draw its interval as their error bars.

critical(n) is scipy's quantile for n <= TABLE_N and the Cornish-Fisher expansion in 1/(n - 1)
beyond (Abramowitz & Stegun 26.7.5, four terms: within 1e-7 of scipy from n = 32 on), one
definition that Python, polars and SQL evaluate alike.
"""

from __future__ import annotations

import math

from scipy import stats

LEVEL = 0.95  # two-sided
MIN_SEEDS = 2
TABLE_N = 31  # critical(n) tabulated for n <= TABLE_N

_Q = (1.0 + LEVEL) / 2.0
_TABLE = [float(stats.t.ppf(_Q, n - 1)) for n in range(MIN_SEEDS, TABLE_N + 1)]  # n = 2 .. TABLE_N
_z = float(stats.norm.ppf(_Q))
_TERMS = (  # Cornish-Fisher: t = z + sum_k g_k(z) / df^k
    _z,
    (_z**3 + _z) / 4.0,
    (5 * _z**5 + 16 * _z**3 + 3 * _z) / 96.0,
    (3 * _z**7 + 19 * _z**5 + 17 * _z**3 - 15 * _z) / 384.0,
    (79 * _z**9 + 776 * _z**7 + 1482 * _z**5 - 1920 * _z**3 - 945 * _z) / 92160.0,
)


def critical(n: int) -> float:
    """How many SEs a mean of n replicates must clear to decide its sign (inf below MIN_SEEDS)."""
    n = int(n)
    if n < MIN_SEEDS:
        return math.inf
    if n <= TABLE_N:
        return _TABLE[n - MIN_SEEDS]
    df = n - 1.0
    return sum(g / df**k for k, g in enumerate(_TERMS))


def undetermined(mean: float | None, se: float | None, n: int | None) -> bool:
    """True when the sign of `mean` is not resolved (a NaN or missing mean, SE or n resolves nothing)."""
    if mean is None or se is None or n is None or n < MIN_SEEDS or math.isnan(mean) or math.isnan(se):
        return True
    return abs(mean) <= critical(n) * se


def critical_sql(n: str) -> str:
    """critical(n) as a SQL expression over the named count column (NULL below MIN_SEEDS)."""
    n = f"CAST({n} AS BIGINT)"
    table = ", ".join(repr(v) for v in _TABLE)
    series = " + ".join(f"{g!r} / pow({n} - 1, {k})" for k, g in enumerate(_TERMS) if k)
    return (
        f"(CASE WHEN {n} < {MIN_SEEDS} THEN NULL WHEN {n} <= {TABLE_N} THEN [{table}][{n} - {MIN_SEEDS - 1}] "
        f"ELSE {_TERMS[0]!r} + {series} END)"
    )


def undetermined_sql(mean: str, se: str, n: str) -> str:
    """The same rule as a SQL boolean expression over the named columns (never NULL)."""
    missing = f"{n} IS NULL OR {n} < {MIN_SEEDS} OR {mean} IS NULL OR isnan({mean}) OR {se} IS NULL OR isnan({se})"
    return f"({missing} OR abs({mean}) <= {critical_sql(n)} * {se})"


def critical_expr(n: str):
    """critical(n) as a polars expression over the named integer column (null below MIN_SEEDS)."""
    import polars as pl

    col = pl.col(n).cast(pl.Int64)
    df = col.cast(pl.Float64) - 1.0
    series = sum((g / df.pow(k) for k, g in enumerate(_TERMS) if k), pl.lit(_TERMS[0]))
    table = col.replace_strict(list(range(MIN_SEEDS, TABLE_N + 1)), _TABLE, default=None, return_dtype=pl.Float64)
    return pl.when(col < MIN_SEEDS).then(None).when(col <= TABLE_N).then(table).otherwise(series)


def undetermined_expr(mean: str, se: str, n: str):
    """The same rule as a polars expression over the named columns (never null)."""
    import polars as pl

    return (
        pl.col(n).is_null()
        | (pl.col(n) < MIN_SEEDS)
        | pl.col(mean).is_null()
        | pl.col(mean).is_nan()
        | pl.col(se).is_null()
        | pl.col(se).is_nan()
        | (pl.col(mean).abs() <= critical_expr(n) * pl.col(se))
    )
