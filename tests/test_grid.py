"""Planning a sweep: profiles, overrides, seeds, deterministic keys, and bad input."""

import pytest

from cchsweep.errors import UsageError
from cchsweep.grid import plan, trial_key
from searchspaces import STUDIES
from searchspaces.synthetic_sigma12 import STUDY as SIGMA12


def test_registry_lists_each_study_once_with_both_profiles():
    assert set(STUDIES) >= {"synthetic_sigma12", "synthetic_lambda"}
    for name, study in STUDIES.items():
        assert study.name == name
        assert {"paper", "smoke"} <= set(study.profiles)
        for prof in study.profiles.values():
            assert set(prof.grid) | set(prof.settings) <= set(study.params)  # every knob is typed
        assert study.grid_size("smoke") < study.grid_size("paper")


def test_paper_grids_are_the_papers():
    p = plan(SIGMA12, "paper")
    assert len(p.trials) == 80  # 8 sigma12 x 1 lambda x 10 seeds
    assert p.grid["sigma12"] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert p.settings["epochs"] == 300 and p.settings["lr"] == 0.01 and p.settings["n_train"] == 10_000
    lam = plan(STUDIES["synthetic_lambda"], "paper")
    assert len(lam.trials) == 320 and lam.grid["lam"] == [0.2, 0.5, 0.7, 0.8]


def test_keys_are_deterministic_readable_and_unique():
    a, b = plan(SIGMA12, "smoke"), plan(SIGMA12, "smoke")
    assert [t.key for t in a.trials] == [t.key for t in b.trials]
    assert len({t.key for t in a.trials}) == len(a.trials)
    assert "synthetic_sigma12/smoke/lam=0.3,seed=0,sigma12=0.1" in {t.key for t in a.trials}
    assert trial_key("s", "p", {"x": 0.1 + 0.2}, {}) == "s/p/x=0.3"
    changed = plan(SIGMA12, "smoke", ["epochs=5"])
    assert all(t.key.endswith("/epochs=5") and t.settings["epochs"] == 5 for t in changed.trials)
    same = plan(SIGMA12, "smoke", ["epochs=10"])  # setting it to its profile value changes nothing
    assert [t.key for t in same.trials] == [t.key for t in a.trials]


def test_overrides_and_seeds():
    p = plan(SIGMA12, "smoke", ["sigma12=0.2,0.5", "lam=0,0.3"], seeds=3)
    assert len(p.trials) == 2 * 2 * 3
    assert p.grid["seed"] == [0, 1, 2]


@pytest.mark.parametrize("overrides, seeds, message", [
    (["nosuch=1"], None, "has no parameter 'nosuch'"),
    (["sigma12"], None, "malformed"),
    (["sigma12="], None, "gives no value"),
    (["sigma12=abc"], None, "not a valid float"),
    (["sigma12=1.5"], None, "above its maximum"),
    (["sigma12=0.9"], None, r"v=.*<= 0"),
    (["epochs=0"], None, "below its minimum"),
    (["epochs=1,2"], None, "takes one value"),
    (["mi_estimator=ouija"], None, "not one of"),
    ([], 0, "at least 1 seed"),
])
def test_bad_overrides_are_usage_errors(overrides, seeds, message):
    with pytest.raises(UsageError, match=message):
        plan(SIGMA12, "smoke", overrides, seeds)


def test_unknown_profile():
    with pytest.raises(UsageError, match="no profile 'huge'.*paper, smoke"):
        plan(SIGMA12, "huge")


def test_bundles_share_everything_but_their_vary_axes_within_size_and_memory():
    from cchsweep.grid import bundles, default_bundle_size
    from searchspaces import STUDIES

    paper = plan(SIGMA12, "paper")  # 8 sigma12 x 10 seeds
    assert default_bundle_size(SIGMA12, len(paper.trials), slots=2) == 40
    two = bundles(SIGMA12, paper.trials, 40)
    assert [len(b) for b in two] == [40, 40]
    assert [sorted({t.params["seed"] for t in b}) for b in two] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]  # seed-major
    assert sorted(t.key for b in two for t in b) == sorted(t.key for t in paper.trials)
    assert [len(b) for b in bundles(SIGMA12, paper.trials, 30)] == [27, 27, 26]  # even sizes under the cap
    assert all(len(b) == 1 for b in bundles(SIGMA12, paper.trials, 1))
    # an axis outside bundle_vary (tcga_noise's teacher modality: another network shape) never shares one
    tcga = STUDIES["tcga_noise"]
    groups = bundles(tcga, plan(tcga, "paper").trials, 100)
    assert sorted(sorted({t.params["teacher_modality"] for t in b}) for b in groups) == [["mrna"], ["rppa"]]
    # the memory budget splits bundles further; each stays under it
    budget = SIGMA12.bundle_bytes([{**t.settings, **t.params} for t in paper.trials[:10]])
    small = bundles(SIGMA12, paper.trials, 80, budget=budget)
    assert len(small) > 2 and all(SIGMA12.bundle_bytes([{**t.settings, **t.params} for t in b]) <= budget
                                  for b in small)
    fusion = STUDIES["tcga_fusion"]  # FusionNet stacks too: one bundle per teacher modality, seeds inside
    groups = bundles(fusion, plan(fusion, "paper").trials, default_bundle_size(fusion, 10, slots=2))
    assert sorted((b[0].params["teacher_modality"], [t.params["seed"] for t in b]) for b in groups) == [
        ("mrna", [0, 1, 2, 3, 4]), ("rppa", [0, 1, 2, 3, 4])]
