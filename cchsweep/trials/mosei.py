"""CMU-MOSEI cross-modal KD trials (paper Section 4.3, Appendix D, Tables 2-4, 14, 15).

Data: cchsweep.data.mosei (MulT's `mosei_senti_data.pkl`; official train/valid/test; labels
1 if sentiment > 0). Models are trained on `train` (no early stopping, so `valid` is unused) and
scored on `test`.

Network (Table 14, the same for every modality): temporal mean-pool over the L steps -> Linear
D->256, ReLU, BatchNorm1d, Dropout(0.3) -> Linear 256->128, ReLU, BatchNorm1d, Dropout(0.3) ->
Linear 128->2. The representation H is the 128-d output of the second block (ReLU -> BN; dropout
is the identity in eval mode), i.e. exactly what the classifier head sees.

Mean-pooling has no parameters and comes first, so the pooled (N, D) features are computed once
per pickle (artifact `mosei_pooled`) and the networks train on them: `MoseiNet.forward` accepts
(B, L, D) sequences (pooled inside) or already pooled (B, D) rows, with identical results.

Training (Table 15): AdamW (torch defaults: weight decay 0.01, betas 0.9/0.999) at lr 5e-4 with
CosineAnnealingLR(T_max = epochs, eta_min = 0) stepped once per epoch, 100 epochs, T = 4.5,
lambda = 0.5 in eq. (2). BATCH SIZE 256 (the paper gives none; ours). A final batch of a single
row is skipped (BatchNorm cannot train on one row). Seeds: the teacher inits and shuffles with
2*seed, both students with 2*seed+1, so the KD student starts from the no-KD student's initial
weights and sees the same batch order (and, the global RNG being reseeded, the same dropout
stream up to the point the losses diverge).

Noise (Table 4): Gaussian noise on the TEACHER's (text) input, train and test rows alike,
x + N(0, (level * train_std_d)^2) per feature d and time step, train_std_d being feature d's std
over all train rows and steps of the raw sequence (`noise_space` "sequence", default). Because the
network mean-pools first, the noise is added to the pooled features as N(0, (level *
train_std_d)^2 / L): the same distribution as pooling the noisy sequence, without materialising
it. `noise_space` "pooled" instead scales by the std of the pooled train features (noise on the
network's effective input; much stronger, as averaging over L no longer shrinks it). The draws are
rng = default_rng([seed, NOISE_STREAM]).standard_normal (train rows, then test rows), scaled by the
level, so every level of a seed shares one noise pattern (common random numbers). The teacher is
trained on CLEAN text and frozen; its soft targets come from the NOISY train inputs.

MI (latentmi by default, nats, labels one-hot): on the 128-d representations of the test split,
at most `mi_n` rows (a seeded subset when capped). I_TS = I(teacher on the NOISY text; no-KD
student), cached per (student modality, noise, seed); I_SL = I(no-KD student; Y) and I_TL =
I(teacher on CLEAN text; Y) do not depend on the noise (the paper reports one I_SL for Table 4) and
are cached per (student modality, seed). The teacher is cached per (teacher modality, seed,
training settings) and the no-KD student per (student modality, seed, training settings), so every
noise level, temperature and lambda reuses them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cchsweep.data.mosei import MODALITIES, check_file, default_path, load_mosei
from cchsweep.errors import UsageError
from cchsweep.mi.latentmi_estimator import one_hot
from cchsweep.mi.triplet import COMPARED, estimator_names
from cchsweep.models import SeededDropout
from cchsweep.stack import Recipe, train_stacked
from cchsweep.study import TrialContext, TrialOutput
from cchsweep.trials import crossmodal

HIDDEN = (256, 128)  # Table 14; the 128-unit block is the representation H
DROPOUT = 0.3  # Table 14
N_CLASSES = 2
NOISE_STREAM = 11  # rng = default_rng([seed, NOISE_STREAM]): the noise pattern of a seed
MI_STREAM = 13  # rng = default_rng([seed, MI_STREAM]): which test rows enter MI when capped
NOISE_SPACES = ("sequence", "pooled")
TRAIN_KEYS = ("epochs", "lr", "batch_size", "weight_decay")
MI_KEYS = ("mi_estimator", "mi_epochs", "mi_lr", "mi_repeats", "mi_n")


# --- data -------------------------------------------------------------------------------------------


def check_data(data_dir, points=None, *, dry_run: bool = False) -> list[str]:
    """Driver-side: the pickle exists and has the layout every trial reads (load_mosei's checks),
    so a bad file is one line before the sweep, not an error row per grid point after retries.
    Nothing is ever downloaded, so a dry run checks the same and [] is returned."""
    load_mosei(default_path(data_dir))
    return []


def _fingerprint(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _pool(path: Path) -> dict:
    """Per split and modality the time-mean (N, D); per modality the train std per feature of the
    raw sequence (over rows and steps) and of the pooled rows; L; labels."""
    splits = load_mosei(path)
    out: dict[str, Any] = {"pooled": {}, "y": {}, "seq_std": {}, "pooled_std": {}, "steps": {}}
    for name, sp in splits.items():
        out["pooled"][name] = {
            m: torch.from_numpy(sp.x[m].mean(axis=1, dtype=np.float64).astype(np.float32)) for m in MODALITIES
        }
        out["y"][name] = torch.from_numpy(sp.y)
    train = splits["train"]
    for m in MODALITIES:
        a = train.x[m]
        out["seq_std"][m] = torch.from_numpy(a.reshape(-1, a.shape[2]).std(axis=0, dtype=np.float64))
        out["pooled_std"][m] = out["pooled"]["train"][m].double().std(dim=0, unbiased=False)
        out["steps"][m] = int(a.shape[1])
    return out


def load_pooled(ctx: TrialContext) -> tuple[dict, dict]:
    path = default_path(ctx.data_dir)
    check_file(path)
    fp = _fingerprint(path)
    return ctx.cached("mosei_pooled", fp, lambda: _pool(path)), fp


def noise_scale(data: Mapping, modality: str, level: float, space: str) -> np.ndarray:
    """Per-feature std of the noise added to the POOLED input (see the module doc)."""
    if space == "sequence":
        return level * data["seq_std"][modality].numpy() / math.sqrt(data["steps"][modality])
    if space == "pooled":
        return level * data["pooled_std"][modality].numpy()
    raise ValueError(f"noise_space={space!r}; use one of {', '.join(NOISE_SPACES)}")


def noisy_inputs(data: Mapping, modality: str, level: float, space: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The modality's pooled train and test rows with Gaussian noise at `level` (train, then test draws)."""
    if not 0.0 <= level <= 1.0:
        raise UsageError(f"noise level {level} must lie in [0, 1] (a fraction: 0.2 means 20%)")
    scale = noise_scale(data, modality, level, space)
    rng = np.random.default_rng([seed, NOISE_STREAM])
    out = []
    for split in ("train", "test"):
        x = data["pooled"][split][modality].numpy()
        out.append((x + rng.standard_normal(x.shape) * scale).astype(np.float32))
    return out[0], out[1]


# --- network and training ---------------------------------------------------------------------------


class MoseiNet(nn.Module):
    """Table 14: mean-pool over time -> [Linear, ReLU, BatchNorm1d, Dropout] x (256, 128) -> Linear -> 2."""

    def __init__(
        self, in_dim: int, hidden: tuple[int, ...] = HIDDEN, out_dim: int = N_CLASSES, dropout: float = DROPOUT
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.BatchNorm1d(h), SeededDropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_dim)

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1) if x.dim() == 3 else x  # (B, L, D) -> (B, D); pooled rows pass through

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.representation(x))


def _recipe(in_dim: int, s: Mapping[str, Any]) -> Recipe:
    """Table 14 network, AdamW with a cosine schedule; one object per shape and settings."""
    return _recipe_of(in_dim, float(s["lr"]), float(s["weight_decay"]), int(s["epochs"]), int(s["batch_size"]))


@functools.lru_cache(maxsize=64)
def _recipe_of(in_dim: int, lr: float, weight_decay: float, epochs: int, batch_size: int) -> Recipe:
    return Recipe(
        build=lambda: MoseiNet(in_dim),
        loss=crossmodal.kd_loss,
        stacked_loss=crossmodal.stacked_kd_loss,
        optimizer="adamw",
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        weight_decay=weight_decay,
        schedule="cosine",
    )


def pairing(
    ctx: TrialContext, s: Mapping[str, Any], dev: torch.device, loaded: tuple[dict, dict] | None = None
) -> crossmodal.Pairing:
    """The cross-modal pipeline's inputs for one MOSEI (teacher, student, noise, seed): Table 14
    networks on pooled features, AdamW with a cosine schedule, MI on a capped subset of test rows.

    The teacher is cached per (teacher modality, seed, training settings) and the no-KD student per
    (student modality, ...): the splits are aligned, so every pairing shares them."""
    t_mod, s_mod = _modalities(s)
    seed, level = int(s["seed"]), float(s.get("noise", 0.0))
    space = s.get("noise_space", "sequence")
    data, fp = loaded or load_pooled(ctx)
    mods = {"teacher": t_mod, "student": s_mod}
    tr, te = data["pooled"]["train"], data["pooled"]["test"]
    t_noisy_tr, t_noisy_te = noisy_inputs(data, t_mod, level, space, seed)
    y_te = data["y"]["test"]
    rows = torch.from_numpy(mi_rows(len(y_te), int(s["mi_n"]), seed)).to(dev)
    train_cfg = {**{k: s[k] for k in TRAIN_KEYS}, "data": dict(fp), "seed": seed}
    return crossmodal.Pairing(
        prefix="mosei",
        x_train={r: tr[m].to(dev) for r, m in mods.items()},
        x_test={r: te[m].to(dev) for r, m in mods.items()},
        y_train=data["y"]["train"].to(dev),
        y_test=y_te.to(dev),
        teacher_noisy=(torch.from_numpy(t_noisy_tr).to(dev), torch.from_numpy(t_noisy_te).to(dev)),
        mi_rows=lambda train, test: test[rows],
        labels=one_hot(y_te.numpy()[rows.cpu().numpy()], N_CLASSES),
        recipes={role: _recipe(tr[m].shape[1], s) for role, m in mods.items()},
        keys={
            "teacher": {**train_cfg, "teacher_modality": t_mod},
            "student": {**train_cfg, "student_modality": s_mod},
            "mi": {**train_cfg, **{k: s[k] for k in MI_KEYS}, "teacher_modality": t_mod, "student_modality": s_mod},
        },
        noise_key={"noise": level, "noise_space": space},
        seed=seed,
    )


def mi_rows(n_test: int, cap: int, seed: int) -> np.ndarray:
    """Test rows entering MI: all when n_test <= cap, else a seeded sorted subset of `cap`."""
    if n_test <= cap:
        return np.arange(n_test)
    return np.sort(np.random.default_rng([seed, MI_STREAM]).choice(n_test, size=cap, replace=False))


def _modalities(s: Mapping[str, Any]) -> tuple[str, str]:
    t_mod, s_mod = s["teacher_modality"], s["student_modality"]
    for role, m in (("teacher_modality", t_mod), ("student_modality", s_mod)):
        if m not in MODALITIES:
            raise UsageError(f"{role}={m!r}; use one of {', '.join(MODALITIES)}")
    if t_mod == s_mod:
        raise UsageError(f"teacher and student modality are both {t_mod!r}; cross-modal KD needs two")
    return t_mod, s_mod


def validate(params: Mapping[str, Any]) -> None:
    t_mod, s_mod = params.get("teacher_modality"), params.get("student_modality")
    if t_mod is not None and s_mod is not None and t_mod == s_mod:
        raise ValueError(f"teacher_modality and student_modality are both {t_mod!r}; choose two modalities")


# --- the trial (Tables 3 and 4) ---------------------------------------------------------------------


def trial(
    params: Mapping[str, Any], settings: Mapping[str, Any], ctx: TrialContext, estimators: tuple[str, ...] = ()
) -> TrialOutput:
    """One (teacher, student, noise, T, lambda, seed) point; MI by s['mi_estimator'] or each of `estimators`."""
    s = {**settings, **params}
    return crossmodal.run(ctx, s, pairing(ctx, s, torch.device(ctx.device)), estimators or estimator_names(s))


def bundle(
    points: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    ctx: TrialContext,
    estimators: tuple[str, ...] = (),
) -> list[TrialOutput]:
    """Many points (seeds, modality pairs, noise, T, lambda): every network trained in stacks, one per
    architecture (input width); BatchNorm keeps per-network statistics, Dropout per-network masks."""
    pts = [{**settings, **p} for p in points]
    dev = torch.device(ctx.device)
    loaded = load_pooled(ctx)
    pairings = [pairing(ctx, s, dev, loaded) for s in pts]
    return crossmodal.run_bundle(ctx, pts, pairings, estimators or estimator_names(pts[0]), train_stacked)


def estimators_bundle(
    points: Sequence[Mapping[str, Any]], settings: Mapping[str, Any], ctx: TrialContext
) -> list[TrialOutput]:
    return bundle(points, settings, ctx, estimators=COMPARED)


# What may differ between the points of one bundle (all MOSEI pairings share one split).
VARY = ("seed", "teacher_modality", "student_modality", "noise", "noise_space", "temperature", "lam")


def estimators_trial(params: Mapping[str, Any], settings: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
    """Table 2: the same trial, with the MI triplet from EVERY estimator (latentmi, mine, ksg).

    For a (text, student) pair the triplet is exactly Table 2's columns: i_ts = I(H_text; H_student),
    i_sl = I(H_student; Y), i_tl = I(H_text; Y), on the CE-trained (no-KD) networks' test
    representations; the results view has one row per trial and estimator. Each estimator's
    triplet is cached under its own kind (mosei_mi_ts_<estimator>, mosei_mi_label_<estimator>);
    the networks are shared with mosei_teacher through the cache at equal training settings.
    """
    return trial(params, settings, ctx, estimators=COMPARED)
