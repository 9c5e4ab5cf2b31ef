"""latentmi 0.1.3 (Gowri et al., 2024), the paper's estimator, made seeded, silent and in nats."""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass

import numpy as np
import torch

from cchsweep.mi.interface import paired, recorded_config
from cchsweep.train import fork_rngs


def numpy2_alias() -> None:
    """latentmi 0.1.3 predates numpy 2 and uses np.NaN, which numpy 2 removed: restore the alias
    before importing it (the device machine has numpy 2.5)."""
    if not hasattr(np, "NaN"):
        np.NaN = np.nan  # type: ignore[attr-defined,misc]


@dataclass(frozen=True)
class LatentMI:
    """Defaults are latentmi's own (the paper's); cheaper profiles cap epochs and raise lr."""

    epochs: int = 300
    lr: float = 1e-4
    batch_size: int = 512
    patience: int = 30
    device: str = "cpu"
    name: str = "latentmi"

    def config(self) -> dict:
        return recorded_config(self, "device")  # where it ran does not change what it estimates

    def estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        numpy2_alias()
        from latentmi import lmi  # heavy import, only where an estimate is made

        x, y = paired(x, y)
        # latentmi draws its split and KSG noise from numpy's global RNG and its init and
        # shuffling from torch's: seed both, and put them back afterwards.
        np_state = np.random.get_state()
        with fork_rngs(self.device):
            np.random.seed(seed)
            torch.manual_seed(seed)
            # it prints progress every epoch even when quiet=True
            with contextlib.redirect_stdout(io.StringIO()):
                pointwise, _, _ = lmi.estimate(
                    x,
                    y,
                    epochs=self.epochs,
                    lr=self.lr,
                    batch_size=self.batch_size,
                    patience=self.patience,
                    quiet=True,
                    device=self.device,
                )
        np.random.set_state(np_state)
        bits = float(np.nanmean(pointwise))
        return bits * math.log(2.0)  # latentmi's KSG works in bits; the paper reports nats


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class labels as latentmi should see them: one-hot, not an integer column."""
    out = np.zeros((labels.shape[0], n_classes), dtype=np.float64)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out
