"""Adaptive boundary search: find where the CCH flips along one parameter with few trials.

Grids spend most trials far from the crossing. Here Ray Tune's OptunaSearch (TPE) minimises
|target| over one float parameter, so its samples gather around the zero crossing, and
analysis.boundary.crossing reads the answer off the evaluated points. A trial may estimate the MI
with several estimators (the quick and paper profiles run lmi, KSG and MINE); the search follows one
estimator's gap, the first of mi_estimator, and reads its crossing from that estimator's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from cchsweep.errors import UsageError
from cchsweep.grid import Plan, trial_key
from cchsweep.mi.triplet import estimator_names
from cchsweep.record import RESULT_KEY, TrialRecord, dump_records

TARGETS = {
    "mi_gap": "the estimated MI gap i_ts - i_sl",
    "mi_gap_truth": "the closed-form gap (synthetic studies)",
    "kd_gain": "the KD gain",
}


@dataclass(frozen=True)
class BoundarySearch:
    param: str
    lo: float
    hi: float
    budget: int
    target: str
    base: dict  # every other axis at its first profile value
    estimator: str | None = None  # whose gap mi_gap follows, and whose rows the crossing reads

    @property
    def mode(self) -> str:
        return f"boundary:{self.param}:{self.target}"

    @property
    def what(self) -> str:
        """The target in words: 'mi_gap (lmi)' names the estimator whose gap is searched."""
        return f"{self.target} ({self.estimator})" if self.target == "mi_gap" and self.estimator else self.target


MAX_BUDGET = 1_000


def make_search(plan: Plan, param: str | None, value_range: str | None, budget: int, target: str) -> BoundarySearch:
    study = plan.study
    if not param or not value_range:
        raise UsageError("--search boundary needs --param NAME and --range LO:HI")
    if param not in plan.grid or study.params[param].kind is not float:
        floats = [n for n in plan.grid if study.params[n].kind is float]
        raise UsageError(f"--param {param}: search a float grid axis of {study.name}: {', '.join(floats)}")
    try:
        lo, hi = (float(v) for v in value_range.split(":"))
    except ValueError:
        raise UsageError(f"--range {value_range!r}: write LO:HI, e.g. --range 0:0.7") from None
    if not lo < hi:
        raise UsageError(f"--range {value_range}: LO must be below HI")
    if target not in TARGETS:
        raise UsageError(f"--target {target!r}: choose one of {', '.join(TARGETS)}")
    if target == "mi_gap_truth" and not study.closed_form:
        raise UsageError(f"--target mi_gap_truth: {study.name} has no closed-form MI; use mi_gap or kd_gain")
    if budget < 4:
        raise UsageError(f"--budget {budget}: give at least 4 trials")
    if budget > MAX_BUDGET:
        raise UsageError(f"--budget {budget}: give at most {MAX_BUDGET:,} trials (a boundary takes tens)")
    profile_grid = study.profiles[plan.profile].grid
    asked = [n for n, v in plan.grid.items() if n != param and len(v) > 1 and list(v) != list(profile_grid.get(n, ()))]
    if asked:  # --seeds N or --set AXIS=a,b: once silently cut to the first value
        name = asked[0]
        raise UsageError(
            f"{name} = {', '.join(map(str, plan.grid[name]))} (--seeds or --set): a search holds every axis but "
            f"{param} at one value; drop {'--seeds' if name == 'seed' else 'the extra values'} and give one "
            f"with --set {name}=VALUE"
        )
    base = {name: values[0] for name, values in plan.grid.items() if name != param}
    for edge in (lo, hi):
        try:
            study.params[param].check(param, edge)
            if study.validate is not None:
                study.validate({**plan.settings, **base, param: edge})
        except ValueError as exc:
            raise UsageError(f"--range {value_range}: {exc}") from None
    settings = {**plan.settings, **base}
    estimator = estimator_names(settings)[0] if "mi_estimator" in settings else None
    return BoundarySearch(param, lo, hi, budget, target, base, estimator)


def search_trainable(config: dict) -> None:
    """A Tune trainable: one sampled value of the parameter -> one stored trial + its |target|."""
    from ray import tune

    from cchsweep.execute import run_spec

    spec = search_spec(config)
    record = run_spec(spec, config["engine"])
    value = target_value(record, config["search"]["target"], config["search"]["estimator"])
    if value is None:
        raise RuntimeError(f"trial {spec['key']} has no {config['search']['target']}")
    tune.report({RESULT_KEY: dump_records([record]), "objective": abs(value)})


def search_spec(config: dict) -> dict:
    """The trial spec for one sampled value (4 decimals keep keys readable)."""
    s = config["search"]
    params = {**s["base"], s["param"]: round(float(config["x"]), 4)}
    key = trial_key(s["study"], s["profile"], params, s["overridden"]) + "/search"
    return {
        "key": key,
        "study": s["study"],
        "profile": s["profile"],
        "params": params,
        "settings": s["settings"],
        "mode": s["mode"],
    }


def target_value(record: TrialRecord, target: str, estimator: str | None = None) -> float | None:
    """The searched value of one trial: its KD gain, or one estimator's gap (estimated or closed-form)."""
    if target == "kd_gain":
        return record.kd_gain
    return record.gap("truth" if target == "mi_gap_truth" else "value", estimator)
