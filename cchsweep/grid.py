"""From a study, a profile and command-line overrides to the list of trials to run."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cchsweep.errors import UsageError
from cchsweep.study import Study


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
    grid = {k: list(v) for k, v in base.grid.items()}
    settings = dict(base.settings)
    overridden: dict[str, Any] = {}
    if seeds is not None:
        if seeds < 1:
            raise UsageError(f"--seeds {seeds}: give at least 1 seed")
        if "seed" not in grid:
            raise UsageError(f"study {study.name} has no seed axis; drop --seeds")
        grid["seed"] = list(range(seeds))
    for item in overrides:
        name, values = _parse_override(study, item)
        if name in grid:
            grid[name] = values
        elif len(values) != 1 and not study.params[name].many:
            raise UsageError(f"--set {item}: {name} is a fixed setting of this study and takes one value")
        else:
            value = ",".join(dict.fromkeys(map(str, values))) if len(values) > 1 else values[0]  # many: "a,b"
            if value != settings[name]:
                settings[name] = overridden[name] = value
    specs = []
    names = sorted(grid)
    for combo in itertools.product(*(grid[n] for n in names)):
        params = dict(zip(names, combo))
        if study.validate is not None:
            try:
                study.validate({**settings, **params})
            except ValueError as exc:
                raise UsageError(f"{study.name}: {exc}") from None
        specs.append(
            TrialSpec(trial_key(study.name, profile, params, overridden), study.name, profile, params, settings)
        )
    return Plan(study, profile, grid, settings, overridden, specs)


def _parse_override(study: Study, item: str) -> tuple[str, list]:
    if "=" not in item:
        raise UsageError(f"--set {item!r} is malformed; write --set name=value or name=v1,v2")
    name, _, text = item.partition("=")
    name = name.strip()
    if name not in study.params:
        raise UsageError(
            f"--set {name}: study {study.name} has no parameter {name!r}; it has {', '.join(sorted(study.params))}"
        )
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise UsageError(f"--set {item!r} gives no value; write --set {name}=value")
    try:
        return name, [study.params[name].parse(name, p) for p in parts]
    except ValueError as exc:
        raise UsageError(f"--set {item}: {exc}") from None


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


MEMORY_BUDGET = 4 * 1024**3  # bytes per bundle: its data, models, optimizer state and activations


def default_bundle_size(study: Study, n_points: int, slots: int) -> int:
    """Spread the points over every free slot, so no worker idles (memory caps bundles further)."""
    return 1 if study.bundle is None else max(1, -(-n_points // max(1, slots)))


def bundles(study: Study, specs: Sequence[TrialSpec], size: int, budget: int = MEMORY_BUDGET) -> list[list[TrialSpec]]:
    """Group grid points that may train together: equal in every parameter outside the study's
    `bundle_vary` axes, ordered by those axes (so a bundle shares its outer ones, e.g. the seed),
    at most `size` points and `budget` bytes (study.bundle_bytes) each, of even sizes. A study
    without a bundle function runs one point per bundle."""
    if study.bundle is None or size <= 1:
        return [[s] for s in specs]
    vary = study.bundle_vary
    groups: dict[tuple, list[TrialSpec]] = {}
    for s in specs:
        fixed = tuple(sorted((k, repr(v)) for k, v in s.params.items() if k not in vary))
        groups.setdefault(fixed, []).append(s)
    out: list[list[TrialSpec]] = []
    for members in groups.values():
        members = sorted(members, key=lambda s: tuple(s.params.get(k, 0) for k in vary))
        target = -(-len(members) // -(-len(members) // size))  # even sizes, none above `size`
        current: list[TrialSpec] = []
        for spec in members:
            if current and (len(current) >= target or _bytes(study, [*current, spec]) > budget):
                out.append(current)
                current = []
            current.append(spec)
        out.append(current)
    return out


def _bytes(study: Study, specs: Sequence[TrialSpec]) -> int:
    if study.bundle_bytes is None:
        return 0
    return study.bundle_bytes([{**s.settings, **s.params} for s in specs])
