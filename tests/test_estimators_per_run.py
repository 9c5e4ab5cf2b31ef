"""Several MI estimators in one run (--set mi_estimator=lmi,ksg): the networks train once, every
estimator estimates on the same representations, and the results carry one row per estimator."""

import pytest

from cchsweep.errors import UsageError
from cchsweep.execute import run_bundle
from cchsweep.grid import plan
from conftest import q, run_cli
from searchspaces import STUDIES

SYNTHETIC = STUDIES["synthetic_sigma12"]


def test_a_list_of_estimators_is_one_setting():
    p = plan(SYNTHETIC, "smoke", ["mi_estimator=ksg,lmi,ksg"])
    assert p.settings["mi_estimator"] == "ksg,lmi" and len(p.trials) == 4  # not a grid axis: no more points
    assert all(t.key.endswith("mi_estimator=ksg,lmi") for t in p.trials)
    with pytest.raises(UsageError, match="'nope' is not one of lmi, latentmi, mine, ksg"):
        plan(SYNTHETIC, "smoke", ["mi_estimator=lmi,nope"])
    with pytest.raises(UsageError, match="takes one value"):  # other settings still take one
        plan(SYNTHETIC, "smoke", ["mi_epochs=2,3"])


def test_each_estimator_sees_the_same_networks(tmp_path):
    p = plan(SYNTHETIC, "smoke", ["mi_estimator=ksg,lmi", "mi_epochs=2", "sigma12=0.2"])
    engine = {"cpus": 1, "gpu": 0.0, "data_dir": None, "cache_dir": str(tmp_path / "both")}
    both = run_bundle([t.to_dict() for t in p.trials], engine)
    alone = plan(SYNTHETIC, "smoke", ["mi_estimator=ksg", "sigma12=0.2"])
    ksg = run_bundle([t.to_dict() for t in alone.trials], {**engine, "cache_dir": str(tmp_path / "ksg")})
    for got, ref in zip(both, ksg):
        assert sorted((m.estimator, m.quantity) for m in got.mi) == sorted(
            (e, q) for e in ("ksg", "lmi") for q in ("i_ts", "i_sl", "i_tl"))
        assert got.kd_gain == ref.kd_gain and got.metrics == ref.metrics  # trained once, the same networks
        assert [m for m in got.mi if m.estimator == "ksg"] == list(ref.mi)  # KSG's values as in a KSG-only run
        assert {m.truth for m in got.mi if m.quantity == "i_ts"} == {ref.mi[0].truth}
    teachers = [e for rec in both for e in rec.cache if e.kind == "synthetic_teacher"]
    seeds = {t.params["seed"] for t in p.trials}
    assert sum(not e.hit for e in teachers) == len(seeds)  # one teacher per seed, shared by both estimators


@pytest.mark.slow
def test_the_results_have_a_row_per_estimator_and_the_verdict_one_per_estimator(tmp_path):
    db = tmp_path / "r.duckdb"
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--db", str(db), "--seeds", "2",
                  "--set", "mi_estimator=lmi,ksg", "--set", "mi_epochs=2", "--set", "sigma12=0.2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    n = len(plan(SYNTHETIC, "smoke", ["sigma12=0.2"], seeds=2).trials)
    assert n >= 2 and q(db, "select count(*) from trials") == [(n,)]
    assert q(db, "select mi_estimator, count(*) from results group by all order by 1") == [("ksg", n), ("lmi", n)]
    assert "estimated gap (ksg) agreed with KD gain in" in out.stdout and "estimated gap (lmi): " in out.stdout
