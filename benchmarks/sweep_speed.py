"""Training speed, side by side in one run: the obvious loop, the per-trial engine, the stacked engine.

    python benchmarks/sweep_speed.py [--quick] [--full] [--deadline S] [--device cpu|cuda] [--data-dir DIR]

Prints one JSON line per measurement and a summary line ({"summary": true, ...}) with:
  naive_s_per_student_epoch   the obvious DataLoader loop, one MNIST KD student (784-1024-256-10,
                              SGD, batch 64), per 60,000-sample epoch
  engine_s_per_student_epoch  the stacked engine (cchsweep.stack), K students of one bundle, per student
  speedup_vs_naive
  synthetic_per_trial_s_per_model  the per-trial path (train.fit, one model) at paper settings
                              (100-64-1, Adam, batch 500, n = 10,000, 300 epochs)
  synthetic_stacked_s_per_model    the stacked engine, the models of one paper-grid bundle
  synthetic_speedup
  synthetic_compiled_s_per_model (CPU) the stack compiled (cchsweep.compiled), per model of a 300-epoch
                              bundle with its compile counted once; synthetic_speedup_compiled, and
                              synthetic_compile_s (what the compile cost: the inductor cache decides it)
  synthetic_floor_s_per_model the first layer's two matmuls alone (forward, weight gradient) at the stack's
                              shape: what any exact engine must still compute per model on this device
  synthetic_speedup_ceiling   per_trial / floor: the most any exact engine could gain here
  engine_graphs_s_per_student_epoch, engine_tf32_..., engine_graphs_tf32_... (GPU)
                              the same with one CUDA graph per step, TF32 matmuls, both; each with
                              speedup_vs_naive_<name>; synthetic_graphs_s_per_model likewise
  grid_wall_s (--full)        both MNIST paper grids' training (mnist_blur + mnist_alpha: 140 models,
                              paper hyperparameters) end to end through the CLI when Ray is installed,
                              else through the bundle engine in this process (grid_via says which);
                              MI by KSG on 1,000 digits so the figure is the training's; with
                              CUDA graphs when they ran above (grid_graphs). Each bundle prints a
                              grid_bundle line as it ends; with --deadline S (seconds for the whole
                              run) the grid starts no bundle once less time is left than its longest
                              bundle took, and the summary says grid_complete false, grid_points_done
                              of grid_points (through the CLI: grid_study lines, grid_stopped_in).
Epoch times are measured over a slice of the epoch (--quick: fewer steps) and scaled to 60,000 samples.
Data: the MNIST files under --data-dir / $CCHSWEEP_DATA when present, else random pixels of the same
shape (the arithmetic is identical); `data` in the output says which.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cchsweep.cudagraph import GRAPHS_ENV  # noqa: E402
from cchsweep.kd import classification_kd_loss  # noqa: E402
from cchsweep.models import MLP  # noqa: E402
from cchsweep.stack import Member, Options, Recipe, train_stacked  # noqa: E402
from cchsweep.train import fit  # noqa: E402
from cchsweep.trials import mnist as mnist_trial  # noqa: E402
from cchsweep.trials import synthetic as synthetic_trial  # noqa: E402

EPOCH = 60_000
BATCH = 64
GRIDS = ("mnist_blur", "mnist_alpha")  # --full: both MNIST paper grids
STARTED = time.perf_counter()


def emit(**row) -> dict:
    print(json.dumps(row), flush=True)
    return row


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def mnist_arrays(data_dir: str | None, n: int, device: str):
    """n MNIST training digits (real if found, else random pixels), labels and fake teacher logits."""
    source = "random"
    x = torch.rand(n, 784)
    y = torch.randint(0, 10, (n,))
    if data_dir:
        try:
            from cchsweep.data.mnist import load_mnist

            images, labels = load_mnist(Path(data_dir), "train")
            x = torch.from_numpy(images[:n].reshape(n, 784).astype("float32") / 255.0)
            y = torch.from_numpy(labels[:n].astype("int64"))
            source = "mnist"
        except Exception:  # noqa: BLE001 - a benchmark falls back to the same shapes
            pass
    teacher = torch.randn(n, 10) * 3
    return x.to(device), y.to(device), teacher.to(device), source


def naive_epoch(x, y, teacher, device: str, steps: int) -> float:
    """The obvious loop: a DataLoader over CPU tensors, batches moved to the device each step."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = MLP(784, mnist_trial.HIDDEN, 10, activation="leaky_relu").to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.002)
    loader = DataLoader(TensorDataset(x.cpu(), y.cpu(), teacher.cpu()), batch_size=BATCH, shuffle=True)
    done, t0 = 0, 0.0
    for xb, yb, tb in loader:
        if done == 2:  # warm-up steps excluded
            sync(device)
            t0 = time.perf_counter()
        xb, yb, tb = xb.to(device), yb.to(device), tb.to(device)
        loss = classification_kd_loss(model(xb), yb, tb, 3.0, 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += 1
        if done == steps + 2:
            break
    sync(device)
    return (time.perf_counter() - t0) / steps * (EPOCH / BATCH)


def engine_epoch(x, y, teacher, device: str, k: int, steps: int, options: Options | None = None) -> float:
    """K KD students of one bundle (shared inputs and batch order, own T) through the stacked engine.
    On a GPU, 3 epochs of `steps` steps, timed over the last two (steady state: a CUDA graph's
    warm-up and capture fall in the first); on a CPU one epoch."""
    n, epochs = steps * BATCH, 3 if device.startswith("cuda") else 1
    recipe = Recipe(
        build=lambda: MLP(784, mnist_trial.HIDDEN, 10, activation="leaky_relu"),
        loss=mnist_trial._loss,
        stacked_loss=mnist_trial._stacked_loss,
        optimizer="sgd",
        lr=0.002,
        epochs=epochs,
        batch_size=BATCH,
    )
    members = [
        Member(1, 1, x[:n], {"y": y[:n], "teacher": teacher[:n]}, {"temperature": 1.0 + i % 4, "lam": 0.5})
        for i in range(k)
    ]
    small = [Member(1, 1, x[: 2 * BATCH], {k: v[: 2 * BATCH] for k, v in m.targets.items()}, m.coefs) for m in members]
    train_stacked(recipe, small, device, options=Options())  # warm-up (allocator, kernels)
    marks: dict[int, float] = {}

    def mark(epoch: int) -> None:
        sync(device)
        marks[epoch] = time.perf_counter()

    sync(device)
    marks[0] = time.perf_counter()
    train_stacked(recipe, members, device, on_epoch=mark, options=options or Options())
    first = 1 if epochs > 1 else 0
    return (marks[epochs] - marks[first]) / (epochs - first) / k * (EPOCH / n)


def synthetic_models(device: str, k: int, epochs: int, graphs: bool = False):
    """Per model at the paper's synthetic settings: the per-trial path (one train.fit), the stack, and
    the stack with one CUDA graph per step (graphs=True) or, on a CPU, compiled (cchsweep.compiled).
    Returns (per_trial, stacked, graphed or None, compiled or None, compile_s or None)."""
    recipe, members = synthetic_bundle(device, k, epochs)
    if device == "cpu":
        return synthetic_cpu_rounds(recipe, members, epochs)
    sync(device)
    t0 = time.perf_counter()
    per_trial_fit(members[0], epochs, device)
    sync(device)
    per_trial = (time.perf_counter() - t0) * 300 / epochs
    sync(device)
    t0 = time.perf_counter()
    train_stacked(recipe, members, device, options=Options())
    sync(device)
    stacked = (time.perf_counter() - t0) / k * 300 / epochs
    if not graphs:
        return per_trial, stacked, None, None, None
    opts = Options(graphs=True)
    t0 = time.perf_counter()
    train_stacked(recipe, members, device, options=opts)
    sync(device)
    return per_trial, stacked, (time.perf_counter() - t0) / k * 300 / epochs if opts.replays else None, None, None


def synthetic_bundle(device: str, k: int, epochs: int) -> tuple[Recipe, list[Member]]:
    """One bundle of the synthetic paper grid: K models, each on its own (sigma12, seed) data set."""
    import numpy as np

    from cchsweep.data.synthetic import sample

    n, p = 10_000, 100
    members = []
    for i in range(k):
        _, x2, y = (
            torch.from_numpy(a).to(device) for a in sample(n, p, 0.1 * (i % 8), 0.9, 0.4, np.random.default_rng(i))
        )
        members.append(Member(i, i, x2, {"y": y[:, None], "teacher": y[:, None]}, {"lam": 0.0}))
    recipe = Recipe(
        build=lambda: MLP(p, [64], 1),
        loss=synthetic_trial._loss,
        stacked_loss=synthetic_trial._stacked_loss,
        optimizer="adam",
        lr=0.01,
        epochs=epochs,
        batch_size=500,
    )
    return recipe, members


def per_trial_fit(member: Member, epochs: int, device: str) -> None:
    """The per-trial path: one model through train.fit, at the paper's settings."""
    torch.manual_seed(0)
    y = member.targets["y"]
    fit(
        MLP(member.inputs.shape[1], [64], 1).to(device),
        member.inputs,
        lambda out, idx: torch.nn.functional.mse_loss(out, y[idx]),
        optimizer="adam",
        lr=0.01,
        epochs=epochs,
        batch_size=500,
        seed=1,
    )


CPU_ROUNDS = 3


def synthetic_cpu_rounds(recipe: Recipe, members: list[Member], epochs: int):
    """On a CPU, whose speed drifts within minutes on a shared VM: CPU_ROUNDS rounds, each the per-trial
    path, the eager stack and the compiled stack in turn, `epochs` epochs each; every figure is a
    median over rounds (stacks: over their epochs after the first), so the ratios compare the three
    under the same conditions. Per model of a 300-epoch bundle; the compiled stack's compile (the
    first compiled epoch's excess over the later ones: the inductor cache's state decides it, cold
    ~20 s, warm ~4 s; it also holds the stack's setup and, once per process, the toolchain probe,
    which the eager figure leaves out: a small bias against the compiled stack) is counted once.
    (Before 2026-12-01 the CPU figures were one unpaired run each, the eager stack's over 15 epochs
    with its first included.)"""
    import statistics

    k = len(members)
    per_trial, eager, fast, compile_s = [], [], [], None
    modes = [False, True]  # eager, compiled
    for _ in range(CPU_ROUNDS):
        t0 = time.perf_counter()
        per_trial_fit(members[0], epochs, "cpu")
        per_trial.append((time.perf_counter() - t0) * 300 / epochs)
        for compile_ in list(modes):
            marks = [time.perf_counter()]
            opts = Options(compile=compile_)
            try:
                train_stacked(
                    recipe, members, "cpu", on_epoch=lambda e, m=marks: m.append(time.perf_counter()), options=opts
                )
            except Exception as exc:  # noqa: BLE001 - a failed compile is a row; the eager figures stand
                if not compile_:
                    raise
                opts.uncompiled = f"{type(exc).__name__}: {exc}"[:300]
            steady = [b - a for a, b in zip(marks[1:], marks[2:])]
            if compile_ and not opts.compiled_steps:  # no compiler here, or the compile failed
                emit(measure="synthetic_compiled", error=opts.uncompiled)
                modes = [False]
                continue
            (fast if compile_ else eager).extend(steady)
            if compile_ and compile_s is None:
                compile_s = max(0.0, marks[1] - marks[0] - statistics.median(steady))
    stacked = statistics.median(eager) * 300 / k
    if not fast:
        return statistics.median(per_trial), stacked, None, None, None
    compiled = (compile_s + statistics.median(fast) * 300) / k
    return statistics.median(per_trial), stacked, None, compiled, compile_s


def synthetic_floor(device: str, k: int) -> float:
    """Per model, the arithmetic no exact engine can skip at the paper's synthetic settings: the first
    layer's forward and weight gradient (the two [500, 100] x [100, 64] products of every step; the
    rest of the network is ~1% of the FLOPs), run alone as one stack's bmm pair, 6,000 steps."""
    x, w = torch.randn(k, 500, 100, device=device), torch.randn(k, 100, 64, device=device)
    b, g = torch.randn(k, 1, 64, device=device), torch.randn(k, 500, 64, device=device)
    reps = 50
    for rep in range(reps + 5):
        if rep == 5:
            sync(device)
            t0 = time.perf_counter()
        torch.baddbmm(b, x, w)
        torch.bmm(x.transpose(1, 2), g)
    sync(device)
    return (time.perf_counter() - t0) / reps / k * 6_000


def _cli_runs() -> bool:
    """Whether `cchsweep run` can run here: Ray, DuckDB and polars installed (the device image has
    none). A stray folder named `ray` on the path imports as an empty namespace: not Ray."""
    try:
        import duckdb  # noqa: F401
        import polars  # noqa: F401
        import ray
    except ImportError:
        return False
    return hasattr(ray, "init")


def grid_wall(device: str, data_dir: str | None, deadline: float | None = None, profile: str = "paper") -> dict:
    """Both MNIST paper grids' training, MI by KSG on 1,000 digits (caches and results removed after).
    Returns the summary's grid fields: grid_wall_s and grid_via; with a deadline (seconds from now)
    that the grid would outrun, the bundles that fit (each one a `grid_bundle` line as it ends) and
    grid_complete false rather than a grid killed by a time limit with nothing to show."""
    with tempfile.TemporaryDirectory(prefix="sweep_speed_") as out:
        return _grid_wall(device, data_dir, Path(out), deadline, profile)


def _grid_wall(device: str, data_dir: str | None, out: Path, deadline: float | None, profile: str) -> dict:
    sets = ["--set", "mi_estimator=ksg", "--set", "mi_n=1000"]
    t0 = time.perf_counter()
    if _cli_runs():
        return _grid_wall_cli(sets, data_dir, out, t0, deadline, profile)
    from cchsweep import grid
    from cchsweep.execute import run_bundle
    from searchspaces import STUDIES

    # KSG's threads: on a GPU, every CPU, as `cchsweep run` gives a bundle holding the whole GPU
    cpus = len(os.sched_getaffinity(0)) if device.startswith("cuda") else 1
    plans = [grid.plan(STUDIES[name], profile, [s for s in sets if s != "--set"]) for name in GRIDS]
    budget = grid.memory_budget(1.0 if device.startswith("cuda") else 0.0)  # as `cchsweep run` bundles them
    work = [(p, bundle) for p in plans for bundle in grid.bundles(p.study, p.trials, len(p.trials), budget)]
    # the next bundle is expected to take as long as the longest so far: a stack's time follows its
    # steps (epochs x batches), which every bundle of these grids shares, not its number of points
    total, done, longest, prepared = sum(len(b) for _, b in work), 0, 0.0, set()
    for plan, bundle in work:
        elapsed = time.perf_counter() - t0
        if deadline is not None and elapsed + longest > deadline:
            return {
                "grid_complete": False,
                "grid_points_done": done,
                "grid_points": total,
                "grid_partial_s": round(elapsed, 1),
            }
        name = plan.study.name
        engine = {"cache_dir": str(out / "cache"), "cpus": cpus, "gpu": 1.0, "data_dir": data_dir, "device": device}
        b0 = time.perf_counter()
        if name not in prepared:  # the study's data (MNIST-M from BSDS500), once, inside the wall time
            prepared.add(name)
            points = [{**t.settings, **t.params} for t in plan.trials]
            STUDIES[name].prepare(Path(data_dir) if data_dir else None, out / "cache", points)
        run_bundle([t.to_dict() for t in bundle], engine)
        seconds = time.perf_counter() - b0
        longest, done = max(longest, seconds), done + len(bundle)
        emit(measure="grid_bundle", study=name, points=len(bundle), seconds=round(seconds, 1), points_done=done)
    return {"grid_wall_s": round(time.perf_counter() - t0, 1), "grid_via": "engine"}


def _grid_wall_cli(
    sets: list[str], data_dir: str | None, out: Path, t0: float, deadline: float | None, profile: str
) -> dict:
    env = dict(os.environ, **({"CCHSWEEP_DATA": data_dir} if data_dir else {}))
    for name in GRIDS:
        left = None if deadline is None else deadline - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            return {"grid_complete": False, "grid_stopped_in": name, "grid_partial_s": round(deadline, 1)}
        db = ["--db", str(out / "grid.duckdb")]
        try:
            subprocess.run(
                [sys.executable, "-m", "cchsweep", "run", name, "--profile", profile, *sets, *db],
                check=True,
                cwd=ROOT,
                env=env,
                timeout=left,
            )
        except subprocess.TimeoutExpired:
            return {
                "grid_complete": False,
                "grid_stopped_in": name,
                "grid_partial_s": round(time.perf_counter() - t0, 1),
            }
        emit(measure="grid_study", study=name, elapsed_s=round(time.perf_counter() - t0, 1))
    return {"grid_wall_s": round(time.perf_counter() - t0, 1), "grid_via": "cli"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (under 2 minutes on 2 CPU cores)")
    ap.add_argument("--full", action="store_true", help="also time both MNIST paper grids end to end")
    ap.add_argument(
        "--deadline",
        type=float,
        help="seconds this run may take: the grid (--full) starts no bundle it would not finish by then",
    )
    ap.add_argument("--grid-profile", default="paper", help="the grids' profile (smoke: a rehearsal of --full)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data-dir", default=os.environ.get("CCHSWEEP_DATA"))
    ap.add_argument("--students", type=int, help="KD students per stack (default: 20 on CPU, 100 on GPU)")
    args = ap.parse_args()
    device = args.device
    gpu = device.startswith("cuda")
    if not gpu:
        torch.set_num_threads(1)  # what one Ray worker gets: one CPU per bundle
    steps = 30 if args.quick else 150
    k = args.students or (100 if gpu else 20)
    x, y, teacher, source = mnist_arrays(args.data_dir, max(steps, 40) * BATCH, device)

    naive = emit(measure="naive_s_per_student_epoch", value=naive_epoch(x, y, teacher, device, steps), steps=steps)
    engine = emit(
        measure="engine_s_per_student_epoch",
        value=engine_epoch(x, y, teacher, device, k, steps),
        students=k,
        steps=steps,
    )
    variants = {}
    if gpu:  # the GPU options (cchsweep.cudagraph), each measured beside the default; a failure is a row
        for name, opts in (
            ("graphs", dict(graphs=True)),
            ("tf32", dict(tf32=True)),
            ("graphs_tf32", dict(graphs=True, tf32=True)),
        ):
            o = Options(**opts)
            try:
                value = engine_epoch(x, y, teacher, device, k, steps, o)
            except Exception as exc:  # noqa: BLE001 - reported, and the default path's figures still stand
                emit(measure=f"engine_{name}_s_per_student_epoch", error=f"{type(exc).__name__}: {exc}"[:300])
                continue
            ran = not o.graphs or o.replays > 0
            emit(measure=f"engine_{name}_s_per_student_epoch", value=value, replays=o.replays, blocked=o.blocked)
            if ran:
                variants[name] = value
    syn_k, syn_epochs = (80, 300) if gpu else (40, 3 if args.quick else 8)
    try:
        per_trial, stacked, syn_graphs, syn_compiled, compile_s = synthetic_models(
            device, syn_k, syn_epochs, graphs=gpu
        )
    except Exception as exc:  # noqa: BLE001 - a failed capture: measure without it
        emit(measure="synthetic_graphs", error=f"{type(exc).__name__}: {exc}"[:300])
        per_trial, stacked, syn_graphs, syn_compiled, compile_s = synthetic_models(device, syn_k, syn_epochs)
    floor = synthetic_floor(device, syn_k)
    emit(
        measure="synthetic_per_model_s",
        per_trial=per_trial,
        stacked=stacked,
        floor=floor,
        stacked_graphs=syn_graphs,
        stacked_compiled=syn_compiled,
        compile_s=compile_s,
        models=syn_k,
        epochs=syn_epochs,
    )
    summary = {
        "summary": True,
        "device": torch.cuda.get_device_name() if gpu else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "data": source,
        "naive_s_per_student_epoch": round(naive["value"], 4),
        "engine_s_per_student_epoch": round(engine["value"], 4),
        "speedup_vs_naive": round(naive["value"] / engine["value"], 2),
        "engine_students": k,
        "synthetic_per_trial_s_per_model": round(per_trial, 3),
        "synthetic_stacked_s_per_model": round(stacked, 3),
        "synthetic_speedup": round(per_trial / stacked, 2),
        "synthetic_floor_s_per_model": round(floor, 3),
        "synthetic_speedup_ceiling": round(per_trial / floor, 1),
        "synthetic_models": syn_k,
    }
    for name, value in variants.items():
        summary[f"engine_{name}_s_per_student_epoch"] = round(value, 5)
        summary[f"speedup_vs_naive_{name}"] = round(naive["value"] / value, 1)
    if syn_compiled:
        summary.update(
            synthetic_compiled_s_per_model=round(syn_compiled, 3),
            synthetic_speedup_compiled=round(per_trial / syn_compiled, 2),
            synthetic_compile_s=round(compile_s or 0.0, 1),
        )
    if syn_graphs:
        summary.update(
            synthetic_graphs_s_per_model=round(syn_graphs, 4), synthetic_speedup_graphs=round(per_trial / syn_graphs, 1)
        )
    if args.full:
        emit(**summary, grid_pending=True)  # the figures so far, in case the grid outlives a time limit
        if "graphs" in variants:  # the grid with the step graphs when they ran (TF32 stays off: see cuda_check)
            os.environ[GRAPHS_ENV] = "1"
        left = None if args.deadline is None else args.deadline - (time.perf_counter() - STARTED)
        summary.update(grid_wall(device, args.data_dir, left, args.grid_profile), grid_graphs="graphs" in variants)
        if args.grid_profile != "paper":
            summary["grid_profile"] = args.grid_profile
    emit(**summary)


if __name__ == "__main__":
    main()
