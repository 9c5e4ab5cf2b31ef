"""Run a planned sweep with Ray Tune: local embedded Ray by default, or a cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cchsweep import __version__
from cchsweep.errors import UsageError, check_interrupted
from cchsweep.estimate import done_with_same_settings
from cchsweep.grid import Plan, bundles, default_bundle_size, memory_budget
from cchsweep.raystart import is_loopback, new_run_id, start_ray, stop_ray
from cchsweep.store import Store

if TYPE_CHECKING:
    from analysis.boundary import Crossing


@dataclass
class RunSummary:
    run_id: str
    n_trials: int
    n_ok: int
    n_error: int
    n_skipped: int
    seconds: float
    crossing: Crossing | None = None  # a boundary search's zero crossing (None: none found)
    interrupted: bool = False  # stopped (Ctrl-C) before every trial had run


def default_storage(db_path: Path) -> Path:
    """Tune state and the artifact cache live beside the database: x.duckdb -> x.cchsweep/."""
    return db_path.with_name(db_path.stem + ".cchsweep")


def check_writable(db_path: Path, storage: Path) -> None:
    """Refuse unusable paths before anything is created."""
    if db_path.is_dir():
        raise UsageError(f"--db {db_path} is a directory; give a file path such as {db_path / 'cchsweep.duckdb'}")
    if storage.exists() and not storage.is_dir():
        raise UsageError(
            f"storage {storage} is a file, not a directory (Tune state and the artifact cache go there); "
            f"move it or pass --storage DIR"
        )
    for what, path in (("--db", db_path.parent), ("storage", storage.parent)):
        if path.exists() and not path.is_dir():
            raise UsageError(f"{what} directory {path} is a file; choose another path")
        if not path.is_dir():
            raise UsageError(f"{what} directory {path} does not exist; create it or choose another path")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{what} directory {path} is not writable; choose another path")
    if db_path.exists() and not os.access(db_path, os.W_OK):
        raise UsageError(f"--db {db_path} is read-only; choose another path")
    for path in (storage, storage / "cache"):  # an existing storage is written into: its parent is not enough
        if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(
                f"storage {path} is not writable (Tune state and the artifact cache go there); pass --storage DIR"
            )


def check_data(plans: list[Plan], data_dir: str | None, dry_run: bool) -> tuple[Path | None, str | None]:
    """The data directory the plans' studies read, checked for the points they will run: (the
    directory, None), or for a dry run that still estimates without the data (None, what is missing).
    A dry run downloads and creates nothing: what a real run would download is a `data:` line on
    stdout, said here, where a real run would be downloading it (once, though studies share it)."""
    if all(p.study.check_data is None for p in plans):
        return None, None
    from cchsweep.data.paths import resolve_data_dir

    said: list[str] = []
    try:
        data = resolve_data_dir(data_dir)
        for p in plans:
            if p.study.check_data is not None:
                for line in p.study.check_data(data, [{**t.settings, **t.params} for t in p.trials], dry_run=dry_run):
                    if line not in said:
                        print(f"data: {line}", flush=True)
                        said.append(line)
    except UsageError as exc:
        if not dry_run:
            raise
        return None, str(exc)
    return data, None


def run_sweep(
    plan: Plan,
    db_path: Path,
    storage: Path,
    *,
    address: str | None = None,
    max_failures: int = 1,
    force: bool = False,
    command: str = "",
    data_dir: Path | None = None,
    gpu: str = "auto",
    shared_storage: bool = False,
    resume: bool = False,
    search=None,
    bundle_size: int | None = None,
    stored_note: str = "--force reruns them",
) -> RunSummary:
    """Run the plan's trials not yet stored (all with `force`); `stored_note` ends the line that says
    every trial is already stored (what the caller's user can do about it)."""
    store = Store(db_path)
    store.ensure_schema()
    stale = store.mark_stale_runs(plan.study.name)
    if stale:
        print(
            f"earlier run {', '.join(stale)} of {plan.study.name} died unfinished (marked interrupted); "
            f"its stored trials are kept and the rest run now",
            file=sys.stderr,
        )
    elif resume:
        print(
            f"--resume: no unfinished run of {plan.study.name} in {db_path}; running the trials not yet stored",
            file=sys.stderr,
        )
    done = set() if force or search else done_with_same_settings(store, plan)
    grid_todo = [t for t in plan.trials if t.key not in done] if search is None else []
    todo = grid_todo if search is None else list(range(search.budget))

    cache_dir = storage / "cache"
    if grid_todo and plan.study.prepare is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        plan.study.prepare(data_dir, cache_dir, [{**t.settings, **t.params} for t in grid_todo])
    check_interrupted()  # a Ctrl-C lost in an import or in ray.init stops the run here
    ray = start_ray(address) if todo else None
    try:
        resources = ray.cluster_resources() if ray else {}
        if ray is not None:
            if warning := check_storage_is_shared(ray.nodes(), storage, shared_storage, not is_loopback(address)):
                print(warning, file=sys.stderr)
        # A bundle trains its models as stacks on one device: it asks for a whole GPU where there is one
        # (studies that use no GPU, such as TCGA's 64-unit networks, keep asking for none).
        bundled = plan.study.bundle is not None and search is None
        wanted = 1.0 if bundled and plan.study.resources.gpu > 0 else plan.study.resources.gpu
        gpu_fraction = gpu_per_trial(gpu, wanted, resources)
        check_gpu_request(gpu, address, resources.get("GPU", 0.0))
        cpus = cpus_per_trial(plan.study.resources.cpu, gpu_fraction, ray.nodes() if ray else [])
        slots, note = worker_slots(resources, gpu_fraction, cpus)
        if note and bundle_size is None and grid_todo:
            print(note, file=sys.stderr)
        if bundle_size is None:
            bundle_size = default_bundle_size(plan.study, grid_todo, slots, gpu=bool(gpu_fraction))
        groups = bundles(plan.study, grid_todo, bundle_size, memory_budget(gpu_fraction))
        run_id = new_run_id(plan.study.name)
        started = datetime.now(timezone.utc)
        commit, dirty = _git_state()
        store.start_run(
            {
                "run_id": run_id,
                "study": plan.study.name,
                "profile": plan.profile,
                "started_at": started,
                "status": "running",
                "n_trials": len(todo) + len(done),
                "n_skipped": len(done),
                "cchsweep_version": __version__,
                "git_commit": commit,
                "git_dirty": dirty,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "ray_address": address,
                "cluster_resources": resources,
                "storage": str(storage),
                "command": command,
            }
        )
    except BaseException:  # the embedded Ray this call started does not outlive a refused run
        stop_ray(ray, address)
        raise
    if todo:
        per_trial = f"{cpus:g} CPU" + (f" + {gpu_fraction:g} GPU" if gpu_fraction else "")
        cluster = f"{resources.get('CPU', 0):g} CPUs" + (
            f" / {resources['GPU']:g} GPUs" if resources.get("GPU") else ""
        )
        line = f"{len(todo)} trials to run, {len(done)} already in {db_path}, "
        if search is None and len(groups) < len(grid_todo):
            line += f"in {len(groups)} bundles of up to {max(map(len, groups))}, {per_trial} per bundle on {cluster}"
        else:
            line += f"{per_trial} per trial on {cluster}"
    else:
        line = f"nothing to run: all {len(done)} trials are already in {db_path} ({stored_note})"
    print(f"run {run_id}: {line}", file=sys.stderr, flush=True)
    status = "failed"
    try:
        check_interrupted()
        if todo:
            _fit(plan, groups, len(todo), run_id, db_path, storage, cpus, gpu_fraction, max_failures, data_dir, search)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        try:
            counts = store.run_counts(run_id)
            if status == "finished" and counts.get("ok", 0) + counts.get("error", 0) < len(todo):
                status = "interrupted"  # Ray Tune catches Ctrl-C itself, stops the trials and returns normally
            finished = datetime.now(timezone.utc)
            store.finish_run(run_id, status=status, finished_at=finished)
        finally:  # even when the file stays locked past the writer's wait
            stop_ray(ray, address)
    summary = RunSummary(
        run_id,
        len(todo) + len(done),
        counts.get("ok", 0),
        counts.get("error", 0),
        len(done),
        (finished - started).total_seconds(),
        interrupted=status == "interrupted",
    )
    if search is not None:
        summary.crossing = _search_crossing(store, run_id, search)
    return summary


def _fit(plan, groups, total, run_id, db_path, storage, cpus, gpu, max_failures, data_dir, search=None) -> None:
    from ray import tune

    from cchsweep.execute import FAULT_ENV, trainable
    from cchsweep.writer import DuckDBWriter

    cache_dir = storage / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    engine = {
        "cache_dir": str(cache_dir.resolve()),
        "cpus": cpus,
        "gpu": gpu,
        "data_dir": str(data_dir.resolve()) if data_dir else None,
        "fault": os.environ.get(FAULT_ENV),
    }
    resources = {"cpu": cpus, "gpu": gpu} if gpu else {"cpu": cpus}
    if search is None:
        specs = [[t.to_dict() for t in g] for g in groups]
        fn, space, tune_config = (
            trainable,
            {"bundle": tune.grid_search(specs), "engine": engine},
            tune.TuneConfig(reuse_actors=True),
        )
    else:
        fn, space, tune_config = _search_setup(plan, search, engine)
    tuner = tune.Tuner(
        tune.with_resources(fn, resources),
        param_space=space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=run_id,
            storage_path=str((storage / "tune").resolve()),
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=[DuckDBWriter(str(db_path), run_id, total=total, bundles=len(groups))],
            verbose=0,
        ),
    )
    # Tune sets its own Ctrl-C handler for the fit and leaves it after a normal end: put ours back, or
    # the next SIGINT/SIGTERM (reproduce's next study) would only tell a finished Tune run to stop
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        tuner.fit()
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


def _search_setup(plan, search, engine):
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from cchsweep.search import search_trainable

    # A few random points first, then TPE concentrates on small |target|: near the crossing.
    sampler = optuna.samplers.TPESampler(n_startup_trials=max(3, search.budget // 3), seed=0)
    space = {
        "x": tune.uniform(search.lo, search.hi),
        "engine": engine,
        "search": {
            "study": plan.study.name,
            "profile": plan.profile,
            "settings": plan.settings,
            "overridden": plan.overridden,
            "base": search.base,
            "param": search.param,
            "target": search.target,
            "estimator": search.estimator,
            "mode": search.mode,
        },
    }
    config = tune.TuneConfig(
        search_alg=OptunaSearch(metric="objective", mode="min", sampler=sampler),
        num_samples=search.budget,
        max_concurrent_trials=2,
        reuse_actors=True,
    )
    return search_trainable, space, config


def _search_crossing(store: Store, run_id: str, search):
    from analysis.boundary import crossing

    points = store.points(run_id, search.param, search.target, search.estimator)
    return crossing([p[0] for p in points], [p[1] for p in points])


AUTOSCALE_GPUS = 4  # ray_cluster.yaml: up to 4 one-GPU workers


def worker_slots(resources: dict, gpu_fraction: float, cpus: float) -> tuple[int, str | None]:
    """How many trials (bundles) run at once, which sizes the bundles, and a line to say when that
    is a guess. GPUs asked for and none up yet: an autoscaling cluster adds them as trials wait;
    planned for none, the grid would be one bundle holding one GPU while the others idle."""
    if not gpu_fraction:
        return int(resources.get("CPU", 1) // cpus), None
    slots = int(resources.get("GPU", 0) // gpu_fraction)
    if slots:
        return slots, None
    return max(1, int(AUTOSCALE_GPUS // gpu_fraction)), (
        f"no GPU in the cluster yet: bundles sized for {AUTOSCALE_GPUS} GPUs as the autoscaler adds them "
        f"(ray_cluster.yaml's max_workers); --bundle-size sets another size"
    )


def cpus_per_trial(study_cpus: float, gpu_fraction: float, nodes: list[dict]) -> float:
    """A trial that holds a GPU share also takes the CPUs that come with that share on a GPU node
    (its KSG, blur and data run on them; nothing else could use them while the GPUs are taken): the
    fewest any live GPU node offers, so it fits on every one, and never fewer than the study asks.
    CPU-only trials, and clusters with no GPU node up yet, keep the study's."""
    if not gpu_fraction:
        return study_cpus
    shares = [
        int(n["Resources"].get("CPU", 0) * gpu_fraction / n["Resources"]["GPU"])
        for n in nodes
        if n.get("Alive") and n.get("Resources", {}).get("GPU", 0) > 0
    ]
    return float(max(study_cpus, min(shares))) if shares else study_cpus


def check_gpu_request(choice: str, address: str | None, gpus: float) -> None:
    """An embedded Ray has no autoscaler: trials asking for a GPU share of a machine with no GPU
    would wait forever. Refuse that (a cluster may still be adding GPU workers: there it is allowed)."""
    if address is None and choice != "auto" and gpu_per_trial(choice, 0.0, {}) > 0 and not gpus:
        raise UsageError(
            f"--gpu {choice}: this machine has no GPU for the embedded Ray to give trials; drop --gpu "
            f"(or pass --gpu 0), or join a cluster with GPU workers with --address"
        )


def gpu_per_trial(choice: str, study_fraction: float, resources: dict) -> float:
    """'auto': the study's GPU fraction where the cluster has GPUs now, else none; or a number.

    An autoscaling cluster may start with no GPU node: ask for the fraction explicitly there
    (--gpu 0.25) so Ray requests GPU workers instead of running trials on CPUs.
    """
    if choice == "auto":
        return study_fraction if resources.get("GPU", 0) > 0 else 0.0
    try:
        value = float(choice)
    except ValueError:
        raise UsageError(f"--gpu {choice!r}: give auto or a GPU fraction per trial such as 0.25") from None
    if not 0.0 <= value <= 8.0:
        raise UsageError(f"--gpu {choice}: a GPU fraction per trial lies between 0 and 8")
    return value


def check_storage_is_shared(
    nodes: list[dict], storage: Path, declared_shared: bool, remote: bool = False
) -> str | None:
    """Trials on other machines must see the artifact cache: refuse a local path on a multi-host cluster.
    On a joined (`remote`) cluster of one host, a line of warning: an autoscaler may add hosts later."""
    hosts = {n.get("NodeManagerAddress") for n in nodes if n.get("Alive")}
    if declared_shared:
        return None
    if len(hosts) > 1:
        raise UsageError(
            f"the cluster spans {len(hosts)} hosts but --storage {storage} is a local path; put it "
            f"on a filesystem every node mounts (NFS) and pass --shared-storage"
        )
    if remote:
        return (
            f"the cluster has one host now; workers an autoscaler adds later would not see --storage {storage}: "
            f"put it on a filesystem every node mounts and pass --shared-storage"
        )
    return None


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes: ray.init retries an unreachable GCS for a long time."""
    if address is None or address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address!r} is not HOST:PORT (or auto); e.g. --address 10.0.0.5:6379")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(
            f"cannot reach a Ray cluster at --address {address} ({exc.strerror or exc}); start one "
            f"with `ray start --head` or `ray up ray_cluster.yaml`, or drop --address"
        ) from None


def _git_state() -> tuple[str | None, bool | None]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain"], capture_output=True, text=True, timeout=5, check=True
            ).stdout.strip()
            != ""
        )
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return None, None
