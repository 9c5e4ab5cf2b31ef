"""The stacked engine on a device, checked against the single-model reference on the same device.

    python benchmarks/cuda_check.py [--device cuda] [--data-dir DIR] [--only tcga]

Needs no Ray, DuckDB or latentmi (the device machine has none): it calls the engine's bundle and
reference functions directly, the way a Ray worker does. Prints JSON lines:
  family       stacked vs single after a few optimizer steps, per network family: max |param diff|
               relative to the largest weight (ok below 1e-4 for SGD, 1e-3 for Adam, whose g / sqrt(v)
               magnifies rounding in near-zero gradients: the bounds tests/test_stack.py holds)
  bundle       a smoke sweep's grid points (synthetic_sigma12, mnist_blur, tcga_noise and tcga_fusion
               where their data and polars are there, else a row `skipped` says why; MI by KSG) through
               the stacked bundle vs each point through the reference trial: max metric differences,
               wall seconds of each path
  graphs       (CUDA) one CUDA graph per step vs the eager stack and the single path, per family a
               graph can hold, weights and BatchNorm buffers (ok: the graph replayed, and the
               family bounds above hold)
  tf32         (CUDA) TF32 vs float32 test accuracy of 4 MNIST MLPs: within_seed_noise (the mean
               change at most sqrt(2) seed SDs, what re-seeding moves) says whether TF32 may become
               a default (a finding; it does not fail the check)
  bundle_graphs (CUDA) each bundle again with CCHSWEEP_CUDA_GRAPHS=1, against the eager bundle
               (tcga_fusion's Dropout keeps it eager: blocked, by design)
  summary      ok true when every difference is within the tolerances the CPU tests use; `skipped`
               names the studies not checked
--only tcga runs the TCGA bundles alone (gpu_check.sh --tcga: the call that brings polars).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cchsweep import grid  # noqa: E402
from cchsweep.cudagraph import GRAPHS_ENV, GraphedStep  # noqa: E402
from cchsweep.execute import run_bundle, run_spec  # noqa: E402
from cchsweep.models import MLP  # noqa: E402
from cchsweep.stack import Member, Options, Recipe, train_single, train_stacked  # noqa: E402
from cchsweep.trials import mnist, synthetic  # noqa: E402
from searchspaces import STUDIES  # noqa: E402


def emit(**row) -> dict:
    print(json.dumps(row), flush=True)
    return row


def max_param_diff(a, b) -> float:
    """max |single - stacked| over every parameter, relative to the largest parameter magnitude."""
    diff = max(max((p - q).abs().max().item() for p, q in zip(m.parameters(), n.parameters())) for m, n in zip(a, b))
    return diff / max(p.abs().max().item() for m in a for p in m.parameters())


def max_state_diff(a, b) -> float:
    """max_param_diff over the whole state (BatchNorm running statistics too), and inf when a member's
    num_batches_tracked differs: a graph that skipped or doubled a buffer update shows here."""
    diff = 0.0
    for m, n in zip(a, b):
        for p, q in zip(m.state_dict().values(), n.state_dict().values()):
            if not p.is_floating_point():
                if not torch.equal(p, q):
                    return float("inf")
                continue
            diff = max(diff, (p - q).abs().max().item())
    return diff / max(p.abs().max().item() for m in a for p in m.parameters())


def mnist_recipe(lr: float, epochs: int) -> Recipe:
    """The MNIST MLP (784-1024-256-10) with eq. (2)'s loss, SGD, batch 64."""
    return Recipe(
        lambda: MLP(784, mnist.HIDDEN, 10, activation="leaky_relu"),
        mnist._loss,
        mnist._stacked_loss,
        "sgd",
        lr,
        epochs,
        64,
    )


def synthetic_recipe(epochs: int, batch: int) -> Recipe:
    """The synthetic MLP (100-64-1) with eq. (4)'s loss, Adam lr 0.01."""
    return Recipe(lambda: MLP(100, [64], 1), synthetic._loss, synthetic._stacked_loss, "adam", 0.01, epochs, batch)


def families(device: str) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    rows = []
    x = torch.randn(1000, 100, generator=g).to(device)
    y = torch.randn(1000, 1, generator=g).to(device)
    t = (y * 0.5).to(device)
    reg = synthetic_recipe(1, 250)
    members = [Member(0, 0, x, {"y": y, "teacher": y}, {"lam": 0.0})] + [
        Member(i, 1, x, {"y": y, "teacher": t}, {"lam": lam}) for i, lam in ((1, 0.3), (2, 0.8))
    ]
    diff = max_param_diff(train_single(reg, members, device), train_stacked(reg, members, device, options=Options()))
    rows.append(emit(check="family", family="synthetic MLP, Adam", steps=4, max_rel_param_diff=diff, ok=diff < 1e-3))
    xm = torch.rand(1024, 784, generator=g).to(device)
    ym = torch.randint(0, 10, (1024,), generator=g).to(device)
    logits = (torch.randn(1024, 10, generator=g) * 3).to(device)
    cls = mnist_recipe(0.01, 1)
    members = [Member(0, 0, xm, {"y": ym, "teacher": logits}, {"temperature": 1.0, "lam": 0.0})] + [
        Member(1, 1, xm, {"y": ym, "teacher": logits}, {"temperature": temp, "lam": 0.5}) for temp in (1.0, 3.0, 4.0)
    ]
    diff = max_param_diff(train_single(cls, members, device), train_stacked(cls, members, device, options=Options()))
    rows.append(emit(check="family", family="MNIST MLP, SGD, KD", steps=16, max_rel_param_diff=diff, ok=diff < 1e-4))
    from cchsweep.trials.mosei import MoseiNet

    xb = torch.randn(301, 40, generator=g).to(device)
    yb = (xb[:, 0] > 0).long()
    bn = Recipe(lambda: MoseiNet(40), mnist._loss, mnist._stacked_loss, "adamw", 0.003, 2, 50, 0.01, "cosine")
    soft = torch.stack([xb[:, 0], -xb[:, 0]], 1)
    members = [Member(i, i, xb, {"y": yb, "teacher": soft}, {"temperature": 2.0, "lam": 0.5 * i}) for i in range(3)]
    diff = max_param_diff(train_single(bn, members, device), train_stacked(bn, members, device, options=Options()))
    rows.append(
        emit(
            check="family",
            family="MOSEI net, BatchNorm + seeded Dropout, AdamW",
            steps=12,
            max_rel_param_diff=diff,
            ok=diff < 1e-3,
        )
    )
    from cchsweep.trials.tcga import _fusion_recipe

    xf = torch.randn(171, 70, generator=g).to(device)
    yf = (xf[:, 0] > 0).long() + (xf[:, 50] > 0).long()
    fusion = _fusion_recipe(40, 30, 3, 0.01, 6, 171)  # full batch, as the study trains
    members = [Member(i, i, xf, {"y": yf}, {"temperature": 4.0, "lam": 0.5 * (i > 0)}) for i in range(3)]
    diff = max_param_diff(
        train_single(fusion, members, device), train_stacked(fusion, members, device, options=Options())
    )
    rows.append(
        emit(
            check="family",
            family="TCGA FusionNet, two encoders, BatchNorm + seeded Dropout, Adam",
            steps=6,
            max_rel_param_diff=diff,
            ok=diff < 1e-3,
        )
    )
    return rows


def graphs(device: str) -> list[dict]:
    """One CUDA graph per step (Options(graphs=True)) vs the eager stack and vs the single path, per
    network family that a graph can hold; row counts leave a partial last batch (run eagerly)."""
    g = torch.Generator().manual_seed(1)
    rows = []
    x = torch.randn(1100, 100, generator=g).to(device)
    y = torch.randn(1100, 1, generator=g).to(device)
    reg = synthetic_recipe(3, 250)
    reg_members = [Member(i, i % 2, x, {"y": y, "teacher": y * 0.5}, {"lam": 0.4 * i}) for i in range(3)]
    xm = torch.rand(1056, 784, generator=g).to(device)
    ym = torch.randint(0, 10, (1056,), generator=g).to(device)
    logits = (torch.randn(1056, 10, generator=g) * 3).to(device)
    cls = mnist_recipe(0.01, 2)
    cls_members = [
        Member(i, i % 2, xm, {"y": ym, "teacher": logits}, {"temperature": 1.0 + i, "lam": 0.5 * (i > 0)})
        for i in range(4)
    ]
    from cchsweep.trials.mosei import MoseiNet

    xb = torch.randn(330, 40, generator=g).to(device)
    yb = (xb[:, 0] > 0).long()
    soft = torch.stack([xb[:, 0], -xb[:, 0]], 1)
    bn = Recipe(lambda: MoseiNet(40, dropout=0.0), mnist._loss, mnist._stacked_loss, "adamw", 0.003, 3, 50, 0.01)
    bn_members = [Member(i, i, xb, {"y": yb, "teacher": soft}, {"temperature": 2.0, "lam": 0.5 * i}) for i in range(3)]
    cases = [
        ("synthetic MLP, Adam", reg, reg_members, 1e-3),
        ("MNIST MLP, SGD, KD", cls, cls_members, 1e-4),
        ("MOSEI net without Dropout, BatchNorm, AdamW", bn, bn_members, 1e-3),
    ]
    for family, recipe, members, tol in cases:
        opts = Options(graphs=True)
        try:
            graphed = train_stacked(recipe, members, device, options=opts)
        except Exception as exc:  # noqa: BLE001 - the capture failing is this check's finding
            rows.append(emit(check="graphs", family=family, error=f"{type(exc).__name__}: {exc}"[:400], ok=False))
            continue
        eager = train_stacked(recipe, members, device, options=Options())
        vs_eager = max_state_diff(eager, graphed)  # weights and BatchNorm buffers
        vs_single = max_state_diff(train_single(recipe, members, device), graphed)
        rows.append(
            emit(
                check="graphs",
                family=family,
                replays=opts.replays,
                blocked=opts.blocked,
                max_rel_state_diff_vs_eager=vs_eager,
                max_rel_state_diff_vs_single=vs_single,
                ok=opts.replays > 0 and vs_eager < tol and vs_single < tol,
            )
        )
    return rows


TF32_SEEDS = 8


def tf32(device: str, data_dir: str | None) -> dict:
    """TF32 against float32, on the MNIST MLP: 8 seeds, 3 epochs on 10,000 digits. TF32 is usable when
    its per-seed accuracy change is within the seed-to-seed spread and shows no bias (a finding, not a
    pass/fail): the mean signed change and its SE are reported beside the spread."""
    from cchsweep.data.mnist import load_mnist

    if not data_dir:
        return emit(check="tf32", skipped="no MNIST: pass --data-dir", ok=True)
    (xi, yi), (xt, yt) = load_mnist(Path(data_dir), "train"), load_mnist(Path(data_dir), "test")
    x = torch.from_numpy(xi[:10_000].reshape(-1, 784).astype("float32") / 255).to(device)
    y = torch.from_numpy(yi[:10_000].astype("int64")).to(device)
    xte = torch.from_numpy(xt.reshape(-1, 784).astype("float32") / 255).to(device)
    yte = torch.from_numpy(yt.astype("int64")).to(device)
    recipe = mnist_recipe(0.05, 3)
    members = [
        Member(s, s, x, {"y": y, "teacher": torch.zeros(10_000, 10, device=device)}, {"temperature": 1.0, "lam": 0.0})
        for s in range(TF32_SEEDS)
    ]

    def accuracies(options: Options) -> list[float]:
        models = train_stacked(recipe, members, device, options=options)
        with torch.no_grad():
            return [(m(xte).argmax(1) == yte).float().mean().item() for m in models]

    fp32, tf = accuracies(Options()), accuracies(Options(tf32=True))
    spread = statistics.stdev(fp32)
    deltas = [b - a for a, b in zip(fp32, tf)]
    change = statistics.fmean(abs(d) for d in deltas)
    bias, bias_se = statistics.fmean(deltas), statistics.stdev(deltas) / math.sqrt(len(deltas))
    # training is chaotic: from the first rounding difference a TF32 run behaves like another draw, and
    # two independent draws differ by sqrt(2) seed SDs (RMS); more than that, or a mean signed change
    # beyond two of its SEs (one test digit of slack), is TF32's own bias
    return emit(
        check="tf32",
        acc_fp32=fp32,
        acc_tf32=tf,
        mean_acc_change=change,
        max_acc_change=max(abs(d) for d in deltas),
        mean_signed_change=bias,
        signed_change_se=bias_se,
        seed_sd=spread,
        within_seed_noise=change <= math.sqrt(2) * spread and abs(bias) <= 2 * bias_se + 1e-4,
        ok=True,
    )


def worst_diffs(got, ref) -> dict[str, float]:
    """The largest metric differences between two lists of records (MSE relative, the rest absolute)."""
    worst: dict[str, float] = {}
    for a, b in zip(got, ref):
        for model in b.metrics:
            for metric, value in b.metrics[model].items():
                d = abs(a.metrics[model][metric] - value) / (abs(value) if metric == "mse" else 1.0)
                worst[metric] = max(worst.get(metric, 0.0), d)
    return worst


def stacked_bundle(specs: list[dict], engine: dict, graphs_switch: str):
    """One bundle through the stacked engine with CCHSWEEP_CUDA_GRAPHS set as a user would set it:
    its records, wall seconds, and how many steps CUDA graphs replayed."""
    os.environ[GRAPHS_ENV] = graphs_switch
    t0, before = time.perf_counter(), GraphedStep.total_replays
    try:
        records = run_bundle(specs, engine)
    finally:
        os.environ[GRAPHS_ENV] = "0"
    return records, time.perf_counter() - t0, GraphedStep.total_replays - before


def bounds_ok(worst: dict[str, float], acc: float | None) -> bool:
    """The CPU tests' bounds: MSE within 1e-3 relative, accuracy within `acc` (one test sample)."""
    return worst.get("mse", 0.0) <= 1e-3 and worst.get("acc", 0.0) <= (acc or 1.0) + 1e-9


NO_POLARS = "polars is not installed (TCGA cohorts are read with it): benchmarks/device_prep.sh says how to add it"


def _has_polars() -> bool:
    try:
        import polars  # noqa: F401
    except ImportError:
        return False
    return True


def bundles(device: str, data_dir: str, graphs: bool = False, tcga_only: bool = False) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="cuda_check_") as scratch:  # the artifact caches, removed after
        return _bundles(device, data_dir, Path(scratch), graphs, tcga_only)


def _bundles(device: str, data_dir: str, scratch: Path, graphs: bool, tcga_only: bool) -> list[dict]:
    """Each smoke grid as one stacked bundle vs each point through the reference trial; with graphs,
    the bundle again with CCHSWEEP_CUDA_GRAPHS=1 (as a user switches them on) vs the eager bundle
    (ok needs the graphs to have replayed, except in tcga_fusion, whose Dropout keeps it eager)."""
    rows = []
    cases = (
        []
        if tcga_only
        else [
            ("synthetic_sigma12", ["mi_estimator=ksg", "epochs=10"], None),
            ("mnist_blur", ["mi_estimator=ksg", "epochs=3"], 0.02),  # near-chance smoke students: see test_stack
        ]
    )
    if tcga_only and not (Path(data_dir) / "tcga" / "brca").is_dir():
        rows.append(emit(check="bundle", study="tcga", error=f"no TCGA BRCA cohort in {data_dir}/tcga/brca", ok=False))
    if (Path(data_dir) / "tcga" / "brca").is_dir():
        if not _has_polars():  # the cohort reader's; the device image lacks it
            for study in ("tcga_noise", "tcga_fusion"):
                rows.append(emit(check="bundle", study=study, skipped=NO_POLARS, ok=True))
        else:
            cases.append(("tcga_noise", ["mi_estimator=ksg", "seed=0,1"], 1 / 19))
            cases.append(("tcga_fusion", ["mi_estimator=ksg", "seed=0,1", "teacher_modality=mrna"], 1 / 19))
    cpus = len(os.sched_getaffinity(0)) if device.startswith("cuda") else 1  # KSG's threads (the GPU machine has 16)
    for study, overrides, acc in cases:
        plan = grid.plan(STUDIES[study], "smoke", overrides)
        specs = [t.to_dict() for t in plan.trials]
        root = scratch / study
        engine = {"cpus": cpus, "gpu": 1.0, "data_dir": data_dir, "device": device}
        for cache in ("s", "r", "g") if graphs else ("s", "r"):
            if STUDIES[study].prepare is not None:
                STUDIES[study].prepare(Path(data_dir), root / cache, [{**t.settings, **t.params} for t in plan.trials])

        got, stacked_s, _ = stacked_bundle(specs, {**engine, "cache_dir": str(root / "s")}, "0")
        failed = [r.error for r in got if r.status != "ok"]
        if failed:
            rows.append(emit(check="bundle", study=study, error=failed[0], ok=False))
            continue
        t0 = time.perf_counter()
        ref = [run_spec(s, {**engine, "cache_dir": str(root / "r")}) for s in specs]
        single_s = time.perf_counter() - t0
        worst = worst_diffs(got, ref)
        rows.append(
            emit(
                check="bundle",
                study=study,
                points=len(specs),
                device=got[0].device,
                max_rel_mse_diff=worst.get("mse"),
                max_acc_diff=worst.get("acc"),
                stacked_s=round(stacked_s, 2),
                single_s=round(single_s, 2),
                ok=bounds_ok(worst, acc),
            )
        )
        if not graphs:
            continue
        graphed, graphed_s, replays = stacked_bundle(specs, {**engine, "cache_dir": str(root / "g")}, "1")
        failed = [r.error for r in graphed if r.status != "ok"]
        if failed:
            rows.append(emit(check="bundle_graphs", study=study, error=failed[0], ok=False))
            continue
        worst = worst_diffs(graphed, got)
        rows.append(
            emit(
                check="bundle_graphs",
                study=study,
                graph_replays=replays,
                max_rel_mse_diff_vs_eager=worst.get("mse"),
                max_acc_diff_vs_eager=worst.get("acc"),
                graphed_s=round(graphed_s, 2),
                eager_s=round(stacked_s, 2),
                ok=bounds_ok(worst, acc) and (replays > 0 or study == "tcga_fusion"),
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data-dir", default=os.environ.get("CCHSWEEP_DATA"))
    ap.add_argument("--only", choices=["tcga"], help="run the TCGA bundles alone (they need polars)")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("cuda_check: no CUDA device here; pass --device cpu to run the same checks on the CPU")
    if args.only and not args.data_dir:
        sys.exit("cuda_check: --only tcga needs the data: pass --data-dir or set CCHSWEEP_DATA")
    rows = [] if args.only else families(args.device)
    if args.device.startswith("cuda") and not args.only:
        rows += graphs(args.device)
        rows.append(tf32(args.device, args.data_dir))
    if args.data_dir:
        rows += bundles(args.device, args.data_dir, graphs=args.device.startswith("cuda"), tcga_only=bool(args.only))
    ok = all(r["ok"] for r in rows)
    emit(
        check="summary",
        ok=ok,
        checks=len(rows),
        skipped=[r.get("study", r["check"]) for r in rows if "skipped" in r],
        torch=torch.__version__,
        device=torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
