"""From a study, a profile and command-line overrides to the list of trials to run."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cchsweep.errors import UsageError
from cchsweep.study import Study

MAX_TRIALS = 100_000  # grid points per run (the paper's largest grid has 1,440)


@dataclass(frozen=True)
class TrialSpec:
    key: str
    study: str
    profile: str
    params: dict[str, Any]  # this trial's point on the grid
    settings: dict[str, Any]  # fixed settings, shared by every trial of the run

    def to_dict(self) -> dict[str, Any]:
        """The form a Ray trial carries and cchsweep.execute reads."""
        return {
            "key": self.key,
            "study": self.study,
            "profile": self.profile,
            "params": self.params,
            "settings": self.settings,
        }


@dataclass(frozen=True)
class Plan:
    study: Study
    profile: str
    grid: dict[str, list]
    settings: dict[str, Any]
    overridden: dict[str, Any]  # settings changed from the profile by --set
    trials: list[TrialSpec]


def plan(study: Study, profile: str, overrides: Sequence[str] = (), seeds: int | None = None) -> Plan:
    if profile not in study.profiles:
        raise UsageError(f"study {study.name} has no profile {profile!r}; choose one of {', '.join(study.profiles)}")
    base = study.profiles[profile]
    grid: dict[str, Sequence] = {k: list(v) for k, v in base.grid.items()}
    settings = dict(base.settings)
    overridden: dict[str, Any] = {}
    if seeds is not None:
        if seeds < 1:
            raise UsageError(f"--seeds {seeds}: give at least 1 seed")
        if "seed" not in grid:
            raise UsageError(f"study {study.name} has no seed axis; drop --seeds")
        grid["seed"] = range(seeds)  # a list only once the grid's size is checked
    given: dict[str, str] = {}
    for item in overrides:
        name, values = _parse_override(study, item)
        if name in given:
            raise UsageError(f"--set {name} is given twice ({given[name]}, {item}): give it once, e.g. {name}=a,b")
        given[name] = item
        if name == "seed" and seeds is not None:
            raise UsageError(f"--seeds {seeds} and --set {item} both set the seeds: give one of them")
        if name in grid:
            if len({repr(v) for v in values}) < len(values):  # a grid point twice (a many-setting dedupes)
                raise UsageError(f"--set {item} repeats a value; give each value once")
            grid[name] = values
        elif len(values) != 1 and not study.params[name].many:
            raise UsageError(f"--set {item}: {name} is a fixed setting of this study and takes one value")
        else:
            value = ",".join(dict.fromkeys(map(str, values))) if len(values) > 1 else values[0]  # many: "a,b"
            if value != settings[name]:
                settings[name] = overridden[name] = value
    names = sorted(grid)
    points = math.prod(len(grid[n]) for n in names)
    if points > MAX_TRIALS:  # checked before the grid is built: a billion seeds would fill the memory
        raise UsageError(
            f"the grid has {points:,} points ({' x '.join(f'{len(grid[n]):,} {n}' for n in names)}); "
            f"a run holds at most {MAX_TRIALS:,}: give fewer --seeds or --set values"
        )
    axes = {n: list(v) for n, v in grid.items()}
    specs = []
    for combo in itertools.product(*(axes[n] for n in names)):
        params = dict(zip(names, combo))
        if study.validate is not None:
            try:
                study.validate({**settings, **params})
            except ValueError as exc:
                raise UsageError(f"{study.name}: {exc}") from None
        specs.append(
            TrialSpec(trial_key(study.name, profile, params, overridden), study.name, profile, params, settings)
        )
    return Plan(study, profile, axes, settings, overridden, specs)


def _parse_override(study: Study, item: str) -> tuple[str, list]:
    if "=" not in item:
        raise UsageError(f"--set {item!r} is malformed; write --set name=value or name=v1,v2")
    name, _, text = item.partition("=")
    name = name.strip()
    if not name:
        raise UsageError(f"--set {item!r} names no parameter; write --set name=value")
    if name not in study.params:
        raise UsageError(
            f"--set {name}: study {study.name} has no parameter {name!r}; it has {', '.join(sorted(study.params))}"
        )
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise UsageError(f"--set {item!r} gives no value; write --set {name}=value")
    if not all(parts):
        raise UsageError(f"--set {item!r} has an empty value between commas; write --set {name}=v1,v2")
    try:
        values = [study.params[name].parse(name, p) for p in parts]
    except ValueError as exc:
        raise UsageError(f"--set {item}: {exc}") from None
    return name, values


def trial_key(study: str, profile: str, params: Mapping[str, Any], overridden: Mapping[str, Any]) -> str:
    """Readable and deterministic: study/profile/k=v,... plus /k=v,... for changed settings."""
    key = f"{study}/{profile}/" + ",".join(f"{k}={_fmt(params[k])}" for k in sorted(params))
    if overridden:
        key += "/" + ",".join(f"{k}={_fmt(overridden[k])}" for k in sorted(overridden))
    return key


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(float(f"{value:.10g}"))
    return str(value)


MEMORY_BUDGET = 4 * 1024**3  # bytes per bundle on a CPU: its data, models, optimizer state and activations
# ... and per bundle holding a whole GPU: any GPU of 12 GB or more has room for 8 GiB, and one MNIST
# paper grid fits in it (mnist_blur's 100 points: 4.0 GiB by its bundle_bytes), so a GPU trains it as
# one KD stack of 100, not two of 50: half the steps, where a step costs its kernel launches
GPU_MEMORY_BUDGET = 8 * 1024**3


def memory_budget(gpu_fraction: float) -> int:
    """Bytes one bundle may take: MEMORY_BUDGET on CPUs; on GPUs, its share of GPU_MEMORY_BUDGET."""
    return int(GPU_MEMORY_BUDGET * min(1.0, gpu_fraction)) if gpu_fraction > 0 else MEMORY_BUDGET


QUEUE_PER_SLOT = 3  # bundles per CPU worker: a queue that lets uneven bundle costs even out


def default_bundle_size(study: Study, specs: Sequence[TrialSpec], slots: int, gpu: bool = False) -> int:
    """The bundle size a run uses unless told: every free slot busy, memory capping bundles further
    (`bundles`, which also cuts them at the outermost vary axis it can).

    On GPUs (a whole GPU per bundle, where big stacks pay) an even split over the slots. On CPUs,
    where a stack gains little, the size whose bundles take the fewest waves of points over the
    workers; of equals, when the grid holds points that can never share a bundle (another network
    or data set, e.g. TCGA's two teacher modalities, whose bundles cost 4x each other), a queue of
    QUEUE_PER_SLOT bundles per worker that evens their costs out, else the fewest bundles.
    """
    n = len(specs)
    if study.bundle is None or n == 0:
        return 1
    slots = max(1, slots)
    even = -(-n // slots)
    if gpu:
        return even
    groups = _groups(study, specs)
    lengths = {len(g) for g in groups}
    sizes = {even} | {-(-length // c) for length in lengths for c in range(1, min(length, 64) + 1)}
    best: tuple[tuple[int, int, int], int] | None = None
    for size in sorted(s for s in sizes if s <= even):
        packed = bundles(study, specs, size)
        count = len(packed)
        queue = 0 if len(groups) > 1 and count >= QUEUE_PER_SLOT * slots else 1
        score = (-(-count // slots) * max(map(len, packed)), queue, count)
        if best is None or score < best[0]:
            best = (score, size)
    return best[1] if best is not None else even


def group_key(study: Study, params: Mapping[str, Any]) -> tuple:
    """Equal for points that may share a bundle: their parameters outside `bundle_vary`."""
    return tuple(sorted((k, repr(v)) for k, v in params.items() if k not in study.bundle_vary))


def _groups(study: Study, specs: Sequence[TrialSpec]) -> list[list[TrialSpec]]:
    """Points that may share a bundle, each group sorted by the `bundle_vary` axes."""
    groups: dict[tuple, list[TrialSpec]] = {}
    for s in specs:
        groups.setdefault(group_key(study, s.params), []).append(s)
    return [sorted(g, key=lambda s: tuple(s.params.get(k, 0) for k in study.bundle_vary)) for g in groups.values()]


def _even_runs(items: list, count: int) -> list[list]:
    """`items` in `count` consecutive runs whose lengths differ by at most one, longer ones first."""
    cuts = [-(-j * len(items) // count) for j in range(count + 1)]
    return [items[cuts[j] : cuts[j + 1]] for j in range(count)]


def _blocks(members: list[TrialSpec], axes: Sequence[str]) -> list[list[TrialSpec]]:
    """Runs of consecutive points equal on `axes` (the outer vary axes)."""
    out: list[list[TrialSpec]] = []
    for s in members:
        if out and all(out[-1][0].params.get(a) == s.params.get(a) for a in axes):
            out[-1].append(s)
        else:
            out.append([s])
    return out


def _pack(blocks: list[list[TrialSpec]], size: int) -> list[list[TrialSpec]] | None:
    """Consecutive blocks into the fewest bundles of at most `size` points, spread evenly by count
    (greedy where even spreading would overfill one); None if a block is bigger than `size`."""
    if max(map(len, blocks)) > size:
        return None
    greedy: list[list[TrialSpec]] = []
    for b in blocks:
        if not greedy or len(greedy[-1]) + len(b) > size:
            greedy.append([])
        greedy[-1].extend(b)
    spread: list[list[TrialSpec]] = [sum(run, []) for run in _even_runs(blocks, len(greedy))]
    return spread if max(map(len, spread)) <= size else greedy


def bundles(study: Study, specs: Sequence[TrialSpec], size: int, budget: int = MEMORY_BUDGET) -> list[list[TrialSpec]]:
    """Group grid points that may train together: equal in every parameter outside the study's
    `bundle_vary` axes, ordered by those axes (so a bundle shares its outer ones, e.g. the seed),
    at most `size` points and `budget` bytes (study.bundle_bytes) each, of even sizes. Of the
    packings into the fewest bundles `size` allows, the one cut at the outermost axis (whole seeds
    where it can: points of one seed share its teachers, which a seed cut in two builds in one
    bundle while the other waits for them). A study without a bundle function runs one point per
    bundle."""
    if study.bundle is None or size <= 1:
        return [[s] for s in specs]
    vary = study.bundle_vary
    out: list[list[TrialSpec]] = []
    for members in _groups(study, specs):
        fewest = -(-len(members) // size)
        for level in range(len(vary) + 1):  # level len(vary): single points, always packs
            packed = _pack(_blocks(members, vary[:level]) if level < len(vary) else [[s] for s in members], size)
            if packed is not None and len(packed) == fewest:
                break
        for group in packed or [members]:
            out.extend(_under_budget(study, group, budget))
    return out


def _under_budget(study: Study, members: list[TrialSpec], budget: int) -> list[list[TrialSpec]]:
    """`members` as one bundle if it fits the memory budget, else in the fewest even runs that do."""
    for count in range(1, len(members) + 1):
        runs = _even_runs(members, count)
        if all(_bytes(study, run) <= budget for run in runs):
            return runs
    return [[s] for s in members]


def _bytes(study: Study, specs: Sequence[TrialSpec]) -> int:
    if study.bundle_bytes is None:
        return 0
    return study.bundle_bytes([{**s.settings, **s.params} for s in specs])
