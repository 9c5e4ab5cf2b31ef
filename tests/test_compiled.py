"""Compiled stacked steps (cchsweep.compiled, the CPU option): which stacks compile and why not, and a
compiled stack trains as the single-model reference does, to the bounds the eager stack is held to
(tests/test_stack.py). Forward and loss go through inductor's C++ backend, so these tests build real
code with the machine's compiler (~20 s a graph with a cold cache)."""

import pytest
import torch
from test_stack import (
    _classification,
    _classification_members,
    _max_diff,
    _mosei_members,
    _mosei_recipe,
    _regression,
    _regression_members,
    _state_diff,
    _trained_digit_accuracies,
)

from cchsweep import compiled
from cchsweep.models import MLP
from cchsweep.stack import Member, Options, compile_blocker, stack_of, train_single, train_stacked
from cchsweep.trials.mosei import MoseiNet


def test_the_switch_reads_on_off_and_auto(monkeypatch):
    for value, want in [("", False), ("auto", None), ("1", True), ("on", True), ("0", False), ("No", False)]:
        monkeypatch.setenv("CCHSWEEP_COMPILE", value)
        assert compiled.env_switch("CCHSWEEP_COMPILE") is want, value
        assert Options.from_env().compile is want
    monkeypatch.setenv("CCHSWEEP_COMPILE", "fast")
    with pytest.raises(ValueError, match=r"CCHSWEEP_COMPILE='fast' is not a switch; set it to 1, 0 or auto"):
        Options.from_env()
    monkeypatch.delenv("CCHSWEEP_COMPILE")
    assert Options.from_env().compile is False and Options().compile is False  # off unless asked for


def test_which_stacks_compile_and_why():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    small = stack_of([MLP(100, [64], 1) for _ in range(4)])  # the synthetic network: 26 KB a member
    assert compile_blocker(None, cpu, small, 4, compiled.MIN_MODEL_STEPS) is None
    assert compile_blocker(None, cpu, small, 4, compiled.MIN_MODEL_STEPS - 1) == (
        f"{compiled.MIN_MODEL_STEPS - 1:,} model-steps would not pay back the compile"
    )
    assert compile_blocker(True, cpu, small, 4, 10) is None  # asked for: however short
    assert compile_blocker(False, cpu, small, 4, 10**9) == "not asked for"
    assert compile_blocker(True, cuda, small, 4, 10**9) == "compiled steps are the CPU option (a GPU replays CUDA graphs)"
    mnist = stack_of([MLP(784, [1024, 256], 10, activation="leaky_relu") for _ in range(2)])
    assert compile_blocker(None, cpu, mnist, 2, 10**9) == (
        "each member's weights (4,275,240 bytes) make its steps compute-bound"
    )
    assert compile_blocker(True, cpu, mnist, 2, 10) is None
    dropout = stack_of([MoseiNet(20, hidden=(32, 16), dropout=0.3) for _ in range(2)])
    assert compile_blocker(True, cpu, dropout, 2, 10**9) == (
        "Dropout masks come from generators a compiled graph would not advance"
    )
    batchnorm = stack_of([MoseiNet(20, hidden=(32, 16), dropout=0.0) for _ in range(2)])
    assert compile_blocker(True, cpu, batchnorm, 2, 10) is None
    batchnorm.body[2].momentum = None
    assert "cumulative average" in str(compile_blocker(True, cpu, batchnorm, 2, 10**9))


def test_compiled_regression_stack_equals_single_to_the_eager_bound(regression_data):
    recipe = _regression(epochs=1, batch_size=100)  # 4 steps
    members = _regression_members(regression_data)
    opts = Options(compile=True)
    ref, got = train_single(recipe, members, "cpu"), train_stacked(recipe, members, "cpu", options=opts)
    assert opts.uncompiled is None and opts.compiled_steps == 4
    assert _max_diff(ref, got) < 1e-5  # test_stack's bound for the eager stack
    eager = train_stacked(recipe, members, "cpu", options=Options())
    assert 0 < _max_diff(eager, got) < 1e-5  # fused loops round differently from eager: not the same code path

    # full training, with a 16-row last batch each epoch (run eagerly, not as a second graph)
    x1, x2, y, _ = regression_data
    recipe = _regression(epochs=15, batch_size=64)
    opts = Options(compile=True)
    ref, got = train_single(recipe, members, "cpu"), train_stacked(recipe, members, "cpu", options=opts)
    assert opts.compiled_steps == 15 * 6  # fullgraph: a step counted as compiled ran as one graph
    te = slice(400, None)
    with torch.no_grad():
        for m, a, b in zip(members, ref, got):
            x = x1 if m.inputs.data_ptr() == x1.data_ptr() else x2
            mse_a, mse_b = (torch.mean((net(x[te]) - y[te]) ** 2).item() for net in (a, b))
            assert mse_b == pytest.approx(mse_a, rel=1e-3)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_compiled_classification_stack_equals_single(digits, optimizer):
    x, y = digits
    logits = torch.randn(1000, 10, generator=torch.Generator().manual_seed(1)) * 3
    recipe = _classification(epochs=1, optimizer=optimizer, batch_size=250)  # 4 steps
    members = _classification_members(x, y, logits)
    opts = Options(compile=True)
    ref, got = train_single(recipe, members, "cpu"), train_stacked(recipe, members, "cpu", options=opts)
    assert opts.uncompiled is None and opts.compiled_steps == 4
    # test_stack's bounds, but Adam's doubled: inductor's fused softmax and sums round differently from
    # ATen's, and where Adam divides a near-zero gradient by its own root that moves a step by up to
    # ~lr (measured 1.5e-4 at lr 0.1; the eager stack stays under 1e-4)
    assert _max_diff(ref, got) < (1e-5 if optimizer == "sgd" else 2e-3 * recipe.lr)


def test_compiled_classification_accuracy_after_full_training(digits):
    # lr 0.1, not test_stack's 0.3: there the T = 4 student is chaotic (measured: a 1e-7 nudge to the
    # single path's own initial weights moves it by 2 of the 500 test digits, the compiled stack by 4);
    # at 0.1 the nudge moves no member by a digit
    opts = Options(compile=True)
    accs = _trained_digit_accuracies(digits, lr=0.1, options=opts)
    assert opts.compiled_steps == 15 * 31  # 1,000 rows in batches of 32: 31 full, the 8-row tail eager
    for acc_a, acc_b in accs:
        assert abs(acc_a - acc_b) <= 1 / 500 + 1e-9  # at most one of 500 test digits differs
    assert accs[0][1] > 0.6  # the no-KD member learned the digits


def test_compiled_batchnorm_stack_keeps_each_members_statistics():
    members = _mosei_members()
    recipe = _mosei_recipe(epochs=1, dropout=0.0)  # 6 full steps and a one-row batch BatchNorm skips
    opts = Options(compile=True)
    ref, got = train_single(recipe, members, "cpu"), train_stacked(recipe, members, "cpu", options=opts)
    assert opts.uncompiled is None and opts.compiled_steps == 6
    assert _state_diff(ref, got) < 1e-3 * recipe.lr  # weights, affine weights and running statistics
    assert all(int(m.body[2].num_batches_tracked) == 6 for m in got)


def test_a_stack_that_cannot_compile_trains_eagerly_and_says_why():
    members = _mosei_members()
    recipe = _mosei_recipe(epochs=1, dropout=0.3)
    opts = Options(compile=True)
    got = train_stacked(recipe, members, "cpu", options=opts)
    assert opts.uncompiled == "Dropout masks come from generators a compiled graph would not advance"
    assert opts.compiled_steps == 0
    assert _state_diff(train_stacked(recipe, members, "cpu", options=Options()), got) == 0.0


def test_the_environment_switch_reaches_train_stacked(regression_data, monkeypatch):
    members, recipe = _regression_members(regression_data), _regression(epochs=2, batch_size=100)
    eager = train_stacked(recipe, members, "cpu", options=Options())
    monkeypatch.setenv("CCHSWEEP_COMPILE", "1")
    forced = train_stacked(recipe, members, "cpu")
    assert 0 < _max_diff(eager, forced) < 1e-5
    monkeypatch.setenv("CCHSWEEP_COMPILE", "auto")  # 4 members x 8 steps: too short to pay, so eager
    assert _max_diff(eager, train_stacked(recipe, members, "cpu")) == 0.0
    monkeypatch.setenv("CCHSWEEP_COMPILE", "0")
    assert _max_diff(eager, train_stacked(recipe, members, "cpu")) == 0.0


def test_stacks_of_one_shape_share_one_graph(regression_data):
    """A second stack of the same shape reuses the compiled graph (the stack is an argument, not a
    constant baked into it): a sweep compiles once per shape, not once per bundle."""
    from torch._dynamo.utils import counters

    members, recipe = _regression_members(regression_data), _regression(epochs=1, batch_size=80)  # a shape of its own
    assert compiled.toolchain_error() is None  # its probe compiles once per process: before the count starts
    counters.clear()
    train_stacked(recipe, members, "cpu", options=Options(compile=True))
    assert counters["stats"]["unique_graphs"] == 1  # this shape compiled here, once
    other = [Member(m.init_seed + 10, m.order_seed + 10, m.inputs, m.targets, m.coefs) for m in members]
    train_stacked(recipe, other, "cpu", options=Options(compile=True))
    assert counters["stats"]["unique_graphs"] == 1


@pytest.mark.slow
def test_a_compiled_synthetic_bundle_equals_the_per_trial_reference(tmp_path, monkeypatch):
    """The switch as a user sets it, through a study's bundle: synthetic_lambda's smoke points (teachers,
    no-KD and KD students as compiled stacks) against one model at a time, to test_stack's bounds."""
    from test_stack import _compare

    monkeypatch.setenv("CCHSWEEP_COMPILE", "1")
    before = compiled.count_steps(0)
    bundled, _ = _compare("synthetic_lambda", ["mi_estimator=ksg", "seed=0,1"], tmp_path)
    assert len(bundled) == 8
    # 4 teachers and 4 no-KD students (one stack), then 8 KD students (one stack), 10 epochs of 8 full
    # batches each
    assert compiled.count_steps(0) - before == 2 * 10 * 8
