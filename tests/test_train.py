"""cchsweep.train.fit, the one training loop: seeding, optimizers, the cosine schedule, BatchNorm batches."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cchsweep.train import fit, make_optimizer, make_schedule


def data(n=41, d=6):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.randint(0, 2, (n,), generator=g)


def net(batchnorm: bool) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), *([nn.BatchNorm1d(8)] if batchnorm else []), nn.Linear(8, 2))


def reference_adamw_cosine(model, x, y, lr, weight_decay, epochs, batch_size, seed):
    """The MOSEI loop as it stood before it moved into fit: AdamW, cosine per epoch, no 1-row batch."""
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=0.0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:
                continue
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def test_adamw_cosine_matches_the_reference_loop_bit_for_bit():
    x, y = data()  # 41 rows in batches of 8: the last batch has one row, which BatchNorm must skip
    got = fit(net(True), x, lambda out, idx: F.cross_entropy(out, y[idx]), optimizer="adamw", lr=1e-2,
              weight_decay=0.01, schedule="cosine", epochs=5, batch_size=8, seed=3)
    want = reference_adamw_cosine(net(True), x, y, 1e-2, 0.01, 5, 8, 3)
    for (name, a), b in zip(got.state_dict().items(), want.state_dict().values()):
        assert torch.equal(a, b), name
    assert not got.training


def test_seed_decides_the_shuffle():
    x, y = data()

    def run(seed):
        model = fit(net(False), x, lambda out, idx: F.cross_entropy(out, y[idx]), optimizer="sgd", lr=0.1,
                    epochs=3, batch_size=8, seed=seed)
        return torch.cat([p.flatten() for p in model.parameters()])

    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))


@pytest.mark.parametrize("batchnorm, expected", [(True, 5), (False, 6)])
def test_one_row_batches_are_skipped_only_with_batchnorm(batchnorm, expected):
    x, y = data()
    sizes = []

    def loss(out, idx):
        sizes.append(len(idx))
        return F.cross_entropy(out, y[idx])

    fit(net(batchnorm), x, loss, optimizer="adam", lr=1e-3, epochs=1, batch_size=8, seed=0)
    assert len(sizes) == expected and sum(sizes) == 40 + (not batchnorm)


def test_cosine_schedule_and_unknown_names():
    opt = make_optimizer("adamw", [nn.Parameter(torch.zeros(1))], 0.4, weight_decay=0.01)
    assert opt.param_groups[0]["weight_decay"] == 0.01
    sched = make_schedule("cosine", opt, 4)
    lrs = []
    for _ in range(4):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.4 * (1 + math.cos(math.pi * k / 4)) / 2 for k in (1, 2, 3, 4)])
    assert lrs[1] == pytest.approx(0.2) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert make_schedule(None, opt, 4) is None
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; use adam, adamw or sgd"):
        make_optimizer("rmsprop", [nn.Parameter(torch.zeros(1))], 0.1)
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        make_schedule("step", opt, 4)


def test_live_progress_throttles_a_counter_but_never_hides_a_new_phase(tmp_path):
    from cchsweep.cache import ArtifactCache
    from cchsweep.execute import WorkerContext

    shown = []
    ctx = WorkerContext(ArtifactCache(tmp_path), "cpu", 1, None, shown.append, min_interval=3600)
    ctx.progress("training 10 teachers and no-KD students")
    for epoch in range(1, 201):
        ctx.progress(f"10 teachers and no-KD students, epoch {epoch}/200")
    ctx.progress("training 25 KD students")
    ctx.progress("25 KD students, epoch 1/200")
    ctx.progress("25 KD students, epoch 2/200")
    ctx.progress("estimating MI: 25 artifacts, 25 estimates per quantity")
    assert shown == ["training 10 teachers and no-KD students", "10 teachers and no-KD students, epoch 1/200",
                     "training 25 KD students", "25 KD students, epoch 1/200",
                     "estimating MI: 25 artifacts, 25 estimates per quantity"]
    ctx.min_interval = 0.0  # past the interval, a counter's next line shows
    ctx.progress("25 KD students, epoch 3/200")
    ctx.progress("25 KD students, epoch 4/200")
    assert shown[-2:] == ["25 KD students, epoch 3/200", "25 KD students, epoch 4/200"]


def test_progress_counts_read_in_the_singular_for_one_model():
    from cchsweep.study import BASELINES, counted

    assert counted(1, "KD student") == "1 KD student"
    assert counted(25, "KD student") == "25 KD students"
    assert counted(1, *BASELINES) == "1 teacher or no-KD student"
    assert counted(10, *BASELINES) == "10 teachers and no-KD students"


def test_a_running_bundles_line_names_it_and_counts_its_points(capsys):
    from types import SimpleNamespace

    from cchsweep.record import PROGRESS_KEY
    from cchsweep.writer import DuckDBWriter

    writer = DuckDBWriter("unused.duckdb", "run", total=3, bundles=2)
    writer.setup()
    one = SimpleNamespace(trial_id="a", config={"bundle": [{"key": "k1"}]})
    two = SimpleNamespace(trial_id="b", config={"bundle": [{"key": "k2"}, {"key": "k3"}]})
    writer.on_trial_result(0, [], one, {PROGRESS_KEY: "training 1 KD student"})
    writer.on_trial_result(0, [], two, {PROGRESS_KEY: "estimating MI"})
    writer.on_trial_result(0, [], one, {PROGRESS_KEY: "estimating MI"})
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("]", 1)[1] for line in lines] == [
        " 1 point: training 1 KD student", " 2 points: estimating MI", " 1 point: estimating MI"]
    assert [line[:12] for line in lines] == ["[bundle 1/2 ", "[bundle 2/2 ", "[bundle 1/2 "]
