"""`lmi`: latentmi 0.1.3's LMI estimator (Gowri et al., 2024) re-implemented fast, batched, and in nats.

The same method step for step (cchsweep.mi.aecross, cchsweep.mi.knn): each input z-scored with its
population std (NaN -> 0), cast to float32 and clipped to +-10; a 50/50 split from
numpy.random.RandomState(seed).shuffle (latentmi's np.random.seed + np.random.shuffle); an AECross
(8-d latents) trained with Adam (lr 1e-4, eps 1e-7, batch 512, up to 300 epochs, patience 30) from
torch.manual_seed(seed); both inputs encoded in eval mode; KSG (k = 3, Chebyshev, 1e-10 uniform
jitter drawn next from the same RandomState, x then y) on the held-out half, bits -> nats.

What differs is the machinery: data stay on the device and batches are index gathers (no
DataLoader over a list of row pairs), validation losses reach the host once per epoch (not one
`.item()` per batch), KSG is a chunked float64 torch kernel, and `estimate_many` trains many
estimates of one shape at once as a stack (the three quantities of a trial, its repeats, the
points of a bundle), each with its own seed, split, stream and early stopping.

By default latentmi's two quirks are kept so the numbers are latentmi's: validation with Dropout on
(`validation_dropout=True`) and early stopping that keeps the current weights (`restore_best=False`).
`LMI(validation_dropout=False, restore_best=True)` corrects both; benchmarks/mi_speed.py --quirks
measures what each changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cchsweep.mi.aecross import Job, Settings, Trained, train_members
from cchsweep.mi.interface import paired, recorded_config
from cchsweep.mi.knn import ksg_pointwise_bits

JITTER = 1e-10  # latentmi's (NPEET's) tie-breaking noise


@dataclass(frozen=True)
class LMI:
    """Defaults are latentmi's own (the paper's); profiles cap epochs and raise lr as for latentmi."""

    epochs: int = 300
    lr: float = 1e-4
    batch_size: int = 512
    patience: int = 30
    latent: int = 8
    k: int = 3
    validation_split: float = 0.5
    validation_dropout: bool = True  # latentmi's quirk: validation loss with Dropout on
    restore_best: bool = False  # latentmi's quirk (False): early stopping keeps the current weights
    device: str = "cpu"
    stack: int = 0  # estimates per stack; 0 = 1 on a CPU (compute-bound: see README), 64 on a GPU
    name: str = "lmi"

    def config(self) -> dict:
        return recorded_config(self, "device", "stack")  # neither changes what it estimates

    def estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        return self.estimate_many([(x, y, seed)])[0]

    def estimate_many(self, tasks: Sequence[tuple[np.ndarray, np.ndarray, int]]) -> list[float]:
        """I(x; y) in nats for each (x, y, seed); estimates of one shape train together."""
        device = torch.device(self.device)
        inputs: dict[int, torch.Tensor] = {}  # z-scored once per distinct array (repeats share theirs)
        jobs, rngs = [], []
        for x, y, seed in tasks:
            xs, ys = paired(x, y)
            for key, arr in ((id(x), xs), (id(y), ys)):
                if key not in inputs:
                    inputs[key] = _standardized(arr, device)
            tx, ty = inputs[id(x)], inputs[id(y)]
            rng = np.random.RandomState(seed)
            rows = np.arange(len(xs))
            rng.shuffle(rows)
            n_train = int(len(xs) * (1 - self.validation_split))
            jobs.append(Job(tx, ty, rows[:n_train], rows[n_train:], seed))
            rngs.append(rng)
        trained = self._train(jobs)
        return [self._ksg(job, rng, t.zx, t.zy) for job, rng, t in zip(jobs, rngs, trained)]

    def _train(self, jobs: list[Job]) -> list[Trained]:
        quirks = {"validation_dropout": self.validation_dropout, "restore_best": self.restore_best}
        settings = Settings(self.epochs, self.lr, self.batch_size, self.patience, self.latent, **quirks)
        size = self.stack or (1 if torch.device(self.device).type == "cpu" else 64)
        groups: dict[tuple[int, int, int, int], list[int]] = {}
        for i, j in enumerate(jobs):
            groups.setdefault((j.x.shape[1], j.y.shape[1], len(j.train_rows), len(j.val_rows)), []).append(i)
        out: list[Trained | None] = [None] * len(jobs)
        for members in groups.values():
            for start in range(0, len(members), size):
                chunk = members[start : start + size]
                for i, latent in zip(chunk, train_members([jobs[i] for i in chunk], settings)):
                    out[i] = latent
        return out  # type: ignore[return-value]

    def _ksg(self, job: Job, rng: np.random.RandomState, zx: torch.Tensor, zy: torch.Tensor) -> float:
        """latentmi: NaN latents -> 0, KSG on the held-out rows with jitter, nanmean of pointwise bits."""
        rows = torch.as_tensor(job.val_rows, device=zx.device)
        held_x = torch.nan_to_num(zx).index_select(0, rows).cpu().numpy()
        held_y = torch.nan_to_num(zy).index_select(0, rows).cpu().numpy()
        x = held_x + JITTER * rng.random_sample(held_x.shape)  # float32 + float64 noise -> float64
        y = held_y + JITTER * rng.random_sample(held_y.shape)
        dev = zx.device
        bits = ksg_pointwise_bits(torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev), self.k)
        full = np.full(len(job.x), np.nan)
        full[job.val_rows] = bits
        return float(np.nanmean(full)) * math.log(2.0)


def _standardized(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """latentmi's input transform: nan_to_num((a - mean) / std), float32, clipped to +-10."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.nan_to_num((a - a.mean(axis=0)) / a.std(axis=0))
    return torch.clip(torch.from_numpy(z).float().to(device), min=-10, max=10)
