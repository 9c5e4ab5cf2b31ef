"""What a study is: its parameters, profiles, resources and trial function.

This module imports nothing else from the package, so search-space modules and
trial functions can depend on it without import cycles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Param:
    """A typed parameter with an inclusive range; grid axes and fixed settings alike."""

    kind: type  # int, float or str
    lo: float | None = None
    hi: float | None = None
    help: str = ""
    choices: tuple[str, ...] = ()
    many: bool = False  # a fixed setting that takes several values at once, kept as "a,b" (mi_estimator)

    def parse(self, name: str, text: str) -> Any:
        """Turn command-line text into a validated value, or raise ValueError."""
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"{name}={text!r} is not a valid {self.kind.__name__}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}={text} is not a finite number")
        self.check(name, value)
        return value

    def check(self, name: str, value: Any) -> None:
        if self.choices and value not in self.choices:
            raise ValueError(f"{name}={value!r} is not one of {', '.join(self.choices)}")
        if self.lo is not None and value < self.lo:
            raise ValueError(f"{name}={value} is below its minimum {self.lo}")
        if self.hi is not None and value > self.hi:
            raise ValueError(f"{name}={value} is above its maximum {self.hi}")


@dataclass(frozen=True)
class Cost:
    """What a whole profile costs on 2 CPU cores (the CI machine), for the estimate a run prints."""

    seconds: float
    measured: bool  # True: timed end to end; False: estimated from unit costs (README, Performance)
    note: str = ""
    # the profile run with `--set mi_estimator=` but lmi (which dominates a CPU run's MI), where known
    without_lmi: Cost | None = None


@dataclass(frozen=True)
class Profile:
    """A named configuration: grid axes (lists of values) and fixed settings (scalars)."""

    grid: Mapping[str, list]
    settings: Mapping[str, Any]
    cost: Cost | None = None


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0  # fraction of a GPU per trial, used only where the cluster has GPUs


@dataclass
class MIValue:
    """One mutual-information quantity of one trial, in nats."""

    quantity: str  # "i_ts", "i_sl" or "i_tl"
    estimator: str
    value: float
    se: float | None = None  # standard error over repeats; None for a single estimate
    repeats: int = 1
    truth: float | None = None  # closed-form value where one exists
    n_samples: int | None = None


@dataclass
class TrialOutput:
    """What a trial function returns; the engine turns it into database rows."""

    metrics: dict[str, dict[str, float]]  # model ("teacher", "nokd", "kd") -> metric -> value
    gain_metric: str | None  # the metric kd_gain is computed on, e.g. "mse" or "acc"
    kd_gain: float | None  # positive means KD helped; None only for task 'calibration' (no KD)
    mi: list[MIValue] = field(default_factory=list)


class TrialContext(Protocol):
    """What the engine hands a trial function besides its parameters."""

    device: str
    threads: int
    data_dir: Path | None  # where real data sets live (None for studies that need none)

    @property
    def cache_dir(self) -> Path:
        """The run's artifact cache, for derived data such as MNIST-M."""

    def cached(self, kind: str, config: Mapping[str, Any], build: Callable[[], Any]) -> Any:
        """Return the artifact for (kind, config), building and storing it once."""

    def cached_many(
        self, items: Sequence[tuple[str, Mapping[str, Any]]], build: Callable[[list[int]], list[Any]]
    ) -> list[Any]:
        """The artifacts of many (kind, config)s; build(missing indices) makes the absent ones in one go."""

    def progress(self, text: str) -> None:
        """A line for the live progress (throttled by the engine)."""


class CheckData(Protocol):
    """A study's data check, run once in the driver before any trial."""

    def __call__(self, data_dir: Path, points: list[Mapping[str, Any]], *, dry_run: bool = False) -> list[str]:
        """Verify the data the points (each trial's settings and parameters) read, or raise UsageError.

        A run downloads what is missing where allowed and returns []. A dry run, which touches nothing,
        downloads and creates nothing: it verifies what is there and returns one line per data set a
        real run would download, so the user sees that it will rather than that it would stop.
        """
        ...


BASELINES = ("teacher or no-KD student", "teachers and no-KD students")  # what a bundle trains first


def counted(n: int, one: str, many: str | None = None) -> str:
    """'1 KD student', '25 KD students': a count for the live progress."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


TrialFn = Callable[[Mapping[str, Any], Mapping[str, Any], TrialContext], TrialOutput]
# train(recipe, members, device) -> trained models: cchsweep.stack.train_stacked, or train_single (reference)
TrainFn = Callable[..., list]
# bundle(points, settings, ctx) -> one TrialOutput per point, in order; trains their models as stacks
BundleFn = Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any], TrialContext], list[TrialOutput]]


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    reproduces: str  # the paper figure or table
    task: str  # "regression", "classification", or "calibration" (MI estimators on known MI, no KD)
    params: Mapping[str, Param]  # every grid axis and setting, with its type and range
    profiles: Mapping[str, Profile]
    trial: TrialFn
    resources: Resources = Resources()
    # cross-parameter checks that one Param cannot express; raise ValueError
    validate: Callable[[Mapping[str, Any]], None] | None = None
    reference: Mapping[str, Any] = field(default_factory=dict)  # the paper's reported values
    closed_form: bool = False  # trials store closed-form MI beside the estimates (mi.truth)
    # fixed settings that also get a typed column in the `results` view (grid axes always do)
    columns: tuple[str, ...] = ()
    # Run once in the driver before any trial: verify (or download) the data the points (each trial's
    # settings and parameters) read, raise UsageError. See CheckData for a dry run.
    check_data: CheckData | None = None
    # Run in the driver once the trials to run are known, before any starts: build derived data
    # they share (data_dir, cache_dir, each trial's settings and parameters), its progress shown here.
    prepare: Callable[[Path | None, Path, list[Mapping[str, Any]]], None] | None = None
    # Many grid points per Ray trial: `bundle` trains them together. Points of one bundle differ
    # only in the `bundle_vary` axes (ordered by them, outermost first); `bundle_bytes(points)`
    # estimates a bundle's memory (the planner keeps bundles under its budget).
    bundle: BundleFn | None = None
    bundle_vary: tuple[str, ...] = ()
    bundle_bytes: Callable[[Sequence[Mapping[str, Any]]], int] | None = None

    def grid_size(self, profile: str) -> int:
        size = 1
        for values in self.profiles[profile].grid.values():
            size *= len(values)
        return size
