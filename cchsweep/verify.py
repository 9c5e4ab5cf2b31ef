"""`cchsweep advise --verify K`: distil for real from the top K teachers (and one control that fails
the criterion) through the normal engine, and set the realised KD gain beside the predicted gap.

The KD trials are tcga_noise trials (Table 9 networks, eq. 2, noise 0) whose cohort is the user's
cohort directory, named by its absolute path and the digest of the files they read (PATH@sha256:HEX,
so a file changed since an earlier --verify gets trials of its own), so they land in the results
database like any study's, keyed by trial.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import polars as pl

from cchsweep.errors import UsageError
from cchsweep.rules import undetermined_expr


def pick_teachers(table: pl.DataFrame, k: int) -> list[str]:
    """The top k by gap, plus a control the criterion does not recommend: the best-ranked teacher that
    fails it ("do not distil"), else the best-ranked undetermined one."""
    ranked = table.sort("rank")
    chosen = ranked["teacher"].to_list()[:k]
    for verdict in ("do not distil", "undetermined"):
        control = next((t for t in ranked.filter(pl.col("verdict") == verdict)["teacher"] if t not in chosen), None)
        if control is not None:
            return [*chosen, control]
    return chosen


def verify(
    advice,
    k: int,
    db_path: Path,
    *,
    seeds: int = 3,
    profile: str = "paper",
    overrides: tuple[str, ...] = (),
    command: str | None = None,
) -> pl.DataFrame:
    """Run the KD trials; return predicted gap vs realised gain (mean ± SE over seeds) per teacher."""
    from analysis.frame import load_results
    from cchsweep.data.cohort import content_digest
    from cchsweep.grid import plan
    from cchsweep.runner import check_writable, default_storage, run_sweep
    from searchspaces import STUDIES

    if k < 1:
        raise UsageError(f"--verify {k}: give the number of top teachers to verify, 1 or more")
    teachers = pick_teachers(advice.table, k)
    data = Path(advice.data).resolve()
    digest = content_digest(data, [*teachers, advice.student])  # changed files: new trials, not stale ones
    the_plan = plan(
        STUDIES["tcga_noise"],
        profile,
        [
            f"cohort={data}@sha256:{digest}",
            f"teacher_modality={','.join(teachers)}",
            f"student_modality={advice.student}",
            "noise=0",
            f"mi_estimator={advice.estimator}",
            *overrides,
        ],
        seeds=seeds,
    )
    db_path = Path(db_path).absolute()
    storage = default_storage(db_path)
    check_writable(db_path, storage)
    summary = run_sweep(
        the_plan,
        db_path,
        storage,
        command=command or f"cchsweep advise {data} --verify {k}",
        stored_note="their stored gains are shown; --verify-seeds adds seeds",
    )
    frame = load_results(db_path, study="tcga_noise").filter(
        pl.col("trial_key").is_in([t.key for t in the_plan.trials]) & (pl.col("status") == "ok")
    )
    if summary.n_error:
        print(
            f'verify: {summary.n_error} KD trials failed; see `cchsweep query "select trial_key, error from trials '
            f"where status = 'error'\" --db {shlex.quote(str(db_path))}`"
        )
    return verification_table(advice.table, frame)


def realised_gains(trials: pl.DataFrame) -> pl.DataFrame:
    """Per teacher_modality of the ok KD trials (each trial once): realised_gain (mean kd_gain),
    realised_gain_se (std(ddof=1) / sqrt(n), null for one trial, as analysis.agreement) and seeds
    (n, the trials behind both: one per seed)."""
    if "trial_key" in trials.columns:
        trials = trials.unique("trial_key", keep="first", maintain_order=True)
    return (
        trials.group_by("teacher_modality")
        .agg(
            pl.col("kd_gain").mean().alias("realised_gain"),
            (pl.col("kd_gain").std(ddof=1) / pl.col("kd_gain").count().sqrt()).alias("realised_gain_se"),
            pl.col("kd_gain").count().alias("seeds"),
        )
        .rename({"teacher_modality": "teacher"})
    )


def verification_table(table: pl.DataFrame, trials: pl.DataFrame) -> pl.DataFrame:
    """The advice table's predicted gap beside the realised gain of each verified teacher, by rank.

    sign_agrees: (gap > 0) == (realised_gain > 0), null where either side is undetermined, as in the
    sign-agreement test: the gain's 95% t interval holds zero or it has fewer than 2 seeds (cchsweep.rules), or
    the advice's verdict "undetermined" (the same rule on the gap: the criterion made no call).
    """
    out = table.select("rank", "teacher", "gap", "gap_se", "verdict").join(
        realised_gains(trials), on="teacher", how="inner"
    )
    undetermined = undetermined_expr("realised_gain", "realised_gain_se", "seeds") | (
        pl.col("verdict") == "undetermined"
    )
    return out.with_columns(
        pl.when(~undetermined)
        .then((pl.col("gap") > 0) == (pl.col("realised_gain") > 0))
        .otherwise(None)
        .alias("sign_agrees")
    ).sort("rank")


def write_verification_report(table: pl.DataFrame, out_dir: Path) -> Path:
    """Predicted gap vs realised gain with error bars: verification.html (offline), .png, .csv."""
    import altair as alt

    from analysis.charts import bar

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = table.with_columns(  # every chart's bar: the verdict's 95% t interval, none at one seed
        bar("realised_gain", "realised_gain_se", "seeds", -1).alias("lo"),
        bar("realised_gain", "realised_gain_se", "seeds", 1).alias("hi"),
    )
    base = alt.Chart(data).encode(x=alt.X("gap:Q", title="predicted: MI gap I(T;S) - I(S;Y) (nats)"))
    chart = (
        base.mark_point(filled=True, size=80).encode(
            y=alt.Y("realised_gain:Q", title="realised KD gain (weighted F1)"), color="verdict:N", tooltip=["teacher"]
        )
        + base.mark_rule().encode(y="lo:Q", y2="hi:Q", color="verdict:N")
        + base.mark_text(dy=-12).encode(y="realised_gain:Q", text="teacher:N")
        + alt.Chart().mark_rule(strokeDash=[4, 4]).encode(y=alt.datum(0))
        + alt.Chart().mark_rule(strokeDash=[4, 4]).encode(x=alt.datum(0))
    ).properties(
        title=alt.TitleParams(
            "CCH advice verified: predicted gap vs realised gain",
            subtitle="realised gain: mean and 95% t interval over seeds (none at one seed); dashed: zero",
        ),
        width=420,
        height=300,
    )
    html = out / "verification.html"
    chart.save(str(html), inline=True)
    chart.save(str(out / "verification.png"))
    table.write_csv(out / "verification.csv")
    return html


def format_verification(table: pl.DataFrame) -> str:
    lines = [
        "verified by distilling (KD gain in weighted F1, mean ± SE over seeds):",
        f"{'rank':>4}  {'teacher':<10} {'predicted gap':>16}  {'verdict':<13} {'realised gain':>18}  agrees",
    ]
    for r in table.iter_rows(named=True):
        se = "n/a" if r["realised_gain_se"] is None else f"{r['realised_gain_se']:.3f}"
        gap_se = "n/a" if r["gap_se"] is None else f"{r['gap_se']:.3f}"
        lines.append(
            f"{r['rank']:>4}  {r['teacher']:<10} {r['gap']:+8.3f} ± {gap_se:<5}  {r['verdict']:<13} "
            f"{r['realised_gain']:+9.4f} ± {se:<6}  {_agrees(r['sign_agrees'])}"
        )
    return "\n".join(lines)


def _agrees(value: bool | None) -> str:
    return "undetermined" if value is None else ("yes" if value else "no")
