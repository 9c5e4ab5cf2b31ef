"""How far each MI estimator reads from the truth: the `mi_calibration` view, summarised.

`load_calibration(db)` is the view as a polars frame (one row per estimator settings, estimator,
pair, dim, true MI and n; bias and spread over seeds). `summary` condenses it per estimator,
`summary_lines` says it in a sentence each (the run summary of mi_calibration), `beside` is the
note a report puts next to an estimate of a given shape, `chart` draws estimate against truth.
"""

from __future__ import annotations

import math
from pathlib import Path

import altair as alt
import polars as pl

from analysis.charts import bar
from analysis.frame import read_sql

WITHIN = 0.10  # "calibrated" here: the mean estimate within 10% of the truth


# what a calibration row's `quantity` measures, in words (the study stores i_ts / i_sl)
QUANTITY_KIND = {"i_ts": "representation pairs", "i_sl": "label pairs"}


def in_words(table: pl.DataFrame) -> pl.DataFrame:
    """A table with a `quantity` column as the page shows it: `pairs`, in QUANTITY_KIND's words."""
    if "quantity" not in table.columns:
        return table
    return table.with_columns(pl.col("quantity").replace(QUANTITY_KIND)).rename({"quantity": "pairs"})


def load_calibration(db_path: str | Path) -> pl.DataFrame:
    return read_sql(db_path, "SELECT * FROM mi_calibration")


def _label(settings: str, estimator: str) -> str:
    """An estimator with the settings that change it (lmi and latentmi read mi_epochs and mi_lr)."""
    if estimator not in ("lmi", "latentmi"):
        return estimator
    s = pl.Series([settings]).str.json_decode().item()
    return f"{estimator} ({s.get('mi_epochs')} epochs, lr {s.get('mi_lr'):g})"


def summary(cal: pl.DataFrame) -> pl.DataFrame:
    """Per estimator (with its settings) and quantity: shapes calibrated, mean and median relative
    bias, the share of shapes read within 10%, and the worst shape."""
    rows = []
    for (settings, estimator, quantity), part in cal.group_by("settings", "estimator", "quantity", maintain_order=True):
        worst = part.sort(pl.col("rel_bias").abs(), descending=True).row(0, named=True)
        rows.append(
            {
                "estimator": _label(str(settings), str(estimator)),
                "quantity": quantity,
                "shapes": part.height,
                "dims": ",".join(map(str, sorted(part["dim"].unique().to_list()))),
                "mean_rel_bias": part["rel_bias"].mean(),
                "median_rel_bias": part["rel_bias"].median(),
                "within_10pct": (part["rel_bias"].abs() <= WITHIN).sum() / part.height,
                "mean_sd": part["sd"].mean(),
                "worst": f"{worst['pair']} {worst['dim']}-d {worst['true_mi']:g} nats n={worst['n']}: "
                f"{worst['mean']:.3f} vs {worst['truth']:.3f}",
            }
        )
    return pl.DataFrame(rows).sort("quantity", "estimator") if rows else pl.DataFrame()


def by_shape(cal: pl.DataFrame) -> pl.DataFrame:
    """Relative bias per estimator and pair (rows) and dimension (columns), averaged over true MI and n."""
    if cal.is_empty():
        return cal
    labelled = cal.with_columns(
        pl.struct("settings", "estimator")
        .map_elements(lambda r: _label(r["settings"], r["estimator"]), pl.String)
        .alias("estimator")
    )
    table = labelled.group_by("estimator", "pair", "dim", maintain_order=True).agg(pl.col("rel_bias").mean())
    return table.pivot(on="dim", index=["estimator", "pair"], values="rel_bias", sort_columns=True).sort(
        "estimator", "pair"
    )


def _pct(x: float) -> str:
    return f"{abs(x) * 100:.0f}% {'low' if x < 0 else 'high'}"


def summary_lines(cal: pl.DataFrame) -> list[str]:
    """One sentence per estimator and quantity: how it reads against the truth."""
    return [
        f"calibration: {r['estimator']} on {QUANTITY_KIND.get(r['quantity'], r['quantity'])} reads "
        f"{_pct(r['mean_rel_bias'])} "
        f"on average over {r['shapes']} shapes ({r['dims']}-d), within 10% of the truth on "
        f"{r['within_10pct'] * 100:.0f}% of them; worst {r['worst']}"
        for r in summary(cal).iter_rows(named=True)
    ]


def beside(cal: pl.DataFrame, estimator: str, quantity: str, dim: int, value: float) -> str | None:
    """What the calibration says about an estimate of `value` nats by `estimator` on a `dim`-d
    representation: the range of relative biases of the calibrated pairs at the nearest dimension
    and the true MI nearest the value. None when that estimator was not calibrated."""
    rows = cal.filter((pl.col("estimator") == estimator) & (pl.col("quantity") == quantity))
    if rows.is_empty():
        return None
    near_dim = min(rows["dim"].unique().to_list(), key=lambda d: abs(math.log(d) - math.log(max(dim, 1))))
    rows = rows.filter(pl.col("dim") == near_dim)
    near_mi = min(rows["true_mi"].unique().to_list(), key=lambda m: abs(m - max(value, 0.0)))
    rows = rows.filter(pl.col("true_mi") == near_mi)
    lo, hi = float(rows["rel_bias"].min()), float(rows["rel_bias"].max())  # type: ignore[arg-type]
    span = _pct(lo) if abs(lo - hi) < 0.005 else f"{lo * 100:+.0f}% to {hi * 100:+.0f}%"
    n = ",".join(map(str, sorted(rows["n"].unique().to_list())))
    return f"{estimator} reads {span} at {near_dim}-d, true MI {near_mi:g} nats (n={n}, {rows.height} pair shapes)"


def chart(cal: pl.DataFrame) -> alt.TopLevelMixin:
    """Mean estimate (and its 95% t interval over seeds) against the truth, per estimator and
    dimension; the diagonal is a perfect estimator."""
    data = cal.with_columns(
        pl.struct("settings", "estimator")
        .map_elements(lambda r: _label(r["settings"], r["estimator"]), pl.String)
        .alias("estimator"),
        lo=bar("mean", "bias_se", "n_seeds", -1),  # the SE of the mean estimate; no bar at one seed
        hi=bar("mean", "bias_se", "n_seeds", 1),
    ).to_pandas()
    top = max(float(cal["truth"].max()), float(cal["mean"].max())) * 1.05  # type: ignore[arg-type]
    x = alt.X("truth:Q", title="true MI (nats)", scale=alt.Scale(domain=[0, top]))
    low = min(0.0, float(cal["mean"].min()))  # type: ignore[arg-type]
    y = alt.Y("mean:Q", title="estimate (nats)", scale=alt.Scale(domain=[low, top]))
    diagonal = alt.Chart().mark_line(color="#888", strokeDash=[4, 3]).encode(x=x, y=alt.Y("truth:Q"))
    points = alt.Chart().mark_point(filled=True).encode(x=x, y=y, color=alt.Color("pair:N", title="pair"), shape="n:O")
    bars = alt.Chart().mark_rule().encode(x="truth:Q", y="lo:Q", y2="hi:Q", color="pair:N")
    return (
        alt.layer(diagonal, bars, points, data=data)
        .properties(width=180, height=180)
        .facet(row=alt.Row("estimator:N", title=None), column=alt.Column("dim:O", title="dimension"))
        .properties(
            title=alt.TitleParams(
                "MI estimates against the truth",
                subtitle="mean and 95% t interval over seeds; dashed: a perfect estimator; rows: estimator",
            )
        )
    )
