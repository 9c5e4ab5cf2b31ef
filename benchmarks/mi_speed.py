"""MI estimation speed and equality, side by side in one run: latentmi 0.1.3 vs cchsweep's `lmi`.

    python benchmarks/mi_speed.py [--quick] [--full] [--quirks] [--device cpu|cuda] [--n N] [--epochs E]
                                  [--lr LR] [--batch B] [--seeds S] [--no-speed]

Speed (always): one estimate of a 64-d representation vs a 1-d target (0.5 nats, n rows) by
latentmi and by lmi, then B estimates (seeds 0..B-1) by lmi in one call. Both run every epoch
(patience = epochs) so they do the same work. Prints JSON lines and a summary line with:
  device, n, epochs, lmi_latentmi_s, lmi_fast_s, lmi_speedup (one estimate), lmi_same_value
  (bit-equal estimates: expected on a CPU), lmi_batched_per_estimate_s, lmi_batched_speedup,
  ksg_latentmi_s, ksg_torch_s (KSG alone on the n/2 held-out latents), lmi_masks_own (a member's
  Dropout masks on this device are the same alone, in a stack of three and after a stack-mate
  stopped: its estimate does not depend on what shares its stack).
Defaults: CPU n = 5,000, 10 epochs, B = 8 (latentmi's 300 epochs would take ~4 min per estimate);
GPU n = 10,000, 300 epochs, B = 50. --quick (under 2 minutes on 2 CPU cores): n = 2,000, 3 epochs.

Equality (--full): for each shape the studies produce (representation pairs, 1-d targets, one-hot
classes; known MI from cchsweep.mi.known) and for real representations (TCGA BRCA's Table 9 hidden
layers), 10 seeds by latentmi (one at a time) and by lmi (stacked, one call): mean +- SE of each,
the truth, and whether the means differ by less than two pooled SEs. --n / --epochs set the scale
(defaults: n = 5,000, 300 epochs: the paper's; a GPU job).

Quirks (--quirks): what latentmi's two quirks change, lmi over the same seeds with each corrected
(validation in eval mode; the best weights restored at the stop) and both: mean +- SE per variant and
the paired difference from the faithful estimate (same seeds, same splits, same initial weights).

latentmi is imported lazily; on numpy 2 its `np.NaN` is restored first (latentmi 0.1.3 predates
numpy 2). It must be importable (pip install --no-deps latentmi==0.1.3 on a bare GPU machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cchsweep.mi.known import gaussian_pair, label_pair  # noqa: E402
from cchsweep.mi.latentmi_estimator import LatentMI, numpy2_alias, one_hot  # noqa: E402
from cchsweep.mi.lmi import LMI  # noqa: E402

numpy2_alias()


def emit(**row) -> dict:
    print(json.dumps(row), flush=True)
    return row


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    value = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return value, time.perf_counter() - t0


def speed(device: str, n: int, epochs: int, batch: int) -> dict:
    x, y, truth = gaussian_pair(n, 64, 1, 0.5, seed=0)
    settings = {"epochs": epochs, "patience": epochs, "device": device}
    warm = {**settings, "epochs": 1, "patience": 1}  # imports and first-call kernels outside the timings
    LMI(**warm).estimate(x[:600], y[:600], seed=0)
    LatentMI(**warm).estimate(x[:600], y[:600], seed=0)
    ref, ref_s = timed(lambda: LatentMI(**settings).estimate(x, y, seed=1))
    emit(measure="latentmi_one_estimate", seconds=round(ref_s, 2), value=ref, truth=truth, n=n, epochs=epochs)
    fast, fast_s = timed(lambda: LMI(**settings).estimate(x, y, seed=1))
    emit(measure="lmi_one_estimate", seconds=round(fast_s, 2), value=fast, truth=truth, n=n, epochs=epochs)
    many, many_s = timed(lambda: LMI(**settings, stack=batch).estimate_many([(x, y, s) for s in range(batch)]))
    emit(measure="lmi_batched", estimates=batch, seconds=round(many_s, 2), mean=float(np.mean(many)), truth=truth)
    ksg_ref, ksg_fast = ksg_times(n // 2, device)
    return {
        "n": n,
        "epochs": epochs,
        "lmi_latentmi_s": round(ref_s, 3),
        "lmi_fast_s": round(fast_s, 3),
        "lmi_speedup": round(ref_s / fast_s, 2),
        "lmi_same_value": ref == fast,
        "lmi_batched_estimates": batch,
        "lmi_batched_per_estimate_s": round(many_s / batch, 3),
        "lmi_batched_speedup": round(ref_s / (many_s / batch), 2),
        "ksg_latentmi_s": round(ksg_ref, 3),
        "ksg_torch_s": round(ksg_fast, 3),
    }


def ksg_times(n: int, device: str) -> tuple[float, float]:
    from latentmi import ksg

    from cchsweep.mi.knn import ksg_pointwise_bits

    rs = np.random.RandomState(0)
    zx = rs.randn(n, 8).astype(np.float32)
    zy = (zx + rs.randn(n, 8)).astype(np.float32)
    _, ref_s = timed(lambda: ksg.mi(zx, zy))
    x, y = (torch.from_numpy(z + 1e-10 * rs.random_sample(z.shape)).to(device) for z in (zx, zy))
    _, fast_s = timed(lambda: ksg_pointwise_bits(x, y))
    emit(measure="ksg", n=n, latentmi_s=round(ref_s, 3), torch_s=round(fast_s, 3))
    return ref_s, fast_s


def shapes(n: int) -> dict:
    """name -> seed -> (x, y, truth): the studies' shapes with known MI."""
    return {
        "64-d vs 64-d, 0.2 nat": lambda s: gaussian_pair(n, 64, 64, 0.2, seed=s),
        "64-d vs 64-d, 1.0 nat": lambda s: gaussian_pair(n, 64, 64, 1.0, seed=s),
        "64-d vs 64-d, 2.5 nat": lambda s: gaussian_pair(n, 64, 64, 2.5, seed=s),
        "256-d vs 256-d, 1.0 nat": lambda s: gaussian_pair(n, 256, 256, 1.0, seed=s),
        "64-d vs 1-d target, 0.5 nat": lambda s: gaussian_pair(n, 64, 1, 0.5, seed=s),
        "256-d vs 1-d target, 1.5 nat": lambda s: gaussian_pair(n, 256, 1, 1.5, seed=s, informative=1),
        "64-d vs 10 classes, 1.1 nat": lambda s: label_pair(n, 64, 10, 0.3, seed=s),
    }


def tcga_representations(data_dir: Path) -> dict:
    """BRCA mRNA and CNV: the Table 9 networks' 64-unit layers (30 full-batch Adam epochs) and labels."""
    import torch.nn.functional as F

    from cchsweep.data.cohort import load_cohort, prepare
    from cchsweep.trials.tcga import train_unimodal

    p = prepare(load_cohort(data_dir / "tcga" / "brca", ["mrna", "cnv"], min_modalities=2), 0, 0.1, 100)
    y = torch.as_tensor(p.y_train)
    reps = {}
    for i, modality in enumerate(("mrna", "cnv")):
        s = {"lr": 0.01, "epochs": 30, "batch_size": 0}
        net = train_unimodal(p, modality, i, lambda out, idx: F.cross_entropy(out, y[idx]), s, torch.device("cpu"))
        with torch.no_grad():
            reps[modality] = net.representation(torch.as_tensor(p.x_train[modality], dtype=torch.float32)).numpy()
    labels = one_hot(p.y_train, len(p.classes))
    return {
        "TCGA BRCA H_mrna vs H_cnv (64-d, 171 rows)": lambda s: (reps["mrna"], reps["cnv"], None),
        "TCGA BRCA H_cnv vs subtype (64-d vs 5 classes)": lambda s: (reps["cnv"], labels, None),
    }


def equality(device: str, n: int, epochs: int, lr: float, seeds: int, data_dir: Path | None) -> list[dict]:
    cases = shapes(n)
    if data_dir is not None and (data_dir / "tcga" / "brca").is_dir():
        cases.update(tcga_representations(data_dir))
    rows = []
    for name, make in cases.items():
        data = [make(s) for s in range(seeds)]
        settings = {"epochs": epochs, "lr": lr, "device": device}
        tasks = [(x, y, s) for s, (x, y, _) in enumerate(data)]
        ref, ref_s = timed(lambda tasks=tasks: [LatentMI(**settings).estimate(x, y, seed=s) for x, y, s in tasks])  # noqa: B023
        # stacked even on a CPU (where lmi's default is one at a time, bit-equal to latentmi)
        fast, fast_s = timed(lambda tasks=tasks: LMI(**settings, stack=seeds).estimate_many(tasks))  # noqa: B023
        se = math.sqrt(np.var(ref, ddof=1) / seeds + np.var(fast, ddof=1) / seeds)
        rows.append(
            emit(
                check="equality",
                case=name,
                n=len(data[0][0]),
                epochs=epochs,
                lr=lr,
                truth=data[0][2],
                latentmi_mean=round(float(np.mean(ref)), 4),
                latentmi_se=round(float(np.std(ref, ddof=1) / math.sqrt(seeds)), 4),
                lmi_mean=round(float(np.mean(fast)), 4),
                lmi_se=round(float(np.std(fast, ddof=1) / math.sqrt(seeds)), 4),
                pooled_se=round(se, 4),
                agree=bool(abs(np.mean(ref) - np.mean(fast)) < 2 * se),
                latentmi_s=round(ref_s, 1),
                lmi_s=round(fast_s, 1),
            )
        )
    return rows


QUIRKS = {
    "faithful": {},
    "eval_validation": {"validation_dropout": False},
    "restore_best": {"restore_best": True},
    "both_corrected": {"validation_dropout": False, "restore_best": True},
}


def quirks(device: str, n: int, epochs: int, lr: float, seeds: int) -> list[dict]:
    # where the estimator reads a clear signal at CPU sizes (at n = 1,000 it reads ~0 on the 64-d pairs)
    cases = {k: v for k, v in shapes(n).items() if k in ("64-d vs 1-d target, 0.5 nat", "64-d vs 10 classes, 1.1 nat")}
    rows = []
    for name, make in cases.items():
        data = [make(s) for s in range(seeds)]
        tasks = [(x, y, s) for s, (x, y, _) in enumerate(data)]
        values = {
            q: np.array(LMI(epochs=epochs, lr=lr, device=device, **kw).estimate_many(tasks)) for q, kw in QUIRKS.items()
        }
        for q, v in values.items():
            diff = v - values["faithful"]
            rows.append(
                emit(
                    check="quirk",
                    case=name,
                    variant=q,
                    n=n,
                    epochs=epochs,
                    lr=lr,
                    truth=data[0][2],
                    mean=round(float(v.mean()), 4),
                    se=round(float(v.std(ddof=1) / math.sqrt(seeds)), 4),
                    diff_from_faithful=round(float(diff.mean()), 4),
                    diff_se=round(float(diff.std(ddof=1) / math.sqrt(seeds)), 4),
                )
            )
    return rows


def masks_own(device: str) -> bool:
    """Seed 7's masks alone vs in a stack [3, 7, 11], then after member 3 stopped (aecross._Streams)."""
    from cchsweep.mi import aecross

    widths = [2, 256, 512, 1024] * 2

    def streams(seeds):
        states = [torch.Generator().manual_seed(s).get_state() for s in seeds]
        return aecross._Streams(states, seeds, torch.device(device), own_masks=True)

    alone, shared = streams([7]), streams([3, 7, 11])
    same = True
    for step in range(3):
        if step == 2:
            shared.keep([1, 2])
        mine, theirs = alone.masks(512, widths), shared.masks(512, widths)
        same &= all(torch.equal(a[0], b[1 if step < 2 else 0]) for a, b in zip(mine, theirs))
    return bool(same)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small run (under 2 minutes on 2 CPU cores)")
    ap.add_argument("--full", action="store_true", help="also the equality table over 10 seeds per shape")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, help="rows per estimate (default: 5,000 on CPU, 10,000 on GPU)")
    ap.add_argument("--epochs", type=int, help="epochs per estimate (default: 10 on CPU, 300 on GPU)")
    ap.add_argument("--batch", type=int, help="estimates in the batched call (default: 8 on CPU, 50 on GPU)")
    ap.add_argument("--quirks", action="store_true", help="also what latentmi's two quirks change (lmi, 10 seeds)")
    ap.add_argument("--lr", type=float, default=1e-4, help="Adam lr in the equality and quirk runs (latentmi's 1e-4)")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed measurements")
    ap.add_argument("--seeds", type=int, default=10, help="seeds per shape in the equality and quirk tables")
    ap.add_argument("--data-dir", default=os.environ.get("CCHSWEEP_DATA"))
    args = ap.parse_args()
    gpu = args.device.startswith("cuda")
    n = args.n or (2000 if args.quick else 10_000 if gpu else 5000)
    epochs = args.epochs or (3 if args.quick else 300 if gpu else 10)
    batch = args.batch or (50 if gpu else 8)
    summary = {} if args.no_speed else speed(args.device, n, epochs, batch)
    agree = None
    full_n, full_epochs = args.n or 5000, args.epochs or 300
    if args.full:
        data_dir = Path(args.data_dir) if args.data_dir else None
        rows = equality(args.device, full_n, full_epochs, args.lr, args.seeds, data_dir)
        agree = f"{sum(r['agree'] for r in rows)}/{len(rows)}"
    if args.quirks:
        quirks(args.device, full_n, full_epochs, args.lr, args.seeds)
    emit(
        summary=True,
        device=torch.cuda.get_device_name() if gpu else platform.processor() or platform.machine(),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        **summary,
        lmi_masks_own=masks_own(args.device),
        equality_agree=agree,
    )


if __name__ == "__main__":
    main()
