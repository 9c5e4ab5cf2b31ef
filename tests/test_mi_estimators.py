"""KSG / Ross and MINE against closed-form or numerically integrated mutual information (nats).

Tolerances follow the bmi benchmark's estimator tests: a few thousand samples and an
absolute tolerance of a few hundredths of a nat for kNN estimators, looser for MINE.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from cchsweep.mi.ksg import KSG
from cchsweep.mi.mine import MINE

ONE_NAT_RHO = math.sqrt(1.0 - math.exp(-2.0))  # -0.5 log(1 - rho^2) = 1


def gaussian_pair(n: int, rho: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = rho * x + math.sqrt(1.0 - rho**2) * rng.standard_normal(n)
    return x, y


def gaussian_mi(cov: np.ndarray, dim_x: int) -> float:
    logdet = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
    return 0.5 * (logdet(cov[:dim_x, :dim_x]) + logdet(cov[dim_x:, dim_x:]) - logdet(cov))


def mixture_mi(means: tuple[float, ...]) -> float:
    """I(X; Y) for Y uniform over the means and X | Y=c ~ N(mu_c, 1): h(X) - h(X | Y)."""
    mu = np.asarray(means, dtype=float)

    def neg_p_log_p(t: float) -> float:
        p = stats.norm.pdf(t, loc=mu).mean()
        return -p * math.log(p) if p > 0 else 0.0

    h_x, _ = integrate.quad(neg_p_log_p, mu.min() - 12, mu.max() + 12, points=list(mu), limit=200)
    return h_x - 0.5 * math.log(2 * math.pi * math.e)


def labelled_mixture(n: int, means: tuple[float, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(means), size=n)
    x = np.asarray(means)[labels] + rng.standard_normal(n)
    return x, labels


# -- KSG (continuous pairs) -------------------------------------------------------------------

def test_ksg_one_nat_gaussian():
    x, y = gaussian_pair(2000, ONE_NAT_RHO, seed=0)
    assert KSG().estimate(x, y, seed=0) == pytest.approx(1.0, abs=0.05)


def test_ksg_two_by_two_gaussian():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 4))
    cov = a @ a.T + 0.5 * np.eye(4)
    sd = np.sqrt(np.diag(cov))
    cov = cov / np.outer(sd, sd)
    true = gaussian_mi(cov, 2)
    assert 0.2 < true < 2.0  # a non-trivial case
    z = rng.multivariate_normal(np.zeros(4), cov, size=2000)
    assert KSG().estimate(z[:, :2], z[:, 2:], seed=0) == pytest.approx(true, abs=0.07)


def test_ksg_independent_is_near_zero():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2000, 2)), rng.standard_normal((2000, 3))
    assert abs(KSG().estimate(x, y, seed=0)) < 0.05


def test_ksg_deterministic_and_leaves_global_rng_alone():
    x, y = gaussian_pair(500, 0.5, seed=3)
    np.random.seed(123)
    state = np.random.get_state()
    first = KSG().estimate(x, y, seed=7)
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]
    assert KSG().estimate(x, y, seed=7) == first


def test_ksg_scale_invariant_when_standardized():
    x, y = gaussian_pair(1000, 0.7, seed=4)
    assert KSG().estimate(1000.0 * x, y, seed=0) == pytest.approx(KSG().estimate(x, y, seed=0),
                                                                 abs=1e-6)


# -- Ross (continuous X, discrete label Y) -----------------------------------------------------

def test_ross_well_separated_classes_give_log3():
    x, labels = labelled_mixture(2000, (0.0, 10.0, 20.0), seed=5)
    assert KSG().estimate(x, labels, seed=0) == pytest.approx(math.log(3), abs=0.05)


@pytest.mark.parametrize("means", [(0.0, 1.0, 2.0), (0.0, 0.5, 1.0)])
def test_ross_overlapping_classes_match_numerical_mi(means):
    true = mixture_mi(means)
    x, labels = labelled_mixture(2000, means, seed=6)
    assert KSG().estimate(x, labels, seed=0) == pytest.approx(true, abs=0.05)


def test_ross_independent_label_is_near_zero():
    rng = np.random.default_rng(7)
    x, labels = rng.standard_normal((2000, 2)), rng.integers(0, 4, size=2000)
    assert abs(KSG().estimate(x, labels, seed=0)) < 0.05


def test_ross_one_hot_equals_integer_labels_and_either_order():
    x, labels = labelled_mixture(1000, (0.0, 1.0, 2.0), seed=8)
    one_hot = np.eye(3)[labels]
    by_int = KSG().estimate(x, labels, seed=0)
    assert KSG().estimate(x, one_hot, seed=0) == by_int
    assert KSG().estimate(x, labels.astype(float), seed=0) == by_int
    assert KSG().estimate(x, labels.reshape(-1, 1), seed=0) == by_int
    assert KSG().estimate(labels, x, seed=0) == by_int
    assert KSG(discrete_y=True).estimate(x, labels, seed=0) == by_int
    # forced KSG on the label column is a different estimator (and a poor one on ties)
    assert KSG(discrete_y=False).estimate(x, labels, seed=0) != by_int


def test_ksg_rejects_bad_input():
    with pytest.raises(ValueError):
        KSG().estimate(np.zeros(10), np.zeros(11), seed=0)
    with pytest.raises(ValueError):
        KSG().estimate(np.arange(10) % 2, np.arange(10) % 3, seed=0)  # both labels


# -- MINE --------------------------------------------------------------------------------------

FAST_MINE = MINE()  # the defaults: early stopping ends these runs after a few hundred steps


def test_mine_one_nat_gaussian():
    x, y = gaussian_pair(2000, ONE_NAT_RHO, seed=10)
    assert FAST_MINE.estimate(x, y, seed=0) == pytest.approx(1.0, abs=0.15)


def test_mine_independent_is_near_zero():
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal(2000), rng.standard_normal(2000)
    assert abs(FAST_MINE.estimate(x, y, seed=0)) < 0.1


def test_mine_held_out_checkpoints_resist_overfitting_in_high_dimension():
    # 500 training pairs of 64+64 dims: a critic trained to the end memorises them and its
    # held-out bound falls far below zero; the best held-out checkpoint stays near zero
    rng = np.random.default_rng(14)
    x, y = rng.standard_normal((1000, 64)), rng.standard_normal((1000, 64))
    assert abs(FAST_MINE.estimate(x, y, seed=0)) < 0.1


def test_mine_deterministic_and_leaves_global_rng_alone():
    x, y = gaussian_pair(600, 0.8, seed=12)
    quick = MINE(steps=50, batch_size=128)
    np.random.seed(5)
    torch.manual_seed(5)
    np_state, torch_state = np.random.get_state(), torch.random.get_rng_state()
    first = quick.estimate(x, y, seed=3)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert quick.estimate(x, y, seed=3) == first
    assert quick.estimate(x, y, seed=4) != first


def test_mine_accepts_one_hot_labels_and_rejects_bad_input():
    x, labels = labelled_mixture(1000, (0.0, 10.0, 20.0), seed=13)
    value = MINE(steps=300).estimate(x, np.eye(3)[labels], seed=0)
    assert value == pytest.approx(math.log(3), abs=0.15)
    with pytest.raises(ValueError):
        FAST_MINE.estimate(np.zeros(10), np.zeros(11), seed=0)


def test_configs_name_the_estimators():
    assert KSG().name == "ksg" and KSG().config() == {
        "k": 3, "standardize": True, "discrete_y": None, "name": "ksg"}
    cfg = MINE().config()
    assert cfg["name"] == "mine" and "device" not in cfg and cfg["steps"] == 2000


# -- the torch kernel against the k-d tree reference it replaced ----------------------------------

def _tree_ksg(x, y, k, seed):
    """The previous implementation: scipy k-d trees, radii just under the k-th distance (nextafter)."""
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    rng = np.random.default_rng(seed)
    prep = lambda a: (lambda c: c / np.where(c.std(0) > 0, c.std(0), 1.0))(a - a.mean(0)) + 1e-10 * rng.random(a.shape)  # noqa: E731
    x, y = prep(x.reshape(len(x), -1)), prep(y.reshape(len(y), -1))
    joint = np.hstack([x, y])
    eps = np.nextafter(cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, -1], 0)
    n_x = cKDTree(x).query_ball_point(x, eps, p=np.inf, return_length=True)
    n_y = cKDTree(y).query_ball_point(y, eps, p=np.inf, return_length=True)
    return digamma(k) + digamma(len(x)) - np.mean(digamma(n_x)) - np.mean(digamma(n_y))


@pytest.mark.parametrize("k", [3, 5])
def test_ksg_on_torch_equals_the_tree_reference_exactly(k):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((700, 12))
    y = x[:, :3] @ rng.standard_normal((3, 6)) + rng.standard_normal((700, 6))
    assert KSG(k=k).estimate(x, y, seed=4) == _tree_ksg(x, y, k, 4)
    xq, yq = np.round(x[:, :2], 1), np.round(y[:, :1], 1)  # ties, broken only by the jitter
    assert KSG(k=k).estimate(xq, yq, seed=5) == _tree_ksg(xq, yq, k, 5)
