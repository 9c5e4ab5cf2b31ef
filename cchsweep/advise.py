"""`cchsweep advise`: should a student modality be distilled from a teacher modality? (the CCH criterion)

The Cross-modal Complementarity Hypothesis (paper Section 3) says cross-modal distillation helps
when the teacher's representation shares more information with the student's than the student
already holds about the label:

    distil from T into S  iff  gap = I(H_T; H_S) - I(H_S; Y) > 0.

For a cohort directory (cchsweep.data.cohort layout) and one student modality, `advise` ranks every
candidate teacher modality by that gap. Per candidate, exactly as the TCGA cross-modal trials do
(cchsweep.trials.tcga, whose helpers are reused):

1. join teacher and student on patient (`load_cohort(..., min_modalities=2)`), so the patient set
   and hence the split depend on the pairing; `prepare(cohort, seed)`: stratified 90/10 split,
   train-fitted imputation, standardization and mRMR top-`n_features` per modality;
2. train the no-KD networks (Table 9: in -> 64 ReLU -> classes) on the TRAIN rows, teacher on the
   clean teacher modality and student on the student modality: Adam, lr 0.01, `epochs` full-batch
   steps, init seeds 2*seed (teacher) and 2*seed+1 (student);
3. take the 64-d representations of the train AND test rows (tcga's mi_split="all": the held-out
   rows alone are too few for any MI estimator, e.g. 19 patients for BRCA mRNA+CNV; the networks
   have been fit to most of those rows, which inflates I(H;Y) relative to a held-out estimate --
   it inflates I_SL, so the criterion errs on the side of "do not distil");
4. estimate I(H_T; H_S), I(H_S; Y) and I(H_T; Y) (labels one-hot, nats; estimator seeds seed*10,
   seed*10+1, seed*10+2 as in tcga).

Steps 1-4 run `repeats` times, repeat r with seed + r: a new split, new networks and new estimator
seeds, so the standard error over repeats carries the split and training noise, as the studies'
SE over seeds does. (Repeating the estimator alone on one set of representations measured only the
estimator's own noise: none for KSG, whose repeats differ by tie-breaking jitter, so its SE was 0
and every nonzero gap got a verdict.)

The MI estimates of different teachers run in parallel as Ray tasks (one GPU fraction each when the
cluster has GPUs). An embedded Ray is started when none is initialised, and shut down afterwards.

The verdict uses the gap's standard error over the repeats (of the per-repeat gaps: I_TS and I_SL
of one repeat share its networks) and its 95% t interval gap +- t(0.975, repeats - 1) * se (the
rule every verdict shares, cchsweep.rules): "distil" when it lies above 0, "do not distil" when it
lies below 0, else "undetermined". With `repeats` = 1 there is no standard error, every SE is NaN
and every verdict "undetermined": use at least 2 repeats for a verdict (at 2 the interval is +-12.7
SE, at 3 +-4.3, at 5 +-2.8).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F

from cchsweep.data.cohort import list_modalities, load_cohort, prepare
from cchsweep.errors import UsageError
from cchsweep.mi.interface import estimate_all, summarize
from cchsweep.mi.latentmi_estimator import one_hot
from cchsweep.mi.triplet import ESTIMATORS, QUANTITIES, make_estimator, triplet_pairs
from cchsweep.rules import critical  # gap_lo/gap_hi: the gap's 95% t interval, as every verdict
from cchsweep.schema import ADVICE_VALUES
from cchsweep.train import represent
from cchsweep.trials.tcga import mi_rows, to_tensor, train_unimodal

VERDICTS = ("distil", "undetermined", "do not distil")
LR = 0.01  # Tables 17, 19, 21 (Adam), as the TCGA trials
COLUMNS = ("teacher", "student", "n_patients", *ADVICE_VALUES, "gap_lo", "gap_hi", "verdict", "rank")


@dataclass(frozen=True)
class Advice:
    """One `advise` call: `table` has one row per candidate teacher (COLUMNS), best gap first."""

    table: pl.DataFrame
    data: str  # the cohort directory
    student: str
    estimator: str
    repeats: int
    seed: int
    n_patients: dict[str, int]  # teacher -> patients of the teacher+student join
    classes: list[str]  # the union of the pairings' classes, sorted
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=datetime.now)


# --- the computation ----------------------------------------------------------------------------


def advise(data_dir: str | Path, student: str, teachers: Sequence[str] | None = None, estimator: str = "lmi", **kw):
    """The advice of one MI estimator (advise_all with one)."""
    return advise_all(data_dir, student, teachers, (estimator,), **kw)[0]


def advise_all(
    data_dir: str | Path,
    student: str,
    teachers: Sequence[str] | None = None,
    estimators: Sequence[str] = ("lmi",),
    repeats: int = 3,
    seed: int = 0,
    epochs: int = 200,
    mi_epochs: int = 300,
    mi_lr: float = 1e-4,
    lr: float = LR,
    test_fraction: float = 0.1,
    n_features: int = 100,
    device: str | None = None,
) -> list[Advice]:
    """Rank candidate teacher modalities for `student` by the CCH gap I(H_T;H_S) - I(H_S;Y), once per
    MI estimator, on the same networks and representations (see module doc); one Advice per estimator.

    `teachers` None means every other modality in `data_dir`. `mi_epochs`/`mi_lr` apply to lmi and
    latentmi (MINE and KSG keep their own defaults, as in the studies). `device` None: cuda when available.
    """
    data_dir = Path(data_dir)
    estimators = list(dict.fromkeys(estimators))
    if not estimators:
        raise UsageError(f"no MI estimator given; choose from {', '.join(ESTIMATORS)}")
    for estimator in estimators[1:]:
        _check_inputs(data_dir, student, teachers, estimator, repeats, epochs)
    teachers = _check_inputs(data_dir, student, teachers, estimators[0], repeats, epochs)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    s = {"epochs": int(epochs), "lr": float(lr), "batch_size": 0}
    settings = {e: {"mi_estimator": e, "mi_epochs": int(mi_epochs), "mi_lr": float(mi_lr)} for e in estimators}

    # Driver side: join, split and train per pairing and repeat (seconds); ship only the representations.
    jobs: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    n_patients: dict[str, int] = {}
    classes: set[str] = set()
    for teacher in teachers:
        jobs[teacher] = []
        for r in range(repeats):
            h_t, h_s, labels, n, pairing_classes = _representations(
                data_dir, teacher, student, seed + r, s, test_fraction, n_features, torch.device(dev)
            )
            jobs[teacher].append((h_t, h_s, labels))
            n_patients[teacher] = n
            classes.update(pairing_classes)

    values = {
        e: {t: _summary(per_repeat) for t, per_repeat in v.items()}
        for e, v in _estimate_all(jobs, list(settings.values()), seed).items()
    }
    return [
        Advice(
            table=advice_frame(student, values[e], n_patients, repeats),
            data=str(data_dir),
            student=student,
            estimator=e,
            repeats=int(repeats),
            seed=int(seed),
            n_patients=n_patients,
            classes=sorted(classes),
            settings={**s, **settings[e], "test_fraction": test_fraction, "n_features": n_features, "mi_split": "all"},
        )
        for e in estimators
    ]


def _check_inputs(
    data_dir: Path, student: str, teachers: Sequence[str] | None, estimator: str, repeats: int, epochs: int
) -> list[str]:
    """Every check that needs no data read; returns the candidate teachers."""
    if estimator not in ESTIMATORS:
        raise UsageError(f"unknown MI estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    if int(repeats) < 1:
        raise UsageError(f"--repeats {repeats} must be at least 1 (2 or more give a standard error), e.g. 3")
    if int(epochs) < 1:
        raise UsageError(f"epochs={epochs} must be at least 1, e.g. 200")
    available = list_modalities(data_dir)  # UsageError for a missing directory
    if len(available) < 2:
        found = f"only one modality ({available[0]})" if available else "no modality file"
        raise UsageError(
            f"{data_dir} has {found}; advise needs a student and at least one teacher modality "
            f"(one CSV or Parquet per modality plus labels.csv)"
        )
    listing = ", ".join(available)
    if student not in available:
        raise UsageError(f"unknown student modality {student!r} in {data_dir}; available: {listing}")
    if teachers is None:
        return [m for m in available if m != student]
    teachers = [t.strip() for t in teachers if t and t.strip()]
    if not teachers:
        raise UsageError(
            f"no teacher modality given; name some with --teachers a,b or leave it out to try "
            f"every other modality ({', '.join(m for m in available if m != student)})"
        )
    unknown = [t for t in teachers if t not in available]
    if unknown:
        raise UsageError(
            f"unknown teacher modalit{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(repr(t) for t in unknown)} in {data_dir}; available: {listing}"
        )
    if student in teachers:
        raise UsageError(
            f"{student!r} is the student; a teacher must be another modality "
            f"({', '.join(m for m in available if m != student)})"
        )
    return list(dict.fromkeys(teachers))  # keep order, drop repeats


def _representations(
    data_dir: Path,
    teacher: str,
    student: str,
    seed: int,
    s: dict,
    test_fraction: float,
    n_features: int,
    dev: torch.device,
):
    """H_T, H_S (train+test rows) and one-hot labels for one pairing, with its patient count and classes."""
    cohort = load_cohort(data_dir, [teacher, student], min_modalities=2)
    p = prepare(cohort, seed, test_fraction=test_fraction, n_features=n_features)
    y_tr = to_tensor(p.y_train, dev, torch.int64)

    def ce(out, idx):
        return F.cross_entropy(out, y_tr[idx])

    # init seeds as tcga.unimodal_pair: teacher 2*seed, no-KD student 2*seed+1
    teacher_net = train_unimodal(p, teacher, seed * 2, ce, s, dev)
    student_net = train_unimodal(p, student, seed * 2 + 1, ce, s, dev)

    def rep(net, modality: str) -> np.ndarray:
        x = mi_rows(p.x_train[modality], p.x_test[modality], "all")
        return represent(net, to_tensor(x, dev)).cpu().numpy().astype(np.float64)

    labels = one_hot(mi_rows(p.y_train, p.y_test, "all"), len(p.classes))
    return rep(teacher_net, teacher), rep(student_net, student), labels, len(cohort.patients), p.classes


def _triplet_task(repeats: list[tuple], mi_settings: dict, seed: int) -> dict[str, list[float]]:
    """One teacher's three MI estimates per repeat, {quantity: [value of repeat r]} (runs in a Ray
    worker, or in process). Repeat r's seeds are mi_triplet's for seed + r, the tcga trials' seeds."""
    from cchsweep.raystart import worker_device

    estimator = make_estimator(mi_settings, worker_device())
    pairs = [triplet_pairs(h_t, h_s, labels, seed + r) for r, (h_t, h_s, labels) in enumerate(repeats)]
    tasks = [(a, b, base * 1000) for q in QUANTITIES for a, b, base in (p[q] for p in pairs)]
    values = estimate_all(estimator, tasks)  # every estimate in one call (lmi trains them together)
    n = len(repeats)
    return {q: values[i * n : (i + 1) * n] for i, q in enumerate(QUANTITIES)}


def _summary(per_repeat: dict[str, list[float]]) -> dict[str, list]:
    """{quantity: [mean, se]} over the repeats, and the gap's from the per-repeat gaps (a repeat's
    I_TS and I_SL come from the same networks: their errors are not independent)."""
    out = {q: list(summarize(v)) for q, v in per_repeat.items()}
    out["gap"] = list(summarize([ts - sl for ts, sl in zip(per_repeat["i_ts"], per_repeat["i_sl"])]))
    return out


def _estimate_all(jobs: dict[str, list[tuple]], settings: list[dict], seed: int) -> dict[str, dict]:
    """{estimator: {teacher: {quantity: [value per repeat]}}}: one Ray task per (teacher, estimator)."""
    import ray

    from cchsweep.raystart import start_ray, stop_ray

    started = not ray.is_initialized()
    if started:
        start_ray(None)
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0.0))
        on_gpu = [m for m in settings if m["mi_estimator"] in ("lmi", "latentmi", "mine")]
        # Share the GPUs between the GPU estimators' tasks (at most one whole GPU each).
        share = min(1.0, gpus / (len(jobs) * len(on_gpu))) if gpus > 0 and on_gpu else 0.0
        shipped = {t: ray.put(repeats) for t, repeats in jobs.items()}
        refs = {}
        for m in settings:
            num_gpus = share if m in on_gpu else 0
            task = ray.remote(num_cpus=1, num_gpus=num_gpus, max_retries=0)(_triplet_task)
            for teacher, repeats in shipped.items():
                refs[m["mi_estimator"], teacher] = task.remote(repeats, m, seed)
        out: dict[str, dict] = {m["mi_estimator"]: {} for m in settings}
        for (estimator, teacher), result in zip(refs, ray.get(list(refs.values()))):
            out[estimator][teacher] = result
        return out
    finally:
        if started:
            stop_ray(ray, None)


# --- the verdict --------------------------------------------------------------------------------


def _se(value) -> float:
    return float("nan") if value is None else float(value)


def verdict(gap_lo: float, gap_hi: float) -> str:
    if gap_lo > 0:
        return "distil"
    if gap_hi < 0:
        return "do not distil"
    return "undetermined"  # also when the SE is NaN (one repeat)


def advice_frame(
    student: str, values: dict[str, dict[str, list]], n_patients: dict[str, int], repeats: int
) -> pl.DataFrame:
    """The advice table from {teacher: {quantity: [mean, se over `repeats`]}}, ranked by gap (1 = largest)."""
    rows = []
    for teacher, v in values.items():
        row: dict[str, Any] = {"teacher": teacher, "student": student, "n_patients": int(n_patients[teacher])}
        for q in QUANTITIES:
            row[q], row[f"{q}_se"] = float(v[q][0]), _se(v[q][1])
        row["gap"] = row["i_ts"] - row["i_sl"]
        # the SE of the per-repeat gaps where given (advise_all); else the two as independent
        row["gap_se"] = _se(v["gap"][1]) if "gap" in v else math.sqrt(row["i_ts_se"] ** 2 + row["i_sl_se"] ** 2)
        half = critical(repeats) * row["gap_se"]  # NaN with one repeat (no SE)
        row["gap_lo"], row["gap_hi"] = row["gap"] - half, row["gap"] + half
        row["verdict"] = verdict(row["gap_lo"], row["gap_hi"])
        rows.append(row)
    rows.sort(key=lambda r: (-r["gap"], r["teacher"]))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    schema: dict[str, Any] = {c: pl.Float64 for c in COLUMNS}
    schema.update(teacher=pl.String, student=pl.String, verdict=pl.String, rank=pl.Int64, n_patients=pl.Int64)
    return pl.DataFrame(rows, schema={c: schema[c] for c in COLUMNS})


CONSENSUS = ("distil", "do not distil", "undetermined", "estimators disagree")


def consensus(verdicts: Sequence[str]) -> str:
    """ "distil" or "do not distil" only when every estimator that reaches a determined verdict gives
    it; "estimators disagree" when determined verdicts differ; "undetermined" when none is determined."""
    determined = {v for v in verdicts if v != "undetermined"}
    if not determined:
        return "undetermined"
    return determined.pop() if len(determined) == 1 else "estimators disagree"


def consensus_frame(advices: Sequence[Advice]) -> pl.DataFrame:
    """One row per teacher: each estimator's gap, gap_se and verdict side by side, and the consensus;
    ordered by the first estimator's rank."""
    rows = []
    for teacher in advices[0].table["teacher"].to_list():
        row: dict[str, Any] = {"teacher": teacher, "n_patients": advices[0].n_patients[teacher]}
        verdicts = []
        for a in advices:
            r = a.table.filter(pl.col("teacher") == teacher).row(0, named=True)
            row[f"gap_{a.estimator}"], row[f"gap_se_{a.estimator}"] = r["gap"], r["gap_se"]
            row[f"verdict_{a.estimator}"] = r["verdict"]
            verdicts.append(r["verdict"])
        row["consensus"] = consensus(verdicts)
        rows.append(row)
    return pl.DataFrame(rows)


def format_consensus(advices: Sequence[Advice]) -> str:
    """The estimators side by side per teacher, the consensus column, and one sentence."""
    frame = consensus_frame(advices)
    names = [a.estimator for a in advices]
    header = ["teacher", "patients", *(f"{e}: gap ± SE, verdict" for e in names), "consensus"]
    lines = [
        [
            r["teacher"],
            str(r["n_patients"]),
            *(f"{_pm(r[f'gap_{e}'], r[f'gap_se_{e}'], True)}  {r[f'verdict_{e}']}" for e in names),
            r["consensus"],
        ]
        for r in frame.iter_rows(named=True)
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cells):
        return "  ".join(c.rjust(w) if i == 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    by = {v: [r["teacher"] for r in frame.iter_rows(named=True) if r["consensus"] == v] for v in CONSENSUS}
    parts = []
    if by["distil"]:
        parts.append(f"every estimator that decides says distil from {_names(by['distil'])}")
    if by["do not distil"]:
        parts.append(f"every estimator that decides says do not distil from {_names(by['do not distil'])}")
    if by["estimators disagree"]:
        parts.append(f"the estimators disagree on {_names(by['estimators disagree'])}")
    if by["undetermined"]:
        parts.append(f"no estimator decides {_names(by['undetermined'])}")
    sentence = "; ".join(parts)
    title = (
        f"Consensus of {', '.join(names)} for student {advices[0].student} (nats; a verdict only where "
        f"every estimator that decides agrees)"
    )
    return "\n".join(
        [
            title,
            fmt(header),
            fmt(["-" * w for w in widths]),
            *map(fmt, lines),
            "",
            sentence[0].upper() + sentence[1:] + ".",
        ]
    )


# --- the database -------------------------------------------------------------------------------


def _nullable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def advice_table_rows(advice: Advice, run_id: str) -> list[tuple]:
    """Rows for the `advice` table, in ADVICE_COLUMNS order (NaN SEs become NULL; `data` the cohort's
    absolute path, as --verify's trials name it: a relative one means nothing from another directory)."""
    out = []
    for r in advice.table.iter_rows(named=True):
        out.append(
            (
                run_id,
                str(Path(advice.data).resolve()),
                advice.student,
                r["teacher"],
                advice.estimator,
                int(advice.repeats),
                *(_nullable(r[c]) for c in ADVICE_VALUES),
                r["verdict"],
                int(r["rank"]),
                advice.created_at,
                int(advice.seed),
                int(r["n_patients"]),
                json.dumps(advice.settings, sort_keys=True, default=str),
            )
        )
    return out


def store_advice(db_path: str | Path, advice: Advice | Sequence[Advice], run_id: str) -> int:
    """Write the advice rows (of one or several estimators) under `run_id` in one transaction; the
    same run_id again replaces its rows. Returns the number of rows written. A file another process
    holds is waited for (saying so) up to FINAL_WAIT_SECONDS, as a sweep's last results are: the
    advice took minutes of MI estimates to make.
    """
    import sys

    from cchsweep.store import FINAL_WAIT_SECONDS, DatabaseLocked, Store

    advices = [advice] if isinstance(advice, Advice) else list(advice)
    rows = [row for a in advices for row in advice_table_rows(a, run_id)]
    try:
        _write_advice(Store(db_path), run_id, rows)
    except DatabaseLocked:
        print(
            f"{db_path} is locked by another process: waiting up to {FINAL_WAIT_SECONDS / 60:.0f} min to store "
            f"the advice",
            file=sys.stderr,
            flush=True,
        )
        _write_advice(Store(db_path, FINAL_WAIT_SECONDS), run_id, rows)
    return len(rows)


def _write_advice(store, run_id: str, rows: list[tuple]) -> None:
    store.ensure_schema()
    store.write_advice(run_id, rows)


# --- presentation -------------------------------------------------------------------------------


def _pm(value: float, se: float, signed: bool = False) -> str:
    v = f"{value:+.3f}" if signed else f"{value:.3f}"
    return f"{v} ± {se:.3f}" if math.isfinite(se) else f"{v} ± n/a"


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def advice_sentence(advice: Advice) -> str:
    rows = list(advice.table.iter_rows(named=True))
    by = {v: [r for r in rows if r["verdict"] == v] for v in VERDICTS}
    parts = []
    if by["distil"]:
        parts.append(
            "distil from "
            + _names([f"{r['teacher']} (gap {_pm(r['gap'], r['gap_se'], True)} nats)" for r in by["distil"]])
        )
    else:
        parts.append(f"no teacher passes the criterion for {advice.student}")
    if by["undetermined"]:
        names = [r["teacher"] for r in by["undetermined"]]
        parts.append(f"{_names(names)} {'is' if len(names) == 1 else 'are'} undetermined")
    if by["do not distil"]:
        names = [r["teacher"] for r in by["do not distil"]]
        parts.append(f"{_names(names)} fail{'s' if len(names) == 1 else ''} the criterion")
    sentence = "; ".join(parts)
    sentence = sentence[0].upper() + sentence[1:] + "."
    if advice.repeats < 2:
        sentence += " (One repeat gives no standard error: use --repeats 2 or more for a verdict.)"
    return sentence


def format_advice(advice: Advice) -> str:
    """A terminal table (one line per teacher, best first) and a one-sentence recommendation."""
    header = ("rank", "teacher", "patients", "I(T;S) ± SE", "I(S;Y) ± SE", "I(T;Y) ± SE", "gap ± SE", "verdict")
    lines = [
        (
            str(r["rank"]),
            r["teacher"],
            str(r["n_patients"]),
            _pm(r["i_ts"], r["i_ts_se"]),
            _pm(r["i_sl"], r["i_sl_se"]),
            _pm(r["i_tl"], r["i_tl_se"]),
            _pm(r["gap"], r["gap_se"], True),
            r["verdict"],
        )
        for r in advice.table.iter_rows(named=True)
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    right = {0, 2, 3, 4, 5, 6}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = (
        f"distil when gap = I(T;S) - I(S;Y) > 0 by its 95% t interval, ±{critical(advice.repeats):.2f} SE"
        if advice.repeats >= 2
        else "one repeat: no standard error, no verdict"
    )
    repeats = f"{advice.repeats} repeat{'s' if advice.repeats != 1 else ''}"
    title = f"CCH advice for student {advice.student} ({advice.data}; {advice.estimator}, {repeats}, nats; {rule})"
    return "\n".join(
        [title, fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines), "", advice_sentence(advice)]
    )


def advice_chart(advice: Advice):
    import altair as alt

    df = advice.table.with_columns(pl.col("gap_lo").fill_nan(None), pl.col("gap_hi").fill_nan(None)).to_pandas()
    order = advice.table["teacher"].to_list()
    colour = alt.Color(
        "verdict:N", scale=alt.Scale(domain=list(VERDICTS), range=["#2ca02c", "#7f7f7f", "#d62728"]), title="verdict"
    )
    x = alt.X("teacher:N", sort=order, title="teacher modality")
    base = alt.Chart(df)
    bars = base.mark_errorbar(ticks=True).encode(
        x=x,
        y=alt.Y("gap_lo:Q", title="gap = I(H_T;H_S) − I(H_S;Y) (nats), 95% t interval"),
        y2="gap_hi:Q",
        color=colour,
    )
    points = base.mark_point(filled=True, size=80).encode(
        x=x,
        y="gap:Q",
        color=colour,
        tooltip=[
            "teacher",
            "verdict",
            alt.Tooltip("gap:Q", format="+.3f"),
            alt.Tooltip("gap_se:Q", format=".3f"),
            alt.Tooltip("i_ts:Q", format=".3f"),
            alt.Tooltip("i_sl:Q", format=".3f"),
            alt.Tooltip("i_tl:Q", format=".3f"),
            "n_patients",
        ],
    )
    zero = (
        alt.Chart(pl.DataFrame({"zero": [0.0]}).to_pandas())
        .mark_rule(strokeDash=[4, 4], color="black")
        .encode(y="zero:Q")
    )
    return (zero + bars + points).properties(
        title=f"CCH gap per teacher, student {advice.student} ({advice.estimator}, {advice.repeats} repeats)",
        width=max(240, 70 * len(order)),
        height=300,
    )


def write_advice_report(advice: Advice, out_dir: str | Path) -> Path:
    """advice.html (offline, inline Vega), advice.png and advice.csv in `out_dir`; returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chart = advice_chart(advice)
    html = out / "advice.html"
    chart.save(str(html), inline=True)
    chart.save(str(out / "advice.png"))
    advice.table.write_csv(out / "advice.csv")
    return html
