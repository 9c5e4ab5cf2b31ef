"""Networks shared by teacher and student (the paper keeps both architectures identical)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.01)}


class MLP(nn.Module):
    """in -> hidden... -> out; the last hidden layer's output is the representation H."""

    def __init__(self, in_dim: int, hidden: list[int], out_dim: int, activation: str = "relu"):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SeededDropout(nn.Dropout):
    """Dropout whose masks come from a generator of its own once `seed` is called (the trainers seed it
    with the network's init seed); unseeded, it is nn.Dropout on torch's global RNG.

    So a network draws the same masks trained alone or in a stack (cchsweep.stack), and a KD student
    and its no-KD baseline, which share their init seed, the same masks step for step (common random
    numbers: their difference is the KD loss's, not the masks').
    """

    def __init__(self, p: float = 0.5):
        super().__init__(p)
        self._seed: int | None = None
        self._generator: torch.Generator | None = None

    def seed(self, seed: int) -> None:
        self._seed, self._generator = seed, None

    def mask(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        """A keep-mask scaled by 1 / (1 - p), from this layer's generator."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self._seed or 0)
        keep = torch.empty(shape, device=device).bernoulli_(1.0 - self.p, generator=self._generator)
        return keep.div_(1.0 - self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._seed is None or not self.training or self.p == 0.0:
            return super().forward(x)
        return x * self.mask(x.shape, x.device)


def seed_dropout(model: nn.Module, seed: int) -> None:
    """Seed every SeededDropout layer of `model` (layer i gets seed * 1009 + i: distinct streams)."""
    layers = [m for m in model.modules() if isinstance(m, SeededDropout)]
    for i, layer in enumerate(layers):
        layer.seed(seed * 1009 + i)
