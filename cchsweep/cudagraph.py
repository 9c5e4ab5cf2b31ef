"""A training step as one CUDA graph, and TF32 matmuls: the two GPU options of the stacked engine.

Both are opt-in (`CCHSWEEP_CUDA_GRAPHS=1`, `CCHSWEEP_TF32=1` in the environment of the process that
trains, or train_stacked's `options=stack.Options(graphs=..., tf32=...)`) until
`benchmarks/gpu_check.sh` has shown on a GPU that they pay and keep results equal (graphs: to
float rounding; TF32: within seed noise).

Why graphs: a stacked step (gather each member's batch, forward, loss, backward, optimizer step) is
~60 small kernels, so on a GPU it is bound by launching them, not by arithmetic (an H100 step of 32
MNIST students: ~1.7 ms against ~0.03 ms of FLOPs, engine-facts). Captured once, a step is one
replay; all that changes between steps is the batch index, copied into a static buffer first.

The capture follows PyTorch's whole-network recipe (notes/cuda.rst, "Whole-network capture"):
a few real steps run eagerly on a side stream first (lazy initialisation: cuBLAS handles, the
optimizer's state), grads are set to None so the captured backward allocates them from the graph's
private pool, and every replay then refills them. A step of another shape (the last, partial batch
of an epoch) runs eagerly with `set_to_none=False`: it zeroes and refills the same grad tensors, so
the graph's optimizer step keeps reading live memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

GRAPHS_ENV = "CCHSWEEP_CUDA_GRAPHS"
TF32_ENV = "CCHSWEEP_TF32"
WARMUP_STEPS = 3  # eager steps before the capture (PyTorch's recipe uses 3)

# step(idx [K, B] on the device, set_to_none) -> None: one optimizer step of the whole stack
Step = Callable[[torch.Tensor, bool], None]


def env_flag(name: str) -> bool:
    """An on/off switch from the environment: 1/true/yes/on or 0/false/no/off (unset: off)."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r} is not a switch; set it to 1 or 0")


@contextmanager
def matmul_precision(tf32: bool, device: torch.device) -> Iterator[None]:
    """TF32 for float32 matmuls on a CUDA device while training (restored after); a no-op elsewhere."""
    if not tf32 or device.type != "cuda":
        yield
        return
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


class GraphedStep:
    """Calls `step` eagerly for WARMUP_STEPS full batches, then captures it once and replays it for
    every later batch of the captured shape; other shapes run eagerly. `replays` counts the steps
    the graph ran (what the device check reports, so a silent fallback cannot pass for a graph), and
    `total_replays` the same over every GraphedStep of the process (for checks that go through a
    study's bundle, where the stack is out of reach)."""

    total_replays = 0

    def __init__(
        self, step: Step, shape: tuple[int, int], device: torch.device, params: list[torch.Tensor] | None = None
    ):
        self.step, self.shape, self.params = step, shape, params or []
        self.static_idx = torch.zeros(shape, dtype=torch.long, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warm = 0
        self.replays = 0
        self.side = torch.cuda.Stream(device)

    def __call__(self, idx: torch.Tensor) -> None:
        if tuple(idx.shape) != self.shape:
            self.step(idx, self.graph is None)  # once captured, keep the graph's grad tensors
            return
        if self.graph is None and self.warm < WARMUP_STEPS:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                self.step(idx, True)
            torch.cuda.current_stream().wait_stream(self.side)
            self.warm += 1
            return
        self.static_idx.copy_(idx)
        if self.graph is None:
            self.graph = self._capture()
        self.graph.replay()
        self.replays += 1
        GraphedStep.total_replays += 1

    def _capture(self) -> torch.cuda.CUDAGraph:
        # a parameter the warm-up left without a gradient has no optimizer state yet: the capture would
        # record the state's creation, and every replay would reset it
        if any(p.grad is None for p in self.params):
            raise RuntimeError(
                f"a parameter got no gradient in {WARMUP_STEPS} warm-up steps, so one CUDA graph cannot hold "
                f"its optimizer step; train without {GRAPHS_ENV}"
            )
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        with torch.cuda.graph(graph):
            self.step(self.static_idx, True)  # grads None: backward allocates them in the graph's pool
        return graph
