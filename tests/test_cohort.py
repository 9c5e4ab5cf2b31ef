"""TCGA cohorts: loading and joining the real offline data, leak-free preprocessing, mRMR, noise.

Reads the real offline cohorts in ../shared/data/tcga (relative to the project root); never downloads.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cchsweep.data.cohort import (
    Cohort,
    _f_statistic,
    add_noise,
    list_modalities,
    load_cohort,
    mrmr_select,
    prepare,
)
from cchsweep.errors import UsageError

TCGA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tcga"
BRCA, KIPAN = TCGA / "brca", TCGA / "kipan"


@pytest.fixture(scope="module")
def brca_rppa_cnv() -> Cohort:
    return load_cohort(BRCA, ["rppa", "cnv"], min_modalities=2)


@pytest.fixture(scope="module")
def kipan() -> Cohort:
    return load_cohort(KIPAN, ["rppa", "cnv"], min_modalities=2)


# --- the real cohorts -------------------------------------------------------------------------

def test_list_modalities():
    assert list_modalities(BRCA) == ["cnv", "mrna", "rppa"]
    assert list_modalities(KIPAN) == ["cnv", "rppa"]


def test_brca_mrna_cnv_is_190_patients_3_subtypes():
    cohort = load_cohort(BRCA, ["mrna", "cnv"], min_modalities=2)
    # 192 patients have mRNA; 190 of them also have CNV and a PAM50 label (PROVENANCE.md).
    assert len(cohort.patients) == 190
    assert cohort.classes == ["Basal", "Her2", "LumA"]
    assert np.bincount(cohort.y).tolist() == [62, 40, 88]
    assert cohort.x["mrna"].shape == (190, 200) and cohort.x["cnv"].shape == (190, 515)
    assert len(cohort.features["cnv"]) == 515 and cohort.modalities == ["mrna", "cnv"]
    assert cohort.patients == sorted(cohort.patients)


def test_brca_rppa_cnv_keeps_every_labeled_patient(brca_rppa_cnv):
    # RPPA and CNV share all 873 patients; 12 of those have no PAM50 label and are dropped,
    # and every one of the 861 labeled patients has both modalities, so the join loses none.
    cohort = brca_rppa_cnv
    assert len(cohort.patients) == 861
    assert cohort.classes == ["Basal", "Her2", "LumA", "LumB", "Normal"]
    assert np.bincount(cohort.y).tolist() == [153, 74, 429, 176, 29]
    assert cohort.x["rppa"].shape == (861, 164) and cohort.x["cnv"].shape == (861, 515)


def test_kipan_rppa_cnv_is_747_patients_3_classes(kipan):
    assert len(kipan.patients) == 747
    assert kipan.classes == ["KICH", "KIRC", "KIRP"]
    assert np.bincount(kipan.y).tolist() == [63, 471, 213]
    assert kipan.x["rppa"].shape == (747, 227) and kipan.x["cnv"].shape == (747, 567)
    # RPPA antibody panels differ by project: missing values stay NaN until `prepare`.
    assert np.isnan(kipan.x["rppa"]).mean() > 0.05


# --- split and preprocessing ------------------------------------------------------------------

def test_stratified_split_keeps_proportions_and_differs_by_seed(brca_rppa_cnv):
    cohort = brca_rppa_cnv
    a, b, a_again = prepare(cohort, 0), prepare(cohort, 1), prepare(cohort, 0)
    counts = np.bincount(cohort.y)
    for prep in (a, b):
        assert sorted(prep.train_patients + prep.test_patients) == cohort.patients
        assert not set(prep.train_patients) & set(prep.test_patients)
        test_counts = np.bincount(prep.y_test, minlength=len(counts))
        train_counts = np.bincount(prep.y_train, minlength=len(counts))
        assert (test_counts >= 1).all() and (train_counts >= 1).all()  # Normal (29) too
        assert np.all(np.abs(test_counts - 0.1 * counts) <= 1)
        assert len(prep.y_test) == int(np.ceil(0.1 * len(cohort.y)))  # sklearn rounds the test size up
    assert a.test_patients != b.test_patients
    assert a_again.test_patients == a.test_patients
    for m in ("rppa", "cnv"):
        np.testing.assert_array_equal(a_again.x_train[m], a.x_train[m])
        assert a_again.features[m] == a.features[m]


def test_prepare_standardizes_selects_and_fills(kipan):
    prep = prepare(kipan, seed=3)
    for m in ("rppa", "cnv"):
        x_train, x_test = prep.x_train[m], prep.x_test[m]
        assert x_train.shape == (len(prep.y_train), 100) and x_test.shape == (len(prep.y_test), 100)
        assert x_train.dtype == np.float32 and np.isfinite(x_train).all() and np.isfinite(x_test).all()
        np.testing.assert_allclose(x_train.mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(prep.train_std[m], 1.0, atol=1e-6)
        assert len(set(prep.features[m])) == 100 and set(prep.features[m]) <= set(kipan.features[m])
    # A modality with no more than n_features columns keeps them all, in file order.
    small = prepare(kipan, seed=3, n_features=300)
    assert small.features["rppa"] == kipan.features["rppa"]


def test_test_rows_do_not_influence_imputer_scaler_or_selection(kipan):
    """Wildly perturb the test rows: everything fitted on train must stay bit-identical."""
    seed = 5
    base = prepare(kipan, seed)
    test_rows = np.isin(kipan.patients, base.test_patients)
    rng = np.random.default_rng(0)
    x_wild = {}
    for m, values in kipan.x.items():
        wild = values.copy()
        block = 1e4 + 1e3 * rng.standard_normal((test_rows.sum(), values.shape[1]))
        # Class-dependent shifts so that leaked test rows would also change the F-statistics.
        block += 1e3 * kipan.y[test_rows][:, None] * rng.standard_normal(values.shape[1])
        block[rng.random(block.shape) < 0.3] = np.nan  # and the missingness pattern
        wild[test_rows] = block
        x_wild[m] = wild
    perturbed = replace(kipan, x=x_wild)
    after = prepare(perturbed, seed)

    assert after.test_patients == base.test_patients
    for m in kipan.x:
        np.testing.assert_array_equal(after.x_train[m], base.x_train[m])
        np.testing.assert_array_equal(after.train_std[m], base.train_std[m])
        assert after.features[m] == base.features[m]
        assert not np.allclose(after.x_test[m], base.x_test[m])  # the perturbation did land

        # The check has teeth: statistics over ALL rows do move with the perturbation.
        full, wild = kipan.x[m], x_wild[m]
        assert not np.allclose(np.nanmedian(full, 0), np.nanmedian(wild, 0), equal_nan=True)
        assert not np.allclose(np.nanmean(full, 0), np.nanmean(wild, 0))
        filled = np.where(np.isnan(wild), np.nanmedian(wild, 0), wild)
        filled = np.nan_to_num(filled)
        assert list(mrmr_select(filled, kipan.y, 100)) != [
            kipan.features[m].index(f) for f in base.features[m]
        ]

    # Test rows are transformed with the train median, mean and std of each selected feature.
    m = "rppa"
    train_raw = kipan.x[m][~test_rows]
    cols = [kipan.features[m].index(f) for f in base.features[m]]
    median = np.nanmedian(train_raw, axis=0)
    filled_train = np.where(np.isnan(train_raw), median, train_raw)
    mean, std = filled_train.mean(axis=0), filled_train.std(axis=0)
    test_raw = kipan.x[m][test_rows]
    expected = (np.where(np.isnan(test_raw), median, test_raw) - mean) / std
    np.testing.assert_allclose(base.x_test[m], expected[:, cols], rtol=1e-5, atol=1e-5)


def test_prepare_handles_a_column_missing_in_every_train_row():
    rng = np.random.default_rng(1)
    n = 60
    y = np.repeat([0, 1], n // 2)
    x = rng.standard_normal((n, 4))
    x[:, 0] = np.nan  # no observation at all: filled with 0, then constant
    x[::7, 1] = np.nan
    cohort = Cohort("toy", [f"p{i:02d}" for i in range(n)], {"a": x}, {"a": list("wxyz")}, y, ["u", "v"])
    prep = prepare(cohort, seed=0, n_features=2)
    assert np.isfinite(prep.x_train["a"]).all() and np.isfinite(prep.x_test["a"]).all()
    assert "w" not in prep.features["a"]  # a constant column has no relevance


# --- mRMR -------------------------------------------------------------------------------------

COPY = 14


def _synthetic(seed: int, n: int = 300, p: int = 50):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, p))
    x[:, 2] += 1.5 * y  # informative: separates all three classes
    x[:, 9] += 2.0 * (y == 1)  # informative, uncorrelated with column 2, less relevant
    x[:, COPY] = x[:, 2] + 0.1 * rng.standard_normal(n)  # near copy of 2: relevant but redundant
    return x, y


@pytest.mark.parametrize("seed", range(3))
def test_mrmr_picks_informative_features_and_skips_a_redundant_copy(seed):
    x, y = _synthetic(seed)
    by_relevance = list(np.argsort(-_f_statistic(x, y)))
    assert set(by_relevance[:2]) == {2, COPY}  # plain F ranking would take the copy second
    selected = list(mrmr_select(x, y, 10))
    # mRMR takes the two informative features first: after column 2, the copy's quotient is
    # divided by |corr| ~ 0.99 while column 9's is divided by a small correlation.
    assert set(selected[:2]) in ({2, 9}, {COPY, 9})
    assert selected[1] not in (2, COPY)
    assert list(mrmr_select(x, y, 5)) == selected[:5]  # greedy: a shorter run is a prefix
    assert len(set(selected)) == 10


def test_mrmr_matches_the_mrmr_selection_package():
    import mrmr  # the test extra installs mrmr-selection: the cross-check always runs
    import pandas as pd
    for seed in range(3):
        x, y = _synthetic(seed, n=150, p=25)
        rng = np.random.default_rng(seed + 10)
        x[:, 3] = 0.6 * x[:, 7] + 0.8 * rng.standard_normal(len(y))  # graded redundancy too
        names = [f"f{i}" for i in range(x.shape[1])]
        expected = mrmr.mrmr_classif(pd.DataFrame(x, columns=names), pd.Series(y), K=12,
                                     n_jobs=1, show_progress=False)
        assert [names[i] for i in mrmr_select(x, y, 12)] == expected


def test_mrmr_rejects_missing_values():
    with pytest.raises(ValueError, match="impute"):
        mrmr_select(np.array([[np.nan, 1.0], [2.0, 3.0]]), np.array([0, 1]), 1)


# --- noise ------------------------------------------------------------------------------------

def test_noise_std_is_level_times_train_std():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 4)).astype(np.float32)
    train_std = np.array([0.5, 1.0, 2.0, 0.0])
    noisy = add_noise(x, 0.2, train_std, np.random.default_rng(1))
    added = noisy.astype(np.float64) - x
    assert noisy.dtype == np.float32 and noisy.shape == x.shape
    np.testing.assert_allclose(added.std(axis=0), 0.2 * train_std, rtol=0.03, atol=1e-6)
    np.testing.assert_allclose(added.mean(axis=0), 0.0, atol=0.01)
    assert np.array_equal(add_noise(x, 0.0, train_std, rng), x)
    # One rng state gives one noise pattern, scaled by the level.
    at_40 = add_noise(x, 0.4, train_std, np.random.default_rng(1)).astype(np.float64) - x
    np.testing.assert_allclose(at_40, 2 * added, rtol=1e-3, atol=1e-5)


def test_noise_on_prepared_data_has_std_level(kipan):
    prep = prepare(kipan, seed=0)
    x = prep.x_train["cnv"]
    added = add_noise(x, 0.6, prep.train_std["cnv"], np.random.default_rng(2)) - x
    assert abs(added.std() - 0.6) < 0.01


def test_noise_rejects_bad_level_and_shape():
    x = np.zeros((3, 2))
    with pytest.raises(UsageError, match="fraction"):
        add_noise(x, 20, np.ones(2), np.random.default_rng(0))
    with pytest.raises(UsageError, match="same modality"):
        add_noise(x, 0.2, np.ones(3), np.random.default_rng(0))


# --- bad input --------------------------------------------------------------------------------

LABELS = "patient,subtype\nA,x\nB,y\nC,x\nD,y\n"
MOD = "patient,g1,g2\nA,1,2\nB,3,4\nC,5,6\nD,7,8\n"


def _cohort(tmp_path: Path, **files: str) -> Path:
    root = tmp_path / "cohort"
    root.mkdir()
    for name, text in files.items():
        (root / name.replace("__", ".")).write_text(text)
    return root


def _raises(match: str, *args, **kwargs) -> str:
    with pytest.raises(UsageError, match=match) as info:
        load_cohort(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_good_toy_cohort_loads_with_nan_for_missing(tmp_path):
    root = _cohort(tmp_path, labels__csv=LABELS + "E,\n", a__csv="patient,g1\nA,1\nB,NA\nC,\nD,4\nE,5\n",
                   b__csv=MOD)
    cohort = load_cohort(root, ["a", "b"], min_modalities=2)
    assert cohort.patients == ["A", "B", "C", "D"]  # E has no label
    assert cohort.classes == ["x", "y"] and cohort.y.tolist() == [0, 1, 0, 1]
    np.testing.assert_array_equal(cohort.x["a"][:, 0], [1, np.nan, np.nan, 4])


def test_parquet_modality_is_read(tmp_path):
    import polars as pl

    root = _cohort(tmp_path, labels__csv=LABELS, a__csv=MOD)
    pl.DataFrame({"patient": ["A", "B", "C", "D"], "h": [1.0, 2.0, 3.0, 4.0]}).write_parquet(root / "b.parquet")
    assert list_modalities(root) == ["a", "b"]
    assert load_cohort(root, ["a", "b"]).x["b"][:, 0].tolist() == [1, 2, 3, 4]


def test_missing_cohort_dir(tmp_path):
    message = _raises("does not exist", tmp_path / "nope", ["cnv"])
    assert "nope" in message
    with pytest.raises(UsageError, match="does not exist"):
        list_modalities(tmp_path / "nope")


def test_unknown_modality_lists_the_available_ones():
    message = _raises("unknown modality 'protein'", KIPAN, ["rppa", "protein"])
    assert "available: cnv, rppa" in message


def test_one_modality_where_two_are_needed():
    _raises(r"2 modalities are needed but 1 given \(\['cnv'\]\); choose from", KIPAN, ["cnv"], min_modalities=2)


def test_no_overlapping_patients(tmp_path):
    root = _cohort(tmp_path, labels__csv=LABELS, a__csv=MOD, b__csv="patient,h\nX,1\nY,2\n")
    _raises("share no patient", root, ["a", "b"])


def test_missing_labels_file_or_column(tmp_path):
    root = _cohort(tmp_path, a__csv=MOD)
    _raises("no labels.csv", root, ["a"])
    (root / "labels.csv").write_text("patient,class\nA,x\nB,y\n")
    _raises("no 'subtype' column", root, ["a"])


def test_non_numeric_feature_names_file_and_column(tmp_path):
    root = _cohort(tmp_path, labels__csv=LABELS, a__csv="patient,g1,g2\nA,1,2\nB,3,high\nC,5,6\nD,7,8\n")
    message = _raises("non-numeric", root, ["a"])
    assert "a.csv" in message and "'g2'" in message and "'high'" in message


def test_a_repeated_column_or_a_short_row_is_refused(tmp_path):
    """polars renamed a repeated column (g1_duplicated_0) and padded a short row with missing values: both
    trained as if the file were whole."""
    root = _cohort(tmp_path, labels__csv=LABELS, a__csv="patient,g1,g1\nA,1,2\nB,3,4\nC,5,6\nD,7,8\n", b__csv=MOD)
    _raises(r"a.csv names column 'g1' more than once", root, ["a", "b"])
    (root / "a.csv").write_text("patient,g1,g2\nA,1,2\nB,3\nC,5,6\nD,7,8\n")
    _raises(r"a.csv row 3 has 2 fields, the header 3", root, ["a", "b"])
    (root / "a.csv").write_text('patient,g1,"g,2"\nA,1,2\nB,3,"4"\nC,5,6\nD,7,8\n')  # a quoted comma is one field
    assert load_cohort(root, ["a", "b"]).x["a"][:, 1].tolist() == [2, 4, 6, 8]


def test_empty_files(tmp_path):
    root = _cohort(tmp_path, labels__csv=LABELS, a__csv="", b__csv="patient,g1\n")
    _raises("a.csv is empty", root, ["a"])
    _raises("b.csv is empty", root, ["b"])
    (root / "labels.csv").write_text("")
    _raises("labels.csv is empty", root, ["b"])


def test_a_single_class_after_the_join(tmp_path):
    # Two classes in labels.csv, but only the "x" patients (A, C) have both modalities.
    root = _cohort(tmp_path, labels__csv=LABELS, a__csv=MOD, b__csv="patient,h\nA,1\nC,2\n")
    _raises("all have subtype 'x'.*at least two classes", root, ["a", "b"])


def test_no_labeled_patient_after_the_join(tmp_path):
    root = _cohort(tmp_path, labels__csv="patient,subtype\nZ,x\n", a__csv=MOD)
    _raises("has a label", root, ["a"])


def test_bad_split_arguments(brca_rppa_cnv):
    with pytest.raises(UsageError, match="test_fraction"):
        prepare(brca_rppa_cnv, 0, test_fraction=1.0)
    with pytest.raises(UsageError, match="n_features"):
        prepare(brca_rppa_cnv, 0, n_features=0)
