"""The adaptive boundary search: zero crossings from points, and a real Optuna search through Ray."""

import duckdb
import pytest

from analysis.boundary import crossing
from cchsweep.mi.gaussian import optimal_linear_mi
from cchsweep.record import TrialRecord
from cchsweep.search import target_value
from cchsweep.store import Store
from cchsweep.study import MIValue
from conftest import run_cli


def test_crossing_interpolates_inside_the_bracket():
    c = crossing([0.0, 0.2, 0.5, 0.4, 0.7], [-2.0, -1.0, 0.5, 0.0 - 0.5, 2.0])
    assert (c.lo, c.hi, c.n_sign_changes) == (0.4, 0.5, 1)
    assert c.estimate == pytest.approx(0.45)
    assert crossing([0.1, 0.2, 0.3], [1.0, 2.0, 3.0]) is None  # no sign change: no crossing
    assert crossing([], []) is None
    exact = crossing([0.1, 0.2], [0.0, 1.0])
    assert exact.estimate == 0.1 and exact.n_sign_changes == 0


def test_noisy_targets_widen_the_interval_and_repeats_are_averaged():
    c = crossing([0.1, 0.2, 0.3, 0.4, 0.5], [-1.0, 0.2, -0.1, 0.3, 1.0])
    assert (c.lo, c.hi, c.n_sign_changes) == (0.1, 0.4, 3)
    assert c.estimate == pytest.approx(0.25)
    c = crossing([0.1, 0.1, 0.3], [-3.0, 1.0, 2.0])  # x = 0.1 averages to -1
    assert (c.lo, c.hi) == (0.1, 0.3) and c.estimate == pytest.approx(0.1 + 0.2 / 3)


def test_the_searched_gap_is_one_estimators():
    """A trial with several estimators: the search's objective is the named estimator's gap (it
    used to mix them: i_ts and i_sl of whichever estimator came last)."""
    gaps = {"lmi": (1.0, 0.5), "ksg": (0.2, 0.9), "mine": (3.0, 1.0)}
    mi = [MIValue(q, e, v, truth=t) for e, pair in gaps.items() for q, v, t in zip(("i_ts", "i_sl"), pair, (2.0, 1.5))]
    record = TrialRecord("k", "synthetic_sigma12", "smoke", {}, {}, kd_gain=-0.25, mi=mi)
    assert target_value(record, "mi_gap", "lmi") == pytest.approx(0.5)
    assert target_value(record, "mi_gap", "ksg") == pytest.approx(-0.7)
    assert target_value(record, "mi_gap", "mine") == pytest.approx(2.0)
    assert target_value(record, "mi_gap_truth", "ksg") == pytest.approx(0.5)
    assert target_value(record, "kd_gain", "ksg") == -0.25
    only_lmi = TrialRecord("k", "synthetic_sigma12", "smoke", {}, {}, kd_gain=0.1, mi=mi[:2])
    assert target_value(only_lmi, "mi_gap", "ksg") is None


def test_a_search_follows_the_first_estimator_and_says_so(tmp_path):
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(tmp_path / "x.duckdb"), "--search",
                  "boundary", "--param", "sigma12", "--range", "0:0.7", "--budget", "4", "--set",
                  "mi_estimator=ksg,lmi", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "a boundary search of mi_gap (ksg) along sigma12 in [0, 0.7], 4 trials" in out.stdout


@pytest.mark.slow
def test_boundary_search_finds_the_closed_form_crossing_with_a_third_of_the_grid(tmp_path):
    truth_root = 0.4022
    assert optimal_linear_mi(100, 0.40, 0.9, 0.4)["mi_gap"] < 0 < optimal_linear_mi(100, 0.41, 0.9, 0.4)["mi_gap"]
    db = tmp_path / "s.duckdb"
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db), "--search", "boundary",
                  "--param", "sigma12", "--range", "0:0.7", "--budget", "12", "--target", "mi_gap_truth",
                  "--set", "mi_epochs=1", "--set", "mi_estimator=lmi,ksg", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(l for l in out.stdout.splitlines() if l.startswith("boundary:"))
    estimate = float(line.split("sigma12 = ")[1].split(",")[0])
    lo, hi = (float(v) for v in line.split("interval [")[1].split("]")[0].split(", "))
    assert abs(estimate - truth_root) < 0.02 and lo <= truth_root <= hi and hi - lo < 0.1
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select mode, count(*), count(distinct sigma12) from results group by mode").fetchall()
    assert rows[0][0] == "boundary:sigma12:mi_gap_truth"
    assert rows[0][1] == 2 * 12 and 12 <= 80 // 3  # a row per trial and estimator; the paper grid has 80 trials
    (run_id,) = Store(db).query("select run_id from runs")[1][0]
    points = Store(db).points(run_id, "sigma12", "mi_gap", "lmi")
    assert len(points) == 12 == len({x for x, _ in points})  # one point per trial: lmi's rows alone
    with duckdb.connect(str(db), read_only=True) as con:
        lmi = con.execute("select sigma12, mi_gap from results where mi_estimator = 'lmi'").fetchall()
    assert sorted(points) == sorted(lmi)


@pytest.mark.parametrize("args, message", [
    (["--search", "boundary", "--range", "0:1"], "needs --param NAME and --range"),
    (["--search", "boundary", "--param", "seed", "--range", "0:5"], "search a float grid axis"),
    (["--search", "boundary", "--param", "sigma12", "--range", "0.7:0.1"], "LO must be below HI"),
    (["--search", "boundary", "--param", "sigma12", "--range", "0:0.9"], "conditional variance"),
    (["--search", "boundary", "--param", "sigma12", "--range", "a:b"], "write LO:HI"),
    (["--search", "boundary", "--param", "sigma12", "--range", "0:0.7", "--budget", "2"], "at least 4"),
    (["--search", "boundary", "--param", "sigma12", "--range", "0:0.7", "--target", "vibes"], "choose one of"),
    # once silently cut to the first value: every trial ran seed 0
    (["--search", "boundary", "--param", "sigma12", "--range", "0:0.7", "--seeds", "3"],
     "seed = 0, 1, 2 (--seeds or --set): a search holds every axis but sigma12 at one value; drop --seeds and give one "
     "with --set seed="),
    (["--search", "boundary", "--param", "sigma12", "--range", "0:0.7", "--set", "lam=0.2,0.5"],
     "lam = 0.2, 0.5 (--seeds or --set)"),
])
def test_bad_search_input(tmp_path, args, message):
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(tmp_path / "x.duckdb"), *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_closed_form_target_needs_a_closed_form_study(tmp_path):
    out = run_cli("run", "mnist_blur", "--profile", "smoke", "--db", str(tmp_path / "x.duckdb"), "--search",
                  "boundary", "--param", "gamma", "--range", "0:4", "--target", "mi_gap_truth")
    assert out.returncode == 2 and "has no closed-form MI" in out.stderr
