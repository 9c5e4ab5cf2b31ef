"""CMU-MOSEI (paper Section 4.3, Appendix D): the pickle loader and both studies end to end.

The real features cannot be had offline, so every test writes a small synthetic pickle in exactly
MulT's `mosei_senti_data.pkl` layout: text carries the sentiment strongly, vision weakly, audio
weakly and holds -inf padding.
"""

import pickle
import time

import numpy as np
import polars as pl
import pytest
import torch

from analysis.report import write_report
from cchsweep.data.mosei import FILENAME, PATH_ENV, load_mosei
from cchsweep.errors import UsageError
from cchsweep.trials.mosei import MoseiNet, check_data, noisy_inputs
from conftest import assert_complete_f1_rows, checked_report_table, q, run_cli
from searchspaces import STUDIES

SIZES = {"train": 120, "valid": 40, "test": 60}
L, D_TEXT, D_AUDIO, D_VISION = 50, 300, 74, 35


def synthetic(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    w = {m: rng.standard_normal(d) for m, d in (("text", D_TEXT), ("audio", D_AUDIO), ("vision", D_VISION))}
    strength = {"text": 1.0, "vision": 0.03, "audio": 0.02}
    data = {}
    for split, n in SIZES.items():
        score = rng.uniform(-3, 3, n).round(1)
        score[:3] = 0.0  # exactly neutral segments are negative
        part = {}
        for m, d in (("text", D_TEXT), ("audio", D_AUDIO), ("vision", D_VISION)):
            x = strength[m] * np.sign(score)[:, None, None] * w[m] + rng.standard_normal((n, L, d))
            part[m] = x.astype(np.float32)
        part["audio"][:, -5:, :3] = -np.inf  # padding as in the real file
        part["vision"][0, 0, 0] = np.nan
        part["labels"] = score.reshape(n, 1, 1).astype(np.float32)
        part["id"] = np.array([[f"vid{i}", str(i)] for i in range(n)])
        data[split] = part
    return data


def write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write(root / "mosei" / FILENAME, synthetic())
    return root


@pytest.fixture(autouse=True)
def _no_env_path(monkeypatch):
    monkeypatch.delenv(PATH_ENV, raising=False)



# --- loader --------------------------------------------------------------------------------------

def test_loader_shapes_cleaning_and_labels(data_dir):
    raw = synthetic()
    splits = load_mosei(data_dir / "mosei" / FILENAME)
    assert list(splits) == ["train", "valid", "test"]
    for name, n in SIZES.items():
        sp = splits[name]
        assert len(sp) == n
        assert {m: a.shape for m, a in sp.x.items()} == {"text": (n, L, D_TEXT), "audio": (n, L, D_AUDIO),
                                                       "vision": (n, L, D_VISION)}
        assert all(np.isfinite(a).all() and a.dtype == np.float32 for a in sp.x.values())
        assert (sp.x["audio"][:, -5:, :3] == 0).all()  # -inf -> 0
        score = raw[name]["labels"].reshape(n)
        np.testing.assert_array_equal(sp.y, (score > 0).astype(np.int64))
        assert sp.y[:3].tolist() == [0, 0, 0]  # score 0 is negative
        np.testing.assert_array_equal(sp.x["text"], raw[name]["text"])
    assert splits["train"].x["vision"][0, 0, 0] == 0.0  # NaN -> 0


def test_dimensions_come_from_the_arrays(tmp_path):
    raw = synthetic()
    for part in raw.values():
        part["vision"] = np.ones((len(part["labels"]), 20, 713), np.float32)  # the paper's Facet width
    write(tmp_path / FILENAME, raw)
    splits = load_mosei(tmp_path / FILENAME)
    assert splits["test"].x["vision"].shape == (60, 20, 713)


def test_missing_file_names_the_expected_path(tmp_path):
    with pytest.raises(UsageError) as err:
        check_data(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "mosei" / FILENAME) in msg and "\n" not in msg
    assert "(N,50,300)" in msg and "labels" in msg


@pytest.mark.parametrize("break_it, expect", [
    (lambda d: d.pop("valid"), "lacks split valid"),
    (lambda d: d["train"].pop("audio"), "lacks audio"),
    (lambda d: d["test"].__setitem__("vision", d["test"]["vision"][:-1]), "same N"),
    (lambda d: d["test"].__setitem__("text", d["test"]["text"][:, 0]), "3-D"),
    (lambda d: d["valid"].__setitem__("labels", d["valid"]["labels"][:10]), "labels"),
    (lambda d: d["test"].__setitem__("audio", d["test"]["audio"][:, :, :70]), "feature dimensions"),
])
def test_malformed_layout_is_a_clear_error(tmp_path, break_it, expect):
    raw = synthetic()
    break_it(raw)
    write(tmp_path / FILENAME, raw)
    with pytest.raises(UsageError, match=expect) as err:
        load_mosei(tmp_path / FILENAME)
    assert "\n" not in str(err.value)


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    (tmp_path / FILENAME).write_bytes(pickle.dumps({"train": {"x": object.__new__(torch.nn.Identity)}}))
    with pytest.raises(UsageError, match="not allowed"):
        load_mosei(tmp_path / FILENAME)
    (tmp_path / FILENAME).write_bytes(b"not a pickle")
    with pytest.raises(UsageError, match="cannot read"):
        load_mosei(tmp_path / FILENAME)


def test_a_malformed_pickle_is_one_line_before_the_sweep(tmp_path):
    """Only the file's existence was checked up front: a pickle lacking a split failed inside every
    bundle (a traceback per retry, an error row per point). Now the driver reads it first."""
    raw = synthetic()
    raw.pop("valid")
    write(tmp_path / "data" / "mosei" / FILENAME, raw)
    db = tmp_path / "r.duckdb"
    args = ["run", "mosei_teacher", "--profile", "smoke", "--db", str(db), "--data-dir", str(tmp_path / "data")]
    out = run_cli(*args)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr + out.stdout, out.stderr
    assert lines[0].startswith("cchsweep: error: ") and "lacks split valid" in lines[0]
    assert not db.exists()
    dry = run_cli(*args, "--dry-run")  # a dry run says what a run would stop on, and estimates anyway
    assert dry.returncode == 0 and "lacks split valid" in dry.stdout and "the run would stop here" in dry.stdout
    assert not db.exists()


def test_env_var_names_another_file(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv(PATH_ENV, str(data_dir / "mosei" / FILENAME))
    check_data(tmp_path)  # the data dir itself holds nothing


# --- network and noise --------------------------------------------------------------------------

def test_network_pools_over_time_and_exposes_the_128_unit_representation():
    torch.manual_seed(0)
    net = MoseiNet(35).eval()
    x = torch.randn(4, 50, 35)
    assert net(x).shape == (4, 2) and net.representation(x).shape == (4, 128)
    torch.testing.assert_close(net(x), net(x.mean(1)))
    widths = [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [256, 128, 2] and sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == 2


def test_noise_matches_noise_on_every_step_and_shares_one_pattern():
    rng = np.random.default_rng(1)
    seq = rng.standard_normal((400, 50, 3)).astype(np.float32) * np.array([1.0, 2.0, 4.0], np.float32)
    pooled = torch.from_numpy(seq.mean(1))
    data = {"pooled": {"train": {"text": pooled}, "test": {"text": pooled[:50]}},
            "seq_std": {"text": torch.from_numpy(seq.reshape(-1, 3).std(0).astype(np.float64))},
            "pooled_std": {"text": pooled.double().std(0, unbiased=False)}, "steps": {"text": 50}}
    clean_tr, _ = noisy_inputs(data, "text", 0.0, "sequence", 0)
    np.testing.assert_array_equal(clean_tr, pooled.numpy())
    tr4, te4 = noisy_inputs(data, "text", 0.4, "sequence", 0)
    tr8, _ = noisy_inputs(data, "text", 0.8, "sequence", 0)
    np.testing.assert_allclose(tr8 - pooled.numpy(), 2 * (tr4 - pooled.numpy()), rtol=1e-4, atol=1e-6)
    # std of the pooled noise = level * per-step std / sqrt(L), per feature
    expected = 0.8 * np.array([1.0, 2.0, 4.0]) / np.sqrt(50)
    np.testing.assert_allclose((tr8 - pooled.numpy()).std(0), expected, rtol=0.12)
    assert not np.allclose(te4, pooled.numpy()[:50])  # the test rows are noisy too
    trp, _ = noisy_inputs(data, "text", 0.8, "pooled", 0)
    np.testing.assert_allclose((trp - pooled.numpy()).std(0), 0.8 * pooled.numpy().std(0), rtol=0.12)


# --- end to end ----------------------------------------------------------------------------------

def _smoke(study, data_dir, tmp_path):
    db = tmp_path / "t.duckdb"
    start = time.monotonic()
    out = run_cli("run", study, "--profile", "smoke", "--db", str(db), "--data-dir", str(data_dir), cwd=tmp_path)
    seconds = time.monotonic() - start
    assert out.returncode == 0, out.stderr[-3000:]
    n = STUDIES[study].grid_size("smoke")
    assert f"{study} (smoke): {n} ok, 0 failed" in out.stdout
    assert q(db, "select count(*), count(distinct trial_key) from trials") == [(n, n)]
    assert_complete_f1_rows(db, n)
    print(f"{study} smoke: {seconds:.1f} s")
    for row in q(db, "select student_modality, noise, teacher_f1_weighted, nokd_f1_weighted, kd_f1_weighted, "
                     "i_ts, i_sl, i_tl, mi_n_samples from results order by all"):
        print(row)
        assert row[-1] == SIZES["test"]
    return db


@pytest.mark.slow
def test_teacher_smoke_end_to_end(data_dir, tmp_path):
    db = _smoke("mosei_teacher", data_dir, tmp_path)
    assert q(db, "select distinct teacher_modality, temperature, lam, seed from results") == [("text", 4.5, 0.5, 0)]
    assert sorted(r[0] for r in q(db, "select student_modality from results")) == ["audio", "vision"]
    built = dict(q(db, "select kind, count(*) filter (where not hit) from cache_events group by kind"))
    # one pooled data set and one text teacher shared by both students
    assert built == {"mosei_pooled": 1, "mosei_teacher": 1, "mosei_nokd": 2, "mosei_mi_ts": 2, "mosei_mi_label": 2}
    assert q(db, "select count(distinct teacher_f1_weighted), min(teacher_acc) > 0.8 from results") == [(1, True)]
    # the report's Table 3 holds the same numbers beside the paper's
    table3 = checked_report_table(db, "mosei_teacher", tmp_path / "report", "table3",
                                  ["i_ts", "i_sl", "nokd_acc", "kd_f1_weighted", "kd_gain"], "student_modality")
    assert table3["paper_kd_f1_weighted"].to_list() == [0.6161, 0.6315]


@pytest.mark.slow
def test_noise_smoke_end_to_end(data_dir, tmp_path):
    db = _smoke("mosei_noise", data_dir, tmp_path)
    assert q(db, "select count(distinct noise), min(student_modality), max(student_modality) from results") \
        == [(2, "vision", "vision")]
    built = dict(q(db, "select kind, count(*) filter (where not hit) from cache_events group by kind"))
    assert built == {"mosei_pooled": 1, "mosei_teacher": 1, "mosei_nokd": 1, "mosei_mi_ts": 2, "mosei_mi_label": 1}
    # teacher, baseline and the label MI are shared by both noise levels; I_TS is not
    assert q(db, "select count(distinct teacher_acc), count(distinct nokd_f1_weighted), count(distinct i_sl), "
                 "count(distinct i_ts) from results") == [(1, 1, 1, 2)]
    table4 = checked_report_table(db, "mosei_noise", tmp_path / "report", "table4",
                                  ["noise", "i_ts", "i_sl", "kd_f1_weighted", "nokd_f1_weighted", "mi_gap"], "noise")
    assert table4["paper_kd_f1_weighted"].to_list() == [0.6315, 0.6156]


@pytest.mark.slow
def test_estimators_smoke_end_to_end(data_dir, tmp_path):
    db = tmp_path / "t.duckdb"
    out = run_cli("run", "mi_estimators", "--profile", "smoke", "--db", str(db), "--data-dir", str(data_dir),
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert q(db, "select count(*) from trials where status = 'ok'") == [(2,)]
    rows = q(db, "select student_modality, mi_estimator, i_ts, i_sl, i_tl, i_ts_se from results order by all")
    for row in rows:
        print(row)
    assert [(r[0], r[1]) for r in rows] == [(s, e) for s in ("audio", "vision") for e in ("ksg", "latentmi", "mine")]
    assert all(v is not None for r in rows for v in r)
    built = dict(q(db, "select kind, count(*) filter (where not hit) from cache_events group by kind"))
    assert built["mosei_teacher"] == 1 and built["mosei_mi_ts_ksg"] == 2 and built["mosei_mi_label_mine"] == 2
    write_report(db, "mi_estimators", tmp_path / "report")
    table2 = pl.read_csv(tmp_path / "report" / "mi_estimators" / "table2.csv").sort("mi_estimator")
    by_student = {(r[0], r[1]): r for r in rows}
    for est in ("ksg", "latentmi", "mine"):
        cell = table2.filter(pl.col("mi_estimator") == est).row(0, named=True)
        assert cell["i_text_vision"] == pytest.approx(by_student[("vision", est)][2])
        assert cell["i_audio_y"] == pytest.approx(by_student[("audio", est)][3])
        assert cell["i_text_y"] == pytest.approx((by_student[("vision", est)][4] + by_student[("audio", est)][4]) / 2)
    assert table2["paper_i_text_audio"].to_list() == [0.6606, 1.4160, 1.1817]


def test_missing_data_is_a_clean_cli_error(tmp_path):
    (tmp_path / "empty").mkdir()
    out = run_cli("run", "mosei_teacher", "--profile", "smoke", "--db", str(tmp_path / "a.duckdb"),
                  "--data-dir", str(tmp_path / "empty"), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert str(tmp_path / "empty" / "mosei" / FILENAME) in out.stderr


@pytest.mark.slow
def test_bundle_equals_the_per_trial_reference_with_batchnorm_and_dropout(data_dir, tmp_path):
    """mosei_teacher smoke: two students (audio, vision) of one text teacher in one bundle, BatchNorm and
    Dropout(0.3) in every network: the stack's per-member statistics and seeded masks give the networks
    the single path trains, so the metrics agree within one test sample."""
    from cchsweep import grid
    from cchsweep.execute import run_bundle, run_spec

    plan = grid.plan(STUDIES["mosei_teacher"], "smoke", ["mi_estimator=ksg"])
    specs = [t.to_dict() for t in plan.trials]
    engine = {"cpus": 1, "gpu": 0.0, "data_dir": str(data_dir)}
    bundled = run_bundle(specs, {**engine, "cache_dir": str(tmp_path / "s")})
    reference = [run_spec(s, {**engine, "cache_dir": str(tmp_path / "r")}) for s in specs]
    n_test = len(load_mosei(data_dir / "mosei" / FILENAME)["test"].y)
    for got, ref in zip(bundled, reference):
        for model in ("teacher", "nokd", "kd"):
            assert abs(got.metrics[model]["acc"] - ref.metrics[model]["acc"]) <= 1 / n_test + 1e-9, (got.trial_key, model)
