"""One offline HTML page per study: the CCH agreement summary, the paper's figures and tables.

`write_report(db, study, out_dir)` reads through analysis.frame.load_results only and writes
out_dir/<study>/: index.html (charts embedded with the Vega libraries inline, so it opens
without a server or network), every chart as <name>.png and <name>.svg, every table as
<name>.html and <name>.csv (numbers in the CSV, "mean ± SE" text in the HTML).

Sections by study: synthetic_sigma12 (Figure 1), synthetic_lambda (Figure 4), mnist_blur
(Figure 2, Table 1), mnist_alpha (Table 13 and its curves), and from analysis/paper_tables.py
tcga_noise (Tables 5-7), tcga_fusion (Tables 8, 20), mosei_teacher (Table 3), mosei_noise
(Table 4), mi_estimators and tcga_estimators (Table 2's layout), each with the paper's numbers
beside the measured ones. Every study, including one without a section of its own, gets the
KD-gain-vs-MI-gap scatter and the per-condition table. A study with rows of several profiles or
settings gets one figure section per (profile, settings), its files suffixed with the profile.
Means and SEs are over seeds (analysis.charts.seed_stats).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import altair as alt
import polars as pl

from analysis import paper_tables
from analysis.agreement import ONE_SEED_HINT, agreement_both, one_seed, verdict_items
from analysis.bounds import bound_line, violations
from analysis.charts import (
    MI_TITLE,
    condition_table,
    estimator_keys,
    gain_axis_chart,
    gain_gap_chart,
    gain_title,
    grid_trials,
    has_values,
    long_stats,
    mean_se_chart,
    paper_lookup,
    per_trial,
    seed_stats,
)
from analysis.frame import condition_columns, load_results, with_setup
from analysis.page import Page, esc
from cchsweep.errors import UsageError
from cchsweep.mi.gaussian import optimal_linear_mi

SIGMA12 = "σ12 (teacher–student correlation)"
GAMMA = "blur γ (Gaussian std, pixels)"
MSE = "student test MSE"
ACC = "student test accuracy (fraction correct)"
MODELS = {"KD": "kd", "no KD": "nokd"}
AXIS_TITLES = {
    "sigma12": SIGMA12,
    "gamma": GAMMA,
    "noise": paper_tables.NOISE_AXIS,
    "lam": "λ (KD weight)",
    "alpha": "α (digit weight in the MNIST-M blend)",
    "temperature": "KD temperature T",
}
MI = {"I(H_T;H_S)": "i_ts", "I(H_S;Y)": "i_sl"}
MI_TRUTH = {"I(H_T;H_S)": "i_ts_truth", "I(H_S;Y)": "i_sl_truth"}
MI_NAMES = {"i_ts": "I(H_T;H_S)", "i_sl": "I(H_S;Y)", "i_tl": "I(H_T;Y)"}
MI_TRUTH_OF = {"I(H_T;H_S)": "i_ts", "I(H_S;Y)": "i_sl"}
CALIBRATION = "mi_calibration"


def write_report(db_path: str | Path, study: str, out_dir: str | Path, *, shared_bundle: str | None = None) -> Path:
    """Write the study's report under out_dir/<study>/ and return the index.html path. With
    `shared_bundle` (a path relative to the page) the page loads the Vega libraries from there
    instead of inlining them (`write_all` writes one copy for every page)."""
    if study == CALIBRATION:
        return _calibration_page(db_path, Path(out_dir), shared_bundle)
    frame = load_results(db_path, study)
    ok = frame.filter(pl.col("status") == "ok")
    if ok.is_empty():
        raise UsageError(f"no ok trials of study {study} in {db_path}; run `cchsweep run {study} --db {db_path}` first")
    spec = _study_spec(study)
    out = Path(out_dir) / study
    out.mkdir(parents=True, exist_ok=True)
    page = Page(out)
    n_trials, n_ok = frame["trial_key"].n_unique(), ok["trial_key"].n_unique()
    page.text(
        f"<h1>{esc(study)}</h1><p>{esc(spec.get('description', ''))}<br>Reproduces: "
        f"<b>{esc(spec.get('reproduces', 'no paper figure'))}</b>. {n_ok} completed trials "
        f"({n_trials - n_ok} failed) from {esc(str(db_path))}; "
        f"generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.</p>"
    )
    page.text(f"<p>{esc(_estimators_line(ok))}</p>")
    page.text("<h2>Sign agreement (CCH)</h2>" + _verdict_html(ok))
    table = agreement_both(ok).filter(pl.col("study") != "(all)")  # one study: its '(all)' rows repeat its own
    page.table("agreement", "Agreement of sign(MI gap) with sign(KD gain), per MI estimator and gap source", table)
    if (line := bound_line(ok)) is not None:  # the synthetic studies: estimates above the data-processing bound
        page.text(f"<p>{esc(line)}</p>")
        found = violations(ok)
        if not found.is_empty():
            page.table("bound_violations", "MI estimates above their data-processing bound (nats)", found)
    section = SECTIONS.get(study)
    with alt.data_transformers.disable_max_rows():
        if section is not None:
            for suffix, label, part in _setups(grid_trials(ok)):  # a boundary search's trials are no seeds
                page.text(f"<h2>{esc(spec.get('reproduces', 'Figures'))}{esc(label)}</h2>")
                section(page, part, suffix, spec.get("reference", {}))
        _generic(page, ok)
    if (note := _calibration_note(db_path, ok)) is not None:
        page.text(note)
    return page.write(study, shared_bundle)


def _estimators_line(ok: pl.DataFrame) -> str:
    """Which estimators made this page's MI numbers, with the settings that change them."""
    if not has_values(ok, "mi_estimator"):
        return "No MI estimates."
    parts = []
    for (estimator, settings), _ in ok.group_by("mi_estimator", "settings", maintain_order=True):
        if estimator is None:
            continue
        s = json.loads(str(settings))
        extra = (
            f" ({s['mi_epochs']} epochs, lr {s['mi_lr']:g})"
            if estimator in ("lmi", "latentmi") and "mi_epochs" in s
            else ""
        )
        n = f", on {s['mi_n']:,} samples" if "mi_n" in s else ""
        parts.append(f"{estimator}{extra}{n}")
    return (
        "MI in nats, estimated by: " + "; ".join(dict.fromkeys(parts)) + " (the paper's numbers beside them: latentmi)."
    )


def _calibration_note(db_path: str | Path, ok: pl.DataFrame) -> str | None:
    """Beside the estimates: what the calibration in the same database says about each estimator at
    this study's representation width (settings' `hidden`, else 64) and typical MI."""
    from analysis.calibration import beside, load_calibration

    cal = load_calibration(db_path)
    if cal.is_empty() or "mi_estimator" not in ok.columns:
        return None
    hidden = ok["settings"].str.json_path_match("$.hidden").cast(pl.Int64, strict=False).drop_nulls()
    dim = int(hidden[0]) if len(hidden) else 64
    notes = []
    for estimator in sorted(ok["mi_estimator"].drop_nulls().unique().to_list()):
        part = ok.filter(pl.col("mi_estimator") == estimator)
        for quantity in ("i_ts", "i_sl"):
            values = part[quantity].drop_nulls() if quantity in part.columns else None
            if values is None or values.is_empty():
                continue
            text = beside(cal, estimator, quantity, dim, float(values.mean()))  # type: ignore[arg-type]
            if text is not None:
                notes.append(f"<li>{esc(MI_NAMES[quantity])} (mean {float(values.mean()):.3f} nats): {esc(text)}</li>")  # type: ignore[arg-type]
    if not notes:
        return None
    return (
        "<h2>What the calibration says about these estimates</h2><p>From the mi_calibration runs in the same "
        f"database, at the calibrated dimension nearest this study's representations ({dim}-d):</p><ul>"
        + "".join(notes)
        + "</ul>"
    )


def _calibration_page(db_path: str | Path, out_dir: Path, shared_bundle: str | None) -> Path:
    from analysis.calibration import by_shape, chart, in_words, load_calibration, summary, summary_lines

    cal = load_calibration(db_path)
    if cal.is_empty():
        raise UsageError(
            f"no trials of study {CALIBRATION} in {db_path}; run `cchsweep run {CALIBRATION} --db {db_path}` first"
        )
    out = out_dir / CALIBRATION
    out.mkdir(parents=True, exist_ok=True)
    page = Page(out)
    page.text(
        f"<h1>{CALIBRATION}</h1><p>MI estimators against known MI (cchsweep.mi.known): each estimate of "
        f"{cal['n_seeds'].sum()} draws over {cal.select('pair', 'dim', 'true_mi', 'n').unique().height} shapes, "
        f"from {esc(str(db_path))}; generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Relative bias is "
        "(mean estimate - truth) / truth: -0.5 reads half the truth.</p>"
    )
    page.text("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in summary_lines(cal)) + "</ul>")

    page.table("summary", "Per estimator: relative bias over every calibrated shape", in_words(summary(cal)))
    caption = "Relative bias by pair (rows) and dimension (columns), averaged over true MI and n"
    page.table("by_shape", caption, by_shape(cal))
    with alt.data_transformers.disable_max_rows():
        page.chart("estimate_vs_truth", chart(cal))
    page.table("calibration", "Every shape: estimate vs truth over seeds (nats)", in_words(cal))
    return page.write(CALIBRATION, shared_bundle)


def _verdict_html(ok: pl.DataFrame) -> str:
    """The run's verdict line as a list: one item per gap source and MI estimator."""
    items = verdict_items(ok)
    if not items:
        return "<p class='verdict'>CCH: no completed trials with MI estimates to judge</p>"
    lead = "<p class='verdict'>CCH: does the sign of the MI gap agree with the sign of the KD gain?</p>"
    rows = "".join(f"<li><b>{esc(name)}</b>: agreed in {esc(text)}</li>" for name, text in items)
    hint = f"<p class='verdict'>Note: {esc(ONE_SEED_HINT)}.</p>" if one_seed(ok) else ""
    return f"{lead}<ul>{rows}</ul>{hint}"


# --- sections --------------------------------------------------------------------------------------


def _figure1(page: Page, ok: pl.DataFrame, sfx: str, ref: dict) -> None:
    trials = per_trial(ok)
    page.chart(
        f"mse_vs_sigma12{sfx}",
        mean_se_chart(
            long_stats(trials, ["sigma12"], {k: f"{v}_mse" for k, v in MODELS.items()}),
            "sigma12",
            SIGMA12,
            MSE,
            "student",
            "Figure 1a: test MSE with and without KD",
            subtitle="mean and 95% t interval over seeds",
        ),
    )
    crossing = ref.get("closed_form_crossing_sigma12")
    note = f"; paper's closed-form crossing at σ12 = {crossing}" if crossing is not None else ""
    _mi_chart(
        page,
        ok,
        "sigma12",
        SIGMA12,
        f"mi_vs_sigma12{sfx}",
        "Figure 1b: representation MI",
        f"estimate and 95% t interval over seeds (64-unit layers); dashed: closed form of Theorem 1's optimal linear "
        f"predictors, not of the layers (on a fine σ12 grid){note}",
        truth=_closed_form_curves(ok),
    )


def _closed_form_curves(ok: pl.DataFrame) -> pl.DataFrame | None:
    """The optimal linear teacher's and student's MI on a fine sigma12 grid (every 0.005) across the
    range run: the curves cross where the closed form says, not where two grid points' chord does."""
    p = ok["settings"].str.json_path_match("$.p").cast(pl.Int64, strict=False).drop_nulls()
    if p.is_empty() or not has_values(ok, "sigma13") or not has_values(ok, "sigma23"):
        return None
    lo, hi = float(ok["sigma12"].min()), float(ok["sigma12"].max())  # type: ignore[arg-type]
    grid = [lo + i * 0.005 for i in range(int(round((hi - lo) / 0.005)) + 1)]
    s13, s23 = float(ok["sigma13"][0]), float(ok["sigma23"][0])
    rows = []
    for sigma12 in grid:
        truth = optimal_linear_mi(int(p[0]), sigma12, s13, s23)
        rows += [{"sigma12": sigma12, "series": label, "truth": truth[q]} for label, q in MI_TRUTH_OF.items()]
    return pl.DataFrame(rows)


def _figure4(page: Page, ok: pl.DataFrame, sfx: str, ref: dict) -> None:
    data = long_stats(per_trial(ok), ["lam", "sigma12"], {k: f"{v}_mse" for k, v in MODELS.items()})
    page.chart(
        f"mse_vs_sigma12_by_lambda{sfx}",
        mean_se_chart(
            data,
            "sigma12",
            SIGMA12,
            MSE,
            "student",
            "Figure 4: test MSE vs σ12 per KD weight λ",
            subtitle="mean and 95% t interval over seeds",
            facet="lam",
            facet_title="λ (KD weight)",
        ),
    )


def _at_t3(ok: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
    if "temperature" in ok.columns and (ok["temperature"] == 3.0).any():
        return ok.filter(pl.col("temperature") == 3.0), True
    return ok, False


def _accuracy_and_mi(page: Page, ok: pl.DataFrame, sfx: str, fig: tuple[str, str]) -> None:
    sub, t3 = _at_t3(ok)
    trials = per_trial(sub)
    if t3 or not has_values(trials, "temperature"):
        data = long_stats(trials, ["gamma"], {k: f"{v}_acc" for k, v in MODELS.items()})
        chart = mean_se_chart(
            data,
            "gamma",
            GAMMA,
            ACC,
            "student",
            f"{fig[0]}: student accuracy at T = 3",
            subtitle="mean and 95% t interval over seeds",
        )
    else:
        parts = [
            long_stats(trials, ["gamma", "temperature"], {f"T={t:g}": f"{v}_acc"})
            .filter(pl.col("temperature") == t)
            .with_columns(pl.lit(k).alias("student"))
            for k, v in MODELS.items()
            for t in trials["temperature"].unique().sort().to_list()
        ]
        chart = mean_se_chart(
            pl.concat(parts),
            "gamma",
            GAMMA,
            ACC,
            "temperature",
            f"{fig[0]}: student accuracy per temperature",
            subtitle="mean and 95% t interval over seeds",
            facet="student",
            facet_title="student",
        )
    page.chart(f"accuracy_vs_gamma{sfx}", chart)
    _mi_chart(
        page,
        ok,
        "gamma",
        GAMMA,
        f"mi_vs_gamma{sfx}",
        f"{fig[1]}: I(H_T;H_S) and I(H_S;Y) vs blur",
        "estimate and 95% t interval over seeds (each seed's estimate averaged over temperatures)",
    )


def _mi_chart(
    page: Page,
    ok: pl.DataFrame,
    x: str,
    x_title: str,
    name: str,
    title: str,
    subtitle: str,
    truth: pl.DataFrame | None = None,
) -> None:
    """MI per quantity vs x; `truth` (x, series, truth) replaces the closed form at the grid points."""
    several = has_values(ok, "mi_estimator") and ok["mi_estimator"].n_unique() > 1
    keys = [x, "mi_estimator"] if several else [x]
    data = long_stats(ok, keys, MI, None if truth is not None else MI_TRUTH)
    if not data.is_empty() and truth is not None:
        estimators = data["mi_estimator"].unique(maintain_order=True).to_list() if several else [None]
        curves = [truth if e is None else truth.with_columns(mi_estimator=pl.lit(e)) for e in estimators]
        data = pl.concat([data, *curves], how="diagonal_relaxed")
    if not data.is_empty():
        page.chart(
            name,
            mean_se_chart(
                data,
                x,
                x_title,
                MI_TITLE,
                "quantity",
                title,
                subtitle=subtitle,
                facet="mi_estimator" if several else None,
                facet_title="MI estimator",
            ),
        )


def _mnist_blur(page: Page, ok: pl.DataFrame, sfx: str, ref: dict) -> None:
    _accuracy_and_mi(page, ok, sfx, ("Figure 2a", "Figure 2b"))
    trials = per_trial(ok).with_columns((pl.col("kd_acc") - pl.col("nokd_acc")).alias("acc_diff"))
    est = estimator_keys(ok)
    table = seed_stats(ok, ["gamma", *est], ["mi_gap"]).drop("n_seeds")
    paper_gap = [paper_lookup(ref.get("mi_gap", {}), g) for g in table["gamma"]]
    table = table.with_columns(pl.Series("paper_mi_gap", paper_gap, pl.Float64))
    acc = seed_stats(trials, ["gamma", "temperature"], ["acc_diff"])
    for t in acc["temperature"].unique().sort().to_list():
        pair = [paper_lookup(ref.get("acc_diff", {}), (g, t)) for g in acc.filter(pl.col("temperature") == t)["gamma"]]
        col = acc.filter(pl.col("temperature") == t).with_columns(
            pl.Series("paper", [p[0] if p else None for p in pair], pl.Float64),
            pl.Series("paper_se", [p[1] if p else None for p in pair], pl.Float64),
        )
        col = col.select(
            "gamma",
            *[pl.col(c).alias(f"{c}_T{t:g}") for c in ("acc_diff", "acc_diff_se", "n_seeds", "paper", "paper_se")],
        )
        table = table.join(
            col.rename({f"paper_T{t:g}": f"paper_acc_diff_T{t:g}", f"paper_se_T{t:g}": f"paper_acc_diff_se_T{t:g}"}),
            on="gamma",
            how="left",
        )
    temps = acc["temperature"].unique().sort().to_list()
    cols = [
        ("γ", "gamma", None),
        *([("MI estimator", "mi_estimator", None)] if est else []),
        ("MI gap (nats)", "mi_gap", "mi_gap_se"),
        ("paper MI gap", "paper_mi_gap", None),
    ]
    for t in temps:
        cols += [
            (f"T={t:g} acc diff", f"acc_diff_T{t:g}", f"acc_diff_se_T{t:g}"),
            (f"T={t:g} paper", f"paper_acc_diff_T{t:g}", f"paper_acc_diff_se_T{t:g}"),
        ]
    page.table(
        f"table1{sfx}",
        "Table 1: MI gap and student accuracy difference (KD − no KD, mean ± SE over "
        "seeds) per blur γ and temperature T, measured next to the paper",
        table,
        cols,
    )


def _mnist_alpha(page: Page, ok: pl.DataFrame, sfx: str, ref: dict) -> None:
    _accuracy_and_mi(page, ok, sfx, ("α = 0.18", "α = 0.18"))
    sub, _ = _at_t3(ok)
    est = estimator_keys(sub)
    mi = seed_stats(sub, ["gamma", *est], ["i_ts", "i_sl", "mi_gap"])
    trials = per_trial(sub).with_columns((pl.col("kd_acc") - pl.col("nokd_acc")).alias("acc_diff"))
    acc = seed_stats(trials, ["gamma"], ["kd_acc", "nokd_acc", "acc_diff"])
    table = mi.drop("n_seeds").join(acc, on="gamma", how="left")
    names = ["i_ts", "i_sl", "kd_acc", "kd_acc_se", "nokd_acc", "nokd_acc_se", "mi_gap", "acc_diff", "acc_diff_se"]
    paper: dict[str, list] = {n: [] for n in names}
    for g in table["gamma"]:
        values = paper_lookup(ref.get("table13", {}), g) or (None,) * len(names)
        for n, v in zip(names, values):
            paper[n].append(v)
    table = table.with_columns(pl.Series(f"paper_{n}", v, pl.Float64) for n, v in paper.items())
    cols: list[tuple[str, str, str | None]] = [
        ("γ", "gamma", None),
        *([("MI estimator", "mi_estimator", None)] if est else []),
    ]
    for label, n in (
        ("I(H_T;H_S) (nats)", "i_ts"),
        ("I(H_S;Y) (nats)", "i_sl"),
        ("KD acc", "kd_acc"),
        ("no-KD acc", "nokd_acc"),
        ("MI gap (nats)", "mi_gap"),
        ("acc diff", "acc_diff"),
    ):
        cols += [
            (label, n, f"{n}_se"),
            (f"{label} paper", f"paper_{n}", f"paper_{n}_se" if f"paper_{n}_se" in table.columns else None),
        ]
    page.table(
        f"table13{sfx}",
        "Table 13 (α = 0.18, T = 3): MI, accuracies (mean ± SE over seeds) and their "
        "differences per blur γ, measured next to the paper",
        table,
        cols,
    )


def _generic(page: Page, ok: pl.DataFrame) -> None:
    page.text("<h2>KD gain vs MI gap per condition</h2>")
    cond = condition_table(ok)
    if cond.is_empty():
        page.text("<p>No completed trials with both a KD gain and an MI gap: nothing to plot.</p>")
        return
    axes = [c for c in condition_columns(ok) if c not in ("study", "profile", "settings")]
    swept = [a for a in axes if cond[a].dtype.is_numeric() and cond[a].n_unique() > 1]
    if swept:  # the first numeric axis that varies, a line per value of the others (and setups) that vary
        others = [a for a in axes if a != swept[0] and a != "mi_estimator" and cond[a].n_unique() > 1]
        title = AXIS_TITLES.get(swept[0], swept[0])
        lines = with_setup(cond)
        if "setup" in lines.columns:  # several profiles or settings: each its own line, named
            others = ["setup", *others]
        page.chart("gain_vs_" + swept[0], gain_axis_chart(lines, swept[0], title, others, gain_title(ok)))
    page.chart("gain_vs_gap", gain_gap_chart(cond, ["profile", *axes], gain_title(ok)))
    settings = cond["settings"].unique().to_list() if "settings" in cond.columns else []
    shown = cond.drop("study")
    if len(settings) == 1:  # the same settings on every row: said once, not in every row
        page.text(f"<p class='settings'>Settings of every condition: <code>{esc(settings[0])}</code></p>")
        shown = shown.drop("settings")
    page.table("conditions", "Per condition (seeds averaged): KD gain and MI gap, mean ± SE, and the CCH call", shown)


SECTIONS = {
    "synthetic_sigma12": _figure1,
    "synthetic_lambda": _figure4,
    "mnist_blur": _mnist_blur,
    "mnist_alpha": _mnist_alpha,
    "tcga_noise": paper_tables.tcga_noise,
    "tcga_fusion": paper_tables.tcga_fusion,
    "tcga_estimators": paper_tables.table2,
    "mosei_teacher": paper_tables.mosei_teacher,
    "mosei_noise": paper_tables.mosei_noise,
    "mi_estimators": paper_tables.table2,
}


# --- helpers ---------------------------------------------------------------------------------------


def _study_spec(study: str) -> dict:
    """The study's description, figure and paper numbers, where the registry knows the study."""
    from searchspaces import STUDIES  # imports the trial code: only when a report is written

    s = STUDIES.get(study)
    return (
        {} if s is None else {"description": s.description, "reproduces": s.reproduces, "reference": dict(s.reference)}
    )


def _setups(ok: pl.DataFrame) -> list[tuple[str, str, pl.DataFrame]]:
    """(file suffix, heading, rows) per (profile, settings); one setup gets no suffix."""
    setups = ok.select("profile", "settings").unique().sort("profile", "settings").rows()
    if len(setups) == 1:
        return [("", "", ok)]
    profiles = [p for p, _ in setups]
    out = []
    for i, (profile, settings) in enumerate(setups):
        suffix = f"_{profile}" if profiles.count(profile) == 1 else f"_{profile}{i}"
        label = f" — profile {profile}" + ("" if profiles.count(profile) == 1 else f", settings {settings}")
        out.append((suffix, label, ok.filter((pl.col("profile") == profile) & (pl.col("settings") == settings))))
    return out
