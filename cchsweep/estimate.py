"""What a run is about to do and how long it should take on this machine, said before it starts
(`cchsweep run`, and `--dry-run`, which says it and stops).

The estimate comes, in order of trust, from (1) this study's trials with the same profile and
settings already in the database (their `seconds`, each a share of its bundle's wall time, were
measured on the machine that ran them), when every trial left has stored ones of its group (equal
outside `bundle_vary`: another group may be another network or data set, e.g. TCGA's RPPA
pairing at ~4.5x mRNA's cost), else (2) the profile's recorded cost (`Profile.cost`: wall
seconds of the whole profile on 2 CPU cores, measured end to end or estimated from unit costs,
scaled to the trials left and the cores here), else nothing, said so. Settings changed with --set
make (2) a rough guide, and it says that too; a profile that records its cost without lmi (which
dominates a CPU run's MI) gives that figure to a run that leaves lmi out (`--set
mi_estimator=ksg,mine`). No GPU cost is recorded yet: on a GPU the CPU figure is an upper bound.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import duckdb

from cchsweep.errors import UsageError
from cchsweep.grid import Plan, TrialSpec, bundles, default_bundle_size, group_key
from cchsweep.mi.triplet import estimator_names
from cchsweep.store import Store

REFERENCE_CPUS = 2  # Profile.cost is for this many cores (the CI machine)


def minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def stored_keys(db: Path, plan: Plan, force: bool = False) -> set[str]:
    """The plan's keys already stored as ok; none where the file is absent or a DuckDB file without
    tables (the run creates the schema). A file the run would refuse (damaged, foreign, of an unknown
    schema version) is refused here too, with the same UsageError, and keeps its bytes; so are points
    stored with other settings (done_with_same_settings), unless `force` reruns every point."""
    store = Store(db)
    if store.inspect() is None:  # read-only
        return set()
    if force:  # every point reruns: none is done, and none is refused
        return set()
    return done_with_same_settings(store, plan)


def done_with_same_settings(store: Store, plan: Plan) -> set[str]:
    """The plan's keys stored as ok, each checked to have run with the plan's settings. A key names
    the grid point and the --set changes, not the profile's own settings, which a release may change
    (the smoke profile went from 30 epochs to 10): such points are refused in one line, not skipped
    as done, and not replaced, which would lose the user's results unasked."""
    wanted = json.loads(json.dumps(plan.settings))  # as stored: JSON types
    stored = store.stored_settings([t.key for t in plan.trials])
    other = {k: s for k, s in stored.items() if s != wanted}
    if not other:
        return set(stored)
    key, settings = next(iter(sorted(other.items())))
    changes = "; ".join(
        f"{n} {settings.get(n, '(unset)')} now {wanted.get(n, '(unset)')}"
        for n in sorted(set(settings) | set(wanted))
        if settings.get(n) != wanted.get(n)
    )
    raise UsageError(
        f"{len(other)} of {plan.study.name}'s {plan.profile} points are stored in {store.path} with other "
        f"settings than this profile's ({changes}; e.g. {key}): `cchsweep run {plan.study.name} --profile "
        f"{plan.profile} --db {shlex.quote(str(store.path))} --force` (with this run's --seeds and --set) reruns "
        f"and replaces them, or give another --db"
    )


def _group(plan: Plan, params: dict) -> tuple:
    """Trials that may share a bundle (equal outside bundle_vary) cost alike; others need not (TCGA's
    RPPA pairing costs ~4.5x mRNA's). A study without bundles is one group."""
    return group_key(plan.study, params) if plan.study.bundle_vary else ()


def _history(db: Path, plan: Plan) -> dict[tuple, list[float]]:
    """Seconds of this study's ok trials with the same profile and settings, by group."""
    if not db.exists() or not plan.trials:
        return {}
    try:
        with Store(db).connect(read_only=True) as con:
            rows = con.execute(
                "SELECT params, settings, seconds FROM trials WHERE study = ? AND profile = ? AND status = 'ok' "
                "AND seconds IS NOT NULL",
                [plan.study.name, plan.profile],
            ).fetchall()
    except duckdb.Error:  # not a results database: the run says so
        return {}
    settings = json.dumps(plan.trials[0].settings, sort_keys=True)
    out: dict[tuple, list[float]] = {}
    for params, text, seconds in rows:
        if json.dumps(json.loads(text), sort_keys=True) == settings:
            out.setdefault(_group(plan, json.loads(params)), []).append(seconds)
    return out


def estimate(plan: Plan, db: Path, todo: list[TrialSpec], cpus: int) -> tuple[float | None, str]:
    """(seconds or None, where the figure comes from) for the `todo` trials on `cpus` cores."""
    n_todo = len(todo)
    if n_todo == 0:
        return 0.0, "nothing to run"
    slots = max(1, int(cpus // plan.study.resources.cpu))
    history = _history(db, plan)
    groups = [_group(plan, t.params) for t in todo]
    if history and all(g in history for g in groups):  # stored trials like every one left
        n = sum(len(history[g]) for g in set(groups))
        seconds = sum(sum(history[g]) / len(history[g]) for g in groups)
        return (
            seconds / slots,
            f"{n} trials of this study, profile and settings already in {db.name} took "
            f"{seconds / n_todo:.1f} s each on average",
        )
    profile = plan.study.profiles[plan.profile]
    cost, what, unchanged = profile.cost, f"the {plan.profile} profile", set()
    if cost is None:
        return None, f"none recorded for profile {plan.profile}; a smoke run shows the cost per trial"
    if cost.without_lmi is not None and _drops_lmi(profile.settings, plan.settings):
        # lmi is most of such a profile's cost on a CPU: what the profile took without it
        cost, what, unchanged = cost.without_lmi, f"the {plan.profile} profile without lmi", {"mi_estimator"}
    how = "measured" if cost.measured else "estimated from unit costs"
    basis = f"{what} {how}: {minutes(cost.seconds)} on {REFERENCE_CPUS} CPU cores"
    if cost.note:
        basis += f" ({cost.note})"
    if set(plan.overridden) - unchanged or plan.grid != dict(profile.grid):
        basis += "; --set or --seeds changed the profile, so take this as a rough guide"
    # per trial of the profile's own grid (--seeds and grid --set change how many are left, not that)
    per_trial = cost.seconds / plan.study.grid_size(plan.profile)
    return per_trial * n_todo * REFERENCE_CPUS / cpus, basis  # cores in parallel


def _drops_lmi(profile_settings, settings) -> bool:
    """The run's MI estimators leave out the profile's lmi (--set mi_estimator=ksg,mine). A plan's
    settings are its profile's with the --set changes, so both have mi_estimator or neither."""
    if "mi_estimator" not in profile_settings:
        return False
    return "lmi" in estimator_names(profile_settings) and "lmi" not in estimator_names(settings)


def plan_lines(plan: Plan, db: Path, done: set[str], bundle_size: int | None, cpus: int | None = None) -> list[str]:
    """The plan in a few lines and the estimate; reads the database (if any) read-only."""
    return plan_and_estimate(plan, db, done, bundle_size, cpus)[0]


def plan_and_estimate(
    plan: Plan, db: Path, done: set[str], bundle_size: int | None, cpus: int | None = None
) -> tuple[list[str], float | None]:
    """plan_lines' lines and the estimate's seconds (None where nothing is recorded)."""
    cpus = cpus or os.cpu_count() or 1
    todo = [t for t in plan.trials if t.key not in done]
    slots = max(1, int(cpus // plan.study.resources.cpu))
    size = bundle_size or default_bundle_size(plan.study, todo, slots)
    groups = bundles(plan.study, todo, size)
    axes = "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in sorted(plan.grid.items()))
    lines = [
        f"plan: {plan.study.name} ({plan.profile}): {len(plan.trials)} trials, {len(done)} already stored, "
        f"{len(todo)} to run in {len(groups)} bundles on {cpus} CPUs",
        f"grid: {axes}",
    ]
    if plan.overridden:
        lines.append("overridden: " + ", ".join(f"{k}={v}" for k, v in sorted(plan.overridden.items())))
    seconds, basis = estimate(plan, db, todo, cpus)
    if seconds is None or not todo:
        return [*lines, f"estimate: {basis}"], seconds
    gpu = " (a GPU is visible: the CPU figure is an upper bound, no GPU cost is recorded)" if _has_cuda() else ""
    return [*lines, f"estimate: ~{minutes(seconds)} on this machine{gpu}, from {basis}"], seconds


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 -- an estimate never fails a run
        return False
