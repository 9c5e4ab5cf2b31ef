"""Seed statistics and the Altair charts of the study reports (analysis/report.py).

Statistics: the seed is the unit of replication. A frame has one row per trial and MI estimator,
so `per_trial` keeps one row per trial for the metrics, and `seed_stats` first averages the
rows of a (condition, seed) (e.g. one MI estimate shared by several temperatures) and then
gives mean, SE = std(ddof=1) / sqrt(n) and n over the seeds. SE is null for a single seed.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from analysis.agreement import conditions
from cchsweep.rules import critical_expr

MI_TITLE = "mutual information (nats)"
CALLS = ("agrees", "disagrees", "undetermined")
CALL_COLORS = ("#2ca02c", "#d62728", "#9e9e9e")
GAIN_TITLES = {"mse": "KD gain: no-KD MSE − KD MSE", "acc": "KD gain: KD − no-KD accuracy"}
# short names of the grid axes for legends and axis titles (the tables keep the column names)
AXIS_NAMES = {
    "sigma12": "σ12",
    "lam": "λ",
    "gamma": "blur γ",
    "temperature": "T",
    "alpha": "α",
    "noise": "noise",
    "teacher_modality": "teacher",
    "student_modality": "student",
}


def per_trial(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per trial (metrics and kd_gain are the same on every MI-estimator row)."""
    return frame.unique("trial_key", keep="first", maintain_order=True)


def grid_trials(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of the grid's trials (mode 'grid'). A boundary search's trials (mode 'boundary:PARAM:TARGET')
    are one seed each at sampled values of one axis: in seed statistics they would pose as extra conditions,
    or as a second trial of a grid seed where a sample lands on a grid value."""
    return frame.filter(pl.col("mode") == "grid") if "mode" in frame.columns else frame


def has_values(frame: pl.DataFrame, column: str) -> bool:
    return column in frame.columns and frame[column].null_count() < frame.height


def estimator_keys(frame: pl.DataFrame) -> list[str]:
    """["mi_estimator"] where the rows hold several estimators (then they are a key), else []."""
    return ["mi_estimator"] if has_values(frame, "mi_estimator") and frame["mi_estimator"].n_unique() > 1 else []


def paper_lookup(mapping: dict, key):
    """mapping[key] with float keys (or tuples of them) matched to 6 decimals; None if absent."""

    def norm(k):
        if isinstance(k, tuple):
            return tuple(norm(v) for v in k)
        return round(float(k), 6) if isinstance(k, (int, float)) else k

    return {norm(k): v for k, v in mapping.items()}.get(norm(key))


def seed_stats(frame: pl.DataFrame, keys: list[str], values: list[str], counts: bool = False) -> pl.DataFrame:
    """keys, then per value: <v> (mean over seeds), <v>_se, and n_seeds; sorted by keys. With `counts`,
    per value also <v>_n, the seeds behind its mean and SE (fewer than n_seeds where it is null for
    some): the n a verdict or an error bar on <v> must use.

    Rows that share the keys and a seed are averaged as one seed, so the keys must hold every column
    that tells two trials of a seed apart and is not meant to be pooled: a frame of several profiles or
    settings needs them among the keys (analysis.frame.condition_columns gives the full condition), or
    a quick trial and a smoke trial of seed 0 become one "seed" whose mean is neither's.

    A row with a NaN among `values` (a failed estimate, e.g. a diverged MINE) is left out for every
    value, so all of a row's numbers and its n_seeds come from the same seeds, as in
    analysis.agreement's conditions (a null, a value not measured at all, is left out of its own mean)."""
    seed = ["seed"] if "seed" in frame.columns else []
    failed = pl.any_horizontal(pl.col(v).cast(pl.Float64).is_nan().fill_null(False) for v in values)
    frame = frame.filter(~failed)
    by_seed = frame.group_by(keys + seed, maintain_order=True).agg(
        pl.col(v).cast(pl.Float64).fill_nan(None).mean() for v in values
    )
    out = by_seed.group_by(keys, maintain_order=True).agg(
        *[pl.col(v).mean() for v in values],
        *[(pl.col(v).std(ddof=1) / pl.col(v).count().cast(pl.Float64).sqrt()).alias(f"{v}_se") for v in values],
        *([pl.col(v).count().alias(f"{v}_n") for v in values] if counts else []),
        pl.len().alias("n_seeds"),
    )
    return out.sort(keys, nulls_last=True)


def bar(mean: str, se: str, n: str, sign: int) -> pl.Expr:
    """mean -+ critical(n) * SE: an end of every chart's error bar, the verdict's 95% t interval
    (cchsweep.rules); null below 2 seeds."""
    return pl.col(mean) + sign * critical_expr(n) * pl.col(se)


def with_bars(frame: pl.DataFrame) -> pl.DataFrame:
    """lo and hi: the 95% t interval of mean over n_seeds (the verdict's rule, cchsweep.rules)."""
    return frame.with_columns(bar("mean", "se", "n_seeds", -1).alias("lo"), bar("mean", "se", "n_seeds", 1).alias("hi"))


def long_stats(
    frame: pl.DataFrame, keys: list[str], series: dict[str, str], truth: dict[str, str] | None = None
) -> pl.DataFrame:
    """Chart data: keys, series (the legend label), mean, se, lo and hi (the 95% t interval over seeds: every chart's
    bars), n_seeds (the seeds behind that series' mean)[, truth]."""
    parts = []
    for label, column in series.items():
        if not has_values(frame, column):
            continue
        extra = [truth[label]] if truth and has_values(frame, truth.get(label, "")) else []
        s = seed_stats(frame, keys, [column, *extra], counts=True)
        parts.append(
            s.select(
                *keys,
                pl.lit(label).alias("series"),
                pl.col(column).alias("mean"),
                pl.col(f"{column}_se").alias("se"),
                pl.col(f"{column}_n").alias("n_seeds"),
                (pl.col(extra[0]) if extra else pl.lit(None, dtype=pl.Float64)).alias("truth"),
            )
        )
    if not parts:
        return pl.DataFrame()
    data = pl.concat(parts)
    return with_bars(data)


def mean_se_chart(
    data: pl.DataFrame,
    x: str,
    x_title: str,
    y_title: str,
    legend: str,
    title: str,
    *,
    facet: str | None = None,
    facet_title: str | None = None,
    row: str | None = None,
    row_title: str | None = None,
    subtitle: str = "",
) -> alt.TopLevelMixin:
    """Lines through the means over seeds, with 95% t-interval error bars (lo, hi); dashed lines for the
    reference (closed form or paper) where `data` has a `truth` column with values: on every page
    dashed means a value not measured here. Rows with a truth but no mean (a fine closed-form grid)
    do not break the measured lines. Optional column and row facets."""
    base = alt.Chart(data)
    xe = alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(zero=False))
    color = alt.Color("series:N", title=legend)
    tips = [x, "series", alt.Tooltip("mean:Q", format=".4f"), alt.Tooltip("se:Q", format=".4f"), "n_seeds"]
    y = alt.Y("mean:Q", title=y_title, scale=alt.Scale(zero=False))
    layers = [
        base.transform_filter("isValid(datum.mean)").mark_line().encode(x=xe, y=y, color=color),
        base.transform_filter("isValid(datum.se)")
        .mark_errorbar(ticks=True)
        .encode(x=xe, y=alt.Y("lo:Q", title=y_title), y2="hi:Q", color=color),
        base.transform_filter("isValid(datum.mean)")
        .mark_point(filled=True, size=40)
        .encode(x=xe, y=y, color=color, tooltip=tips),
    ]
    if has_values(data, "truth"):
        layers.append(
            base.transform_filter("isValid(datum.truth)")
            .mark_line(strokeDash=[6, 3], opacity=0.8)
            .encode(x=xe, y="truth:Q", color=color, detail="series:N")
        )
    panels = data[facet].n_unique() if facet else 1
    # three panels and the legend fit a 1024-px page
    chart = alt.layer(*layers).properties(width=320 if panels < 3 else 220, height=240)
    facets: dict[str, Any] = {"column": alt.Column(f"{facet}:O", title=facet_title or facet)} if facet else {}
    if row:
        facets["row"] = alt.Row(f"{row}:O", title=row_title or row)
    if facets:
        chart = chart.facet(**facets)
    return chart.properties(title=alt.TitleParams(title, subtitle=subtitle) if subtitle else title)


def condition_table(frame: pl.DataFrame) -> pl.DataFrame:
    """analysis.agreement.conditions for the estimated gap and, where stored, the closed-form gap."""
    parts = [conditions(frame, gap) for gap in ("mi_gap", "mi_gap_truth") if has_values(frame, gap)]
    parts = [p for p in parts if not p.is_empty()]
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()


def gain_title(frame: pl.DataFrame) -> str:
    metrics = frame["gain_metric"].drop_nulls().unique().to_list() if "gain_metric" in frame.columns else []
    if len(metrics) == 1:
        return GAIN_TITLES.get(metrics[0], f"KD gain ({metrics[0]}; > 0: KD helped)")
    return "KD gain (> 0: KD helped)"


def gain_gap_chart(cond: pl.DataFrame, axes: list[str], gain_axis: str) -> alt.TopLevelMixin:
    """KD gain vs MI gap per condition (means over seeds, bars: the 95% t interval, the verdict's rule), coloured
    by the CCH call; one row of panels per MI estimator, named even when there is one."""
    data = cond.with_columns(
        pl.when(pl.col("undetermined"))
        .then(pl.lit("undetermined"))
        .when(pl.col("agrees"))
        .then(pl.lit("agrees"))
        .otherwise(pl.lit("disagrees"))
        .alias("call"),
        *[
            bar(f"{q}_mean", f"{q}_se", "n_seeds", sign).alias(f"{q}_{end}")
            for q in ("gain", "gap")
            for end, sign in (("lo", -1), ("hi", 1))
        ],
    ).drop("settings", strict=False)
    base = alt.Chart(data)
    x_title, y = "MI gap I(H_T;H_S) − I(H_S;Y) (nats)", alt.Y("gain_mean:Q", title=gain_axis)
    x = alt.X("gap_mean:Q", title=x_title)
    color = alt.Color("call:N", title="CCH sign call", scale=alt.Scale(domain=list(CALLS), range=list(CALL_COLORS)))
    tips = [
        *axes,
        alt.Tooltip("gap_mean:Q", format=".4f"),
        alt.Tooltip("gain_mean:Q", format=".4f"),
        alt.Tooltip("gain_se:Q", format=".4f"),
        "n_seeds",
        "call",
    ]
    zero = base.transform_aggregate(n="count()").transform_calculate(zero="0")
    layer = alt.layer(
        zero.mark_rule(color="#888", strokeWidth=1).encode(x="zero:Q"),
        zero.mark_rule(color="#888", strokeWidth=1).encode(y="zero:Q"),
        base.transform_filter("isValid(datum.gain_se)")
        .mark_errorbar()
        .encode(x=x, y=alt.Y("gain_lo:Q", title=gain_axis), y2="gain_hi:Q", color=color),
        base.transform_filter("isValid(datum.gap_se)")
        .mark_errorbar()
        .encode(y=y, x=alt.X("gap_lo:Q", title=x_title), x2="gap_hi:Q", color=color),
        base.mark_point(filled=True, size=50).encode(x=x, y=y, color=color, tooltip=tips),
    ).properties(width=320, height=260)
    header = alt.Header(labelExpr="replace(datum.value, '_', ' ')")  # closed_form -> closed form
    facet: dict[str, Any] = {"column": alt.Column("gap_source:N", title="MI gap source", header=header)}
    if has_values(data, "mi_estimator"):
        facet["row"] = alt.Row("mi_estimator:N", title="MI estimator")
    subtitle = (
        "means over seeds, bars: 95% t intervals; a condition is judged only when neither bar crosses 0 "
        "(green: signs agree, red: they disagree, grey: undetermined); the consensus's gap has no bar: "
        "it is called when every estimator that decides agrees"
    )
    return layer.facet(**facet).properties(title=alt.TitleParams("KD gain vs MI gap per condition", subtitle=subtitle))


def gain_axis_chart(cond: pl.DataFrame, axis: str, axis_title: str, series: list[str], gain_axis: str):
    """KD gain (mean and 95% t interval over seeds) against a swept axis, a line per combination of the other
    axes (`series`), with the zero line: where KD helps and where it hurts, at its own scale."""
    data = cond.filter(pl.col("gap_source") == "estimated") if "gap_source" in cond.columns else cond
    data = data.unique([axis, *series], keep="first", maintain_order=True).with_columns(
        lo=bar("gain_mean", "gain_se", "n_seeds", -1),
        hi=bar("gain_mean", "gain_se", "n_seeds", 1),
        series=pl.concat_str([pl.col(c).cast(pl.String) for c in series], separator=" · ") if series else pl.lit("all"),
    )
    base = alt.Chart(data.drop("settings", strict=False))
    x = alt.X(f"{axis}:Q", title=axis_title, scale=alt.Scale(zero=False), axis=alt.Axis(tickCount=8))
    y = alt.Y("gain_mean:Q", title=gain_axis)
    legend = " · ".join(AXIS_NAMES.get(s, s) for s in series)
    color = alt.Color("series:N", title=legend, legend=alt.Legend(labelLimit=0) if series else None)
    zero = base.transform_aggregate(n="count()").transform_calculate(zero="0")
    return alt.layer(
        zero.mark_rule(color="#888", strokeWidth=1).encode(y="zero:Q"),
        base.mark_line().encode(x=x, y=y, color=color),
        base.transform_filter("isValid(datum.gain_se)")
        .mark_errorbar(ticks=True)
        .encode(x=x, y=alt.Y("lo:Q", title=gain_axis), y2="hi:Q", color=color),
        base.mark_point(filled=True, size=50).encode(x=x, y=y, color=color, tooltip=[axis, "series", "n_seeds"]),
    ).properties(
        width=420,
        height=260,
        title=alt.TitleParams(
            f"KD gain vs {axis_title}", subtitle="means over seeds, bars: 95% t intervals; grey line: no gain"
        ),
    )


def save_chart(chart: alt.TopLevelMixin, out_dir, name: str) -> dict:
    """Write <name>.png and <name>.svg (vl-convert); return the Vega-Lite spec for the page."""
    chart = chart.configure(font="sans-serif").configure_title(font="sans-serif", subtitleFont="sans-serif")
    chart.save(str(out_dir / f"{name}.png"), scale_factor=2)
    chart.save(str(out_dir / f"{name}.svg"))
    return chart.to_dict()


def paper_points_chart(
    data: pl.DataFrame,
    x: str,
    x_title: str,
    y_title: str,
    legend: str,
    title: str,
    *,
    facet: str | None = None,
    facet_title: str | None = None,
) -> alt.TopLevelMixin:
    """Measured mean and 95% t interval (filled points, error bars) beside the paper's value (open diamonds) per
    category x and series; data: x, series, mean, se, lo, hi (the 95% t interval), n_seeds, paper."""
    base = alt.Chart(data)
    xe = alt.X(f"{x}:N", title=x_title, sort=None)
    offset, color = alt.XOffset("series:N"), alt.Color("series:N", title=legend)
    y = alt.Y("mean:Q", title=y_title, scale=alt.Scale(zero=False))
    tips = [
        x,
        "series",
        alt.Tooltip("mean:Q", format=".4f"),
        alt.Tooltip("se:Q", format=".4f"),
        "n_seeds",
        alt.Tooltip("paper:Q", format=".4f"),
    ]
    layers = [
        base.transform_filter("isValid(datum.se)")
        .mark_errorbar(ticks=True)
        .encode(x=xe, xOffset=offset, y=alt.Y("lo:Q", title=y_title), y2="hi:Q", color=color),
        base.mark_point(filled=True, size=60).encode(x=xe, xOffset=offset, y=y, color=color, tooltip=tips),
    ]
    if has_values(data, "paper"):
        layers.append(
            base.transform_filter("isValid(datum.paper)")
            .mark_point(shape="diamond", size=90, filled=False, strokeWidth=2)
            .encode(x=xe, xOffset=offset, y="paper:Q", color=color, tooltip=tips)
        )
    chart = alt.layer(*layers).properties(width=alt.Step(28), height=240)
    if facet:
        chart = chart.facet(column=alt.Column(f"{facet}:N", title=facet_title or facet))
    return chart.properties(
        title=alt.TitleParams(title, subtitle="filled: measured (mean, 95% t interval over seeds); open diamond: paper")
    )
