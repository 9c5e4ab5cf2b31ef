"""Many models of one architecture trained as one: stacked weights, batched matmuls, one optimizer step.

A `Member` is one model to train: the seed its single-model twin is built with, the seed of its
batch order, its inputs and per-sample targets, and its scalar coefficients (KD weight, temperature).
`train_stacked` builds every member exactly as the single-model path would (torch.manual_seed, then
the module), copies their weights into a `StackedNet` (weights [K, in, out], `baddbmm`), and trains
all K at once: each member gathers its own batch (its own shuffle, its own inputs and targets), the
loss is the SUM of the members' mean losses, so member k's gradient is exactly the gradient of its
own loss, and SGD/Adam/AdamW are element-wise, so its step equals the single-model step up to matmul
rounding. It returns ordinary single models carrying the trained weights: everything downstream
(prediction, representations, the artifact cache) is the same code as the single-model path.

`train_single` is the reference: the same members trained one at a time through `train.fit`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cchsweep import compiled
from cchsweep.cudagraph import GRAPHS_ENV, TF32_ENV, GraphedStep, env_flag, matmul_precision
from cchsweep.models import SeededDropout, seed_dropout
from cchsweep.train import fit, make_optimizer, make_schedule

# single loss(out [B, o], batch {name: [B, ...]}, coefs {name: float}) -> scalar
SingleLoss = Callable[[torch.Tensor, Mapping[str, torch.Tensor], Mapping[str, float]], torch.Tensor]
# stacked loss(out [K, B, o], batch {name: [K, B, ...]}, coefs {name: [K]}) -> [K], each member's mean loss
StackedLoss = Callable[[torch.Tensor, Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], torch.Tensor]


@dataclass
class Member:
    init_seed: int  # torch.manual_seed(init_seed) before the model is built, as in the single path
    order_seed: int  # the seed of its batch-order generator (train.fit's `seed`)
    inputs: torch.Tensor  # [n, in]; members may share one tensor (stored once)
    targets: dict[str, torch.Tensor] = field(default_factory=dict)  # per-sample, [n, ...], may be shared
    coefs: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """How every member of a stack is built and trained (the settings `train.fit` takes)."""

    build: Callable[[], nn.Module]  # what StackedNet stacks for train_stacked; any module for train_single
    loss: SingleLoss
    stacked_loss: StackedLoss
    optimizer: str
    lr: float
    epochs: int
    batch_size: int
    weight_decay: float = 0.0
    schedule: str | None = None


def stack_of(models: Sequence[nn.Module]) -> nn.Module:
    """The stacked form of K networks of one class: the class's own `Stacked` (a network of another
    shape, e.g. the TCGA FusionNet, built from `stack_layers`) or `StackedNet`. Either takes
    [K, B, in] and returns [K, B, out], and has copy_into(models)."""
    return getattr(type(models[0]), "Stacked", StackedNet)(models)


class StackedNet(nn.Module):
    """K networks of one shape as one: `models.MLP`, or any network with an optional `pool`, a `body`
    (nn.Sequential of Linear, ReLU, LeakyReLU, BatchNorm1d, Dropout) and a Linear `head` (MoseiNet).

    Linear layers hold weight [K, in, out] and bias [K, 1, out] (`baddbmm`); BatchNorm1d keeps each
    member's own statistics (one F.batch_norm over [B, K * F]: every column is normalised over the
    batch alone, exactly a member's BatchNorm); a `models.SeededDropout` draws member k's mask from
    member k's generator, the masks it would draw alone (a plain nn.Dropout would draw one mask over
    [K, B, F] from the global RNG: masks of their own, but not the single path's).
    """

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        kind = type(models[0])
        if any(type(m) is not kind for m in models) or not _stackable(models[0]):
            raise TypeError(
                f"stacked training supports networks of a body (Sequential of {', '.join(_LAYERS)}) and a "
                f"Linear head, all of one class; not {kind.__name__}"
            )
        self.k = len(models)
        self.pool = getattr(kind, "pool", None)
        self.body = stack_layers([m.body for m in models])  # type: ignore[misc]
        self.head = StackedLinear([m.head for m in models])  # type: ignore[misc]

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:  # per member: [K, B, ...] -> [K * B, ...] -> pool -> [K, B, F]
            x = self.pool(x.reshape(-1, *x.shape[2:])).reshape(self.k, x.shape[1], -1)
        for layer in self.body:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.representation(x))

    @torch.no_grad()
    def copy_into(self, models: Sequence[nn.Module]) -> None:
        """Write member k's weights (and BatchNorm statistics) into models[k]."""
        copy_layers(self.body, [m.body for m in models])  # type: ignore[misc]
        self.head.copy_into([m.head for m in models])  # type: ignore[misc]


_LAYERS = ("Linear", "ReLU", "LeakyReLU", "BatchNorm1d", "Dropout", "SeededDropout")


def _stackable(model: nn.Module) -> bool:
    body, head = getattr(model, "body", None), getattr(model, "head", None)
    return (
        isinstance(body, nn.Sequential)
        and isinstance(head, nn.Linear)
        and all(type(layer).__name__ in _LAYERS for layer in body)
    )


def stack_layers(sequences: Sequence[nn.Sequential]) -> nn.Sequential:
    """K Sequentials of one shape (Linear, ReLU, LeakyReLU, BatchNorm1d, Dropout) as one acting on [K, B, F]."""
    layers = [list(seq) for seq in sequences]
    return nn.Sequential(*(_stack_layer([seq[i] for seq in layers]) for i in range(len(layers[0]))))


@torch.no_grad()
def copy_layers(stacked: nn.Sequential, sequences: Sequence[nn.Sequential]) -> None:
    """Write member k's weights and BatchNorm statistics from `stacked` into sequences[k]."""
    for i, layer in enumerate(stacked):
        if isinstance(layer, (StackedLinear, _BatchNorm)):
            layer.copy_into([seq[i] for seq in sequences])  # type: ignore[arg-type,misc]


def _stack_layer(layers: list[nn.Module]) -> nn.Module:
    if isinstance(layers[0], nn.Linear):
        return StackedLinear(layers)  # type: ignore[arg-type]
    if isinstance(layers[0], nn.BatchNorm1d):
        return _BatchNorm(layers)  # type: ignore[arg-type]
    if isinstance(layers[0], SeededDropout):
        return _Dropout(layers)  # type: ignore[arg-type]
    return copy.deepcopy(layers[0])  # elementwise: ReLU, LeakyReLU, (unseeded) Dropout


class _Dropout(nn.Module):
    """K seeded Dropout layers: member k's mask [B, F] from member k's own generator, as alone."""

    def __init__(self, layers: Sequence[SeededDropout]):
        super().__init__()
        self.members = list(layers)  # a plain list: the layers hold generators, no weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.members[0].p == 0.0:
            return x
        return x * torch.stack([layer.mask(x.shape[1:], x.device) for layer in self.members])


class StackedLinear(nn.Module):
    """K Linear layers: weight [K, in, out], bias [K, 1, out]; [K, B, in] -> [K, B, out]."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([lin.weight.detach().t() for lin in layers]).contiguous())
        self.bias = nn.Parameter(torch.stack([lin.bias.detach()[None, :] for lin in layers]).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _affine(x, self.weight, self.bias)

    def copy_into(self, layers: Sequence[nn.Linear]) -> None:
        for k, lin in enumerate(layers):
            lin.weight.copy_(self.weight[k].t())
            lin.bias.copy_(self.bias[k, 0])


class _BatchNorm(nn.Module):
    """K BatchNorm1d layers as one over [B, K * F] columns: per-member statistics and affine weights."""

    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(self, layers: Sequence[nn.BatchNorm1d]):
        super().__init__()
        first = layers[0]
        self.eps, self.momentum = first.eps, first.momentum
        self.weight = nn.Parameter(torch.cat([bn.weight.detach() for bn in layers]))
        self.bias = nn.Parameter(torch.cat([bn.bias.detach() for bn in layers]))
        self.register_buffer("running_mean", torch.cat([_buffer(bn, "running_mean") for bn in layers]))
        self.register_buffer("running_var", torch.cat([_buffer(bn, "running_var") for bn in layers]))
        self.register_buffer("num_batches_tracked", _buffer(first, "num_batches_tracked").clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, b, f = x.shape
        if self.training:
            self.num_batches_tracked += 1
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        y = F.batch_norm(
            x.transpose(0, 1).reshape(b, k * f),
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            momentum,
            self.eps,
        )
        return y.reshape(b, k, f).transpose(0, 1)

    def copy_into(self, layers: Sequence[nn.BatchNorm1d]) -> None:
        f = layers[0].num_features
        for k, bn in enumerate(layers):
            part = slice(k * f, (k + 1) * f)
            bn.weight.copy_(self.weight[part])
            bn.bias.copy_(self.bias[part])
            _buffer(bn, "running_mean").copy_(self.running_mean[part])
            _buffer(bn, "running_var").copy_(self.running_var[part])
            _buffer(bn, "num_batches_tracked").copy_(self.num_batches_tracked)


def _buffer(bn: nn.BatchNorm1d, name: str) -> torch.Tensor:
    value = getattr(bn, name)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"stacked BatchNorm1d needs track_running_stats=True (no {name})")
    return value


def _affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x [K, B, in] @ w [K, in, out] + b [K, 1, out]. A one-unit output (the regression heads) as a
    product and a sum: bmm with one output column ran 5x slower than that on a CPU (measured)."""
    if w.shape[-1] == 1:
        return (x * w.transpose(1, 2)).sum(-1, keepdim=True) + b
    return torch.baddbmm(b, x, w)


def build_members(recipe: Recipe, members: Sequence[Member], device: torch.device | str) -> list[nn.Module]:
    """Each member's model exactly as the single path builds it: seed, then construct."""
    models = []
    for m in members:
        torch.manual_seed(m.init_seed)
        model = recipe.build().to(device)
        seed_dropout(model, m.init_seed)  # its masks: the same alone or stacked
        models.append(model)
    return models


def train_single(
    recipe: Recipe,
    members: Sequence[Member],
    device: torch.device | str,
    on_epoch: Callable[[int], None] | None = None,
) -> list[nn.Module]:
    """The reference path: one model at a time through train.fit (on_epoch is not called).

    Each model is built right before it trains (seed, build, fit), as the single-model trials always
    did, so a network with Dropout draws its masks from torch's RNG in that state: a KD student and
    its no-KD baseline (same init seed) see the same masks.
    """
    out: list[nn.Module] = []
    for member in members:

        def loss(pred: torch.Tensor, idx: torch.Tensor, m: Member = member) -> torch.Tensor:
            return recipe.loss(pred, {k: v[idx] for k, v in m.targets.items()}, m.coefs)

        model = build_members(recipe, [member], device)[0]
        out.append(_fit(recipe, model, member.inputs, loss, member.order_seed))
    return out


def reference_trial(bundle: Callable[..., list]) -> Callable[..., Any]:
    """A study's `trial` from its `bundle`: one grid point, one model at a time (train_single), the
    reference path the stacked bundles are tested against."""

    def trial(params: Mapping[str, Any], settings: Mapping[str, Any], ctx: Any) -> Any:
        return bundle([params], settings, ctx, train_single)[0]

    return trial


def _fit(recipe: Recipe, model: nn.Module, inputs: torch.Tensor, loss, seed: int) -> nn.Module:
    return fit(
        model,
        inputs,
        loss,
        optimizer=recipe.optimizer,
        lr=recipe.lr,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        seed=seed,
        weight_decay=recipe.weight_decay,
        schedule=recipe.schedule,
    )


class RowPool:
    """Distinct tensors stored once, [M * n, ...] flat, and the row offset of each member's tensor.

    Tensors are the same when they view the same memory the same way, so `x[tr]` taken once per
    member (a new view each time) is stored once, not once per member."""

    def __init__(self, tensors: Sequence[torch.Tensor]):
        ids: dict[tuple, int] = {}
        distinct: list[torch.Tensor] = []
        for t in tensors:
            if view_key(t) not in ids:
                ids[view_key(t)] = len(distinct)
                distinct.append(t)
        self.shared = len(distinct) == 1
        self.distinct = len(distinct)
        self.data = distinct[0] if self.shared else torch.cat(distinct)
        n = distinct[0].shape[0]
        self.offset = torch.tensor([ids[view_key(t)] * n for t in tensors], device=self.data.device)[:, None]

    def gather(self, idx: torch.Tensor, shared_idx: bool, k: int) -> torch.Tensor:
        """Rows idx [K, B] of each member's tensor: [K, B, ...] (index_select: the fast CPU gather)."""
        if self.shared and shared_idx:
            rows = self.data.index_select(0, idx[0])
            return rows.expand(k, *rows.shape)
        flat = idx if self.shared else idx + self.offset
        return self.data.index_select(0, flat.reshape(-1)).view(*idx.shape, *self.data.shape[1:])

    def rows(self, idx: torch.Tensor, members: Sequence[int]) -> torch.Tensor:
        """Rows idx [K', B] of the tensors of `members` (a subset of the K, in order): [K', B, ...]."""
        flat = idx + self.offset[list(members)]
        return self.data.index_select(0, flat.reshape(-1)).view(*idx.shape, *self.data.shape[1:])


def view_key(t: torch.Tensor) -> tuple:
    """What makes two tensors the same values: the memory they view, and how they view it."""
    return (t.device, t.dtype, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())


CPU_STACK_BYTES = 32 * 1024**2  # on a CPU, a stack's weights stay cache-sized (measured: see README)


@dataclass
class Options:
    """The options of a stacked run, and what happened. GPU (cchsweep.cudagraph): `graphs` asks for
    one CUDA graph per step, `tf32` for TF32 matmuls; `blocked` says why a stack ran without a graph
    and `replays` counts the steps its graphs ran. CPU (cchsweep.compiled): `compile` True compiles
    forward and loss, None (auto) where it pays, False (the default) never; `uncompiled` says
    why a stack ran eagerly and `compiled_steps` counts the steps that ran compiled. Counts are
    summed over the stacks of one call."""

    graphs: bool = False
    tf32: bool = False
    compile: bool | None = False
    blocked: str | None = None
    replays: int = 0
    uncompiled: str | None = None
    compiled_steps: int = 0

    @classmethod
    def from_env(cls) -> Options:
        return cls(
            graphs=env_flag(GRAPHS_ENV), tf32=env_flag(TF32_ENV), compile=compiled.env_switch(compiled.COMPILE_ENV)
        )


def train_stacked(
    recipe: Recipe,
    members: Sequence[Member],
    device: torch.device | str,
    on_epoch: Callable[[int], None] | None = None,
    options: Options | None = None,
) -> list[nn.Module]:
    """Train the members as stacks; returns single models (eval mode) with the trained weights.

    On a GPU every member goes into one stack. On a CPU the arithmetic is already compute-bound
    for large networks, and a stack whose weights outgrow the cache is slower per model than one
    model: stacks hold at most CPU_STACK_BYTES of weights (the whole list for small networks).
    `options` (default: from the environment, `Options.from_env`) turns on CUDA graphs and TF32 on a
    GPU, and compiled steps on a CPU (CCHSWEEP_COMPILE: off unless asked for; cchsweep.compiled).
    """
    if not members:
        return []
    opts = options if options is not None else Options.from_env()
    if torch.device(device).type == "cpu":
        size = sum(p.numel() * p.element_size() for p in recipe.build().parameters())
        cap = max(1, CPU_STACK_BYTES // size)
        if len(members) > cap:
            chunks = [members[i : i + cap] for i in range(0, len(members), cap)]
            return [m for chunk in chunks for m in _train_stack(recipe, chunk, device, on_epoch, opts)]
    return _train_stack(recipe, members, device, on_epoch, opts)


def compile_blocker(
    asked: bool | None, device: torch.device, stack: nn.Module, members: int, model_steps: int
) -> str | None:
    """Why this stack of `members` networks trains eagerly on this device (None: compile its forward
    and loss). `asked`: True compiles any stack that can be, None (auto) only one that pays
    (cchsweep.compiled), False none."""
    if asked is False:
        return "not asked for"
    if device.type != "cpu":
        return "compiled steps are the CPU option (a GPU replays CUDA graphs)"
    layers = _layer_blocker(stack, "a compiled graph")
    if layers is not None:
        return layers
    member_bytes = sum(p.numel() * p.element_size() for p in stack.parameters()) // max(members, 1)
    if asked is None and member_bytes > compiled.MAX_MEMBER_BYTES:
        return f"each member's weights ({member_bytes:,} bytes) make its steps compute-bound"
    if asked is None and model_steps < compiled.MIN_MODEL_STEPS:
        return f"{model_steps:,} model-steps would not pay back the compile"
    return compiled.toolchain_error()


def graph_blocker(device: torch.device, stack: nn.Module, schedule: object) -> str | None:
    """Why one CUDA graph cannot replay this stack's training step (None: it can)."""
    if device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if schedule is not None:
        return "a learning-rate schedule changes the step from epoch to epoch"
    return _layer_blocker(stack, "a replay")


def _layer_blocker(stack: nn.Module, runner: str) -> str | None:
    """Why a step captured once (`runner`: a CUDA graph's replay, a compiled graph) cannot train this
    stack's layers as the eager step does (None: it can)."""
    for layer in stack.modules():
        if (isinstance(layer, _Dropout) and layer.members[0].p > 0) or (isinstance(layer, nn.Dropout) and layer.p > 0):
            return f"Dropout masks come from generators {runner} would not advance"
        if isinstance(layer, _BatchNorm) and layer.momentum is None:
            return "BatchNorm with a cumulative average reads its step count on the host"
    return None


def _train_stack(
    recipe: Recipe,
    members: Sequence[Member],
    device: torch.device | str,
    on_epoch: Callable[[int], None] | None,
    opts: Options,
) -> list[nn.Module]:
    sizes = {m.inputs.shape[0] for m in members} | {t.shape[0] for m in members for t in m.targets.values()}
    if len(sizes) != 1:
        raise ValueError(f"stacked members must share their number of training rows; got {sorted(sizes)}")
    names = sorted(members[0].targets)
    coef_names = sorted(members[0].coefs)
    if any(sorted(m.targets) != names or sorted(m.coefs) != coef_names for m in members):
        raise ValueError("stacked members must have the same target and coefficient names")
    n, k, batch = sizes.pop(), len(members), recipe.batch_size
    models = build_members(recipe, members, device)
    stack = stack_of(models).to(device)
    inputs = RowPool([m.inputs for m in members])
    targets = {name: RowPool([m.targets[name] for m in members]) for name in names}
    dev = inputs.data.device
    coefs = {c: torch.tensor([m.coefs[c] for m in members], dtype=torch.float32, device=dev) for c in coef_names}
    seeds = sorted({m.order_seed for m in members})
    group = torch.tensor([seeds.index(m.order_seed) for m in members], device=dev)
    generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    blocked = graph_blocker(dev, stack, recipe.schedule) if opts.graphs else "not asked for"
    uncompiled = compile_blocker(opts.compile, dev, stack, k, k * recipe.epochs * (n // batch))
    opt = make_optimizer(
        recipe.optimizer,
        stack.parameters(),
        recipe.lr,
        recipe.weight_decay,
        capturable=blocked is None,
        fused=uncompiled is None,  # the CPU option fuses the optimizer step too
    )
    sched = make_schedule(recipe.schedule, opt, recipe.epochs)
    # as train.fit: BatchNorm cannot normalise a one-row batch, so such a last batch is skipped
    smallest = 2 if any(isinstance(layer, _BatchNorm) for layer in stack.modules()) else 1
    shared = len(seeds) == 1
    fast = compiled.compiled_forward_loss() if uncompiled is None else compiled.forward_loss

    def step(idx: torch.Tensor, set_to_none: bool, forward_loss: compiled.ForwardLoss = compiled.forward_loss) -> None:
        batch_targets = {t: targets[t].gather(idx, shared, k) for t in names}
        loss = forward_loss(stack, recipe.stacked_loss, inputs.gather(idx, shared, k), batch_targets, coefs)
        opt.zero_grad(set_to_none=set_to_none)
        loss.backward()
        opt.step()

    graphed = GraphedStep(step, (k, min(batch, n)), dev, list(stack.parameters())) if blocked is None else None
    stack.train()
    with matmul_precision(opts.tf32, dev):
        for epoch in range(recipe.epochs):
            perms = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(dev)
            order = perms[group] if len(seeds) > 1 else perms.expand(k, n)
            for start in range(0, n, batch):
                idx = order[:, start : start + batch]
                if idx.shape[1] < smallest:
                    continue
                if graphed is not None:
                    graphed(idx)
                elif idx.shape[1] == batch and uncompiled is None:  # full batches only: no 2nd graph
                    step(idx, True, fast)
                    opts.compiled_steps += 1
                    compiled.count_steps()
                else:
                    step(idx, True)
            if sched is not None:
                sched.step()
            if on_epoch is not None:
                on_epoch(epoch + 1)
    if opts.compile is not False:
        opts.uncompiled = opts.uncompiled or uncompiled
    if opts.graphs:
        opts.blocked = opts.blocked or blocked
        opts.replays += graphed.replays if graphed is not None else 0
    stack.copy_into(models)  # type: ignore[operator]
    return [m.eval() for m in models]
