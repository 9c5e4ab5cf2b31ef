"""Run a planned sweep with Ray Tune: local embedded Ray by default, or a cluster."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cchsweep import __version__
from cchsweep.errors import UsageError
from cchsweep.grid import Plan
from cchsweep.store import Store


@dataclass
class RunSummary:
    run_id: str
    n_trials: int
    n_ok: int
    n_error: int
    n_skipped: int
    seconds: float


def default_storage(db_path: Path) -> Path:
    """Tune state and the artifact cache live beside the database: x.duckdb -> x.cchsweep/."""
    return db_path.with_name(db_path.stem + ".cchsweep")


def check_writable(db_path: Path, storage: Path) -> None:
    """Refuse unusable paths before anything is created."""
    if db_path.is_dir():
        raise UsageError(f"--db {db_path} is a directory; give a file path such as {db_path / 'cchsweep.duckdb'}")
    for what, path in (("--db", db_path.parent), ("storage", storage.parent)):
        if not path.is_dir():
            raise UsageError(f"{what} directory {path} does not exist; create it or choose another path")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{what} directory {path} is not writable; choose another path")
    if db_path.exists() and not os.access(db_path, os.W_OK):
        raise UsageError(f"--db {db_path} is read-only; choose another path")


def run_sweep(plan: Plan, db_path: Path, storage: Path, *, address: str | None = None, max_failures: int = 1,
              force: bool = False, command: str = "", data_dir: Path | None = None) -> RunSummary:
    store = Store(db_path)
    store.ensure_schema()
    keys = [t.key for t in plan.trials]
    done = set() if force else store.done_keys(keys)
    todo = [t for t in plan.trials if t.key not in done]

    ray = _init_ray(address) if todo else None
    resources = ray.cluster_resources() if ray else {}
    gpu = plan.study.resources.gpu if resources.get("GPU", 0) > 0 else 0.0
    cpus = plan.study.resources.cpu
    run_id = f"{plan.study.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    started = datetime.now(timezone.utc)
    commit, dirty = _git_state()
    store.start_run({
        "run_id": run_id, "study": plan.study.name, "profile": plan.profile, "started_at": started,
        "status": "running", "n_trials": len(plan.trials), "n_skipped": len(done),
        "cchsweep_version": __version__, "git_commit": commit, "git_dirty": dirty, "host": socket.gethostname(),
        "ray_address": address, "cluster_resources": resources, "storage": str(storage), "command": command,
    })
    print(f"run {run_id}: {len(todo)} trials to run, {len(done)} already in {db_path}, "
          f"{cpus:g} CPU{f' + {gpu:g} GPU' if gpu else ''} per trial on {resources.get('CPU', 0):g} CPUs"
          f"{' / ' + format(resources.get('GPU', 0), 'g') + ' GPUs' if resources.get('GPU') else ''}",
          file=sys.stderr, flush=True)
    status = "failed"
    try:
        if todo:
            _fit(plan, todo, run_id, db_path, storage, cpus, gpu, max_failures, data_dir)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        counts = _counts(store, [t.key for t in todo])
        finished = datetime.now(timezone.utc)
        store.finish_run(run_id, status=status, finished_at=finished, n_ok=counts.get("ok", 0),
                         n_error=counts.get("error", 0))
        if ray is not None and address is None:
            ray.shutdown()
    return RunSummary(run_id, len(plan.trials), counts.get("ok", 0), counts.get("error", 0), len(done),
                      (finished - started).total_seconds())


def _fit(plan, todo, run_id, db_path, storage, cpus, gpu, max_failures, data_dir) -> None:
    from ray import tune

    from cchsweep.execute import trainable
    from cchsweep.writer import DuckDBWriter

    cache_dir = storage / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    specs = [{"key": t.key, "study": t.study, "profile": t.profile, "params": t.params, "settings": t.settings}
             for t in todo]
    engine = {"cache_dir": str(cache_dir.resolve()), "cpus": cpus, "gpu": gpu,
              "data_dir": str(data_dir.resolve()) if data_dir else None}
    resources = {"cpu": cpus, "gpu": gpu} if gpu else {"cpu": cpus}
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space={"spec": tune.grid_search(specs), "engine": engine},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(
            name=run_id,
            storage_path=str((storage / "tune").resolve()),
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=[DuckDBWriter(str(db_path), run_id, total=len(todo))],
            verbose=0,
        ),
    )
    tuner.fit()


def _init_ray(address: str | None):
    # The database is the record: Tune's own CSV/JSON/TensorBoard loggers only add overhead.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                 ignore_reinit_error=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot reach a Ray cluster at --address {address}: {first}; start one with "
                         f"`ray start --head` or `ray up ray_cluster.yaml`, or drop --address") from None
    return ray


def _counts(store: Store, keys: list[str]) -> dict[str, int]:
    if not keys:
        return {}
    with store.connect(read_only=True) as con:
        rows = con.execute("SELECT status, count(*) FROM trials WHERE trial_key IN (SELECT unnest(?::VARCHAR[])) "
                           "GROUP BY status", [keys]).fetchall()
    return dict(rows)


def _git_state() -> tuple[str | None, bool | None]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain"], capture_output=True, text=True,
                               timeout=5, check=True).stdout.strip() != ""
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return None, None
