"""The verdict rule (cchsweep.rules): the 95% Student-t interval, the same in Python, polars and SQL,
and calibrated: on pure noise it calls a sign 5% of the time at any number of seeds."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import polars as pl
import pytest
from scipy import stats

from cchsweep.rules import (
    TABLE_N,
    critical,
    critical_expr,
    critical_sql,
    undetermined,
    undetermined_expr,
    undetermined_sql,
)


def test_critical_is_the_t_quantile():
    assert critical(0) == critical(1) == math.inf
    for n in range(2, TABLE_N + 1):
        assert critical(n) == stats.t.ppf(0.975, n - 1)
    for n in [TABLE_N + 1, 40, 64, 100, 1000, 10**6]:  # the Cornish-Fisher range
        assert critical(n) == pytest.approx(stats.t.ppf(0.975, n - 1), abs=1e-7)
    assert (round(critical(2), 3), round(critical(3), 3), round(critical(5), 3)) == (12.706, 4.303, 2.776)


# (mean, se, n) on and around every edge: no SE, NaN, one seed, zero mean, zero SE, the interval's end
CASES = [
    (0.5, None, 3),
    (0.5, float("nan"), 3),
    (0.5, 0.01, 1),
    (0.0, 0.0, 4),
    (0.1, 0.0, 2),
    (-0.1, 0.0, 2),
    (0.3, 0.1, 2),  # 3 SE at 2 seeds: undetermined
    (1.3, 0.1, 2),  # 13 SE: determined
    (0.26, 0.1, 3),  # 2.6 SE at 3 seeds: a fixed 2 SE calls it, the t interval does not
    (-0.44, 0.1, 3),
    (0.21, 0.1, 40),  # Cornish-Fisher range: t(0.975, 39) = 2.023
    (0.2, 0.1, 40),
    (0.2, 0.1, 10**5),  # 2 SE beyond 1.96
    (float("nan"), 0.1, 5),  # a NaN mean, a missing mean, a missing n: no call
    (None, 0.1, 5),
    (0.5, 0.1, None),
]


def test_python_polars_and_sql_say_the_same():
    py = [undetermined(m, s, n) for m, s, n in CASES]
    assert py == [True, True, True, True, False, False, True, False, True, False, False, True, False, True, True, True]
    frame = pl.DataFrame(CASES, schema={"m": pl.Float64, "s": pl.Float64, "n": pl.Int64}, orient="row")
    assert frame.select(undetermined_expr("m", "s", "n").alias("u"))["u"].to_list() == py
    con = duckdb.connect()
    con.register("cases", frame.to_arrow())
    sql = con.execute(f"SELECT {undetermined_sql('m', 's', 'n')} FROM cases").fetchall()
    assert [r[0] for r in sql] == py
    for kind in ("UBIGINT", "DOUBLE", "INTEGER"):  # a count column of another type (count(*) is BIGINT)
        cast = con.execute(f"SELECT {undetermined_sql('m', 's', 'CAST(n AS ' + kind + ')')} FROM cases").fetchall()
        assert [r[0] for r in cast] == py, kind
    assert critical(3.0) == critical(3)
    ns = pl.DataFrame({"n": [0, 1, *range(2, 70), 1000, 10**6]})
    in_sql = [r[0] for r in con.execute(f"SELECT {critical_sql('n')} FROM ns").fetchall()]
    in_polars = ns.select(critical_expr("n").alias("c"))["c"].to_list()
    assert in_sql == in_polars == [None, None, *(critical(n) for n in ns["n"][2:])]  # exactly the same floats


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_pure_noise_is_called_five_percent_of_the_time(n):
    """Means of n standard-normal draws: the rule calls a sign in 5% of 40,000 (a fixed 2 SE called
    29.5% at 2 seeds, 18.4% at 3, 11.6% at 5, 7.7% at 10)."""
    draws = np.random.default_rng(n).standard_normal((40_000, n))
    means, ses = draws.mean(axis=1), draws.std(axis=1, ddof=1) / math.sqrt(n)
    called = np.mean([not undetermined(m, s, n) for m, s in zip(means, ses)])
    assert called == pytest.approx(0.05, abs=0.0045)  # 4 binomial SDs (0.0011) from 5%
    fixed = np.mean(np.abs(means) > 2 * ses)
    assert fixed == pytest.approx({2: 0.295, 3: 0.184, 5: 0.116, 10: 0.077}[n], abs=0.01)
