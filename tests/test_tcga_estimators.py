"""The three MI estimators side by side on the offline TCGA cohort, through the real CLI."""

import duckdb
import polars as pl
import pytest
from conftest import SHARED_DATA, run_cli

from analysis.report import write_report


@pytest.mark.slow
def test_every_estimator_gets_a_row_with_standard_errors(tmp_path):
    db = tmp_path / "t.duckdb"
    out = run_cli("run", "tcga_estimators", "--profile", "smoke", "--db", str(db), "--data-dir", str(SHARED_DATA),
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select mi_estimator, i_ts, i_ts_se, i_sl, i_sl_se, i_tl, mi_repeats, kd_f1_weighted "
                           "from results order by mi_estimator").fetchall()
        built = con.execute("select kind, hit from cache_events where kind = 'tcga_teacher'").fetchall()
    assert [r[0] for r in rows] == ["ksg", "latentmi", "mine"]
    for _, i_ts, ts_se, i_sl, sl_se, i_tl, repeats, _ in rows:
        assert repeats == 2 and ts_se is not None and sl_se is not None
        assert 0 < i_sl <= 1.1 + 0.3 and 0 < i_tl <= 1.1 + 0.3  # 3 classes: I(H; Y) <= log 3 = 1.10 nats
        assert -0.3 < i_ts < 5.0
    assert len({r[7] for r in rows}) == 1  # one set of networks for every estimator
    assert built == [("tcga_teacher", False)]  # the teacher was trained once
    # the report's Table 2 layout holds the same numbers, one row per estimator
    write_report(db, "tcga_estimators", tmp_path / "report")
    table = pl.read_csv(tmp_path / "report" / "tcga_estimators" / "table2.csv").sort("mi_estimator")
    assert table["mi_estimator"].to_list() == [r[0] for r in rows]
    assert table["i_mrna_cnv"].to_list() == pytest.approx([r[1] for r in rows])
    assert table["i_cnv_y"].to_list() == pytest.approx([r[3] for r in rows])
    assert table["gap_mrna_cnv"].to_list() == pytest.approx([r[1] - r[3] for r in rows])
    assert table["paper_i_mrna_cnv"].null_count() == 3  # Table 2 is MOSEI: no paper numbers for TCGA
