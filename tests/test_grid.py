"""Planning a sweep: profiles, overrides, seeds, deterministic keys, and bad input."""

from math import prod

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


SEEDS5, SEEDS10, NOISE = list(range(5)), list(range(10)), [0.0, 0.2, 0.4, 0.6, 0.8]
SYNTHETIC = {"sigma13": 0.9, "sigma23": 0.4, "p": 100, "hidden": 64, "n_train": 10_000, "n_test": 5_000,
             "epochs": 300, "lr": 0.01}
MNIST = {"n_train": 60_000, "n_test": 10_000, "epochs": 100, "lr": 0.002}
TCGA = {"test_fraction": 0.1, "n_features": 100, "epochs": 200}
MOSEI = {"epochs": 100, "lr": 5e-4}
# (study, profile) -> (its whole grid, settings it must hold), from ../shared/paper/cch_paper.md
PAPER = {
    # Section 4.1 and Figure 1 (sigma13 0.9, sigma23 0.4, p 100, sigma12 in [0, 0.7], ten seeds; lambda
    # 0.3 per Appendix B), Table 9 (100 -> 64 ReLU -> 1), Table 10 (Adam lr 0.01, 300 epochs,
    # 10,000 / 5,000: the text's 1,000 test samples disagree with Table 10; the module follows the table)
    ("synthetic_sigma12", "paper"): ({"sigma12": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "lam": [0.3],
                                      "seed": SEEDS10}, SYNTHETIC),
    # Appendix B, Figure 4: lambda in {0.2, 0.5, 0.7, 0.8}, otherwise Figure 1's setup
    ("synthetic_lambda", "paper"): ({"sigma12": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "lam": [0.2, 0.5, 0.7, 0.8],
                                     "seed": SEEDS10}, SYNTHETIC),
    # Section 4.2 and Table 1 (gamma {0, 0.5, 1.5, 2.5, 3.5} x T {1, 2, 3, 4}, five runs), Appendix C
    # (alpha 0.2), Table 12 (60,000 / 10,000, SGD lr 0.002, 100 epochs, lambda 0.5)
    ("mnist_blur", "paper"): ({"alpha": [0.2], "gamma": [0.0, 0.5, 1.5, 2.5, 3.5], "temperature": [1.0, 2.0, 3.0, 4.0],
                               "lam": [0.5], "seed": SEEDS5}, MNIST),
    # Table 13: alpha 0.18 "under the same settings", i.e. Table 12's T = 3 and lambda 0.5
    ("mnist_alpha", "paper"): ({"alpha": [0.18], "gamma": [0.0, 0.5, 1.5, 2.5, 3.5], "temperature": [3.0],
                                "lam": [0.5], "seed": SEEDS5}, MNIST),
    # Table 5 (BRCA, mRNA -> CNV, noise 0-80%, five runs), Table 17 (90/10, Adam lr 0.01, 200 epochs, T 2,
    # lambda 0.5), Section 4.4 (top 100 mRMR features). RPPA -> CNV and KIPAN's RPPA are the module's
    # stand-ins for the pairings the offline data lack (its docstring)
    ("tcga_noise", "paper"): ({"cohort": ["brca"], "teacher_modality": ["mrna", "rppa"], "student_modality": ["cnv"],
                               "noise": NOISE, "temperature": [2.0], "lam": [0.5], "seed": SEEDS5},
                              {**TCGA, "lr": 0.01}),
    ("tcga_noise", "paper_kipan"): ({"cohort": ["kipan"], "teacher_modality": ["rppa"], "student_modality": ["cnv"],
                                     "noise": NOISE, "temperature": [2.0], "lam": [0.5], "seed": SEEDS5},
                                    {**TCGA, "lr": 0.01}),
    # Tables 20, 21 (BRCA: mRNA and RPPA teachers, Adam lr 0.04, 200 epochs, T 4, lambda 0.5)
    ("tcga_fusion", "paper"): ({"cohort": ["brca"], "teacher_modality": ["mrna", "rppa"], "student_modality": ["cnv"],
                                "temperature": [4.0], "lam": [0.5], "seed": SEEDS5}, {**TCGA, "lr": 0.04}),
    # Tables 8, 19 (KIPAN: Adam lr 0.007, 200 epochs, T 1, lambda 0.5; RPPA only: no KIPAN mRNA offline)
    ("tcga_fusion", "paper_kipan"): ({"cohort": ["kipan"], "teacher_modality": ["rppa"], "student_modality": ["cnv"],
                                      "temperature": [1.0], "lam": [0.5], "seed": SEEDS5}, {**TCGA, "lr": 0.007}),
    # Table 2's comparison on TCGA (no paper table): Table 17's networks, noise-free teachers
    ("tcga_estimators", "paper"): ({"cohort": ["brca"], "teacher_modality": ["mrna", "rppa"],
                                    "student_modality": ["cnv"], "noise": [0.0], "temperature": [2.0], "lam": [0.5],
                                    "seed": SEEDS5}, {**TCGA, "lr": 0.01}),
    # Table 3 (text teacher, vision and audio students), Table 15 (AdamW lr 0.0005, 100 epochs, T 4.5,
    # lambda 0.5)
    ("mosei_teacher", "paper"): ({"teacher_modality": ["text"], "student_modality": ["vision", "audio"],
                                  "temperature": [4.5], "lam": [0.5], "seed": SEEDS5}, MOSEI),
    # Table 4 (text -> vision, noise 0-80%), Table 15
    ("mosei_noise", "paper"): ({"teacher_modality": ["text"], "student_modality": ["vision"], "noise": NOISE,
                                "temperature": [4.5], "lam": [0.5], "seed": SEEDS5}, MOSEI),
    # Table 2 ("mean +- std over 50 runs": 5 seeds x 10 estimates), Table 15's networks
    ("mi_estimators", "paper"): ({"teacher_modality": ["text"], "student_modality": ["vision", "audio"],
                                  "temperature": [4.5], "lam": [0.5], "seed": SEEDS5}, {**MOSEI, "mi_repeats": 10}),
}


@pytest.mark.parametrize("study, profile", sorted(PAPER))
def test_paper_grids_are_the_papers(study, profile):
    grid, settings = PAPER[study, profile]
    p = plan(STUDIES[study], profile)
    assert p.grid == grid
    assert {k: p.settings[k] for k in settings} == settings
    assert len(p.trials) == prod(len(v) for v in grid.values())
    # every paper profile estimates MI with the three estimators, lmi at latentmi's defaults
    assert (p.settings["mi_estimator"], p.settings["mi_epochs"], p.settings["mi_lr"]) == ("lmi,ksg,mine", 300, 1e-4)


def test_every_paper_study_is_checked_against_the_paper():
    papered = {(name, prof) for name, study in STUDIES.items() for prof in study.profiles if prof.startswith("paper")}
    assert papered - set(PAPER) == {("mi_calibration", "paper")}  # no paper figure: the reviewers' calibration


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
    (["lam=nan"], None, "lam=nan is not a finite number"),
    (["sigma12=0.1", "sigma12=0.2"], None, r"--set sigma12 is given twice \(sigma12=0.1, sigma12=0.2\)"),
    (["sigma12=0.1,0.10"], None, "repeats a value"),
    (["sigma12=0.1,,0.2"], None, "empty value between commas"),
    (["sigma12=0.1,"], None, "empty value between commas"),
    (["=0.3"], None, "names no parameter"),
    ([], 10**9, r"the grid has 2,000,000,000 points \(1 lam x 1,000,000,000 seed x 2 sigma12\); "
                r"a run holds at most 100,000"),
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
    assert default_bundle_size(SIGMA12, paper.trials, slots=2, gpu=True) == 40  # a GPU each: an even split
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
    groups = bundles(fusion, plan(fusion, "paper").trials, default_bundle_size(fusion, plan(fusion, "paper").trials,
                                                                               slots=2, gpu=True))
    assert sorted((b[0].params["teacher_modality"], [t.params["seed"] for t in b]) for b in groups) == [
        ("mrna", [0, 1, 2, 3, 4]), ("rppa", [0, 1, 2, 3, 4])]


def _seeds(group):
    return sorted({t.params["seed"] for t in group})


def test_cpu_bundles_queue_up_where_the_grid_mixes_networks_of_uneven_cost():
    from cchsweep.grid import QUEUE_PER_SLOT, bundles, default_bundle_size
    from searchspaces import STUDIES

    # tcga_noise mixes two teacher modalities (never one bundle). RPPA's bundle cost ~4x mRNA's
    # (measured), so one bundle each left a core idle for most of the run: now one (modality, seed)
    # per bundle, a queue of ten for 2 workers. A GPU run keeps one big stack per modality.
    tcga = STUDIES["tcga_noise"]
    trials = plan(tcga, "paper").trials
    groups = bundles(tcga, trials, default_bundle_size(tcga, trials, slots=2))
    assert len(groups) == 10 >= QUEUE_PER_SLOT * 2
    assert all(len(g) == 5 and len(_seeds(g)) == 1 and len({t.params["teacher_modality"] for t in g}) == 1
               for g in groups)
    assert len(bundles(tcga, trials, default_bundle_size(tcga, trials, slots=2, gpu=True))) == 2
    # one network, points of even cost: the fewest bundles that fill the workers, as big stacks
    for name, profile, sizes in (("mnist_blur", "paper", [50, 50]), ("mnist_blur", "quick", [3, 3]),
                                 ("synthetic_sigma12", "paper", [40, 40])):
        study = STUDIES[name]
        trials = plan(study, profile).trials
        assert [len(g) for g in bundles(study, trials, default_bundle_size(study, trials, slots=2))] == sizes
    # more workers than a 2-way split needs: every worker gets work, bundles as even as the grid allows
    mnist = STUDIES["mnist_blur"]
    trials = plan(mnist, "paper").trials
    groups = bundles(mnist, trials, default_bundle_size(mnist, trials, slots=16))
    assert len(groups) >= 16 - 1 and max(map(len, groups)) - min(map(len, groups)) <= 1
    assert sorted(t.key for g in groups for t in g) == sorted(t.key for t in trials)


def test_a_bundle_cap_packs_whole_seeds_when_that_takes_no_more_bundles():
    from cchsweep.grid import bundles
    from searchspaces import STUDIES

    mnist = STUDIES["mnist_blur"]
    trials = plan(mnist, "paper").trials  # 5 seeds x 20 points
    assert [_seeds(g) for g in bundles(mnist, trials, 40)] == [[0, 1], [2, 3], [4]]  # 3 bundles either way
    halves = bundles(mnist, trials, 50)  # whole seeds would take 3: the cap's 2 cut seed 2 in half
    assert [len(g) for g in halves] == [50, 50] and [_seeds(g) for g in halves] == [[0, 1, 2], [2, 3, 4]]
    assert len(bundles(mnist, trials, 10)) == 10 and all(len(_seeds(g)) == 1 for g in bundles(mnist, trials, 10))


def test_the_memory_budget_splits_a_bundle_evenly():
    from cchsweep.grid import bundles
    from searchspaces import STUDIES

    mnist = STUDIES["mnist_blur"]
    trials = plan(mnist, "paper").trials
    seed_major = bundles(mnist, trials, 100, budget=10**12)[0]
    assert len(seed_major) == 100  # one bundle where memory is no limit (the 4 GB default makes it 50 + 50)
    budget = mnist.bundle_bytes([{**t.settings, **t.params} for t in seed_major[:30]])  # 30 points' bytes
    groups = bundles(mnist, trials, 100, budget=budget)
    assert [len(g) for g in groups] == [25, 25, 25, 25]  # the fewest even runs that fit: not 30, 30, 30, 10
    assert all(mnist.bundle_bytes([{**t.settings, **t.params} for t in g]) <= budget for g in groups)


def test_a_bundle_holding_a_gpu_may_take_more_memory_than_one_on_a_cpu():
    from cchsweep.grid import GPU_MEMORY_BUDGET, MEMORY_BUDGET, bundles, memory_budget

    assert memory_budget(0.0) == MEMORY_BUDGET == 4 * 1024**3
    assert memory_budget(1.0) == GPU_MEMORY_BUDGET == 8 * 1024**3
    assert memory_budget(0.25) == 2 * 1024**3  # GPUs shared by bundles share the budget
    assert memory_budget(2.0) == GPU_MEMORY_BUDGET
    mnist = STUDIES["mnist_blur"]
    trials = plan(mnist, "paper").trials
    on_cpu = bundles(mnist, trials, 100, memory_budget(0.0))
    on_gpu = bundles(mnist, trials, 100, memory_budget(1.0))
    assert [len(b) for b in on_cpu] == [50, 50]
    assert [len(b) for b in on_gpu] == [100]  # one KD stack of 100 on a whole GPU
    assert mnist.bundle_bytes([{**t.settings, **t.params} for t in on_gpu[0]]) <= GPU_MEMORY_BUDGET


def test_a_calibration_pair_that_cannot_be_drawn_is_refused_before_the_run():
    # dim=1 passed the range check, then every trial of the Gaussian families failed in its worker
    # (ValueError: informative=2 exceeds min(dx, dy)=1) with Ray's traceback on the terminal
    calibration = STUDIES["mi_calibration"]
    with pytest.raises(UsageError, match=r"mi_calibration: pair few needs dim >= 2"):
        plan(calibration, "smoke", ["dim=1"])
    for pair in ("nonlinear", "heavy"):
        with pytest.raises(UsageError, match=f"pair {pair} needs dim >= 2"):
            plan(calibration, "smoke", ["dim=1", f"pair={pair}"])
    for pair in ("label", "lowrank", "many"):  # these draw one dimension
        assert [t.params["pair"] for t in plan(calibration, "smoke", ["dim=1", f"pair={pair}"]).trials] == [pair] * 2
    assert len(plan(calibration, "paper").trials) == 1440  # the paper grid (label pairs at 2.5 nats: capped) holds
