"""`lmi` against latentmi 0.1.3, the reference it replaces.

Three levels of proof, each on CPU:
1. the parts: the AECross build draws latentmi's weights draw for draw; the torch KSG kernel equals
   latentmi's ksg.mi on the same latents (1e-12, chunked or not);
2. one estimate alone: lmi returns exactly latentmi's float at the same seed (same ops, same random
   streams), early stopping included; the corrected mode (no quirks) differs;
3. stacked estimates (many trained at once, bmm instead of mm): the weights track the single path
   to Adam's rounding bound, and over 10 seeds the mean estimate is within two pooled standard
   errors of latentmi's, on known-MI pairs in the studies' shapes and on real TCGA representations.
"""

import contextlib
import io
import math

import numpy as np
import pytest
import torch

from cchsweep.mi import aecross
from cchsweep.mi.interface import estimate_repeated
from cchsweep.mi.knn import ksg_pointwise_bits
from cchsweep.mi.known import gaussian_pair, label_pair
from cchsweep.mi.latentmi_estimator import LatentMI, one_hot
from cchsweep.mi.lmi import LMI, _standardized
from cchsweep.mi.triplet import make_estimator, mi_triplet

from latentmi import ksg as latentmi_ksg
from latentmi import models as latentmi_models


@pytest.mark.parametrize("dims", [(64, 1), (256, 10), (2100, 3)])  # 2100 > 2048: latentmi narrows to 2048
def test_aecross_build_is_latentmis_draw_for_draw(dims):
    dx, dy = dims
    torch.manual_seed(11)
    ref = latentmi_models.AECross(dx, dy, 8)
    after_ref = torch.get_rng_state()
    ours, stream = aecross.build(dx, dy, 8, seed=11)
    a, b = ref.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(stream, after_ref)  # the member's stream starts where latentmi's continues


def _latents(n, d, seed, ties=False):
    rs = np.random.RandomState(seed)
    zx = rs.randn(n, d).astype(np.float32)
    zy = (zx + rs.randn(n, d)).astype(np.float32)
    if ties:  # LeakyReLU latents pile up near zero; quantize to force exact ties before the jitter
        zx, zy = np.round(np.maximum(zx, 0), 1), np.round(np.maximum(zy, 0), 1)
    return zx, zy


@pytest.mark.parametrize("n,d,ties,budget", [(400, 8, False, None), (1500, 8, True, 200_000), (300, 24, False, 10_000)])
def test_ksg_kernel_equals_latentmis_ksg(n, d, ties, budget):
    zx, zy = _latents(n, d, seed=n, ties=ties)
    np.random.seed(3)
    ref = latentmi_ksg.mi(zx, zy)  # adds its jitter from numpy's global RNG, x then y
    np.random.seed(3)
    x = zx + 1e-10 * np.random.random_sample(zx.shape)
    y = zy + 1e-10 * np.random.random_sample(zy.shape)
    kwargs = {"budget": budget} if budget else {}
    got = ksg_pointwise_bits(torch.from_numpy(x), torch.from_numpy(y), **kwargs)
    assert np.abs(got - ref).max() <= 1e-12
    assert abs(ref.mean()) > 0.1  # a real signal, not a vacuous comparison
    with pytest.raises(TypeError, match="float64"):
        ksg_pointwise_bits(torch.from_numpy(zx), torch.from_numpy(zy))


def _pairs():
    x, y, _ = gaussian_pair(600, 16, 3, 0.8, seed=0)
    h, labels, _ = label_pair(600, 8, 10, 2.0, seed=0)
    return {"continuous": (x, y), "one-hot labels": (h, labels), "1-d target": (x, y[:, :1])}


@pytest.mark.parametrize("kind", ["continuous", "one-hot labels", "1-d target"])
def test_one_estimate_is_latentmis_float_at_the_same_seed(kind):
    x, y = _pairs()[kind]
    for settings in ({"epochs": 4, "lr": 1e-3}, {"epochs": 40, "lr": 3e-3, "patience": 2}):  # the 2nd stops early
        ref = LatentMI(**settings).estimate(x, y, seed=5)
        assert LMI(**settings).estimate(x, y, seed=5) == ref


def test_early_stopping_and_the_corrected_modes():
    x, y = _pairs()["continuous"]
    rows = np.random.RandomState(5).permutation(600)
    job = aecross.Job(_standardized(x, torch.device("cpu")), _standardized(y, torch.device("cpu")),
                      rows[:300], rows[300:], 5)
    # patience 2 at a high lr: training stops well before the 40 epochs, as latentmi's does
    trained = aecross.train_members([job], aecross.Settings(epochs=40, lr=3e-3, patience=2))[0]
    assert 3 <= trained.epochs < 40
    settings = {"epochs": 40, "lr": 3e-3, "patience": 2}
    faithful = LMI(**settings).estimate(x, y, seed=5)
    # each correction changes what is estimated: eval-mode validation, the best weights restored
    assert LMI(**settings, validation_dropout=False).estimate(x, y, seed=5) != faithful
    assert LMI(**settings, restore_best=True).estimate(x, y, seed=5) != faithful
    assert LMI(restore_best=True).config()["restore_best"] is True and "device" not in LMI().config()


def test_lmi_is_seeded_and_leaves_global_rngs_alone():
    x, y = _pairs()["continuous"]
    est = LMI(epochs=2, lr=1e-3)
    np.random.seed(123)
    torch.manual_seed(123)
    before = (np.random.random(), torch.rand(1).item())
    np.random.seed(123)
    torch.manual_seed(123)
    a = est.estimate(x, y, seed=7)
    assert (np.random.random(), torch.rand(1).item()) == before
    assert est.estimate(x, y, seed=7) == a and est.estimate(x, y, seed=8) != a
    with pytest.raises(ValueError, match="samples"):
        est.estimate(x, y[:10], seed=0)


def test_stacked_members_track_the_single_path():
    """Three members (two seeds of one pair, one of another) trained as one stack for 2 epochs vs
    each alone: latents agree to 1e-4 (Adam's g/sqrt(v) bounds the weights to ~1e-3 x lr)."""
    x, y = _pairs()["continuous"]
    x2, y2, _ = gaussian_pair(600, 16, 3, 1.5, seed=1)
    cpu = torch.device("cpu")
    jobs = []
    for seed, (a, b) in ((1, (x, y)), (2, (x, y)), (3, (x2, y2))):
        rows = np.random.RandomState(seed).permutation(600)
        jobs.append(aecross.Job(_standardized(a, cpu), _standardized(b, cpu), rows[:300], rows[300:], seed))
    settings = aecross.Settings(epochs=2, lr=1e-3)
    stacked = aecross.train_members(jobs, settings)
    for job, got in zip(jobs, stacked):
        alone = aecross.train_members([job], settings)[0]
        assert (got.zx - alone.zx).abs().max() < 1e-4 and (got.zy - alone.zy).abs().max() < 1e-4
    assert (stacked[0].zx - stacked[1].zx).abs().max() > 1e-2  # seeds differ: distinct members


def _agree(reference, fast):
    """|mean difference| < 2 pooled standard errors."""
    se = math.sqrt(np.var(reference, ddof=1) / len(reference) + np.var(fast, ddof=1) / len(fast))
    return abs(np.mean(reference) - np.mean(fast)) < 2 * se, np.mean(reference), np.mean(fast), se


SHAPES = {  # the studies' shapes at small n: representation pairs, a 1-d target, one-hot classes
    "64-d vs 64-d, 1.0 nat": lambda s: gaussian_pair(400, 64, 64, 1.0, seed=s),
    "256-d vs 1-d, 0.5 nat": lambda s: gaussian_pair(400, 256, 1, 0.5, seed=s),
    "32-d vs 10 classes, 1.0 nat": lambda s: label_pair(400, 32, 10, 0.4, seed=s),
}


def test_device_masks_are_the_members_own_whatever_shares_its_stack():
    """Off a CPU a stack drew every member's Dropout masks from one generator seeded by the sum of
    the stack's seeds: an estimate depended on which estimates shared its stack, and changed when
    one of them stopped early. Each member now draws from its own (the device path, run here on a CPU)."""
    widths = [2, 256, 512, 1024, 2, 256, 512, 1024]  # eight cross-decoder masks, as mask_widths gives
    def streams(seeds):
        states = [torch.Generator().manual_seed(s).get_state() for s in seeds]
        return aecross._Streams(states, seeds, torch.device("cpu"), own_masks=True)
    alone, shared = streams([7]), streams([3, 7, 11])
    for step in range(3):
        if step == 2:
            shared.keep([1, 2])  # member 3 stopped early: 7 is now at position 0
        mine, theirs = alone.masks(64, widths), shared.masks(64, widths)
        at = 1 if step < 2 else 0
        assert [m.shape for m in theirs] == [(3 if step < 2 else 2, 64, w) for w in widths]
        for a, b in zip(mine, theirs):
            assert torch.equal(a[0], b[at])
    keep = torch.cat([m[0] for m in mine], dim=1)
    assert set(keep.unique().tolist()) == {0.0, 2.0} and abs(float((keep > 0).float().mean()) - 0.5) < 0.02
    other = streams([3, 7, 11]).masks(64, widths)
    assert not torch.equal(other[3][0], other[3][1])  # members' masks differ from each other


@pytest.mark.slow
@pytest.mark.parametrize("shape", list(SHAPES))
def test_batched_estimates_agree_with_latentmi_over_ten_seeds(shape):
    data = [SHAPES[shape](s) for s in range(10)]
    settings = {"epochs": 8, "lr": 1e-3}
    reference = [LatentMI(**settings).estimate(x, y, seed=s) for s, (x, y, _) in enumerate(data)]
    fast = LMI(**settings, stack=10).estimate_many([(x, y, s) for s, (x, y, _) in enumerate(data)])
    ok, ref_mean, fast_mean, se = _agree(reference, fast)
    assert ok, (shape, ref_mean, fast_mean, se, data[0][2])
    assert np.std(fast) > 0  # ten distinct estimates, not one repeated


@pytest.mark.slow
def test_batched_estimates_agree_on_real_tcga_representations():
    """BRCA mRNA -> CNV: the Table 9 networks' 64-unit layers (briefly trained) and the subtypes."""
    from cchsweep.data.cohort import load_cohort, prepare
    from conftest import SHARED_DATA
    from cchsweep.trials.tcga import train_unimodal

    import torch.nn.functional as F

    p = prepare(load_cohort(SHARED_DATA / "tcga" / "brca", ["mrna", "cnv"], min_modalities=2), 0, 0.1, 100)
    s = {"lr": 0.01, "epochs": 30, "batch_size": 0}
    reps = {}
    for i, modality in enumerate(("mrna", "cnv")):
        y = torch.as_tensor(p.y_train)
        net = train_unimodal(p, modality, i, lambda out, idx: F.cross_entropy(out, y[idx]), s, torch.device("cpu"))
        with torch.no_grad():
            reps[modality] = net.representation(torch.as_tensor(p.x_train[modality], dtype=torch.float32)).numpy()
    labels = one_hot(p.y_train, len(p.classes))
    settings = {"epochs": 10, "lr": 1e-3}
    for a, b in ((reps["mrna"], reps["cnv"]), (reps["cnv"], labels)):
        reference = [LatentMI(**settings).estimate(a, b, seed=s) for s in range(10)]
        fast = LMI(**settings, stack=10).estimate_many([(a, b, s) for s in range(10)])
        ok, ref_mean, fast_mean, se = _agree(reference, fast)
        assert ok, (ref_mean, fast_mean, se)


def test_triplet_batches_its_quantities_with_the_unbatched_seeds():
    h_t, h_s, _ = gaussian_pair(300, 8, 8, 1.0, seed=0)
    labels = one_hot(np.arange(300) % 3, 3)
    est = LMI(epochs=2, lr=1e-3)
    out = mi_triplet(h_t, h_s, labels, est, repeats=2, seed=4)
    # each quantity as estimate_repeated computes it alone, one estimate at a time
    assert out["i_sl"] == list(estimate_repeated(est, h_s, labels, repeats=2, seed=41))
    single = [est.estimate(h_t, labels, seed=42 * 1000 + r) for r in range(2)]
    assert out["i_tl"][0] == pytest.approx(np.mean(single), abs=0)
    assert make_estimator({"mi_estimator": "lmi", "mi_epochs": 7, "mi_lr": 0.01}, "cpu") == LMI(epochs=7, lr=0.01)


def test_latentmi_prints_nothing_through_either_wrapper():
    x, y = _pairs()["continuous"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        LatentMI(epochs=1).estimate(x, y, seed=0)
        LMI(epochs=1).estimate(x, y, seed=0)
    assert out.getvalue() == ""


def test_cached_mi_batches_every_missing_estimate_and_matches_mi_triplet(tmp_path, monkeypatch):
    """Three points' triplets (two share an artifact) through cached_mi: one batched call holding every
    missing estimate, the values mi_triplet gives each alone, and a second pass served by the cache."""
    from cchsweep.cache import ArtifactCache
    from cchsweep.execute import WorkerContext
    from cchsweep.mi import triplet

    calls = []

    class Recording:
        def __init__(self, inner):
            self.inner = inner

        def __repr__(self):
            return repr(self.inner)

        def estimate_many(self, tasks):
            calls.append(len(tasks))
            return self.inner.estimate_many(tasks)

    monkeypatch.setattr(triplet, "make_estimator", lambda s, device: Recording(LMI(epochs=2, lr=1e-3)))
    settings = {"mi_estimator": "lmi", "mi_epochs": 2, "mi_lr": 1e-3, "mi_repeats": 2}
    data = {seed: gaussian_pair(300, 8, 8, 1.0, seed=seed) for seed in (0, 1)}
    labels = one_hot(np.arange(300) % 3, 3)
    requests = [triplet.MIRequest("t_mi", {"seed": seed}, settings,
                                  lambda seed=seed: triplet.triplet_pairs(data[seed][0], data[seed][1], labels, seed))
                for seed in (0, 1, 0)]
    ctx = WorkerContext(ArtifactCache(tmp_path), "cpu", 1, None)
    got = triplet.cached_mi(ctx, requests, "cpu")
    assert calls == [2 * 3 * 2]  # 2 distinct artifacts x 3 quantities x 2 repeats, in one call
    for seed, value in zip((0, 1, 0), got):
        assert value == mi_triplet(data[seed][0], data[seed][1], labels, LMI(epochs=2, lr=1e-3), repeats=2, seed=seed)
    again = triplet.cached_mi(WorkerContext(ArtifactCache(tmp_path), "cpu", 1, None), requests, "cpu")
    assert again == got and calls == [12]
