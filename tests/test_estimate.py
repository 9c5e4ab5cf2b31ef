"""What `cchsweep run` says before it starts, and `--dry-run`, which says it and runs nothing."""

import re
from dataclasses import replace

import pytest

from cchsweep import grid
from cchsweep.estimate import plan_lines, stored_keys
from cchsweep.record import TrialRecord
from cchsweep.reproduce import OFFLINE
from cchsweep.store import Store
from cchsweep.study import Cost, Profile
from conftest import run_cli
from searchspaces import STUDIES


def test_dry_run_prints_the_plan_and_touches_nothing(tmp_path):
    db = tmp_path / "r.duckdb"
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db), "--dry-run",
                  "--set", "epochs=3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("plan: synthetic_sigma12 (smoke): 4 trials, 0 already stored, 4 to run in ")
    assert "grid: lam = 0.3; seed = 0, 1; sigma12 = 0.1, 0.7" in lines
    assert "overridden: epochs=3" in lines
    assert lines[-1].startswith("estimate: ")
    assert list(tmp_path.iterdir()) == []  # no database, no storage, no Ray


def test_dry_run_checks_what_the_run_would_and_describes_a_search(tmp_path):
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--dry-run", "--db", str(tmp_path / "no" / "r.duckdb"))
    assert out.returncode == 2 and "--db directory" in out.stderr and "does not exist" in out.stderr
    out = run_cli("run", "mosei_teacher", "--profile", "smoke", "--dry-run", "--db", str(tmp_path / "r.duckdb"),
                  "--data-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith("data: CMU-MOSEI features not found")  # estimated, then said
    assert out.stdout.splitlines()[-1].endswith("(the run would stop here)")
    out = run_cli("run", "synthetic_sigma12", "--search", "boundary", "--param", "sigma12", "--range", "0:0.7",
                  "--budget", "8", "--dry-run", "--db", str(tmp_path / "r.duckdb"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "plan: synthetic_sigma12 (paper): a boundary search of mi_gap (lmi) along sigma12 in [0, 0.7], 8 trials "
        "(Optuna TPE); the other axes at lam = 0.3; seed = 0"]
    assert list(tmp_path.iterdir()) == []


def _stored(db, plan, seconds):
    store = Store(db)
    store.ensure_schema()
    store.write_trials([
        TrialRecord(trial_key=t.key, study=plan.study.name, profile=plan.profile, params=t.params,
                    settings=t.settings, task="regression", gain_metric="mse", kd_gain=0.1, seconds=seconds,
                    run_id="r1")
        for t in plan.trials[:2]])


def test_the_estimate_uses_trials_already_measured_here(tmp_path):
    db = tmp_path / "r.duckdb"
    plan = grid.plan(STUDIES["synthetic_sigma12"], "smoke", seeds=5)  # 10 points
    _stored(db, plan, seconds=30.0)
    done = Store(db).done_keys([t.key for t in plan.trials])
    lines = plan_lines(plan, db, done, None, cpus=2)
    assert lines[0].startswith("plan: synthetic_sigma12 (smoke): 10 trials, 2 already stored, 8 to run")
    # 8 trials x 30 s on 2 slots
    assert lines[-1].startswith("estimate: ~2 min on this machine") and "2 trials of this study" in lines[-1]
    other = grid.plan(STUDIES["synthetic_sigma12"], "smoke", ["epochs=7"], seeds=5)  # other settings: no history
    assert "none recorded for profile smoke" in plan_lines(other, db, set(), None, cpus=2)[-1]


def test_stored_trials_speak_only_for_trials_that_could_share_their_bundle(tmp_path):
    # tcga_estimators: the mRNA pairing's 5 trials stored (505 s each, as measured); RPPA's 861
    # patients cost ~4.5x, so mRNA's time says nothing about RPPA's: the profile's cost is used
    study = STUDIES["tcga_estimators"]
    plan = grid.plan(study, "paper")
    mrna = [t for t in plan.trials if t.params["teacher_modality"] == "mrna"]
    store = Store(tmp_path / "r.duckdb")
    store.ensure_schema()
    store.write_trials([
        TrialRecord(trial_key=t.key, study=plan.study.name, profile=plan.profile, params=t.params,
                    settings=t.settings, task="classification", gain_metric="f1_weighted", kd_gain=0.0,
                    seconds=505.0, run_id="r1")
        for t in mrna])
    done = {t.key for t in mrna}
    line = plan_lines(plan, tmp_path / "r.duckdb", done, None, cpus=2)[-1]
    assert "from the paper profile estimated from unit costs" in line and "already in" not in line
    # one more mRNA seed to run (--seeds 6 adds seed 5 to both pairings; only mRNA's is asked here)
    more = grid.plan(study, "paper", ["teacher_modality=mrna"], seeds=6)
    line = plan_lines(more, tmp_path / "r.duckdb", done, None, cpus=2)[-1]
    assert "5 trials of this study, profile and settings already in r.duckdb took 505.0 s each" in line


@pytest.mark.parametrize("cpus,expected", [(2, "~10 min"), (8, "~2 min")])
def test_the_estimate_scales_a_profiles_recorded_cost(tmp_path, cpus, expected):
    study = STUDIES["synthetic_sigma12"]
    smoke = study.profiles["smoke"]
    costed = replace(study, profiles={"smoke": Profile(smoke.grid, smoke.settings, Cost(600.0, True, "4 trials"))})
    plan = grid.plan(costed, "smoke")
    line = plan_lines(plan, tmp_path / "none.duckdb", set(), None, cpus=cpus)[-1]
    assert line.startswith(f"estimate: {expected} on this machine")
    assert "the smoke profile measured: 10 min on 2 CPU cores (4 trials)" in line
    # half the trials stored: half the time
    done = {plan.trials[0].key, plan.trials[1].key}
    assert plan_lines(plan, tmp_path / "none.duckdb", done, None, cpus=2)[-1].startswith("estimate: ~5 min")
    changed = grid.plan(costed, "smoke", ["epochs=3"])
    assert "rough guide" in plan_lines(changed, tmp_path / "none.duckdb", set(), None, cpus=2)[-1]
    # a grid changed by --seeds or --set scales with its trials: the cost is per trial of the profile's
    # grid (it once stayed the profile's 10 min whatever the grid: --seeds 30 or a single point)
    more = grid.plan(costed, "smoke", seeds=6)  # 12 trials
    one = grid.plan(costed, "smoke", ["sigma12=0.1"], seeds=1)
    assert plan_lines(more, tmp_path / "none.duckdb", set(), None, cpus=2)[-1].startswith("estimate: ~30 min")
    assert plan_lines(one, tmp_path / "none.duckdb", set(), None, cpus=2)[-1].startswith("estimate: ~2 min")


def test_a_run_without_lmi_is_estimated_from_the_profiles_cost_without_it(tmp_path):
    # synthetic_sigma12 paper: ~39 h with lmi on 2 cores; measured 2,744 s with mi_estimator=ksg,mine
    study, db = STUDIES["synthetic_sigma12"], tmp_path / "none.duckdb"
    line = plan_lines(grid.plan(study, "paper"), db, set(), None, cpus=2)[-1]
    assert line.startswith("estimate: ~39.3 h on this machine, from the paper profile estimated")
    plan = grid.plan(study, "paper", ["mi_estimator=ksg,mine"])
    line = plan_lines(plan, db, set(), None, cpus=2)[-1]
    assert line.startswith("estimate: ~46 min on this machine, from the paper profile without lmi measured: 46 min")
    assert "rough guide" not in line
    assert "rough guide" in plan_lines(grid.plan(study, "paper", ["mi_estimator=ksg", "epochs=3"]), db, set(),
                                       None, cpus=2)[-1]
    # a run that keeps lmi keeps the full cost
    line = plan_lines(grid.plan(study, "paper", ["mi_estimator=lmi,ksg"]), db, set(), None, cpus=2)[-1]
    assert line.startswith("estimate: ~39.3 h") and "rough guide" in line
    # a profile that records no cost without lmi: the full one, as a rough guide
    line = plan_lines(grid.plan(STUDIES["mnist_blur"], "paper", ["mi_estimator=ksg"]), db, set(), None, cpus=2)[-1]
    assert "from the paper profile estimated from unit costs: 17.8 h" in line and "rough guide" in line


def test_every_offline_paper_and_quick_profile_says_what_it_costs():
    assert len(OFFLINE) == 8  # every study whose data ship offline (or need none)
    for name in OFFLINE:
        for profile in ("paper", "quick"):
            cost = STUDIES[name].profiles[profile].cost
            assert cost is not None and cost.seconds > 0, (name, profile)
            # every quick profile's cost was timed end to end (reproduce --profile quick)
            assert profile != "quick" or cost.measured, name


def test_a_quick_profiles_recorded_cost_is_for_its_grid():
    # a cost measured on another grid (the note names the trials it timed) would mislead the estimate
    for name in OFFLINE:
        plan = grid.plan(STUDIES[name], "quick")
        cost = STUDIES[name].profiles["quick"].cost
        timed = re.search(r"(\d+) trials", cost.note)
        assert timed is not None and int(timed.group(1)) == len(plan.trials), (name, cost.note, len(plan.trials))


def test_points_stored_with_other_settings_are_refused_not_skipped(tmp_path):
    """A key names the point and the --set changes, not the profile's settings, which a release may
    change: points stored under older settings are neither counted done nor replaced unasked."""
    db = tmp_path / "r.duckdb"
    plan = grid.plan(STUDIES["synthetic_sigma12"], "smoke")
    older = replace(plan, trials=[replace(t, settings={**t.settings, "epochs": 30}) for t in plan.trials])
    _stored(db, older, seconds=3.0)
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db), "--dry-run")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert ("2 of synthetic_sigma12's smoke points are stored in " in out.stderr
            and "with other settings than this profile's (epochs 30 now 10; e.g. synthetic_sigma12/smoke/" in out.stderr
            and f"`cchsweep run synthetic_sigma12 --profile smoke --db {db} --force` (with this run's --seeds and "
                "--set) reruns and replaces them, or give another --db" in out.stderr)
    before = db.read_bytes()
    refused = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db))  # a real run, refused
    assert refused.returncode == 2 and "with other settings than this profile's" in refused.stderr
    assert db.read_bytes() == before  # untouched: the views were once rewritten before the refusal
    forced = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db), "--dry-run", "--force")
    assert forced.returncode == 0 and "0 already stored, 4 to run" in forced.stdout
    _stored(db, plan, seconds=3.0)  # the same points at this profile's settings: done, as before
    assert stored_keys(db, plan) == {t.key for t in plan.trials[:2]}
