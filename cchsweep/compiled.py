"""A stacked step's forward and loss compiled (torch.compile, inductor's C++ backend): the CPU option
of the stacked engine, as CUDA graphs (cchsweep.cudagraph) are its GPU option. Opt-in.

Why: a stack of small networks on a CPU is bound by memory passes, not arithmetic. The synthetic
study's 100-64-1 regression stack spends a third of a step in elementwise passes over [K, 500, 64]
tensors (ReLU, its backward, the one-unit head, the loss); inductor fuses them into a few loops
around the two matmuls, which stay MKL's. The optimizer step goes with it: Adam/AdamW fused into one
kernel (0.35 ms a step at 40 members against the default step's 1.56 ms). Measured on this project's
2-core CPU (40 members, per-epoch times of alternating runs in one process): 1.49x and 1.52x per
step at the median (1.27x with the optimizer unfused). A compile costs ~20 s a graph with a cold
inductor cache (once per machine: the cache is on disk) and ~4 s with a warm one; with it paid once,
a 300-epoch bundle of 40 gains 1.27-1.41x (`benchmarks/sweep_speed.py`). A compute-bound network
(the MNIST MLP: 0.4 GFLOP a step) gains nothing.

Why opt-in: fused loops and the fused optimizer round differently, so a compiled stack's models
differ from the eager stack's at the rounding level (bounded like the eager stack against the single
path: tests/test_compiled.py), and results published from the eager engine would no longer repeat
bit for bit (at paper scale the synthetic training is chaotic: a point's KD gain moves by half its
seed-to-seed spread, as it does between the eager stack and the single path). `CCHSWEEP_COMPILE=1`
compiles every CPU stack that can be compiled; `CCHSWEEP_COMPILE=auto` only those small enough per
member and long enough to pay back the compile; unset or 0, none. In code: train_stacked's
`options=stack.Options(compile=True | None | False)`.

What is compiled: forward and loss (and with them, by AOTAutograd, their backward). The batch gather
stays eager, and the optimizer is fused rather than compiled: compiling either measured no faster.
One graph per stack shape (members, batch): a last, partial batch of an epoch runs eagerly rather
than compiling a second graph. Stacks of one shape share the graph (the stack is an argument, not a
constant).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping

import torch
from torch import nn

from cchsweep.cudagraph import env_flag

COMPILE_ENV = "CCHSWEEP_COMPILE"
# auto: compile a stack when each member's weights are at most this (the overhead-bound regime) ...
MAX_MEMBER_BYTES = 1024**2
# ... and its full steps times members reach this: 100k model-steps are ~35 s of eager training of the
# synthetic network, of which compiling saves ~10-12 s: more than a warm compile costs (~4 s), less
# than a cold one (~20 s, once per machine: inductor's cache is on disk)
MIN_MODEL_STEPS = 100_000

# forward_loss(stack, stacked_loss, inputs [K, B, ...], targets {name: [K, B, ...]}, coefs {name: [K]})
ForwardLoss = Callable[
    [nn.Module, Callable, torch.Tensor, Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], torch.Tensor
]


def env_switch(name: str) -> bool | None:
    """cudagraph.env_flag's on/off switch (unset: off) with a third value, auto (None)."""
    value = os.environ.get(name, "").strip().lower()
    if value == "auto":
        return None
    try:
        return env_flag(name)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a switch; set it to 1, 0 or auto") from None


def forward_loss(
    stack: nn.Module,
    stacked_loss: Callable,
    inputs: torch.Tensor,
    targets: Mapping[str, torch.Tensor],
    coefs: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    """The sum over members of each member's mean loss: what a stacked step differentiates."""
    return stacked_loss(stack(inputs), targets, coefs).sum()


# graphs one process may hold for forward_loss (one per stack class, loss and shape); past torch's
# default of 8 it would fall back to eager with only a warning. Past this, an error: a step counted
# as compiled always ran as one compiled graph (fullgraph: no silent breaks either)
RECOMPILE_LIMIT = 64


@functools.cache
def compiled_forward_loss() -> ForwardLoss:
    """forward_loss compiled once per process; torch.compile's own cache holds one graph per shape."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    return torch.compile(forward_loss, dynamic=False, fullgraph=True)


_steps = 0  # compiled steps this process ran, over every stack (for checks that go through a study's bundle)


def count_steps(n: int = 1) -> int:
    """Add n compiled steps to the process's count; return the count."""
    global _steps
    _steps += n
    return _steps


@functools.cache
def toolchain_error() -> str | None:
    """Why torch.compile cannot build code on this machine (no C++ compiler, no Python headers), found
    by compiling one tiny function with a backward once per process; None when it can."""
    try:
        x = torch.ones(4, requires_grad=True)
        torch.compile(lambda t: (t * 2).relu().sum(), dynamic=False)(x).backward()
    except Exception as exc:  # inductor raises many kinds (BackendCompilerFailed, CalledProcessError, ...)
        return f"torch.compile cannot build here ({type(exc).__name__}); set {COMPILE_ENV}=0 to stop trying"
    return None
