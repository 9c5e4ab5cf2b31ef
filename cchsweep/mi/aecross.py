"""latentmi's paired autoencoder (AECross), built and trained exactly as latentmi 0.1.3 does, many at once.

`AECross` is latentmi.models.AECross layer for layer: the same modules created in the same order
(each nn.Linear draws its default init from torch's RNG) and then Xavier-uniform weights and zero
biases applied in latentmi's order, so `torch.manual_seed(s)` and a build give latentmi's weights.

`train_members` trains K of them (one per estimate) as one stack: Linear weights [K, out, in]
(`baddbmm`; one member alone uses `F.linear`, latentmi's own op), loss = the sum of the members'
losses, Adam with latentmi's settings (lr, eps 1e-7, batch 512). Every member keeps its own random
stream, on a CPU exactly latentmi's: its torch generator starts where torch.manual_seed(seed) and the
build leave the global one, and each epoch draws what latentmi's DataLoaders draw from it (the
iterator's base seed, then the sampler's seed, whose generator gives the permutation) and then the
eight cross-decoder Dropout masks of every batch in forward order. A member trained alone on a CPU
therefore takes latentmi's steps on latentmi's batches with latentmi's masks (tests: its weights equal
latentmi's trained model's). On a GPU each member draws its masks from its own device generator,
seeded with its seed (statistically the same estimator; bit-compatibility would mean drawing every
mask on the CPU), so its estimate never depends on which estimates share its stack or when they stop:
one draw per member and step, every Dropout layer's mask at once.

Early stopping is per member (patience on the mean of its validation batches' losses); a stopped
member leaves the stack (its weights, and Adam's state for the others, carried over), so the rest
keep training. By default both of latentmi's quirks are kept: the validation loss is computed in
training mode (`validation_dropout`: Dropout on, masks drawn from the stream), and stopping keeps the
CURRENT weights (its EarlyStopper stores a reference to state_dict()). `validation_dropout=False`
validates in eval mode; `restore_best=True` gives each member its best-validation weights when it
stops or runs out of epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cchsweep.stack import RowPool
from cchsweep.train import fork_rngs

SLOPE = 0.2  # LeakyReLU
DROPOUT = 0.5  # the cross decoders


def hidden_width(dim: int) -> int:
    """latentmi: 1024, or the largest power of two <= dim for inputs wider than 2048."""
    return int(2 ** np.floor(np.log2(dim))) if dim > 2048 else 1024


def _encoder(dim: int, width: int, latent: int) -> nn.Sequential:
    widths = [dim, width, width // 2, width // 4, latent]
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(negative_slope=SLOPE)]
    return nn.Sequential(*layers)


def _decoder(dim: int, width: int, latent: int, dropout: bool) -> nn.Sequential:
    widths = [latent, width // 4, width // 2, width, dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        if dropout:
            layers.append(nn.Dropout(p=DROPOUT))
        layers.append(nn.Linear(a, b))
        if i < 3:
            layers.append(nn.LeakyReLU(negative_slope=SLOPE))
    return nn.Sequential(*layers)


class AECross(nn.Module):
    """latentmi.models.AECross(x_dim, y_dim, latent) with alpha = lam = 1, module for module."""

    def __init__(self, x_dim: int, y_dim: int, latent: int = 8):
        super().__init__()
        lx, ly = hidden_width(x_dim), hidden_width(y_dim)
        self.x_encoder = _encoder(x_dim, lx, latent)
        self.y_encoder = _encoder(y_dim, ly, latent)
        self.xx_decoder = _decoder(x_dim, lx, latent, dropout=False)
        self.yy_decoder = _decoder(y_dim, ly, latent, dropout=False)
        self.yx_decoder = _decoder(x_dim, lx, latent, dropout=True)
        self.xy_decoder = _decoder(y_dim, ly, latent, dropout=True)
        for net in NETS:  # latentmi's init order (not its construction order)
            for m in getattr(self, net):
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    m.bias.data.fill_(0.0)


# Forward order of the sub-networks' use; also latentmi's init order.
NETS = ("x_encoder", "y_encoder", "xx_decoder", "yy_decoder", "xy_decoder", "yx_decoder")


@dataclass
class Job:
    """One estimate's training: z-scored float32 data [n, d] on the device, its split and stream."""

    x: torch.Tensor
    y: torch.Tensor
    train_rows: np.ndarray  # latentmi's shuffled indices[:N_train]
    val_rows: np.ndarray
    seed: int


class _Stack(nn.Module):
    """K AECross as one: per sub-network a list of (weight [K, out, in], bias [K, 1, out]) and its layout."""

    def __init__(self, nets: Sequence[nn.Module] | None = None, params: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.layout: dict[str, list[str]] = {}
        self.weights = nn.ParameterDict()
        template = nets[0] if nets else None
        for net in NETS:
            kinds: list[str] = []
            for i, m in enumerate(getattr(template, net)) if template is not None else []:
                kinds.append(type(m).__name__)
                if isinstance(m, nn.Linear):
                    linears = [getattr(n, net)[i] for n in nets]  # type: ignore[union-attr]
                    self.weights[f"{net}_{i}_w"] = nn.Parameter(torch.stack([lin.weight.detach() for lin in linears]))
                    self.weights[f"{net}_{i}_b"] = nn.Parameter(
                        torch.stack([lin.bias.detach()[None] for lin in linears])
                    )
            self.layout[net] = kinds
        if params is not None:
            for name, value in params.items():
                self.weights[name] = nn.Parameter(value)

    @property
    def k(self) -> int:
        return next(iter(self.weights.values())).shape[0]

    def run(self, net: str, h: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Sub-network `net` on h [K, B, in]; Dropout layers take masks (or are off when None)."""
        single, drop = self.k == 1, 0
        for i, kind in enumerate(self.layout[net]):
            if kind == "Linear":
                w, b = self.weights[f"{net}_{i}_w"], self.weights[f"{net}_{i}_b"]
                h = F.linear(h[0], w[0], b[0, 0])[None] if single else torch.baddbmm(b, h, w.transpose(1, 2))
            elif kind == "LeakyReLU":
                h = F.leaky_relu(h, SLOPE)
            elif kind == "Dropout":
                if masks is not None:
                    h = h * masks[drop]
                drop += 1
        return h

    def losses(self, x: torch.Tensor, y: torch.Tensor, masks: list[torch.Tensor] | None) -> torch.Tensor:
        """latentmi's learning_loss per member, [K]: cross + auto reconstruction MSEs (alpha = lam = 1)."""
        zx, zy = self.run("x_encoder", x), self.run("y_encoder", y)
        xh, yh = self.run("xx_decoder", zx), self.run("yy_decoder", zy)
        n_xy = len([k for k in self.layout["xy_decoder"] if k == "Dropout"])
        cyh = self.run("xy_decoder", zx, None if masks is None else masks[:n_xy])  # latentmi: y_hat first
        cxh = self.run("yx_decoder", zy, None if masks is None else masks[n_xy:])
        if self.k == 1:
            mse = lambda a, b: F.mse_loss(a[0], b[0])[None]  # noqa: E731  latentmi's op
        else:
            mse = lambda a, b: ((a - b) ** 2).mean(dim=(1, 2))  # noqa: E731
        auto = mse(xh, x) + mse(yh, y)
        cross = mse(cxh, x) + mse(cyh, y)
        return 1 * cross + 1 * auto

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.run("x_encoder", x), self.run("y_encoder", y)

    def mask_widths(self) -> list[int]:
        """The input widths of the Dropout layers, in the order a forward pass draws their masks."""
        widths = []
        for net in ("xy_decoder", "yx_decoder"):
            kinds = self.layout[net]
            for i, kind in enumerate(kinds):
                if kind == "Dropout":
                    widths.append(self.weights[f"{net}_{i + 1}_w"].shape[2])
        return widths


class _Streams:
    """Each member's random streams: latentmi's on a CPU (per-member generators in the global one's
    state); on another device the permutations still from that stream, the Dropout masks from a
    device generator of the member's own (`own_masks`: the default off a CPU)."""

    def __init__(
        self, states: list[torch.Tensor], seeds: list[int], device: torch.device, own_masks: bool | None = None
    ):
        self.cpu = [torch.Generator().set_state(s) for s in states]
        self.device = device
        self.own: list[torch.Generator] | None = None
        if own_masks is None:
            own_masks = device.type != "cpu"
        if own_masks:
            self.own = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def keep(self, members: list[int]) -> None:
        self.cpu = [self.cpu[i] for i in members]
        if self.own is not None:
            self.own = [self.own[i] for i in members]

    def permutations(self, n: int) -> torch.Tensor:
        """One epoch of a DataLoader(shuffle=True) per member: base seed, sampler seed, randperm. [K, n]"""
        perms = []
        for g in self.cpu:
            torch.empty((), dtype=torch.int64).random_(generator=g)  # the loader iterator's _base_seed
            seed = int(torch.empty((), dtype=torch.int64).random_(generator=g).item())
            perms.append(torch.randperm(n, generator=torch.Generator().manual_seed(seed)))
        return torch.stack(perms)

    def masks(self, batch: int, widths: list[int]) -> list[torch.Tensor]:
        """The Dropout keep-masks of one step, scaled by 1/(1-p), [K, batch, width] per layer."""
        keep = 1.0 - DROPOUT
        if self.own is not None:  # each member's own masks, whatever else is in the stack
            draws = torch.empty(len(self.own), batch, sum(widths), device=self.device)
            for member, g in zip(draws, self.own):
                member.bernoulli_(keep, generator=g)
            return list(draws.div_(keep).split(widths, dim=2))
        per_member = [[torch.empty(batch, w).bernoulli_(keep, generator=g) for w in widths] for g in self.cpu]
        return [torch.stack([m[i] for m in per_member]).div_(keep) for i in range(len(widths))]


@dataclass(frozen=True)
class Settings:
    epochs: int = 300
    lr: float = 1e-4
    batch_size: int = 512
    patience: int = 30
    latent: int = 8
    validation_dropout: bool = True  # latentmi's quirk 1: validation in training mode
    restore_best: bool = False  # latentmi's quirk 2 (False): stopping keeps the current weights


def build(
    x_dim: int, y_dim: int, latent: int, seed: int, device: torch.device | str = "cpu"
) -> tuple[AECross, torch.Tensor]:
    """latentmi's model for `seed` (built on the CPU) and the torch RNG state its build leaves (the
    member's stream); `device`, where it will train, has its generators put back as well."""
    with fork_rngs(device):
        torch.manual_seed(seed)
        net = AECross(x_dim, y_dim, latent)
        return net, torch.get_rng_state()


@dataclass
class Trained:
    zx: torch.Tensor  # latents of all n rows, float32 on the device, eval mode (latentmi's encode)
    zy: torch.Tensor
    epochs: int  # epochs trained (early stopping ends a member sooner)


def train_members(jobs: Sequence[Job], s: Settings) -> list[Trained]:
    """Train one AECross per job (all of one x and y width and split sizes) as a stack."""
    device = jobs[0].x.device
    built = [build(j.x.shape[1], j.y.shape[1], s.latent, j.seed, device) for j in jobs]
    stack = _Stack([net.to(device) for net, _ in built])
    streams = _Streams([state for _, state in built], [j.seed for j in jobs], device)
    xs, ys = RowPool([j.x for j in jobs]), RowPool([j.y for j in jobs])
    train_rows = torch.as_tensor(np.stack([j.train_rows for j in jobs]))
    val_rows = torch.as_tensor(np.stack([j.val_rows for j in jobs]))
    active = list(range(len(jobs)))
    best = [float("inf")] * len(jobs)
    waited = [0] * len(jobs)
    snapshots: list[dict[str, torch.Tensor] | None] = [None] * len(jobs)
    finished: dict[int, dict[str, torch.Tensor]] = {}
    ran = [s.epochs] * len(jobs)
    opt = torch.optim.Adam(stack.parameters(), lr=s.lr, eps=1e-07)
    widths = stack.mask_widths()
    for epoch in range(s.epochs):
        order = torch.gather(train_rows[active], 1, streams.permutations(train_rows.shape[1])).to(device)
        for start in range(0, order.shape[1], s.batch_size):
            idx = order[:, start : start + s.batch_size]
            loss = stack.losses(xs.rows(idx, active), ys.rows(idx, active), streams.masks(idx.shape[1], widths))
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
        val = _validation(stack, xs, ys, val_rows, active, streams, s, widths, device)
        stopped = []
        for pos, member in enumerate(active):
            if val[pos] < best[member]:
                best[member], waited[member] = val[pos], 0
                if s.restore_best:
                    snapshots[member] = _member_state(stack, pos)
            else:
                waited[member] += 1
                if waited[member] >= s.patience:
                    stopped.append(pos)
        for pos in stopped:
            finished[active[pos]] = _final_state(stack, pos, snapshots[active[pos]])
            ran[active[pos]] = epoch + 1
        if stopped:
            keep = [pos for pos in range(len(active)) if pos not in stopped]
            active = [active[pos] for pos in keep]
            if not active:
                break
            stack, opt = _compact(stack, opt, keep, s.lr)
            streams.keep(keep)
    for pos, member in enumerate(active):  # ran out of epochs
        finished[member] = _final_state(stack, pos, snapshots[member])
    latents = [_encode(finished[i], stack.layout, jobs[i]) for i in range(len(jobs))]
    return [Trained(zx, zy, ran[i]) for i, (zx, zy) in enumerate(latents)]


def _validation(stack, xs, ys, val_rows, active, streams, s: Settings, widths, device) -> np.ndarray:
    """Each active member's mean over its shuffled validation batches (latentmi's val loss), float64."""
    order = torch.gather(val_rows[active], 1, streams.permutations(val_rows.shape[1])).to(device)
    batches = []
    with torch.no_grad():
        for start in range(0, order.shape[1], s.batch_size):
            idx = order[:, start : start + s.batch_size]
            masks = streams.masks(idx.shape[1], widths) if s.validation_dropout else None
            batches.append(stack.losses(xs.rows(idx, active), ys.rows(idx, active), masks))
    values = torch.stack(batches).cpu().numpy().astype(np.float64)  # one host sync per epoch
    return np.array([np.mean(np.ascontiguousarray(values[:, k])) for k in range(values.shape[1])])


def _final_state(stack: _Stack, pos: int, best: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """The weights a member ends with: its best-validation snapshot (restore_best keeps one), else
    its current weights (latentmi's behaviour)."""
    return best if best is not None else _member_state(stack, pos)


def _member_state(stack: _Stack, pos: int) -> dict[str, torch.Tensor]:
    return {name: p.detach()[pos : pos + 1].clone() for name, p in stack.weights.items()}


def _compact(stack: _Stack, opt: torch.optim.Optimizer, keep: list[int], lr: float):
    """The stack without its stopped members, Adam's state (moments, step) carried over."""
    index = torch.tensor(keep, device=next(stack.parameters()).device)
    smaller = _Stack(params={name: p.detach().index_select(0, index) for name, p in stack.weights.items()})
    smaller.layout = stack.layout
    new_opt = torch.optim.Adam(smaller.parameters(), lr=lr, eps=1e-07)
    for old, new in zip(stack.parameters(), smaller.parameters()):
        state = opt.state[old]
        new_opt.state[new] = {
            key: (value.index_select(0, index) if key != "step" else value.clone()) for key, value in state.items()
        }
    return smaller, new_opt


def _encode(state: dict[str, torch.Tensor], layout: dict[str, list[str]], job: Job):
    one = _Stack(params=state)
    one.layout = layout
    with torch.no_grad():
        zx, zy = one.encode(job.x[None], job.y[None])
    return zx[0], zy[0]
