"""The paper's TCGA and CMU-MOSEI tables (Tables 2-8, 20) laid out beside the measured numbers.

Report sections for analysis/report.py. Each is called with the ok rows of one (profile, settings)
setup and the study module's REFERENCE:
  tcga_noise                      Tables 5-7, one per (cohort, teacher -> student); a teacher table
                                  (their captions' numbers); weighted F1 and MI vs noise;
  mosei_noise                     Table 4, with the same curves;
  tcga_fusion                     Table 8 (KIPAN) and Table 20 (BRCA): MI triplet, direct fusion, Fusion+KD;
  mosei_teacher                   Table 3 and its caption's teacher numbers;
  mi_estimators, tcga_estimators  Table 2's layout: one row per MI estimator.
A measured cell is mean ± SE over seeds (analysis.charts.seed_stats). The paper's number sits in
the column beside it wherever REFERENCE has one, with the paper's ± as printed (std over 50 runs in
Table 2; unstated in Tables 3-4). Pairings the paper did not run (RPPA -> CNV, say) keep the layout
with empty paper cells. Paper MI gaps and F1 differences the paper does not print are differences
of its printed means.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

from analysis.charts import (
    MI_TITLE,
    estimator_keys,
    has_values,
    long_stats,
    mean_se_chart,
    paper_lookup,
    paper_points_chart,
    per_trial,
    seed_stats,
    with_bars,
)
from cchsweep.data.cohort import cohort_path

PAIR = ["cohort", "teacher_modality", "student_modality"]
MOSEI_PAIR = ["teacher_modality", "student_modality"]
NOISE_VALUES = ["i_ts", "i_sl", "kd_f1_weighted", "nokd_f1_weighted", "mi_gap", "kd_gain"]
FUSION_METRICS = {"acc": "acc", "auc": "AUC", "f1_macro": "macro F1", "f1_weighted": "weighted F1"}
NOISE_AXIS = "noise on the teacher input (× each feature's std)"
LABELS = {
    "i_ts": "I(H_T;H_S) (nats)",
    "i_sl": "I(H_S;Y) (nats)",
    "i_tl": "I(H_T;Y) (nats)",
    "mi_gap": "MI gap (nats)",
    "kd_gain": "F1 diff (KD − no KD)",
    "kd_f1_weighted": "KD weighted F1",
    "nokd_f1_weighted": "no-KD weighted F1",
    "kd_acc": "KD acc",
    "nokd_acc": "no-KD acc",
    "teacher_acc": "teacher acc",
    "teacher_f1_weighted": "teacher weighted F1",
}
FUSION_LABELS = {
    **LABELS,
    "kd_gain": "weighted F1 diff (Fusion+KD − Fusion)",
    **{
        f"{m}_{k}": f"{name} {label}"
        for m, name in (("nokd", "Fusion"), ("kd", "Fusion+KD"))
        for k, label in FUSION_METRICS.items()
    },
}
KEY_LABELS = {
    "cohort": "cohort",
    "teacher_modality": "teacher",
    "student_modality": "student",
    "noise": "noise",
    "mi_estimator": "MI estimator",
}
PaperRow = Callable[[dict], "Mapping | None"]


def beside(
    ok: pl.DataFrame, keys: list[str], values: list[str], paper: PaperRow, labels: Mapping[str, str] = LABELS
) -> tuple[pl.DataFrame, list]:
    """seed_stats of `values` by `keys` with paper_<v> (and paper_<v>_pm where the paper prints a ±)
    beside each value, and the (header, column, ± column) list of the HTML table."""
    table = seed_stats(ok, keys, values)
    refs = [paper(r) or {} for r in table.iter_rows(named=True)]
    cols: list[tuple[str, str, str | None]] = [(KEY_LABELS.get(k, k), k, None) for k in keys]
    for v in values:
        cells = [ref.get(v) for ref in refs]
        table = table.with_columns(pl.Series(f"paper_{v}", [_mean(c) for c in cells], pl.Float64))
        pm = None
        if any(isinstance(c, tuple) for c in cells):
            pm = f"paper_{v}_pm"
            table = table.with_columns(
                pl.Series(pm, [c[1] if isinstance(c, tuple) else None for c in cells], pl.Float64)
            )
        cols += [(labels.get(v, v), v, f"{v}_se"), (f"{labels.get(v, v)} · paper", f"paper_{v}", pm)]
    return table, cols + [("seeds", "n_seeds", None)]


# --- sections ----------------------------------------------------------------------------------------


def tcga_noise(page, ok: pl.DataFrame, sfx: str, ref: dict) -> None:
    tables, teachers = ref.get("tables", {}), ref.get("teacher", {})

    def paper(r: dict):
        row = paper_lookup(tables.get(_pair(r)) or {}, r["noise"])
        return dict(zip(ref.get("columns", ()), row)) if row else None

    def name_caption(pair: tuple) -> tuple[str, str]:
        cohort, t, s = pair
        label = Path(cohort_path(cohort)).name.upper()  # a user's cohort (advise --verify): a path, digested
        what = (
            f"student weighted F1 and MI vs noise on the teacher input ({label}, {t} → {s}), "
            "measured (mean ± SE over seeds)"
        )
        if pair in tables:
            number = ref["table"][cohort]
            return number.lower().replace(" ", ""), f"{number}: {what} beside the paper"
        slug = re.sub(r"[^A-Za-z0-9]+", "_", cohort).strip("_")
        return f"table_{slug}_{t}_{s}", (f"Tables 5–7 layout: {what}; the paper has no {label} {t} → {s} run")

    _noise_tables(page, ok, sfx, PAIR, paper, name_caption)
    _teacher_table(
        page,
        ok,
        sfx,
        PAIR,
        ["teacher_f1_weighted", "i_tl"],
        lambda r: dict(zip(("teacher_f1_weighted", "i_tl"), teachers.get(_pair(r), ()))),
        "Teachers (Tables 5–7 captions): test weighted F1 and I(H_T;Y) on clean input",
    )
    _noise_charts(page, ok, sfx, PAIR, paper)


def mosei_noise(page, ok: pl.DataFrame, sfx: str, ref: dict) -> None:
    def paper(r: dict):
        row = paper_lookup(ref.get("table4", {}), r["noise"])
        return _derived(dict(row)) if row and tuple(r[k] for k in MOSEI_PAIR) == ("text", "vision") else None

    def name_caption(pair: tuple) -> tuple[str, str]:
        return "table4", (
            f"Table 4 ({pair[0]} → {pair[1]}): student weighted F1 and MI vs noise on the teacher "
            "input, measured (mean ± SE over seeds) beside the paper (its F1 columns un-swapped; "
            "see searchspaces/mosei_noise.py)"
        )

    _noise_tables(page, ok, sfx, MOSEI_PAIR, paper, name_caption)
    _mosei_teacher_table(page, ok, sfx, ref)
    _noise_charts(page, ok, sfx, MOSEI_PAIR, paper)


def tcga_fusion(page, ok: pl.DataFrame, sfx: str, ref: dict) -> None:
    values = [
        "i_tl",
        "i_ts",
        "i_sl",
        *[f"{m}_{k}" for m in ("nokd", "kd") for k in FUSION_METRICS],
        "mi_gap",
        "kd_gain",
    ]

    def paper(r: dict):
        row = ref.get("rows", {}).get(_pair(r))
        return _derived(dict(zip(ref.get("columns", ()), row))) if row else None

    keys = [*PAIR, *estimator_keys(ok)]
    for (cohort,), part in _groups(ok, ["cohort"]):
        table, cols = beside(part, keys, values, paper, FUSION_LABELS)
        number = ref.get("table", {}).get(cohort)
        what = (
            f"direct fusion vs Fusion+KD on {cohort.upper()} with the MI of the modality representations, "
            "measured (mean ± SE over seeds)"
        )
        if number:
            name, caption = number.lower().replace(" ", ""), f"{number}: {what} beside the paper"
        else:
            name = f"table_fusion_{cohort}"
            caption = f"Tables 8/20 layout: {what}; the paper has no {cohort.upper()} run"
        page.table(f"{name}{sfx}", caption, table, cols)
    _f1_points(
        page,
        ok,
        f"fusion_f1{sfx}",
        PAIR,
        paper,
        ("Fusion", "Fusion+KD"),
        "model",
        "Direct fusion vs Fusion+KD: test weighted F1",
    )


def mosei_teacher(page, ok: pl.DataFrame, sfx: str, ref: dict) -> None:
    values = ["i_ts", "i_sl", "nokd_acc", "nokd_f1_weighted", "kd_acc", "kd_f1_weighted", "mi_gap", "kd_gain"]

    def paper(r: dict):
        row = ref.get("table3", {}).get(tuple(r[k] for k in MOSEI_PAIR))
        return _derived(dict(row)) if row else None

    table, cols = beside(ok, [*MOSEI_PAIR, *estimator_keys(ok)], values, paper)
    page.table(
        f"table3{sfx}",
        "Table 3: students with and without KD from the text teacher, and their MI "
        "(measured: mean ± SE over seeds; paper: ± as printed)",
        table,
        cols,
    )
    _mosei_teacher_table(page, ok, sfx, ref)
    _f1_points(
        page,
        ok,
        f"student_f1{sfx}",
        MOSEI_PAIR,
        paper,
        ("no KD", "KD"),
        "student",
        "Table 3: student weighted F1 with and without KD",
    )


def table2(page, ok: pl.DataFrame, sfx: str, ref: dict) -> None:
    """Table 2's layout: per MI estimator, I(H_T;H_S) per pairing, I(H_T;Y), I(H_S;Y), and the gaps."""
    rows = ok.filter(pl.col("mi_estimator").is_not_null())
    cohort = ["cohort"] if has_values(rows, "cohort") else []
    t, s = pl.col("teacher_modality"), pl.col("student_modality")
    named = {
        "i_ts": pl.concat_str([pl.lit("i_"), t, pl.lit("_"), s]),
        "i_tl": pl.concat_str([pl.lit("i_"), t, pl.lit("_y")]),
        "i_sl": pl.concat_str([pl.lit("i_"), s, pl.lit("_y")]),
        "mi_gap": pl.concat_str([pl.lit("gap_"), t, pl.lit("_"), s]),
    }
    long = pl.concat(
        [
            rows.select(
                *cohort, "mi_estimator", "seed", name.alias("quantity"), pl.col(q).cast(pl.Float64).alias("value")
            )
            for q, name in named.items()
        ]
    )
    stats = seed_stats(long, [*cohort, "mi_estimator", "quantity"], ["value"])
    paper = ref.get("table2", {})
    order = _quantity_order(
        stats["quantity"].unique().to_list(), set(rows["teacher_modality"]), list(next(iter(paper.values()), {}))
    )
    records = []
    for key, part in _groups(stats, [*cohort, "mi_estimator"]):
        rec = dict(zip([*cohort, "mi_estimator"], key))
        cells = {r["quantity"]: r for r in part.iter_rows(named=True)}
        for q in order:
            rec[q], rec[f"{q}_se"] = cells.get(q, {}).get("value"), cells.get(q, {}).get("value_se")
            rec[f"paper_{q}"], rec[f"paper_{q}_pm"] = _paper_quantity(paper.get(rec["mi_estimator"], {}), q)
        rec["n_seeds"] = int(part["n_seeds"].max())
        records.append(rec)
    table = pl.DataFrame(records, infer_schema_length=None)
    cols: list[tuple[str, str, str | None]] = [(KEY_LABELS[k], k, None) for k in (*cohort, "mi_estimator")]
    for q in order:
        cols += [(_quantity_label(q), q, f"{q}_se"), (f"{_quantity_label(q)} · paper", f"paper_{q}", f"paper_{q}_pm")]
    page.table(
        f"table2{sfx}",
        "Table 2 layout: MI (nats) per estimator, measured (mean ± SE over seeds; each "
        "seed's estimate is itself a mean over the stored repeats) beside the paper (± std over 50 runs)",
        table,
        [*cols, ("seeds", "n_seeds", None)],
    )
    points = [
        {
            **{k: rec[k] for k in cohort},
            "label": _quantity_label(q),
            "series": rec["mi_estimator"],
            "mean": rec[q],
            "se": rec[f"{q}_se"],
            "n_seeds": rec["n_seeds"],
            "paper": rec[f"paper_{q}"],
        }
        for q in order
        if not q.startswith("gap_")
        for rec in records
    ]
    data = pl.DataFrame(points, schema_overrides={c: pl.Float64 for c in ("mean", "se", "paper")}).pipe(with_bars)
    several = bool(cohort) and data["cohort"].n_unique() > 1
    page.chart(
        f"mi_by_estimator{sfx}",
        paper_points_chart(
            data,
            "label",
            "quantity",
            MI_TITLE,
            "MI estimator",
            "Table 2: MI by estimator",
            facet="cohort" if several else None,
            facet_title="cohort",
        ),
    )


# --- shared parts -------------------------------------------------------------------------------------


def _noise_tables(
    page,
    ok: pl.DataFrame,
    sfx: str,
    pair_keys: list[str],
    paper: PaperRow,
    name_caption: Callable[[tuple], tuple[str, str]],
) -> None:
    keys = [*pair_keys, "noise", *estimator_keys(ok)]
    for pair, part in _groups(ok, pair_keys):
        name, caption = name_caption(pair)
        table, cols = beside(part, keys, NOISE_VALUES, paper)
        page.table(f"{name}{sfx}", caption, table, cols)


def _noise_charts(page, ok: pl.DataFrame, sfx: str, pair_keys: list[str], paper: PaperRow) -> None:
    measured = ["kd_f1_weighted", "nokd_f1_weighted", "i_ts", "i_sl"]
    keys = [*pair_keys, "noise"]
    points = ok.select(keys).unique(maintain_order=True)
    refs = [paper(r) or {} for r in points.iter_rows(named=True)]
    points = points.with_columns(pl.Series(f"paper_{v}", [_mean(r.get(v)) for r in refs], pl.Float64) for v in measured)
    rows = ok.join(points, on=keys, how="left").with_columns(_pair_label(pair_keys).alias("pairing"))
    dashed = "; dashed: paper" if has_values(points, "paper_i_ts") else ""
    f1 = long_stats(
        per_trial(rows),
        ["pairing", "noise"],
        {"KD": "kd_f1_weighted", "no KD": "nokd_f1_weighted"},
        {"KD": "paper_kd_f1_weighted", "no KD": "paper_nokd_f1_weighted"},
    )
    if f1.is_empty():  # no weighted F1 stored (rows from before schema 2 measured accuracy alone)
        page.text("<p>Student weighted F1 vs noise: no weighted F1 among these trials' metrics, so no chart.</p>")
    else:
        page.chart(
            f"f1_vs_noise{sfx}",
            mean_se_chart(
                f1,
                "noise",
                NOISE_AXIS,
                "student weighted F1",
                "student",
                "Student weighted F1 with and without KD vs noise",
                subtitle=f"points: mean and 95% t interval over seeds{dashed}",
                facet="pairing",
                facet_title="teacher → student",
            ),
        )
    est = estimator_keys(rows)  # several estimators: a row of panels each
    mi = long_stats(
        rows,
        ["pairing", "noise", *est],
        {"I(H_T;H_S)": "i_ts", "I(H_S;Y)": "i_sl"},
        {"I(H_T;H_S)": "paper_i_ts", "I(H_S;Y)": "paper_i_sl"},
    )
    page.chart(
        f"mi_vs_noise{sfx}",
        mean_se_chart(
            mi,
            "noise",
            NOISE_AXIS,
            MI_TITLE,
            "quantity",
            "I(H_T;H_S) and I(H_S;Y) vs noise (the CCH: KD helps while I(H_T;H_S) > I(H_S;Y))",
            subtitle=f"points: mean and 95% t interval over seeds{dashed}",
            facet="pairing",
            facet_title="teacher → student",
            row="mi_estimator" if est else None,
            row_title="MI estimator",
        ),
    )


def _f1_points(
    page,
    ok: pl.DataFrame,
    name: str,
    pair_keys: list[str],
    paper: PaperRow,
    labels: tuple[str, str],
    legend: str,
    title: str,
) -> None:
    """Weighted F1 without (labels[0]) and with KD (labels[1]) per pairing, measured and paper."""
    table, _ = beside(ok, pair_keys, ["nokd_f1_weighted", "kd_f1_weighted"], paper)
    data = _points(
        table.with_columns(_pair_label(pair_keys).alias("pairing")),
        "pairing",
        dict(zip(labels, ("nokd_f1_weighted", "kd_f1_weighted"))),
    )
    x_title = ("cohort, " if "cohort" in pair_keys else "") + "teacher → student"
    page.chart(name, paper_points_chart(data, "pairing", x_title, "weighted F1", legend, title))


def _teacher_table(
    page, ok: pl.DataFrame, sfx: str, pair_keys: list[str], values: list[str], paper: PaperRow, caption: str
) -> None:
    table, cols = beside(ok, [*pair_keys, *estimator_keys(ok)], values, paper)
    page.table(f"teachers{sfx}", f"{caption}, measured (mean ± SE over seeds) beside the paper", table, cols)


def _mosei_teacher_table(page, ok: pl.DataFrame, sfx: str, ref: dict) -> None:
    teacher = ref.get("teacher", {})
    paper = {
        "teacher_acc": teacher.get("acc"),
        "teacher_f1_weighted": teacher.get("f1_weighted"),
        "i_tl": teacher.get("i_tl"),
    }
    _teacher_table(
        page,
        ok,
        sfx,
        ["teacher_modality"],
        ["teacher_acc", "teacher_f1_weighted", "i_tl"],
        lambda r: paper if r["teacher_modality"] == "text" else None,
        "Teacher (Table 3 caption): test accuracy, weighted F1 and I(H_T;Y)",
    )


def _groups(frame: pl.DataFrame, keys: list[str]):
    """(key tuple, rows) per distinct value of `keys`, sorted."""
    return sorted(frame.partition_by(keys, as_dict=True).items(), key=lambda kv: tuple(str(k) for k in kv[0]))


def _points(table: pl.DataFrame, x: str, series: Mapping[str, str]) -> pl.DataFrame:
    """beside() output in paper_points_chart's long form."""
    return pl.concat(
        [
            table.select(
                x,
                pl.lit(label).alias("series"),
                pl.col(v).alias("mean"),
                pl.col(f"{v}_se").alias("se"),
                "n_seeds",
                pl.col(f"paper_{v}").alias("paper"),
            )
            for label, v in series.items()
        ]
    ).pipe(with_bars)


def _pair(r: Mapping) -> tuple:
    return tuple(r.get(k) for k in PAIR)


def _pair_label(keys: list[str]) -> pl.Expr:
    head = [pl.col("cohort").str.to_uppercase(), pl.lit(" ")] if "cohort" in keys else []
    return pl.concat_str([*head, pl.col("teacher_modality"), pl.lit(" → "), pl.col("student_modality")])


def _mean(cell):
    return cell[0] if isinstance(cell, tuple) else cell


def _derived(row: dict) -> dict:
    """The paper's MI gap and F1 difference from its printed means, where it does not print them."""
    out = dict(row)
    pairs = {"mi_gap": ("i_ts", "i_sl"), "kd_gain": ("kd_f1_weighted", "nokd_f1_weighted")}
    for name, (a, b) in pairs.items():
        if name not in out and out.get(a) is not None and out.get(b) is not None:
            out[name] = round(_mean(out[a]) - _mean(out[b]), 4)
    return out


def _quantity_order(quantities: list[str], teachers: set[str], paper_order: list[str]) -> list[str]:
    """Teacher-student MI first, then teacher-label, student-label, gaps; the paper's order within."""

    def kind(q: str) -> int:
        if q.startswith("gap_"):
            return 3
        if q.endswith("_y"):
            return 1 if q[2:-2] in teachers else 2
        return 0

    def rank(q: str) -> int:
        q = f"i_{q[4:]}" if q.startswith("gap_") else q  # a gap sits where its I(H_t;H_s) does
        return paper_order.index(q) if q in paper_order else len(paper_order)

    return sorted(quantities, key=lambda q: (kind(q), rank(q), q))


def _paper_quantity(paper: Mapping, q: str) -> tuple:
    """(mean, ±) of quantity q in one estimator's Table 2 row; a gap is a difference of printed means."""
    if q.startswith("gap_"):
        t, s = q[4:].split("_", 1)
        a, b = paper.get(f"i_{t}_{s}"), paper.get(f"i_{s}_y")
        return (round(a[0] - b[0], 4), None) if a and b else (None, None)
    return paper.get(q) or (None, None)


def _quantity_label(q: str) -> str:
    if q.startswith("gap_"):
        t, s = q[4:].split("_", 1)
        return f"gap {t} → {s}"
    a, b = q[2:].split("_", 1)
    return f"I(H_{a};Y)" if b == "y" else f"I(H_{a};H_{b})"
