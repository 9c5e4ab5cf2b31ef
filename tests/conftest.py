import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from cchsweep.record import TrialRecord
from cchsweep.rules import critical

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _data_env():
    os.environ.setdefault("CCHSWEEP_DATA", str(SHARED_DATA))
    # Tests never reach the internet: a download must be asked for (allow_download=True, or a
    # test's own environment pointing the URLs at a server on 127.0.0.1).
    os.environ.setdefault("CCHSWEEP_OFFLINE", "1")
    yield


# --- training data the stacked-engine tests share (tests/test_stack.py, tests/test_compiled.py) ---------------


@pytest.fixture(scope="module")
def regression_data():
    """600 rows of two 20-d views and a target that depends on both; a teacher-like prediction."""
    import torch

    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(600, 20, generator=g), torch.randn(600, 20, generator=g)
    y = x2[:, :1] * 0.5 + x1[:, 1:2] + 0.1 * torch.randn(600, 1, generator=g)
    return x1, x2, y, x1[:, :1] * 0.8


@pytest.fixture(scope="module")
def digits():
    """1,500 MNIST training digits pooled to 7x7 (49 inputs) and their labels."""
    import torch

    from cchsweep.data.mnist import load_mnist

    images, labels = load_mnist(SHARED_DATA, "train")
    x = torch.nn.functional.avg_pool2d(torch.from_numpy(images[:1500]).float()[:, None] / 255, 4).reshape(1500, 49)
    return x, torch.from_numpy(labels[:1500]).long()


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """The real command line, in a fresh process, as a user would run it (in `env` if given)."""
    if env is None:
        env = dict(os.environ, CCHSWEEP_DATA=os.environ.get("CCHSWEEP_DATA", str(SHARED_DATA)))
    return subprocess.run([sys.executable, "-m", "cchsweep", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


SMOKE = ("run", "synthetic_sigma12", "--profile", "smoke")
# Where the timing of a trial does not matter: shorter trials, the same engine paths.
QUICK = ("--set", "epochs=5", "--set", "mi_epochs=1")


def reference_records(study: str, profile: str, keys, tmp_path, data_dir=None):
    """The per-trial reference: each stored key's grid point run alone through the study's single-model
    trial in this process (its own cache, KSG for the MI: the training does not depend on it)."""
    from cchsweep import grid
    from cchsweep.execute import run_spec
    from searchspaces import STUDIES

    plan = grid.plan(STUDIES[study], profile)
    assert {t.key for t in plan.trials} == set(keys)
    engine = {"cache_dir": str(tmp_path / "reference-cache"), "cpus": 1, "gpu": 0.0,
              "data_dir": str(data_dir) if data_dir else None}
    if STUDIES[study].prepare is not None:
        STUDIES[study].prepare(data_dir, tmp_path / "reference-cache", [{**t.settings, **t.params} for t in plan.trials])
    return {t.key: run_spec({**t.to_dict(), "settings": {**t.settings, "mi_estimator": "ksg"}}, engine)
            for t in plan.trials}


def wait_for_rows(db, n: int, timeout: float = 300) -> int:
    """Poll a sweep's database (read-only) until it holds n trial rows; return the count seen."""
    deadline, stored = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and stored < n:
        time.sleep(0.5)
        if db.exists():
            try:
                stored = q(db, "select count(*) from trials")[0][0]
            except duckdb.Error:
                pass  # the writer holds the file for a moment
    return stored


def q(db, sql: str) -> list[tuple]:
    """Read the results database the way a user's SQL would: a read-only connection."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def trial_row(study: str, params: dict, metrics: dict, mi: list, gain_metric: str | None, kd_gain: float | None,
              status: str = "ok", profile: str = "smoke") -> TrialRecord:
    """A hand-made trial record for Store.write_trials; mi items are (quantity, value, truth[, estimator])."""
    key = f"{study}/{profile}/" + ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    r = {"trial_key": key, "run_id": "r1", "study": study, "profile": profile, "params": params,
         "settings": {"epochs": 3}, "status": status}
    if status != "ok":
        return TrialRecord.from_dict(dict(r, error="RuntimeError: boom"))
    return TrialRecord.from_dict(dict(
        r, task="regression" if gain_metric == "mse" else "classification", gain_metric=gain_metric,
        kd_gain=kd_gain, metrics=metrics,
        mi=[{"quantity": m[0], "estimator": m[3] if len(m) > 3 else "latentmi", "value": m[1], "se": 0.01,
             "repeats": 1, "truth": m[2]} for m in mi]))


def checked_report_table(db, study: str, out: Path, name: str, cols: list[str], order_by: str) -> pl.DataFrame:
    """Write the study's report from db and check that its table `name` holds, for `cols`, the numbers
    SQL on the results view gives (rows in `order_by` order); return the table, so ordered."""
    from analysis.report import write_report

    write_report(db, study, out)
    table = pl.read_csv(out / study / f"{name}.csv").sort(order_by)
    np.testing.assert_allclose(table.select(cols).rows(), q(db, f"select {', '.join(cols)} from results "
                                                                f"order by {order_by}"))
    return table


F1_COLUMNS = [f"{m}_{k}" for m in ("teacher", "nokd", "kd") for k in ("acc", "f1_weighted", "f1_macro", "auc")]


def assert_complete_f1_rows(db, n: int) -> None:
    """n ok rows in `results` with every classification metric, the MI triplet, gap and gain, and
    kd_gain equal to KD minus no-KD weighted F1."""
    nulls = " or ".join(f"{c} is null" for c in [*F1_COLUMNS, "i_ts", "i_sl", "i_tl", "mi_gap", "kd_gain"])
    assert q(db, f"select count(*) from results where status = 'ok' and not ({nulls})") == [(n,)]
    assert q(db, "select bool_and(gain_metric = 'f1_weighted'), "
                 "max(abs(kd_gain - (kd_f1_weighted - nokd_f1_weighted))) < 1e-12 from results") == [(True, True)]


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu need CUDA: without it they are deselected (not skipped), so `pytest` and
    `pytest -m "not slow"` run everything this machine can run; `pytest -m gpu` on a GPU machine."""
    import torch

    if torch.cuda.is_available():
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


EMBED = re.compile(r"vegaEmbed\('#(chart-\d+)', (\{.*?\}), \{mode: 'vega-lite'\}\)")  # (div id, spec) per chart


def decode_spec(raw: str) -> dict:
    """A chart spec as inlined in a report page (its '</script' escaped)."""
    return json.loads(raw.replace("<\\/script", "</script"))


# column names that must not reach a reader as an axis, legend or panel title
RAW_NAMES = {"gamma", "sigma12", "noise", "lam", "temperature", "f1_weighted", "closed_form", "mi_estimator",
             "kd_gain", "mi_gap", "i_ts", "i_sl", "i_tl", "series", "gap_source", "pairing"}


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def check_vocabulary(page: Path) -> tuple[int, int]:
    """One visual vocabulary on a report page: every error bar is the 95% t interval over the row's
    n_seeds (mean -+ t(0.975, n_seeds - 1) SE, the verdict's rule), a dashed line always
    draws a reference (`truth`: closed form, paper, a perfect estimator), measured lines skip rows
    that carry only a reference, no title is a raw column name, the MI quantities are written
    I(H_T;H_S)-style. Returns (error bars checked, dashed layers seen)."""
    text = page.read_text()
    assert "I_TS" not in text and "I_SL" not in text, page
    assert "± 2 SE" not in text, page  # the bars are the verdict's t intervals, and the subtitles say so
    bars = dashed = 0
    for _, raw in EMBED.findall(text):
        spec = decode_spec(raw)
        for rows in spec.get("datasets", {}).values():
            for r in rows:
                for m in ("mean", "gain_mean", "gap_mean"):
                    se, lo, hi = (r.get(m.replace("mean", end)) for end in ("se", "lo", "hi"))
                    if se is not None and lo is not None:
                        half = critical(r["n_seeds"]) * se
                        assert lo == pytest.approx(r[m] - half) and hi == pytest.approx(r[m] + half), (page, r)
                        bars += 1
        for node in _walk(spec):
            mark = node.get("mark")
            kind = mark.get("type") if isinstance(mark, dict) else mark
            if isinstance(mark, dict) and "strokeDash" in mark:
                assert node["encoding"]["y"]["field"] == "truth", (page, node["encoding"])
                dashed += 1
            if kind == "line" and node.get("encoding", {}).get("y", {}).get("field") == "mean":
                assert {"filter": "isValid(datum.mean)"} in node.get("transform", []), page
            title = node.get("title")
            assert not (isinstance(title, str) and title in RAW_NAMES), (page, title)
    return bars, dashed
