"""The Ray Tune trainable: runs a bundle of grid points in a worker and reports one TrialRecord per point.

Trials never open the database: the record travels back to the driver in the Tune result
(cchsweep.record serialises it), where the single writer (cchsweep.writer) stores it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from cchsweep.cache import ArtifactCache
from cchsweep.mi.triplet import estimator_names
from cchsweep.raystart import worker_device
from cchsweep.record import PROGRESS_KEY, RESULT_KEY, CacheEvent, TrialRecord, dump_records


@dataclass
class WorkerContext:
    """The TrialContext a trial function sees inside a Ray worker."""

    cache: ArtifactCache
    device: str
    threads: int
    data_dir: Path | None = None
    report: Callable[[str], None] | None = None  # sends a progress line to the driver
    min_interval: float = 10.0  # seconds between progress lines of one kind
    _last: float = field(default=float("-inf"), repr=False)
    _kind: str = field(default="", repr=False)

    @property
    def cache_dir(self) -> Path:
        return self.cache.root

    def cached(self, kind: str, config: Mapping[str, Any], build: Callable[[], Any]) -> Any:
        return self.cache.cached(kind, config, build)

    def cached_many(self, items: Sequence[tuple[str, Mapping[str, Any]]], build) -> list[Any]:
        return self.cache.cached_many(items, build)

    def progress(self, text: str) -> None:
        """Lines of one kind (an epoch counter's: the same text up to its numbers) at most every
        min_interval seconds; a line of a new kind (a new phase: training KD students, estimating
        MI) at once, so the live view never shows a finished phase for the length of the next."""
        now = time.monotonic()
        kind = re.sub(r"\d+", "#", text)
        if self.report is not None and (kind != self._kind or now - self._last >= self.min_interval):
            self._last, self._kind = now, kind
            self.report(text)


FAULT_ENV = "CCHSWEEP_INJECT_FAULT"


def trainable(config: dict) -> None:
    """One Ray trial: a bundle of grid points (config["bundle"], TrialSpec dicts); reports their records."""
    from ray import tune

    specs = config["bundle"]
    faults = [f for f in (_injected_fault(spec["key"], config["engine"].get("fault")) for spec in specs) if f]
    if faults:
        raise RuntimeError(faults[0])
    records = run_bundle(specs, config["engine"], report=lambda text: tune.report({PROGRESS_KEY: text}))
    tune.report({RESULT_KEY: dump_records(records)})


def _injected_fault(key: str, spec: str | None) -> str | None:
    """Fault injection for the failure tests: the driver's $CCHSWEEP_INJECT_FAULT = "SUBSTRING:N:DIR".

    A grid point whose key contains SUBSTRING fails its bundle on the first N attempts (counted per
    key in files under DIR, so retries in fresh worker processes see the count); N = -1 fails every
    attempt. The driver passes it in the trial config, so it reaches workers on every node.
    """
    if not spec:
        return None
    substring, n, directory = spec.split(":", 2)
    if substring not in key:
        return None
    counter = Path(directory) / hashlib.sha256(key.encode()).hexdigest()[:16]
    with counter.open("a") as f:
        f.write("x")
    attempt = counter.stat().st_size
    if int(n) < 0 or attempt <= int(n):
        return f"injected fault (attempt {attempt}) in {key}"
    return None


def run_spec(spec: dict, engine: dict) -> TrialRecord:
    """Run one grid point through the study's single-model trial (the reference path; also used in tests)."""
    return run_bundle([spec], engine, stacked=False)[0]


def run_bundle(
    specs: Sequence[dict], engine: dict, *, stacked: bool = True, report: Callable[[str], None] | None = None
) -> list[TrialRecord]:
    """Run a bundle of grid points of one study and return one record per point, in order.

    With `stacked` and a study that has a bundle function, every model the points need is trained
    together (cchsweep.stack); otherwise the points run one at a time through `study.trial`.
    `seconds` of each record is its share of the bundle's wall time.
    """
    from searchspaces import STUDIES  # the registry imports every study module

    study = STUDIES[specs[0]["study"]]
    threads = max(1, int(engine["cpus"]))
    torch.set_num_threads(threads)
    device = engine.get("device") or worker_device()  # "device" pins it (the device checks run without Ray)
    data_dir = Path(engine["data_dir"]) if engine.get("data_dir") else None
    ctx = WorkerContext(ArtifactCache(Path(engine["cache_dir"]), warn=report), device, threads, data_dir, report)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    settings = specs[0]["settings"]
    if stacked and study.bundle is not None:
        outputs = study.bundle([spec["params"] for spec in specs], settings, ctx)
    else:
        outputs = [study.trial(spec["params"], spec["settings"], ctx) for spec in specs]
    seconds = time.perf_counter() - t0
    finished = datetime.now(timezone.utc).isoformat()
    node = _node_id()
    events = _attribute(ctx.cache, [{**spec["settings"], **spec["params"]} for spec in specs])
    return [
        TrialRecord(
            trial_key=spec["key"],
            study=spec["study"],
            profile=spec["profile"],
            params=spec["params"],
            settings=spec["settings"],
            mode=spec.get("mode", "grid"),
            task=study.task,
            gain_metric=out.gain_metric,
            kd_gain=None if out.kd_gain is None else float(out.kd_gain),
            metrics=out.metrics,
            mi=list(out.mi),
            cache=point_events,
            node_id=node,
            device=ctx.device,
            cpus=engine["cpus"],
            gpu_fraction=engine["gpu"],
            started_at=started.isoformat(),
            finished_at=finished,
            seconds=seconds / len(specs),
        )
        for spec, out, point_events in zip(specs, outputs, events, strict=True)
    ]


def _node_id() -> str | None:
    try:
        import ray
    except ImportError:  # the engine also runs without Ray (benchmarks/cuda_check.py on a bare GPU machine)
        return None
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def _attribute(cache: ArtifactCache, points: Sequence[Mapping[str, Any]]) -> list[list[CacheEvent]]:
    """Each point's cache events, as if the points had run one after another: an artifact is charged
    to every point whose values agree with its config, built (hit False) for the first, reused after."""
    out: list[list[CacheEvent]] = [[] for _ in points]
    seen: set[tuple[str, str]] = set()
    for event, config in zip(cache.events, cache.configs):
        users = [i for i, p in enumerate(points) if all(_agrees(p, k, v) for k, v in config.items() if k in p)] or [0]
        for i in users:
            charged = (event.kind, event.key) in seen
            if not any(e.kind == event.kind and e.key == event.key for e in out[i]):
                out[i].append(CacheEvent(event.kind, event.key, hit=event.hit or charged))
                seen.add((event.kind, event.key))
    return out


def _agrees(point: Mapping[str, Any], name: str, value: Any) -> bool:
    """A point's setting agrees with an artifact's: equal, or for mi_estimator one of the point's
    estimators (an MI artifact is one estimator's; a point lists every estimator it runs)."""
    if name == "mi_estimator":
        return str(value) in estimator_names(point)
    return point[name] == value
