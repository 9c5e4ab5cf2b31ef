"""The TCGA and MOSEI report pages (analysis/paper_tables.py): hand-made trials in a real DuckDB file,
the paper's numbers from the study modules, and hand-computed means and SEs."""

import math

import polars as pl
import pytest
from conftest import check_vocabulary
from conftest import trial_row as row

from analysis.report import write_report
from cchsweep.store import Store

SEEDS = (0, 1, 2)
NOISE_GAIN = {("mrna", 0.0): 0.05, ("mrna", 0.6): -0.03, ("rppa", 0.0): 0.02, ("rppa", 0.6): -0.01}
NOISE_I_TS = {0.0: 0.5, 0.6: 0.2}
# estimator -> student -> (I_TS, I_SL, I_TL); each + 0.01 * seed
ESTIMATES = {"latentmi": {"vision": (1.3, 0.08, 0.40), "audio": (1.4, 0.10, 0.50)},
             "mine": {"vision": (0.8, 0.04, 0.30), "audio": (1.2, 0.06, 0.34)},
             "ksg": {"vision": (0.4, 0.06, 0.16), "audio": (0.7, 0.09, 0.18)}}


def se(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) / math.sqrt(len(values))


def f1_metrics(nokd: float, kd: float, teacher: float = 0.75) -> dict:
    return {"teacher": {"acc": teacher, "f1_weighted": teacher}, "nokd": {"acc": nokd, "f1_weighted": nokd},
            "kd": {"acc": kd, "f1_weighted": kd}}


def tcga_noise_rows():
    rows = []
    for (teacher, noise), gain in NOISE_GAIN.items():
        for seed in SEEDS:
            nokd = 0.45 + 0.01 * seed
            mi = [("i_ts", NOISE_I_TS[noise] + 0.01 * seed, None), ("i_sl", 0.28, None), ("i_tl", 1.1, None)]
            params = {"cohort": "brca", "teacher_modality": teacher, "student_modality": "cnv", "noise": noise,
                      "seed": seed}
            rows.append(row("tcga_noise", params, f1_metrics(nokd, nokd + gain + 0.01 * seed), mi, "f1_weighted",
                            gain + 0.01 * seed, profile="paper"))
    # a boundary search's trial on the grid point (mrna, noise 0, seed 0), far off: no seed of any table cell
    search = row("tcga_noise", {**rows[0].params}, f1_metrics(0.45, 0.15), [("i_ts", 0.1, None), ("i_sl", 0.28, None),
                 ("i_tl", 1.1, None)], "f1_weighted", -0.30, profile="paper")
    search.trial_key, search.mode = rows[0].trial_key + "/search", "boundary:noise:mi_gap"
    return [*rows, search]


def tcga_fusion_rows():
    rows = []
    for teacher, gain in (("mrna", 0.06), ("rppa", 0.03)):
        for seed in SEEDS:
            nokd = 0.70 + 0.02 * seed
            metrics = {m: {"acc": v, "auc": v + 0.1, "f1_macro": v - 0.1, "f1_weighted": v}
                       for m, v in (("teacher", 0.8), ("nokd", nokd), ("kd", nokd + gain))}
            mi = [("i_ts", 0.5, None), ("i_sl", 0.3, None), ("i_tl", 1.0 + 0.1 * seed, None)]
            rows.append(row("tcga_fusion", {"cohort": "brca", "teacher_modality": teacher, "student_modality": "cnv",
                                            "seed": seed}, metrics, mi, "f1_weighted", gain, profile="paper"))
    return rows


def mosei_rows():
    rows = []
    for student, gain in (("vision", 0.01), ("audio", 0.02)):
        for seed in SEEDS:
            nokd = 0.6 + 0.01 * seed
            mi = [("i_ts", 1.3 + 0.01 * seed, None), ("i_sl", 0.08, None), ("i_tl", 0.47, None)]
            rows.append(row("mosei_teacher", {"teacher_modality": "text", "student_modality": student, "seed": seed},
                            f1_metrics(nokd, nokd + gain, 0.72), mi, "f1_weighted", gain, profile="paper"))
    for noise, gain in ((0.0, 0.01), (0.2, -0.005)):
        for seed in SEEDS:
            i_ts = (1.3 if noise == 0 else 0.01) + 0.01 * seed
            mi = [("i_ts", i_ts, None), ("i_sl", 0.08, None), ("i_tl", 0.47, None)]
            rows.append(row("mosei_noise", {"teacher_modality": "text", "student_modality": "vision", "noise": noise,
                                            "seed": seed}, f1_metrics(0.62, 0.62 + gain, 0.72), mi, "f1_weighted", gain,
                            profile="paper"))
    for student in ("vision", "audio"):
        for seed in SEEDS[:2]:
            mi = [(q, v + 0.01 * seed, None, est) for est, by in ESTIMATES.items()
                  for q, v in zip(("i_ts", "i_sl", "i_tl"), by[student])]
            rows.append(row("mi_estimators", {"teacher_modality": "text", "student_modality": student, "seed": seed},
                            f1_metrics(0.6, 0.61), mi, "f1_weighted", 0.01, profile="paper"))
    return rows


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper_tables")
    db = tmp / "r.duckdb"
    Store(db).ensure_schema()
    Store(db).write_trials(tcga_noise_rows() + tcga_fusion_rows() + mosei_rows())
    out = tmp / "out"
    for study in ("tcga_noise", "tcga_fusion", "mosei_teacher", "mosei_noise", "mi_estimators"):
        write_report(db, study, out)
    return out


def read(out, study, name):
    return pl.read_csv(out / study / f"{name}.csv")


def test_tables_5_to_7_layout_with_the_paper_beside(pages):
    table5 = read(pages, "tcga_noise", "table5").sort("noise")
    assert table5["noise"].to_list() == [0.0, 0.6] and set(table5["teacher_modality"]) == {"mrna"}
    for cell in table5.iter_rows(named=True):
        gains = [NOISE_GAIN[("mrna", cell["noise"])] + 0.01 * s for s in SEEDS]
        assert cell["kd_gain"] == pytest.approx(sum(gains) / 3) and cell["kd_gain_se"] == pytest.approx(se(gains))
        assert cell["i_ts"] == pytest.approx(NOISE_I_TS[cell["noise"]] + 0.01)
        assert cell["mi_gap"] == pytest.approx(NOISE_I_TS[cell["noise"]] + 0.01 - 0.28)
        assert cell["nokd_f1_weighted"] == pytest.approx(0.46) and cell["n_seeds"] == 3
    # the paper's Table 5 row by row, as printed
    assert table5.row(0, named=True)["paper_i_ts"] == 0.5005 and table5.row(0, named=True)["paper_kd_gain"] == 0.0477
    assert table5.row(1, named=True)["paper_mi_gap"] == -0.061 and table5.row(1, named=True)["paper_kd_gain"] == -0.0285
    # RPPA -> CNV is not in the paper: same layout, no paper numbers
    rppa = read(pages, "tcga_noise", "table_brca_rppa_cnv")
    assert rppa.height == 2 and rppa["paper_i_ts"].null_count() == 2
    assert rppa.sort("noise")["kd_gain"].to_list() == pytest.approx([0.03, 0.0])
    teachers = read(pages, "tcga_noise", "teachers").sort("teacher_modality")
    assert teachers["paper_teacher_f1_weighted"].to_list() == [0.7459, None]
    assert teachers["paper_i_tl"].to_list() == [1.1081, None]
    assert teachers["i_tl"].to_list() == pytest.approx([1.1, 1.1])
    page = (pages / "tcga_noise" / "index.html").read_text()
    assert "Table 5: student weighted F1 and MI vs noise" in page and "0.0600 ± 0.0058" in page and "0.5005" in page
    for chart in ("f1_vs_noise", "mi_vs_noise", "gain_vs_gap"):
        assert (pages / "tcga_noise" / f"{chart}.png").stat().st_size > 1000
    assert "dashed: paper" in page


def test_one_visual_vocabulary_on_the_paper_table_pages(pages):
    found = {s: check_vocabulary(pages / s / "index.html") for s in ("tcga_noise", "tcga_fusion", "mosei_teacher",
                                                                    "mosei_noise", "mi_estimators")}
    assert found["tcga_noise"][1] >= 2  # the paper's F1 and MI drawn dashed beside the measured curves
    assert all(bars > 0 for bars, _ in found.values())


def test_fusion_tables_8_and_20(pages):
    table20 = read(pages, "tcga_fusion", "table20").sort("teacher_modality")
    assert not (pages / "tcga_fusion" / "table8.csv").exists()  # no KIPAN rows, no Table 8
    mrna, rppa = table20.rows(named=True)
    assert mrna["kd_f1_weighted"] == pytest.approx(0.78) and mrna["nokd_auc"] == pytest.approx(0.82)
    assert mrna["kd_f1_weighted_se"] == pytest.approx(se([0.76, 0.78, 0.80]))
    assert mrna["i_tl"] == pytest.approx(1.1) and mrna["mi_gap"] == pytest.approx(0.2)
    assert (mrna["paper_kd_f1_weighted"], mrna["paper_nokd_auc"], mrna["paper_i_tl"]) == (0.8225, 0.9157, 1.1081)
    assert mrna["paper_mi_gap"] == 0.23 and mrna["paper_kd_gain"] == pytest.approx(0.0662)
    assert rppa["paper_kd_acc"] == 0.6024 and rppa["kd_gain"] == pytest.approx(0.03)
    page = (pages / "tcga_fusion" / "index.html").read_text()
    assert "Table 20: direct fusion vs Fusion+KD on BRCA" in page and "Fusion+KD weighted F1 · paper" in page
    assert (pages / "tcga_fusion" / "fusion_f1.png").stat().st_size > 1000


def test_mosei_tables_3_and_4(pages):
    table3 = read(pages, "mosei_teacher", "table3").sort("student_modality")
    audio, vision = table3.rows(named=True)
    assert audio["kd_gain"] == pytest.approx(0.02) and audio["kd_f1_weighted"] == pytest.approx(0.63)
    assert (audio["paper_kd_acc"], audio["paper_kd_acc_pm"]) == (0.6167, 0.0030)
    assert vision["paper_kd_gain"] == 0.0111 and vision["paper_mi_gap"] == pytest.approx(1.2727)
    assert vision["i_ts"] == pytest.approx(1.31) and vision["i_ts_se"] == pytest.approx(se([1.30, 1.31, 1.32]))
    teacher = read(pages, "mosei_teacher", "teachers").row(0, named=True)
    assert teacher["teacher_acc"] == pytest.approx(0.72)
    assert (teacher["paper_teacher_acc"], teacher["paper_i_tl"]) == (0.7190, 0.4681)
    table4 = read(pages, "mosei_noise", "table4").sort("noise")
    at0, at20 = table4.rows(named=True)
    # the un-swapped F1 columns: KD 0.6192 and no-KD 0.6204 at 20 %
    assert (at20["paper_kd_f1_weighted"], at20["paper_nokd_f1_weighted"]) == (0.6192, 0.6204)
    assert at20["paper_mi_gap"] == -0.0782 and at0["paper_kd_gain"] == 0.0111
    assert at20["kd_gain"] == pytest.approx(-0.005) and at20["mi_gap"] == pytest.approx(0.02 - 0.08)
    page = (pages / "mosei_noise" / "index.html").read_text()
    assert "0.6192 ± 0.0062" in page  # the paper's ± as printed


def test_table2_one_row_per_estimator(pages):
    table2 = read(pages, "mi_estimators", "table2")
    quantities = [c for c in table2.columns if c.startswith(("i_", "gap_")) and not c.endswith("_se")]
    assert quantities == ["i_text_vision", "i_text_audio", "i_text_y", "i_vision_y", "i_audio_y", "gap_text_vision",
                          "gap_text_audio"]
    by = {r["mi_estimator"]: r for r in table2.iter_rows(named=True)}
    assert set(by) == {"latentmi", "mine", "ksg"}
    for est, students in ESTIMATES.items():
        r = by[est]
        assert r["i_text_vision"] == pytest.approx(students["vision"][0] + 0.005)
        assert r["i_audio_y"] == pytest.approx(students["audio"][1] + 0.005)
        # I(H_text;Y) comes from both students' trials: averaged within a seed, then over seeds
        assert r["i_text_y"] == pytest.approx((students["vision"][2] + students["audio"][2]) / 2 + 0.005)
        assert r["gap_text_audio"] == pytest.approx(students["audio"][0] - students["audio"][1])
        assert r["i_text_vision_se"] == pytest.approx(se([0.0, 0.01])) and r["n_seeds"] == 2
    assert (by["mine"]["paper_i_text_vision"], by["mine"]["paper_i_text_vision_pm"]) == (0.7955, 0.0019)
    assert by["ksg"]["paper_gap_text_audio"] == 0.5672
    assert (pages / "mi_estimators" / "mi_by_estimator.png").stat().st_size > 1000
