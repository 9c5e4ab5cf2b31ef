"""The predicted-vs-realised scorecard: per MI estimator, how well sign(gap) predicted sign(KD gain)
over every study with KD trials in a database (`advise --verify` trials are tcga_noise trials and
count there).

`scorecard(db)` is the `cch_scorecard` view (cchsweep/views.py states its rules: agreement with
its Wilson interval and binomial p, precision, recall, Spearman's rho, the best threshold on the
gap); `by_study(db)` is cch_agreement's estimated-gap rows per study, the scorecard's breakdown.
`scorecard_lines` says each estimator's record in a sentence.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from analysis.frame import read_sql


def scorecard(db_path: str | Path) -> pl.DataFrame:
    return read_sql(db_path, "SELECT * FROM cch_scorecard")


def by_study(db_path: str | Path) -> pl.DataFrame:
    return read_sql(
        db_path,
        "SELECT * EXCLUDE (gap_source) FROM cch_agreement WHERE gap_source = 'estimated' AND study <> '(all)'",
    )


def _num(x, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _cut(r: dict) -> str:
    """The best cuts of the gap ("KD helps iff gap > t") in words: [lo, hi), either end may be open."""
    lo, hi = _num(r["threshold_lo"], "+.3f"), _num(r["threshold_hi"], "+.3f")
    if r["threshold_lo"] is None:  # no lower bound: no midpoint to name
        return f"any threshold below {hi} nats"
    if r["threshold_hi"] is None:
        return f"a threshold of {lo} nats (or any above it)"
    return f"a threshold of {r['threshold']:+.3f} nats (any in [{lo}, {hi}))"


def scorecard_lines(card: pl.DataFrame) -> list[str]:
    lines = []
    for r in card.iter_rows(named=True):
        line = (
            f"{r['mi_estimator']}: sign(gap) agreed with sign(KD gain) in {r['n_agree']}/{r['n_determined']} "
            f"determined conditions over {r['n_studies']} studies"
        )
        if r["n_determined"]:
            line += f" ({r['rate']:.0%}, 95% CI {r['wilson_lo']:.0%}-{r['wilson_hi']:.0%}, p={r['p_value']:.2g})"
        line += (
            f"; {r['n_gain_undetermined']} undetermined on the gain, {r['n_gap_undetermined']} on the gap; "
            f"precision {_num(r['precision'])}, recall {_num(r['recall'])}, Spearman {_num(r['spearman_rho'])}"
        )
        if r["threshold_rate"] is not None and r["threshold_rate"] > r["zero_rate"]:
            line += (
                f"; {_cut(r)} classifies {r['threshold_rate']:.0%} of {r['n_gain_determined']} gain-determined "
                f"conditions, 0 does {r['zero_rate']:.0%}"
            )
        elif r["threshold_rate"] is not None:
            line += f"; no threshold beats 0 ({r['zero_rate']:.0%} of {r['n_gain_determined']} gain-determined)"
        lines.append(line)
    return lines
