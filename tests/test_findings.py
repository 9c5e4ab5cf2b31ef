"""analysis/findings.py on a real DuckDB file of hand-made trials: exact verdicts and texts.

Every gain is chosen by hand so that each condition's mean, SE and sign are known: seeds g - d, g, g + d
have mean g and SE d / sqrt(3), so a condition is determined when |g| > 2 d / sqrt(3).
"""

import dataclasses

import pytest
from conftest import trial_row

from analysis.findings import finding_table, findings_frame, gains
from analysis.frame import load_results
from cchsweep.store import Store

SEEDS = (0, 1, 2)
MI = [("i_ts", 1.5, None, "latentmi"), ("i_sl", 1.2, None, "latentmi"),
      ("i_ts", 1.4, None, "ksg"), ("i_sl", 1.3, None, "ksg")]  # two estimator rows per trial: one trial still
BLUR_TEXT = "KD helps with a sharp teacher and hurts with a blurred one"
QUICK_GAMMA0 = "0/3: +0.011 ± 0.001"  # seeds +0.010, +0.012, +0.011


def write(tmp_path, rows, name="f"):
    db = tmp_path / f"{name}.duckdb"
    store = Store(db)
    store.ensure_schema()
    store.write_trials(rows)
    return db


def blur(gamma, t, seed, gain, profile="quick"):
    params = {"alpha": 0.2, "gamma": gamma, "temperature": t, "lam": 0.5, "seed": seed}
    metrics = {"teacher": {"acc": 0.98}, "nokd": {"acc": 0.8}, "kd": {"acc": 0.8 + gain}}
    return trial_row("mnist_blur", params, metrics, MI, "acc", gain, profile=profile)


def boundary(record):
    """The same grid point as a boundary search's trial (its key ends /search, its mode names the search)."""
    return dataclasses.replace(record, trial_key=record.trial_key + "/search", mode="boundary:gamma:kd_gain")


def with_settings(record, **settings):
    """The same grid point run with other fixed settings (`--set`): its own key and settings."""
    extra = ",".join(f"{k}={v}" for k, v in settings.items())
    return dataclasses.replace(record, trial_key=f"{record.trial_key}/{extra}",
                               settings={**record.settings, **settings})


def series(gamma, t, gains_by_seed, profile="quick"):
    return [blur(gamma, t, seed, g, profile) for seed, g in zip(SEEDS, gains_by_seed)]


QUICK = series(0.0, 3.0, (0.010, 0.012, 0.011))


def measured(db, study, profile=None):
    """(measured, agree) of the study's finding, of one profile's rows where given."""
    row = findings_frame(db, [study], **({"profile": profile} if profile else {})).row(0, named=True)
    return row["measured"], row["agree"]


def test_mnist_blur_every_determined_sign_as_table1(tmp_path):
    db = write(tmp_path, QUICK + series(3.5, 3.0, (-0.10, -0.12, -0.09)))
    row = findings_frame(db, ["mnist_blur"]).row(0, named=True)
    assert row["paper"].startswith(BLUR_TEXT)
    assert row["measured"] == ("2/2 determined conditions have the paper's sign (0 undetermined): "
                               f"{QUICK_GAMMA0}, 3.5/3: -0.103 ± 0.009")
    assert row["agree"] == "yes"


def test_mnist_blur_a_wrong_sign_and_an_undetermined_condition(tmp_path):
    db = write(tmp_path, QUICK + series(3.5, 3.0, (0.05, 0.06, 0.07)) + series(0.0, 2.0, (0.01, -0.01, 0.0)))
    assert measured(db, "mnist_blur") == (
        "1/2 determined conditions have the paper's sign (1 undetermined): 0/2: +0.000 ± 0.006 (undetermined), "
        f"{QUICK_GAMMA0}, 3.5/3: +0.060 ± 0.006", "no")


def test_a_cell_the_paper_left_undetermined_is_not_compared(tmp_path):
    # Table 1 at gamma 0, T = 1: +0.0010 ± 0.0040 over five runs (0.25 SE, where 2.78 decide); Table 13 at
    # gamma 0.5: +0.0087 ± 0.0070 (1.2 SE). A determined gain of either sign there is neither agreement
    # nor disagreement, and does not count toward "at least half of the conditions".
    db = write(tmp_path, QUICK + series(0.0, 1.0, (-0.05, -0.06, -0.07)) + series(0.5, 1.0, (0.01, -0.01, 0.0)))
    assert measured(db, "mnist_blur") == (
        "1/1 determined conditions have the paper's sign (0 undetermined; 2 not compared, the paper's sign "
        "undetermined): 0/1: -0.060 ± 0.006 (not compared: the paper's +0.001 ± 0.004 is within its interval), "
        f"{QUICK_GAMMA0}, 0.5/1: +0.000 ± 0.006 (not compared: the paper's +0.007 ± 0.005 is within its interval)",
        "yes")
    # Table 1 at gamma 0.5, T = 2: +0.0152 ± 0.0055 is 2.76 SE, just inside the five-run interval (2.78)
    db = write(tmp_path, series(0.5, 2.0, (-0.05, -0.06, -0.07)), name="edge")
    assert measured(db, "mnist_blur")[1] == "n/a"
    alpha = [dataclasses.replace(r, study="mnist_alpha", trial_key=r.trial_key.replace("mnist_blur", "mnist_alpha"))
             for r in series(0.5, 3.0, (-0.05, -0.06, -0.07)) + series(3.5, 3.0, (-0.40, -0.41, -0.39))]
    db = write(tmp_path, alpha, name="alpha")
    text, agree = measured(db, "mnist_alpha")
    assert text.startswith("1/1 determined conditions have the paper's sign (0 undetermined; 1 not compared, ")
    assert "0.5: -0.060 ± 0.006 (not compared: the paper's +0.009 ± 0.007 is within its interval)" in text
    assert agree == "yes"


def test_mnist_blur_half_undetermined_is_partly(tmp_path):
    undetermined = series(0.5, 3.0, (0.01, -0.01, 0.0)) + series(1.5, 3.0, (0.01, -0.01, 0.0))
    db = write(tmp_path, QUICK + undetermined)
    text, agree = measured(db, "mnist_blur")
    assert text.startswith("1/1 determined conditions have the paper's sign (2 undetermined): ") and agree == "partly"


def test_a_smoke_row_does_not_enter_a_quick_condition(tmp_path):
    db = write(tmp_path, [*QUICK, blur(0.0, 3.0, 0, -0.30, profile="smoke")])
    assert measured(db, "mnist_blur") == (
        f"1/1 determined conditions have the paper's sign (1 undetermined): quick {QUICK_GAMMA0}, "
        "smoke 0/3: -0.300 (undetermined)", "yes")
    assert measured(db, "mnist_blur", "quick") == (
        f"1/1 determined conditions have the paper's sign (0 undetermined): {QUICK_GAMMA0}", "yes")
    assert finding_table(db, ["mnist_blur"], "smoke").endswith(
        "measured: 0/0 determined conditions have the paper's sign (1 undetermined): 0/3: -0.300 (undetermined)")
    table = gains(load_results(db, "mnist_blur"))
    assert table.select("profile", "n_seeds", "determined").rows() == [("quick", 3, True), ("smoke", 1, False)]
    assert table["kd_gain"][0] == pytest.approx(0.011) and table["kd_gain_se"][0] == pytest.approx(0.001 / 3 ** 0.5)


def test_a_boundary_trial_on_a_grid_point_is_no_seed_of_it(tmp_path):
    db = write(tmp_path, [*QUICK, boundary(blur(0.0, 3.0, 0, -0.30)), boundary(blur(1.2345, 3.0, 0, -0.2))])
    assert measured(db, "mnist_blur") == (
        f"1/1 determined conditions have the paper's sign (0 undetermined): {QUICK_GAMMA0}", "yes")
    table = gains(load_results(db, "mnist_blur"))
    assert table.select("gamma", "n_seeds").rows() == [(0.0, 3)] and table["kd_gain"][0] == pytest.approx(0.011)


def test_only_boundary_trials_make_no_finding(tmp_path):
    db = write(tmp_path, [boundary(blur(0.0, 3.0, 0, 0.01))])
    assert measured(db, "mnist_blur") == ("no completed grid trials (only a boundary search's)", "n/a")


def test_other_settings_are_another_condition_named_by_what_differs(tmp_path):
    db = write(tmp_path, [*QUICK, with_settings(blur(0.0, 3.0, 0, -0.30), epochs=50)])
    assert measured(db, "mnist_blur") == (
        f"1/1 determined conditions have the paper's sign (1 undetermined): quick epochs=3 {QUICK_GAMMA0}, "
        "quick epochs=50 0/3: -0.300 (undetermined)", "yes")


def test_an_axis_off_the_papers_keys_is_named_not_pooled(tmp_path):
    other_alpha = [dataclasses.replace(r, trial_key=r.trial_key.replace("alpha=0.2", "alpha=0.5"),
                                       params={**r.params, "alpha": 0.5})
                   for r in series(0.0, 3.0, (-0.30, -0.31, -0.29))]
    db = write(tmp_path, QUICK + other_alpha)
    assert measured(db, "mnist_blur") == (
        f"1/2 determined conditions have the paper's sign (0 undetermined): alpha 0.2 {QUICK_GAMMA0}, "
        "alpha 0.5 0/3: -0.300 ± 0.006", "no")


# --- the synthetic studies: where the gain changes sign along sigma12 ---------------------------------------


def synthetic(gain_by_sigma12, d=0.0002, study="synthetic_sigma12", lam=0.3, profile="quick"):
    """Seeds g - d, g, g + d per sigma12 (mean g, SE d / sqrt(3)); MSE gain = no-KD MSE - KD MSE."""
    rows = []
    for s12, g in gain_by_sigma12.items():
        for seed in SEEDS:
            gain = g + d * (seed - 1)
            metrics = {"teacher": {"mse": 0.5}, "nokd": {"mse": 1.0}, "kd": {"mse": 1.0 - gain}}
            rows.append(trial_row(study, {"sigma12": s12, "lam": lam, "seed": seed}, metrics, MI[:2], "mse", gain,
                                  profile=profile))
    return rows


CROSS_03_04 = {0.0: -0.004, 0.2: 0.0001, 0.3: -0.002, 0.4: 0.001, 0.6: 0.002}  # 0.2: undetermined and positive


def test_a_sign_change_between_0_3_and_0_4_agrees(tmp_path):
    db = write(tmp_path, synthetic(CROSS_03_04))
    assert measured(db, "synthetic_sigma12") == (
        "gain changes sign between sigma12 = 0.3 and 0.4 "
        "(0: -0.0040, 0.2: +0.0001, 0.3: -0.0020, 0.4: +0.0010, 0.6: +0.0020)", "yes")


def test_a_sign_change_between_0_6_and_0_7_does_not(tmp_path):
    db = write(tmp_path, synthetic({0.3: -0.003, 0.6: -0.001, 0.7: 0.002}))
    assert measured(db, "synthetic_sigma12") == (
        "gain changes sign between sigma12 = 0.6 and 0.7 (0.3: -0.0030, 0.6: -0.0010, 0.7: +0.0020)", "no")


def test_a_change_from_positive_to_negative_does_not(tmp_path):
    db = write(tmp_path, synthetic({0.3: 0.003, 0.4: -0.002}))
    assert measured(db, "synthetic_sigma12") == (
        "gain changes sign between sigma12 = 0.3 and 0.4 (0.3: +0.0030, 0.4: -0.0020)", "no")


def test_two_sign_changes_and_too_few_determined_points(tmp_path):
    db = write(tmp_path, synthetic({0.2: -0.003, 0.4: 0.003, 0.5: -0.003, 0.6: 0.003}))
    assert measured(db, "synthetic_sigma12") == (
        "gain changes sign between sigma12 = 0.2 and 0.4 (0.2: -0.0030, 0.4: +0.0030, 0.5: -0.0030, 0.6: +0.0030)",
        "no")
    db = write(tmp_path, synthetic({0.2: -0.003, 0.4: 0.0001}), "few")
    assert measured(db, "synthetic_sigma12") == ("1 determined sigma12 values: no crossing to judge", "n/a")


def test_a_crossing_bracketed_only_by_far_points_is_not_a_yes(tmp_path):
    """Determined gains at 0.1 (-) and 0.7 (+) alone: the crossing may be anywhere between, so the claim
    "in [0.3, 0.5]" is only partly borne out (it was a "yes": the bracket overlapped the window)."""
    db = write(tmp_path, synthetic({0.1: -0.003, 0.4: 0.0001, 0.7: 0.003}))
    assert measured(db, "synthetic_sigma12") == (
        "gain changes sign between sigma12 = 0.1 and 0.7 (0.1: -0.0030, 0.4: +0.0001, 0.7: +0.0030): the determined "
        "gains place it no closer, and that is not inside [0.3, 0.5]", "partly")
    db = write(tmp_path, synthetic({0.5: -0.003, 0.6: 0.003}), "edge")  # a bracket on the window's edge: outside
    assert measured(db, "synthetic_sigma12")[1] == "no"


def test_each_lambda_and_profile_is_judged_apart(tmp_path):
    lam = {"study": "synthetic_lambda"}
    rows = (synthetic({0.3: 0.003, 0.4: -0.002}, lam=0.2, **lam) + synthetic(CROSS_03_04, lam=0.5, **lam)
            + synthetic({0.2: -0.003, 0.4: 0.002}, lam=0.8, **lam)
            + synthetic({0.1: 0.003, 0.7: -0.003}, lam=0.3, profile="smoke", **lam))
    db = write(tmp_path, rows)
    text, agree = measured(db, "synthetic_lambda")
    assert text.split("; ") == [
        "quick lambda 0.2: gain changes sign between sigma12 = 0.3 and 0.4 (0.3: +0.0030, 0.4: -0.0020)",
        "quick lambda 0.5: gain changes sign between sigma12 = 0.3 and 0.4 "
        "(0: -0.0040, 0.2: +0.0001, 0.3: -0.0020, 0.4: +0.0010, 0.6: +0.0020)",
        "quick lambda 0.8: gain changes sign between sigma12 = 0.2 and 0.4 (0.2: -0.0030, 0.4: +0.0020): the "
        "determined gains place it no closer, and that is not inside [0.3, 0.5]",
        "smoke lambda 0.3: gain changes sign between sigma12 = 0.1 and 0.7 (0.1: +0.0030, 0.7: -0.0030)",
    ]
    assert agree == "no"
    text, agree = measured(db, "synthetic_lambda", "quick")
    assert text.split("; ")[0].startswith("lambda 0.2: gain changes sign") and agree == "partly"


# --- MOSEI (Tables 3 and 4): the gain's sign against the paper's, weighted F1 ---------------------------------


def mosei(study, params, gains_by_seed):
    rows = []
    for seed, gain in zip(SEEDS, gains_by_seed):
        metrics = {"teacher": {"f1_weighted": 0.72}, "nokd": {"f1_weighted": 0.62},
                   "kd": {"f1_weighted": 0.62 + gain}}
        rows.append(trial_row(study, {**params, "seed": seed}, metrics, MI, "f1_weighted", gain))
    return rows


def test_mosei_findings_compare_each_gain_with_the_papers_sign(tmp_path):
    text = {"teacher_modality": "text"}
    db = write(tmp_path, mosei("mosei_teacher", {**text, "student_modality": "vision"}, (0.010, 0.012, 0.011))
               + mosei("mosei_teacher", {**text, "student_modality": "audio"}, (-0.020, -0.022, -0.021)))
    assert measured(db, "mosei_teacher") == (
        "1/2 determined conditions have the paper's sign (0 undetermined): text/audio: -0.021 ± 0.001, "
        "text/vision: +0.011 ± 0.001", "no")
    noisy = {**text, "student_modality": "vision"}
    db = write(tmp_path, mosei("mosei_noise", {**noisy, "noise": 0.0}, (0.010, 0.012, 0.011))
               + mosei("mosei_noise", {**noisy, "noise": 0.4}, (-0.004, -0.006, -0.005))
               + mosei("mosei_noise", {**noisy, "noise": 0.8}, (0.003, -0.004, 0.002)), "noise")
    found, agree = measured(db, "mosei_noise")
    assert agree == "yes" and found.startswith("2/2 determined conditions have the paper's sign (1 undetermined)")
    assert findings_frame(db, ["mosei_noise"]).row(0, named=True)["paper"].startswith("text -> vision: KD helps")


def test_conditions_the_paper_does_not_report_are_said_so(tmp_path):
    """advise --verify's trials are tcga_noise trials of a user's cohort: the finding said "0/0 determined
    conditions have the paper's sign (0 undetermined): " with an empty list."""
    params = {"cohort": "/data/mine@sha256:0123456789ab", "teacher_modality": "a", "student_modality": "b",
              "noise": 0.0}
    rows = [trial_row("tcga_noise", {**params, "seed": seed}, {"kd": {"f1_weighted": 0.5}}, MI, "f1_weighted", 0.01)
            for seed in SEEDS]
    db = write(tmp_path, rows)
    assert measured(db, "tcga_noise") == ("no measured condition is one the paper reports (1 measured)", "n/a")


# --- the estimators' study: does the gap's sign agree across estimators? ---------------------------------


def estimators_rows(pair_gaps, profile="quick", cohort="brca"):
    rows = []
    for teacher, gaps in pair_gaps.items():
        for seed in SEEDS:
            mi = [q for est, gap in gaps.items() for q in (("i_ts", 1.0 + gap, None, est), ("i_sl", 1.0, None, est))]
            params = {"cohort": cohort, "teacher_modality": teacher, "student_modality": "cnv", "noise": 0.0,
                      "temperature": 2.0, "lam": 0.5, "seed": seed}
            rows.append(trial_row("tcga_estimators", params, {"kd": {"f1_weighted": 0.5}}, mi, "f1_weighted", 0.0,
                                  profile=profile))
    return rows


def test_estimators_agree_on_one_pairing_and_split_on_the_other(tmp_path):
    rows = estimators_rows({"rppa": {"ksg": -0.118, "latentmi": -0.150}, "mrna": {"ksg": -0.014, "latentmi": 0.035}})
    rows.append(boundary(estimators_rows({"mrna": {"ksg": 0.5, "latentmi": 0.5}})[0]))
    db = write(tmp_path, rows)
    assert measured(db, "tcga_estimators") == (
        "mrna -> cnv: ksg -0.014, latentmi +0.035; rppa -> cnv: ksg -0.118, latentmi -0.150", "no")
    rows = estimators_rows({"rppa": {"ksg": -0.118, "latentmi": -0.150}})
    rows += estimators_rows({"rppa": {"ksg": 0.2, "latentmi": -0.1}}, profile="smoke")
    db = write(tmp_path, rows, "two")
    assert measured(db, "tcga_estimators") == (
        "quick rppa -> cnv: ksg -0.118, latentmi -0.150; smoke rppa -> cnv: ksg +0.200, latentmi -0.100", "no")
    assert measured(db, "tcga_estimators", "quick") == ("rppa -> cnv: ksg -0.118, latentmi -0.150", "yes")


def test_an_estimator_with_no_finite_gap_gives_no_sign_and_cohorts_are_not_pooled(tmp_path):
    # mine's gap NaN on every seed: it is left out, not averaged in as a negative sign (it was: "yes"
    # here, and "no" with the other two positive)
    rows = estimators_rows({"rppa": {"ksg": 0.118, "latentmi": 0.150, "mine": float("nan")}})
    assert measured(write(tmp_path, rows), "tcga_estimators") == ("rppa -> cnv: ksg +0.118, latentmi +0.150", "yes")
    # two cohorts of one pairing, signs opposite: two conditions, named by cohort (they once averaged to 0)
    kipan = estimators_rows({"rppa": {"ksg": -0.3, "latentmi": -0.3}}, cohort="kipan")
    rows = estimators_rows({"rppa": {"ksg": 0.3, "latentmi": 0.3}}) + kipan
    assert measured(write(tmp_path, rows, "cohorts"), "tcga_estimators") == (
        "rppa -> cnv cohort=brca: ksg +0.300, latentmi +0.300; rppa -> cnv cohort=kipan: ksg -0.300, latentmi -0.300",
        "yes")
