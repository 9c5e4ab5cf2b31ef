"""Many models of one architecture trained as one: stacked weights, batched matmuls, one optimizer step.

A `Member` is one model to train: the seed its single-model twin is built with, the seed of its
batch order, its inputs and per-sample targets, and its scalar coefficients (KD weight, temperature).
`train_stacked` builds every member exactly as the single-model path would (torch.manual_seed, then
the module), copies their weights into a `StackedMLP` (weights [K, in, out], `baddbmm`), and trains
all K at once: each member gathers its own batch (its own shuffle, its own inputs and targets), the
loss is the SUM of the members' mean losses, so member k's gradient is exactly the gradient of its
own loss, and SGD/Adam/AdamW are element-wise, so its step equals the single-model step up to matmul
rounding. It returns ordinary single models carrying the trained weights: everything downstream
(prediction, representations, the artifact cache) is the same code as the single-model path.

`train_single` is the reference: the same members trained one at a time through `train.fit`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cchsweep.models import MLP
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

    build: Callable[[], nn.Module]  # models.MLP for train_stacked; any module for train_single
    loss: SingleLoss
    stacked_loss: StackedLoss
    optimizer: str
    lr: float
    epochs: int
    batch_size: int
    weight_decay: float = 0.0
    schedule: str | None = None


class StackedMLP(nn.Module):
    """K `models.MLP`s of one shape as batched matmuls: layer i has weight [K, in, out], bias [K, 1, out]."""

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        linears = [_linears(m) for m in models]
        self.k = len(models)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].weight.detach().t() for ls in linears]).contiguous())
            for i in range(len(linears[0]))
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].bias.detach()[None, :] for ls in linears]).contiguous())
            for i in range(len(linears[0]))
        )
        body: nn.Sequential = models[0].body  # type: ignore[assignment]
        self.act = [m for m in body if not isinstance(m, nn.Linear)][0] if len(linears[0]) > 1 else None

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        for w, b in zip(list(self.weights)[:-1], list(self.biases)[:-1]):
            x = self.act(_affine(x, w, b))  # type: ignore[misc]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _affine(self.representation(x), self.weights[-1], self.biases[-1])

    @torch.no_grad()
    def copy_into(self, models: Sequence[nn.Module]) -> None:
        """Write member k's weights into models[k] (a single MLP of the same shape)."""
        for k, m in enumerate(models):
            for i, lin in enumerate(_linears(m)):
                lin.weight.copy_(self.weights[i][k].t())
                lin.bias.copy_(self.biases[i][k, 0])


def _affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x [K, B, in] @ w [K, in, out] + b [K, 1, out]. A one-unit output (the regression heads) as a
    product and a sum: bmm with one output column ran 5x slower than that on a CPU (measured)."""
    if w.shape[-1] == 1:
        return (x * w.transpose(1, 2)).sum(-1, keepdim=True) + b
    return torch.baddbmm(b, x, w)


def _linears(model: nn.Module) -> list[nn.Linear]:
    if not isinstance(model, MLP):
        raise TypeError(f"stacked training supports models.MLP, not {type(model).__name__}")
    return [m for m in model.body if isinstance(m, nn.Linear)] + [model.head]


def build_members(recipe: Recipe, members: Sequence[Member], device: torch.device | str) -> list[nn.Module]:
    """Each member's model exactly as the single path builds it: seed, then construct."""
    models = []
    for m in members:
        torch.manual_seed(m.init_seed)
        models.append(recipe.build().to(device))
    return models


def train_single(
    recipe: Recipe,
    members: Sequence[Member],
    device: torch.device | str,
    on_epoch: Callable[[int], None] | None = None,
) -> list[nn.Module]:
    """The reference path: one model at a time through train.fit (on_epoch is not called)."""
    out: list[nn.Module] = []
    for member, model in zip(members, build_members(recipe, members, device)):

        def loss(pred: torch.Tensor, idx: torch.Tensor, m: Member = member) -> torch.Tensor:
            return recipe.loss(pred, {k: v[idx] for k, v in m.targets.items()}, m.coefs)

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


class _Pool:
    """Distinct tensors stored once, [M * n, ...] flat, and the row offset of each member's tensor."""

    def __init__(self, tensors: Sequence[torch.Tensor]):
        ids: dict[int, int] = {}
        distinct: list[torch.Tensor] = []
        for t in tensors:
            if id(t) not in ids:
                ids[id(t)] = len(distinct)
                distinct.append(t)
        self.shared = len(distinct) == 1
        self.data = distinct[0] if self.shared else torch.cat(distinct)
        n = distinct[0].shape[0]
        self.offset = torch.tensor([ids[id(t)] * n for t in tensors], device=self.data.device)[:, None]

    def gather(self, idx: torch.Tensor, shared_idx: bool, k: int) -> torch.Tensor:
        """Rows idx [K, B] of each member's tensor: [K, B, ...] (index_select: the fast CPU gather)."""
        if self.shared and shared_idx:
            rows = self.data.index_select(0, idx[0])
            return rows.expand(k, *rows.shape)
        flat = idx if self.shared else idx + self.offset
        return self.data.index_select(0, flat.reshape(-1)).view(*idx.shape, *self.data.shape[1:])


CPU_STACK_BYTES = 32 * 1024**2  # on a CPU, a stack's weights stay cache-sized (measured: see README)


def train_stacked(
    recipe: Recipe,
    members: Sequence[Member],
    device: torch.device | str,
    on_epoch: Callable[[int], None] | None = None,
) -> list[nn.Module]:
    """Train the members as stacks; returns single models (eval mode) with the trained weights.

    On a GPU every member goes into one stack. On a CPU the arithmetic is already compute-bound
    for large networks, and a stack whose weights outgrow the cache is slower per model than one
    model: stacks hold at most CPU_STACK_BYTES of weights (the whole list for small networks).
    """
    if not members:
        return []
    if torch.device(device).type == "cpu":
        size = sum(p.numel() * p.element_size() for p in recipe.build().parameters())
        cap = max(1, CPU_STACK_BYTES // size)
        if len(members) > cap:
            chunks = [members[i : i + cap] for i in range(0, len(members), cap)]
            return [m for chunk in chunks for m in _train_stack(recipe, chunk, device, on_epoch)]
    return _train_stack(recipe, members, device, on_epoch)


def _train_stack(
    recipe: Recipe,
    members: Sequence[Member],
    device: torch.device | str,
    on_epoch: Callable[[int], None] | None,
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
    stack = StackedMLP(models).to(device)
    inputs = _Pool([m.inputs for m in members])
    targets = {name: _Pool([m.targets[name] for m in members]) for name in names}
    dev = inputs.data.device
    coefs = {c: torch.tensor([m.coefs[c] for m in members], dtype=torch.float32, device=dev) for c in coef_names}
    seeds = sorted({m.order_seed for m in members})
    group = torch.tensor([seeds.index(m.order_seed) for m in members], device=dev)
    generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    opt = make_optimizer(recipe.optimizer, stack.parameters(), recipe.lr, recipe.weight_decay)
    sched = make_schedule(recipe.schedule, opt, recipe.epochs)
    for epoch in range(recipe.epochs):
        perms = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(dev)
        order = perms[group] if len(seeds) > 1 else perms.expand(k, n)
        for start in range(0, n, batch):
            idx = order[:, start : start + batch]
            shared = len(seeds) == 1
            out = stack(inputs.gather(idx, shared, k))
            loss = recipe.stacked_loss(out, {t: targets[t].gather(idx, shared, k) for t in names}, coefs).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if sched is not None:
            sched.step()
        if on_epoch is not None:
            on_epoch(epoch + 1)
    stack.copy_into(models)
    return [m.eval() for m in models]
