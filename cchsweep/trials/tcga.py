"""TCGA multi-omics trials (paper Section 4.4, Appendix E): cross-modal KD under teacher noise, and fusion.

Data: `<data_dir>/tcga/<cohort>/` holds one table per modality plus labels.csv
(cchsweep.data.cohort). A trial joins its TWO modalities on patient (so the patient set depends on
the pairing: BRCA mRNA+CNV is 190 patients, BRCA RPPA+CNV 861; the paper keeps the patients with all
three modalities, which offline would hold RPPA+CNV to mRNA's 190: see README, "Studies") and calls
`prepare` for its seed:
a stratified 90/10 split, train-fitted median imputation, standardization and mRMR top-100 per
modality. Recomputed in every trial (0.3 s to read, < 0.1 s to prepare), never cached.

Choices the paper leaves open (all documented in the study modules too):

* Batch size: FULL BATCH (`batch_size` 0). The cohorts have 171-774 training patients, and the
  paper gives Adam, a learning rate and 200 epochs but no batch size; full batch makes "200 epochs"
  200 Adam steps, deterministic up to float rounding, with no batch-order choice to make.
* Noise (Tables 5-7): x + N(0, (level * train_std)^2) per feature on the TEACHER's inputs only,
  train and test rows alike, via cchsweep.data.cohort.add_noise with
  rng = np.random.default_rng([seed, NOISE_STREAM]) drawing the train rows, then the test rows.
  One rng state per seed gives the same standard-normal pattern at every level (common random
  numbers), so a noise sweep differs only in the scale. The teacher is trained on CLEAN inputs
  and frozen; its soft targets come from the NOISY train inputs. The student never sees noise.
* MI rows (`mi_split`): "all" (default) = the train and test rows' representations, "test" =
  the held-out rows only (19 patients for BRCA mRNA+CNV: too few for any MI estimator). With
  "all", the networks have been fit to most of those rows, which inflates I(H;Y) relative to a
  held-out estimate; it is the same for every noise level, so the gap's movement with noise is
  unaffected.
* MI quantities (cross-modal): I_TS = I(teacher's representation of the NOISY teacher input;
  no-KD student's representation), cached per (pairing, noise, seed), so the gap moves with
  noise. I_SL = I(no-KD student; Y) and I_TL = I(teacher on the CLEAN input; Y) do not depend on
  the noise (the paper reports one I_SL and one I(H_teacher; Y) per table) and are cached per
  (pairing, seed). Labels are fed one-hot; latentmi, nats.
* Fusion loss (Figure 3, Table 18): both strategies share the architecture, which has a fusion
  head AND one head per modality; "direct fusion" trains all three heads with cross-entropy
  (the modality heads would otherwise be dead weight), and Fusion+KD replaces the student head's
  CE by eq. (2): (1 - lam) CE + lam T^2 KL(teacher head / T || student head / T), with the
  teacher head's logits detached (knowledge flows teacher -> student only). At lam = 0 the two
  losses are identical. Both are trained jointly from scratch (no teacher pretraining, Appendix E)
  from the same initial weights and dropout stream; the fusion head's test predictions are scored.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cchsweep.data.cohort import LABELS_STEM, SUFFIXES, Prepared, add_noise, cohort_path, load_cohort, prepare
from cchsweep.errors import UsageError
from cchsweep.kd import classification_kd_loss, stacked_classification_kd_losses
from cchsweep.metrics import classification_metrics
from cchsweep.mi.latentmi_estimator import one_hot
from cchsweep.mi.triplet import COMPARED, MIRequest, cached_mi, estimator_names, mi_values, triplet_pairs
from cchsweep.models import MLP, SeededDropout
from cchsweep.stack import Member, Recipe, StackedLinear, copy_layers, reference_trial, stack_layers, train_stacked
from cchsweep.study import TrainFn, TrialContext, TrialOutput, counted
from cchsweep.train import cpu_state, fit, predict, represent, with_state
from cchsweep.trials import crossmodal

HIDDEN = 64  # Table 9 (cross-modal MLP) and Table 18 (n_enc of each fusion encoder)
DROPOUT = 0.25  # Table 18
OPTIMIZER = "adam"  # Tables 17, 19, 21
NOISE_STREAM = 7  # rng = default_rng([seed, NOISE_STREAM]): the noise pattern of a seed
# What the shipped studies read: cohort -> modalities (file stems) besides labels.
NEEDS: dict[str, tuple[str, ...]] = {"brca": ("mrna", "rppa", "cnv"), "kipan": ("rppa", "cnv")}
DATA_KEYS = ("test_fraction", "n_features")
TRAIN_KEYS = (*DATA_KEYS, "epochs", "lr", "batch_size")
MI_KEYS = ("mi_estimator", "mi_epochs", "mi_lr", "mi_repeats", "mi_split")
MI_SPLITS = ("all", "test")
MI_SOURCES = ("fusion", "unimodal")


# --- data -------------------------------------------------------------------------------------------


def check_data(data_dir, points: Sequence[Mapping[str, Any]] | None = None, *, dry_run: bool = False) -> list[str]:
    """Driver-side: every cohort the points read (without points: every shipped one, NEEDS) exists,
    with labels and the modality files they name (a --set cohort or modality is checked here, not
    in each trial). Nothing is ever downloaded, so a dry run checks the same and [] is returned."""
    root = Path(data_dir) / "tcga"
    needs: dict[str, set[str]] = {c: set(m) for c, m in NEEDS.items()} if points is None else {}
    for s in points or ():
        needs.setdefault(s["cohort"], set()).update(s[k] for k in ("teacher_modality", "student_modality"))
    missing: list[str] = []
    for cohort, modalities in needs.items():
        directory = cohort_directory(Path(data_dir), cohort)
        if not directory.is_dir():
            missing.append(f"{directory}/")
            continue
        stems = {p.stem for p in directory.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES}
        if LABELS_STEM in modalities:
            raise UsageError(
                f"{LABELS_STEM!r} names {directory}/{LABELS_STEM}.csv, the subtypes, not a modality; choose a "
                f"teacher and student among {', '.join(sorted(stems - {LABELS_STEM})) or 'none'}"
            )
        absent = [m for m in (*sorted(modalities), LABELS_STEM) if m not in stems]
        has = f" (it has {', '.join(sorted(stems - {LABELS_STEM})) or 'no modality'})" if absent else ""
        missing += [f"{directory}/{m}.csv" + (has if i == len(absent) - 1 else "") for i, m in enumerate(absent)]
    if missing:
        raise UsageError(
            f"TCGA data missing: {', '.join(missing)}; put one CSV or Parquet per modality (first column "
            f"'patient') and labels.csv (patient,subtype) under {root}/<cohort>/, or pass another --data-dir"
        )
    _check_contents(Path(data_dir), points or ())
    return []


def _check_contents(data_dir: Path, points: Sequence[Mapping[str, Any]]) -> None:
    """Each pairing's tables read and each seed's split prepared, as the trials will (~0.3 s a pairing):
    a duplicated patient, a non-numeric cell, a class too small to split or a modality with no usable
    value is one line here (UsageError), not an error row from every bundle after a retry."""
    cohorts: dict[tuple, Any] = {}
    done: set[tuple] = set()
    for s in points:
        pair = (s["cohort"], s["teacher_modality"], s["student_modality"])
        split = (int(s["seed"]), float(s["test_fraction"]), int(s["n_features"]))
        if (pair, split) in done:
            continue
        done.add((pair, split))
        if pair not in cohorts:
            cohorts[pair] = joined_pairing(data_dir, pair[0], list(pair[1:]))
        prepare(cohorts[pair], split[0], test_fraction=split[1], n_features=split[2])


def cohort_directory(data_dir: Path | None, cohort: str) -> Path:
    """A shipped cohort by name (<data-dir>/tcga/<cohort>), or any cohort directory by its absolute
    path (a user's own, as `cchsweep advise --verify` runs it, digest and all: cohort_path)."""
    path = Path(cohort_path(cohort)).expanduser()
    if path.is_absolute():
        return path
    if data_dir is None:
        raise UsageError("the TCGA studies need a data directory; pass --data-dir or set CCHSWEEP_DATA")
    return Path(data_dir) / "tcga" / cohort


def joined_pairing(data_dir: Path | None, cohort: str, modalities: list[str]):
    """A pairing's modalities joined on patient, as every TCGA trial (and the driver's check) reads them."""
    return load_cohort(cohort_directory(data_dir, cohort), modalities, min_modalities=2)


def load_split(ctx: TrialContext, cohort: str, modalities: list[str], seed: int, s: Mapping[str, Any]) -> Prepared:
    joined = joined_pairing(ctx.data_dir, cohort, modalities)
    return prepare(joined, seed, test_fraction=s["test_fraction"], n_features=s["n_features"])


def noisy_teacher_inputs(p: Prepared, modality: str, level: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The teacher modality's train and test rows with Gaussian noise at `level` (see module doc)."""
    rng = np.random.default_rng([seed, NOISE_STREAM])
    train = add_noise(p.x_train[modality], level, p.train_std[modality], rng)
    test = add_noise(p.x_test[modality], level, p.train_std[modality], rng)
    return train, test


def mi_rows(train: np.ndarray, test: np.ndarray, split: str) -> np.ndarray:
    if split == "all":
        return np.concatenate([train, test])
    if split == "test":
        return test
    raise ValueError(f"mi_split={split!r}; use one of {', '.join(MI_SPLITS)}")


def to_tensor(x: np.ndarray, dev: torch.device, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype).to(dev)


def _batch(s: Mapping[str, Any], n: int) -> int:
    return int(s["batch_size"]) or n  # 0 = full batch


# --- cross-modal KD under teacher noise (Tables 5-7, 17) ---------------------------------------


def train_unimodal(
    p: Prepared, modality: str, init_seed: int, loss, s: Mapping[str, Any], dev: torch.device, build: bool = True
) -> MLP:
    """Table 9 network (in -> 64 ReLU -> classes), trained with Adam at s['lr'] when `build`."""
    torch.manual_seed(init_seed)
    net = MLP(p.x_train[modality].shape[1], [HIDDEN], len(p.classes)).to(dev)
    if build:
        _fit(net, to_tensor(p.x_train[modality], dev), loss, init_seed, s)
    return net


def _fit(net: nn.Module, x: torch.Tensor, loss, order_seed: int, s: Mapping[str, Any]) -> nn.Module:
    """Adam at s['lr'] for s['epochs'] (Table 17), full batch unless s['batch_size'] says otherwise."""
    return fit(
        net, x, loss, optimizer=OPTIMIZER, lr=s["lr"], epochs=s["epochs"], batch_size=_batch(s, len(x)), seed=order_seed
    )


def unimodal_pair(
    ctx: TrialContext,
    p: Prepared,
    cohort: str,
    t_mod: str,
    s_mod: str,
    seed: int,
    s: Mapping[str, Any],
    dev: torch.device,
) -> tuple[nn.Module, nn.Module]:
    """Teacher (clean teacher modality) and no-KD student, from the cache (as the cross-modal trial
    trains them; the fusion study's mi_source "unimodal" reads them).

    Keys: the pairing (its joint patients decide the split), the seed and the training settings;
    never the noise, temperature or lambda, so every noise level shares one teacher and baseline.
    """
    pairing = crossmodal_pairing(p, cohort, t_mod, s_mod, seed, 0.0, s, dev)
    return crossmodal.no_kd_networks(ctx, [pairing])[0]


@functools.lru_cache(maxsize=64)
def _recipe(in_dim: int, classes: int, lr: float, epochs: int, batch_size: int) -> Recipe:
    """Table 9 network (in -> 64 ReLU -> classes), Adam (Table 17); one object per shape and settings,
    so the pairings of a bundle share it and their networks stack."""
    return Recipe(
        build=lambda: MLP(in_dim, [HIDDEN], classes),
        loss=crossmodal.kd_loss,
        stacked_loss=crossmodal.stacked_kd_loss,
        optimizer=OPTIMIZER,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
    )


def crossmodal_pairing(
    p: Prepared, cohort: str, t_mod: str, s_mod: str, seed: int, level: float, s: Mapping[str, Any], dev: torch.device
) -> crossmodal.Pairing:
    """The cross-modal pipeline's inputs for one TCGA pairing: Table 9 networks, Adam, full batch."""
    mods = {"teacher": t_mod, "student": s_mod}
    noisy_tr, noisy_te = noisy_teacher_inputs(p, t_mod, level, seed)
    split = s["mi_split"]
    n = len(p.y_train)
    recipes = {
        role: _recipe(p.x_train[m].shape[1], len(p.classes), float(s["lr"]), int(s["epochs"]), _batch(s, n))
        for role, m in mods.items()
    }
    key = {
        **{k: s.get(k, "") for k in TRAIN_KEYS},
        "cohort": cohort,
        "teacher_modality": t_mod,
        "student_modality": s_mod,
        "seed": seed,
    }
    return crossmodal.Pairing(
        prefix="tcga",
        x_train={r: to_tensor(p.x_train[m], dev) for r, m in mods.items()},
        x_test={r: to_tensor(p.x_test[m], dev) for r, m in mods.items()},
        y_train=to_tensor(p.y_train, dev, torch.int64),
        y_test=to_tensor(p.y_test, dev, torch.int64),
        teacher_noisy=(to_tensor(noisy_tr, dev), to_tensor(noisy_te, dev)),
        mi_rows=lambda train, test: torch.cat([train, test]) if split == "all" else test,
        labels=one_hot(mi_rows(p.y_train, p.y_test, split), len(p.classes)),
        recipes=recipes,
        keys={"teacher": key, "student": key, "mi": {**key, **{k: s[k] for k in MI_KEYS}}},
        noise_key={"noise": level},
        seed=seed,
    )


def crossmodal_trial(
    params: Mapping[str, Any], settings: Mapping[str, Any], ctx: TrialContext, estimators: tuple[str, ...] = ()
) -> TrialOutput:
    """Tables 5-7: KD from a noisy teacher modality; MI by s['mi_estimator'] or each of `estimators`.
    One point, one network at a time: the reference for `crossmodal_bundle`."""
    s = {**settings, **params}
    return crossmodal.run(ctx, s, _pairing(ctx, s), estimators or estimator_names(s))


def crossmodal_bundle(
    points: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    ctx: TrialContext,
    estimators: tuple[str, ...] = (),
) -> list[TrialOutput]:
    """Many points of one pairing (seeds, noise levels, T, lambda): every network trained as stacks."""
    pts = [{**settings, **p} for p in points]
    return crossmodal.run_bundle(
        ctx, pts, [_pairing(ctx, s) for s in pts], estimators or estimator_names(pts[0]), train_stacked
    )


def _pairing(ctx: TrialContext, s: Mapping[str, Any]) -> crossmodal.Pairing:
    cohort, t_mod, s_mod, seed = s["cohort"], s["teacher_modality"], s["student_modality"], int(s["seed"])
    p = load_split(ctx, cohort, [t_mod, s_mod], seed, s)
    return crossmodal_pairing(p, cohort, t_mod, s_mod, seed, float(s["noise"]), s, torch.device(ctx.device))


# --- fusion vs Fusion+KD (Figure 3, Tables 8, 18-21) -------------------------------------------


class FusionNet(nn.Module):
    """Table 18: per modality Linear -> ReLU, BatchNorm1d, Dropout(0.25) (64 units); concat -> fusion head,
    plus one Linear head per modality.

    The input is [x_teacher | x_student] (columns); the output is [fusion | teacher head | student head]
    logits (3 * n_classes columns) so the engine's fit/predict loop handles it like any network;
    `split_logits` takes it apart. `representation` is [h_teacher | h_student] (2 * 64). Dropout is
    `models.SeededDropout`: its masks come from the init seed, so direct fusion and Fusion+KD (same
    seed) see the same masks, alone or stacked (`StackedFusionNet`).
    """

    def __init__(
        self, in_teacher: int, in_student: int, n_classes: int, hidden: int = HIDDEN, dropout: float = DROPOUT
    ):
        super().__init__()
        self.in_teacher, self.n_classes = in_teacher, n_classes

        def encoder(width: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.BatchNorm1d(hidden), SeededDropout(dropout))

        self.enc_teacher, self.enc_student = encoder(in_teacher), encoder(in_student)
        self.fusion = nn.Linear(2 * hidden, n_classes)
        self.head_teacher = nn.Linear(hidden, n_classes)
        self.head_student = nn.Linear(hidden, n_classes)

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.enc_teacher(x[:, : self.in_teacher]), self.enc_student(x[:, self.in_teacher :])], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.representation(x)
        h_t, h_s = h.chunk(2, dim=1)
        return torch.cat([self.fusion(h), self.head_teacher(h_t), self.head_student(h_s)], 1)

    def split_logits(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fused, teacher, student = out.split(self.n_classes, dim=-1)
        return fused, teacher, student


class StackedFusionNet(nn.Module):
    """K FusionNets as one (cchsweep.stack): [K, B, in_t + in_s] -> [K, B, 3 * n_classes]."""

    def __init__(self, nets: Sequence[FusionNet]):
        super().__init__()
        self.in_teacher = nets[0].in_teacher
        self.enc_teacher = stack_layers([n.enc_teacher for n in nets])
        self.enc_student = stack_layers([n.enc_student for n in nets])
        self.fusion = StackedLinear([n.fusion for n in nets])
        self.head_teacher = StackedLinear([n.head_teacher for n in nets])
        self.head_student = StackedLinear([n.head_student for n in nets])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h_t, h_s = self.enc_teacher(x[..., : self.in_teacher]), self.enc_student(x[..., self.in_teacher :])
        return torch.cat([self.fusion(torch.cat([h_t, h_s], -1)), self.head_teacher(h_t), self.head_student(h_s)], -1)

    @torch.no_grad()
    def copy_into(self, nets: Sequence[FusionNet]) -> None:
        copy_layers(self.enc_teacher, [n.enc_teacher for n in nets])
        copy_layers(self.enc_student, [n.enc_student for n in nets])
        for name in ("fusion", "head_teacher", "head_student"):
            getattr(self, name).copy_into([getattr(n, name) for n in nets])


FusionNet.Stacked = StackedFusionNet  # type: ignore[attr-defined]


def fusion_loss(out: torch.Tensor, labels: torch.Tensor, temperature: float, lam: float) -> torch.Tensor:
    """CE(fusion) + CE(teacher head) + eq. (2) on the student head with the teacher head as teacher.

    lam = 0 is direct fusion (every head with plain CE); the teacher head's logits are detached in
    the KL term, so distillation moves only the student head and encoder.
    """
    fused, teacher, student = out.split(out.shape[-1] // 3, dim=-1)
    return (
        F.cross_entropy(fused, labels)
        + F.cross_entropy(teacher, labels)
        + classification_kd_loss(student, labels, teacher.detach(), temperature, lam)
    )


def stacked_fusion_losses(out: torch.Tensor, labels: torch.Tensor, temperature: torch.Tensor, lam: torch.Tensor):
    """fusion_loss per member: out [K, B, 3C], labels [K, B], temperature/lam [K] -> [K]."""
    fused, teacher, student = out.split(out.shape[-1] // 3, dim=-1)

    def ce(logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1)

    return (
        ce(fused) + ce(teacher) + stacked_classification_kd_losses(student, labels, teacher.detach(), temperature, lam)
    )


@functools.lru_cache(maxsize=64)
def _fusion_recipe(in_teacher: int, in_student: int, classes: int, lr: float, epochs: int, batch_size: int) -> Recipe:
    """FusionNet with Adam (Tables 19, 21); one object per shape and settings, so a bundle's networks stack."""
    return Recipe(
        build=lambda: FusionNet(in_teacher, in_student, classes),
        loss=lambda out, b, c: fusion_loss(out, b["y"], c["temperature"], c["lam"]),
        stacked_loss=lambda out, b, c: stacked_fusion_losses(out, b["y"], c["temperature"], c["lam"]),
        optimizer=OPTIMIZER,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
    )


@dataclass
class _FusionPoint:
    s: dict[str, Any]
    p: Prepared
    recipe: Recipe
    x_train: torch.Tensor  # [x_teacher | x_student]
    y_train: torch.Tensor
    key: dict[str, Any]  # the direct-fusion network's cache key

    def member(self, temperature: float = 1.0, lam: float = 0.0) -> Member:
        # init and batch order 2*seed: direct fusion and Fusion+KD start from the same weights and masks
        seed = 2 * int(self.s["seed"])
        return Member(seed, seed, self.x_train, {"y": self.y_train}, {"temperature": temperature, "lam": lam})


def _fusion_point(ctx: TrialContext, s: dict[str, Any], dev: torch.device) -> _FusionPoint:
    cohort, t_mod, s_mod, seed = s["cohort"], s["teacher_modality"], s["student_modality"], int(s["seed"])
    p = load_split(ctx, cohort, [t_mod, s_mod], seed, s)
    x = to_tensor(np.concatenate([p.x_train[t_mod], p.x_train[s_mod]], 1), dev)
    recipe = _fusion_recipe(
        p.x_train[t_mod].shape[1], p.x_train[s_mod].shape[1], len(p.classes), float(s["lr"]), int(s["epochs"]),
        _batch(s, len(x)),
    )  # fmt: skip
    key = {
        **{k: s.get(k, "") for k in TRAIN_KEYS},
        "cohort": cohort,
        "teacher_modality": t_mod,
        "student_modality": s_mod,
        "seed": seed,
        "dropout": "seeded",  # masks from the init seed (direct fusion cached before that differ)
    }
    return _FusionPoint(s, p, recipe, x, to_tensor(p.y_train, dev, torch.int64), key)


def fusion_bundle(
    points: Sequence[Mapping[str, Any]], settings: Mapping[str, Any], ctx: TrialContext, train: TrainFn = train_stacked
) -> list[TrialOutput]:
    """Direct fusion (cached per pairing and seed) and Fusion+KD for many points, trained as stacks."""
    dev = torch.device(ctx.device)
    fps = [_fusion_point(ctx, {**settings, **pt}, dev) for pt in points]
    items = [("tcga_fusion_direct", fp.key) for fp in fps]

    def build(missing: list[int]) -> list[dict[str, torch.Tensor]]:
        ctx.progress(f"training {counted(len(missing), 'direct-fusion network')}")
        nets = crossmodal.train_grouped(train, [(fps[i].recipe, fps[i].member()) for i in missing], dev)
        return [cpu_state(n) for n in nets]

    states = ctx.cached_many(items, build)
    directs = [with_state(fp.recipe.build().to(dev), st) for fp, st in zip(fps, states)]
    ctx.progress(f"training {counted(len(fps), 'Fusion+KD network')}")
    kd_members = [(fp.recipe, fp.member(float(fp.s["temperature"]), float(fp.s["lam"]))) for fp in fps]
    kds = crossmodal.train_grouped(train, kd_members, dev)
    names = estimator_names(fps[0].s)
    requests = [_fusion_mi(ctx, fp, direct, dev, e) for fp, direct in zip(fps, directs) for e in names]
    mis = cached_mi(ctx, requests, ctx.device)
    return [
        _fusion_output(fp, direct, kd, dict(zip(names, mis[i * len(names) : (i + 1) * len(names)])), dev)
        for i, (fp, direct, kd) in enumerate(zip(fps, directs, kds))
    ]


def _fusion_mi(ctx: TrialContext, fp: _FusionPoint, direct: nn.Module, dev, estimator: str) -> MIRequest:
    """The MI triplet, decided before distillation: representations of the direct-fusion encoders, or
    (mi_source "unimodal") of the Table 9 teacher and no-KD student trained alone at unimodal_lr, as
    in the cross-modal study (shared through the cache)."""
    s, p = {**fp.s, "mi_estimator": estimator}, fp.p
    cohort, t_mod, s_mod, seed = s["cohort"], s["teacher_modality"], s["student_modality"], int(s["seed"])
    split, source = s["mi_split"], s["mi_source"]
    if source not in MI_SOURCES:
        raise ValueError(f"mi_source={source!r}; use one of {', '.join(MI_SOURCES)}")

    def pairs():
        labels = one_hot(mi_rows(p.y_train, p.y_test, split), len(p.classes))
        xt = mi_rows(p.x_train[t_mod], p.x_test[t_mod], split)
        xs = mi_rows(p.x_train[s_mod], p.x_test[s_mod], split)
        if source == "fusion":
            h = represent(direct, to_tensor(np.concatenate([xt, xs], 1), dev)).cpu().numpy()
            h_t, h_s = h[:, :HIDDEN], h[:, HIDDEN:]
        else:
            teacher, nokd = unimodal_pair(ctx, p, cohort, t_mod, s_mod, seed, {**s, "lr": s["unimodal_lr"]}, dev)
            h_t = represent(teacher, to_tensor(xt, dev)).cpu().numpy()
            h_s = represent(nokd, to_tensor(xs, dev)).cpu().numpy()
        return triplet_pairs(h_t, h_s, labels, seed)

    mi_cfg = {**fp.key, **{k: s[k] for k in MI_KEYS}, "mi_source": source}
    if source == "unimodal":
        mi_cfg["unimodal_lr"] = s["unimodal_lr"]
    return MIRequest("tcga_fusion_mi", mi_cfg, s, pairs)


def _fusion_output(fp: _FusionPoint, direct: nn.Module, kd: nn.Module, values: dict, dev) -> TrialOutput:
    s, p = fp.s, fp.p
    t_mod, s_mod = s["teacher_modality"], s["student_modality"]
    y_te = to_tensor(p.y_test, dev, torch.int64)
    x_te = to_tensor(np.concatenate([p.x_test[t_mod], p.x_test[s_mod]], 1), dev)
    fused_direct, teacher_head, _ = predict(direct, x_te).split(len(p.classes), dim=-1)
    fused_kd = predict(kd, x_te)[:, : len(p.classes)]
    metrics = {
        "teacher": classification_metrics(teacher_head, y_te),  # the direct-fusion model's teacher-modality head
        "nokd": classification_metrics(fused_direct, y_te),  # direct fusion
        "kd": classification_metrics(fused_kd, y_te),  # Fusion+KD
    }
    n_mi = len(mi_rows(p.y_train, p.y_test, s["mi_split"]))
    mi = [v for estimator, value in values.items() for v in mi_values(value, estimator, s["mi_repeats"], n_mi)]
    gain = metrics["kd"]["f1_weighted"] - metrics["nokd"]["f1_weighted"]
    return TrialOutput(metrics=metrics, gain_metric="f1_weighted", kd_gain=gain, mi=mi)


fusion_trial = reference_trial(fusion_bundle)  # one point, one network at a time: the reference path

# What may differ between the points of one fusion bundle (one pairing: cohort and modalities fixed).
FUSION_VARY = ("seed", "temperature", "lam")


def validate(s: Mapping[str, Any]) -> None:
    if s["teacher_modality"] == s["student_modality"]:
        raise ValueError(
            f"teacher_modality and student_modality are both {s['teacher_modality']!r}; "
            f"cross-modal KD needs two modalities"
        )


# --- the three MI estimators side by side (Table 2's comparison, on TCGA offline) ----------------


def estimators_trial(params: Mapping[str, Any], settings: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
    """The cross-modal trial with the MI triplet from every estimator (latentmi, mine, ksg): the
    networks are trained once and every estimator sees the same representations, each with cache
    kinds of its own (tcga_mi_ts_<estimator>, ...). The results view has one row per estimator."""
    return crossmodal_trial(params, settings, ctx, estimators=COMPARED)


def estimators_bundle(
    points: Sequence[Mapping[str, Any]], settings: Mapping[str, Any], ctx: TrialContext
) -> list[TrialOutput]:
    return crossmodal_bundle(points, settings, ctx, estimators=COMPARED)


# What may differ between the points of one bundle (one pairing: cohort and modalities fixed).
CROSSMODAL_VARY = ("seed", "noise", "temperature", "lam")
