"""The Ray Tune trainable: runs one trial in a worker and reports its TrialRecord.

Trials never open the database: the record travels back to the driver in the Tune result
(cchsweep.record serialises it), where the single writer (cchsweep.writer) stores it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from cchsweep.cache import ArtifactCache
from cchsweep.raystart import worker_device
from cchsweep.record import RESULT_KEY, TrialRecord, dump_records


@dataclass
class WorkerContext:
    """The TrialContext a trial function sees inside a Ray worker."""

    cache: ArtifactCache
    device: str
    threads: int
    data_dir: Path | None = None

    @property
    def cache_dir(self) -> Path:
        return self.cache.root

    def cached(self, kind: str, config: Mapping[str, Any], build: Callable[[], Any]) -> Any:
        return self.cache.cached(kind, config, build)


FAULT_ENV = "CCHSWEEP_INJECT_FAULT"


def trainable(config: dict) -> None:
    _maybe_inject_fault(config["spec"]["key"], config["engine"].get("fault"))
    record = run_spec(config["spec"], config["engine"])
    tune.report({RESULT_KEY: dump_records([record])})


def _maybe_inject_fault(key: str, spec: str | None) -> None:
    """Fault injection for the failure tests: the driver's $CCHSWEEP_INJECT_FAULT = "SUBSTRING:N:DIR".

    A trial whose key contains SUBSTRING raises on its first N attempts (counted in files under
    DIR, so retries in fresh worker processes see the count); N = -1 fails every attempt. The
    driver passes it in the trial config, so it reaches workers on every node.
    """
    if not spec:
        return
    substring, n, directory = spec.split(":", 2)
    if substring not in key:
        return
    counter = Path(directory) / hashlib.sha256(key.encode()).hexdigest()[:16]
    with counter.open("a") as f:
        f.write("x")
    attempt = counter.stat().st_size
    if int(n) < 0 or attempt <= int(n):
        raise RuntimeError(f"injected fault (attempt {attempt}) in {key}")


def run_spec(spec: dict, engine: dict) -> TrialRecord:
    """Run one trial and return its record (also used without Ray in tests)."""
    from searchspaces import STUDIES  # the registry imports every study module

    study = STUDIES[spec["study"]]
    threads = max(1, int(engine["cpus"]))
    torch.set_num_threads(threads)
    device = worker_device()
    data_dir = Path(engine["data_dir"]) if engine.get("data_dir") else None
    ctx = WorkerContext(ArtifactCache(Path(engine["cache_dir"])), device, threads, data_dir)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    out = study.trial(spec["params"], spec["settings"], ctx)
    seconds = time.perf_counter() - t0
    return TrialRecord(
        trial_key=spec["key"],
        study=spec["study"],
        profile=spec["profile"],
        params=spec["params"],
        settings=spec["settings"],
        mode=spec.get("mode", "grid"),
        task=study.task,
        gain_metric=out.gain_metric,
        kd_gain=float(out.kd_gain),
        metrics=out.metrics,
        mi=list(out.mi),
        cache=list(ctx.cache.events),
        node_id=ray.get_runtime_context().get_node_id() if ray.is_initialized() else None,
        device=ctx.device,
        cpus=engine["cpus"],
        gpu_fraction=engine["gpu"],
        started_at=started.isoformat(),
        finished_at=datetime.now(timezone.utc).isoformat(),
        seconds=seconds,
    )
