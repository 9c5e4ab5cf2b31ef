"""The advise verdict against the gap, the estimators' consensus, and `advise --verify`'s aggregation,
on hand-made inputs (no data, no Ray): {teacher: {quantity: [mean, se]}} as mi_triplet returns it,
and hand-made KD trial rows as verify() reads them from the results database."""

from __future__ import annotations

import math

import polars as pl
import pytest
from scipy import stats

from cchsweep.advise import (Advice, advice_frame, advice_sentence, consensus_frame, format_advice, format_consensus,
                             verdict)
from cchsweep.rules import critical
from cchsweep.verify import format_verification, realised_gains, verification_table


def triplet(i_ts: float, i_sl: float, se_ts: float | None = 0.03, se_sl: float | None = 0.04) -> dict[str, list]:
    """One teacher's {quantity: [mean, se]}; se None is what one repeat gives (interface.summarize)."""
    return {"i_ts": [i_ts, se_ts], "i_sl": [i_sl, se_sl], "i_tl": [9.0, 0.5]}  # i_tl enters no verdict


# gap_se = hypot(0.03, 0.04) = 0.05; over REPEATS = 3 the 95% t interval is gap -+ 4.303 SE = gap -+ 0.215
REPEATS = 3
VALUES = {
    "straddle": triplet(0.55, 0.5),  # gap +0.05: interval [-0.165, 0.265] holds 0
    "bad": triplet(0.2, 0.7),  # gap -0.5: interval [-0.715, -0.285]
    "good": triplet(1.0, 0.5),  # gap +0.5: interval [0.285, 0.715]
    "near": triplet(0.68, 0.5),  # gap +0.18 > 2 SE, but within the t interval: 3 repeats do not decide
    "single": triplet(1.5, 0.5, None, None),  # one repeat: NaN SE, however large the gap
}
N = {t: 100 + i for i, t in enumerate(VALUES)}


def table() -> pl.DataFrame:
    return advice_frame("s", VALUES, N, REPEATS)


def row(frame: pl.DataFrame, teacher: str) -> dict:
    return frame.filter(pl.col("teacher") == teacher).row(0, named=True)


# --- (a) the verdict ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lo, hi, expect",
    [
        (0.1, 0.3, "distil"),
        (-0.3, -0.1, "do not distil"),
        (-0.1, 0.3, "undetermined"),
        (0.0, 0.2, "undetermined"),  # the interval must lie strictly above 0
        (-0.2, 0.0, "undetermined"),  # ... or strictly below
        (0.0, 0.0, "undetermined"),  # gap exactly 0 with SE 0
        (float("nan"), float("nan"), "undetermined"),  # one repeat
    ],
)
def test_verdict_reads_the_interval(lo, hi, expect):
    assert verdict(lo, hi) == expect


def test_interval_is_the_gaps_95_percent_t_interval():
    assert critical(REPEATS) == pytest.approx(stats.t.ppf(0.975, REPEATS - 1))  # 4.303 at 3 repeats
    for teacher in ("good", "bad", "straddle", "near"):
        r = row(table(), teacher)
        i_ts, i_sl = VALUES[teacher]["i_ts"], VALUES[teacher]["i_sl"]
        assert r["gap"] == pytest.approx(i_ts[0] - i_sl[0])
        assert r["gap_se"] == pytest.approx(math.hypot(i_ts[1], i_sl[1]))  # 0.05, not 0.03 + 0.04
        assert r["gap_lo"] == pytest.approx(r["gap"] - 4.302653 * r["gap_se"])
        assert r["gap_hi"] == pytest.approx(r["gap"] + 4.302653 * r["gap_se"])
    assert (row(table(), "good")["gap_lo"], row(table(), "good")["gap_hi"]) == pytest.approx((0.2848674, 0.7151326))
    assert (row(table(), "bad")["gap_lo"], row(table(), "bad")["gap_hi"]) == pytest.approx((-0.7151326, -0.2848674))


def test_more_repeats_narrow_the_interval_to_a_verdict():
    """The same gap and SE: undetermined at 3 repeats (t 4.30), "distil" at 10 (t 2.26), as a fixed
    2 SE would have called at any number of repeats."""
    near = {"near": VALUES["near"]}
    assert advice_frame("s", near, N, 3)["verdict"].to_list() == ["undetermined"]
    assert advice_frame("s", near, N, 10)["verdict"].to_list() == ["distil"]


def test_verdicts_follow_the_gap():
    verdicts = dict(zip(table()["teacher"], table()["verdict"]))
    assert verdicts == {
        "good": "distil",
        "bad": "do not distil",
        "straddle": "undetermined",
        "near": "undetermined",
        "single": "undetermined",
    }


def test_one_repeat_gives_nan_se_and_no_verdict():
    r = row(table(), "single")
    assert r["gap"] == pytest.approx(1.0)
    assert all(math.isnan(r[c]) for c in ("i_ts_se", "i_sl_se", "gap_se", "gap_lo", "gap_hi"))
    assert r["verdict"] == "undetermined"


def test_teachers_ranked_by_gap_largest_first():
    t = table()
    assert t["teacher"].to_list() == ["single", "good", "near", "straddle", "bad"]  # gaps 1.0, .5, .18, .05, -.5
    assert t["rank"].to_list() == [1, 2, 3, 4, 5]
    assert dict(zip(t["teacher"], t["n_patients"])) == N


def test_equal_gaps_rank_by_teacher_name():
    t = advice_frame("s", {"zeta": triplet(0.9, 0.5), "alpha": triplet(0.9, 0.5)}, {"zeta": 1, "alpha": 2}, 3)
    assert t["teacher"].to_list() == ["alpha", "zeta"] and t["rank"].to_list() == [1, 2]


def test_the_table_title_states_the_interval_it_used():
    five = format_advice(Advice(advice_frame("s", VALUES, N, 5), "d", "s", "ksg", 5, 0, N, [])).splitlines()[0]
    assert five.endswith("distil when gap = I(T;S) - I(S;Y) > 0 by its 95% t interval, ±2.78 SE)")
    one = format_advice(Advice(advice_frame("s", VALUES, N, 1), "d", "s", "ksg", 1, 0, N, [])).splitlines()[0]
    assert one.endswith("1 repeat, nats; one repeat: no standard error, no verdict)") and "inf" not in one


def test_sentence_names_the_distil_teacher():
    advice = Advice(table=table(), data="d", student="s", estimator="ksg", repeats=REPEATS, seed=0, n_patients=N, classes=[])
    sentence = advice_sentence(advice)
    assert sentence.startswith("Distil from good (gap +0.500 ± 0.050 nats);")
    assert "bad fails the criterion" in sentence


# --- (a) the consensus across estimators --------------------------------------------------------


def advice_of(estimator: str, values: dict[str, dict]) -> Advice:
    n = {t: 50 for t in values}
    return Advice(advice_frame("s", values, n, REPEATS), "d", "s", estimator, REPEATS, 0, n, [])


GOOD, BAD, UNSURE = triplet(1.0, 0.5), triplet(0.2, 0.7), triplet(0.55, 0.5)


def test_consensus_only_where_every_deciding_estimator_agrees():
    first = advice_of("ksg", {"agree": GOOD, "one_decides": UNSURE, "split": BAD, "none": UNSURE, "no": BAD})
    second = advice_of("lmi", {"agree": GOOD, "one_decides": GOOD, "split": GOOD, "none": UNSURE, "no": UNSURE})
    frame = consensus_frame([first, second])
    assert dict(zip(frame["teacher"], frame["consensus"])) == {
        "agree": "distil",
        "one_decides": "distil",  # an undetermined estimator is no veto
        "split": "estimators disagree",
        "none": "undetermined",
        "no": "do not distil",
    }
    # ordered by the first estimator's rank (gaps +0.5, +0.05, +0.05, -0.5, -0.5; ties by name)
    assert frame["teacher"].to_list() == ["agree", "none", "one_decides", "no", "split"]
    split = row(frame, "split")
    assert (split["gap_ksg"], split["gap_lmi"]) == pytest.approx((-0.5, 0.5))
    assert (split["verdict_ksg"], split["verdict_lmi"]) == ("do not distil", "distil")


def test_consensus_is_not_a_majority_vote():
    advices = [advice_of(e, {"t": v}) for e, v in (("ksg", GOOD), ("lmi", GOOD), ("mine", BAD))]
    assert consensus_frame(advices)["consensus"].to_list() == ["estimators disagree"]
    assert format_consensus(advices).endswith("\n\nThe estimators disagree on t.")


# --- (b) advise --verify: realised gain vs predicted gap ----------------------------------------

# Predicted side, as verify() selects it from the advice table (deliberately not in rank order).
PREDICTED = pl.DataFrame(
    {
        "rank": [3, 1, 2, 4, 5, 6, 7],
        "teacher": ["c", "a", "b", "d", "f", "unverified", "e"],
        "gap": [-0.2, 0.4, 0.1, -0.3, -0.5, 0.7, 0.3],
        "gap_se": [0.05, 0.05, 0.04, 0.05, 0.05, 0.05, 0.05],
        "verdict": ["do not distil", "distil", "undetermined", "do not distil", "do not distil", "distil", "distil"],
    }
)

# The ok KD trials (kd_gain per seed) of each verified teacher.
GAINS = {
    "a": [0.028, 0.03, 0.032],  # mean .03, sd .002, SE .002/sqrt(3) = .00115: 26 SE, positive
    "b": [-0.02, -0.04],  # mean -.03, sd .01414, SE .01: 3 SE, within t(0.975, 1) = 12.7 SE
    "c": [0.01, 0.03, 0.05],  # mean .03, SE .01155: 2.6 SE, within t(0.975, 2) = 4.3 SE of 0
    "d": [0.2],  # one seed: no SE
    "f": [-0.10, -0.11, -0.12],  # mean -.11, SE .00577: negative
    "e": [-0.05, -0.06, -0.07],  # mean -.06, SE .00577: negative, against a determined positive gap
    "stray": [0.5, 0.5],  # a teacher the advice table does not have
}


def trials() -> pl.DataFrame:
    rows = [(t, seed, g) for t, gains in GAINS.items() for seed, g in enumerate(gains)]
    return pl.DataFrame(rows, schema=["teacher_modality", "seed", "kd_gain"], orient="row")


def test_realised_gain_is_mean_and_sample_se_over_seeds():
    got = {r["teacher"]: r for r in realised_gains(trials()).iter_rows(named=True)}
    for teacher, gains in GAINS.items():
        n = len(gains)
        mean = sum(gains) / n
        assert got[teacher]["realised_gain"] == pytest.approx(mean)
        assert got[teacher]["seeds"] == n
        if n > 1:  # sample sd (ddof=1) / sqrt(n), as analysis.agreement and the cch views
            sd = math.sqrt(sum((g - mean) ** 2 for g in gains) / (n - 1))
            assert got[teacher]["realised_gain_se"] == pytest.approx(sd / math.sqrt(n))
    assert got["a"]["realised_gain_se"] == pytest.approx(0.002 / math.sqrt(3))
    assert got["b"]["realised_gain_se"] == pytest.approx(0.01)
    assert got["d"]["realised_gain_se"] is None  # one seed


def test_sign_agreement_per_teacher():
    out = verification_table(PREDICTED, trials())
    assert out["teacher"].to_list() == ["a", "b", "c", "d", "f", "e"]  # rank order; teachers on both sides
    assert out["rank"].to_list() == [1, 2, 3, 4, 5, 7]
    assert dict(zip(out["teacher"], out["sign_agrees"])) == {
        "a": True,  # gap +, gain +
        "b": None,  # gap +, gain -, but the gap is undetermined: the criterion made no call
        "c": None,  # gain within its 95% t interval of 0 (a fixed 2 SE would call it)
        "d": None,  # one seed
        "f": True,  # gap -, gain -
        "e": False,  # gap +, gain -, both determined
    }
    assert row(out, "b")["verdict"] == "undetermined" and row(out, "b")["gap"] == pytest.approx(0.1)


def test_verification_printout_says_agreement():
    lines = format_verification(verification_table(PREDICTED, trials())).splitlines()[2:]
    assert [line.split()[1] for line in lines] == ["a", "b", "c", "d", "f", "e"]
    assert [line.split()[-1] for line in lines] == ["yes", "undetermined", "undetermined", "undetermined", "yes", "no"]


# --- storing: a file another process holds is waited for, not the advice lost ---------------------


def test_advice_waits_for_a_locked_database_then_stores(tmp_path, capsys):
    import subprocess
    import sys
    import time

    import duckdb

    from cchsweep.advise import store_advice
    from cchsweep.store import LOCK_RETRY_SECONDS, Store

    db = tmp_path / "a.duckdb"
    Store(db).ensure_schema()
    hold = LOCK_RETRY_SECONDS + 4  # past the first attempt's retries, well within the final wait
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time\n"
        f"con = duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep({hold}); con.close()\n"
    )], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        assert store_advice(db, advice_of("ksg", {"good": GOOD, "bad": BAD}), "run-1") == 2
        waited = time.monotonic() - t0
    finally:
        holder.wait(timeout=60)
    assert waited >= LOCK_RETRY_SECONDS  # it met the lock, said so, and waited it out
    assert "is locked by another process: waiting up to 10 min to store the advice" in capsys.readouterr().err
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select teacher from advice order by rank").fetchall() == [("good",), ("bad",)]
