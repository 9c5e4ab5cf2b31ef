"""MI estimators on pairs with known MI (cchsweep.mi.known): the mi_calibration study's trials.

A grid point is one draw (pair family, dimension, true MI, n, seed); every estimator in the
mi_estimator setting estimates it once, at estimator seed `seed`. Nothing is trained for KD, so the
record has no metrics and no KD gain (task 'calibration'); its MI rows carry the estimate and the
truth under the quantity the pair stands in for: i_ts for representation pairs, i_sl for
representation-vs-label pairs. The `mi_calibration` view turns them into bias and spread per
(estimator, pair, dim, true_mi, n) over seeds.

A bundle draws all its points' data first and hands each estimator every estimate at once, so
lmi stacks those of one shape on a GPU (on a CPU it trains them one by one, as fast).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cchsweep.mi.interface import estimate_all
from cchsweep.mi.known import QUANTITY, calibration_pair
from cchsweep.mi.triplet import estimator_names, make_estimator
from cchsweep.study import MIValue, TrialContext, TrialOutput

VARY = ("seed", "true_mi", "n")  # a bundle: the seeds, MIs and sizes of one (pair, dim)


def bundle(points: Sequence[Mapping[str, Any]], settings: Mapping[str, Any], ctx: TrialContext) -> list[TrialOutput]:
    pts = [{**settings, **p} for p in points]
    ctx.progress(f"drawing {len(pts)} {pts[0]['pair']} pairs in {pts[0]['dim']} dimensions")
    draws = [calibration_pair(p["pair"], p["dim"], p["true_mi"], p["n"], p["seed"]) for p in pts]
    outputs = [TrialOutput(metrics={}, gain_metric=None, kd_gain=None) for _ in pts]
    for name in estimator_names(settings):
        ctx.progress(f"{name}: {len(pts)} estimates")
        estimator = make_estimator({**settings, "mi_estimator": name}, ctx.device)
        values = estimate_all(estimator, [(x, y, p["seed"]) for p, (x, y, _) in zip(pts, draws)])
        for out, p, (_, _, truth), value in zip(outputs, pts, draws, values):
            out.mi.append(MIValue(QUANTITY[p["pair"]], name, float(value), None, 1, truth, p["n"]))
    return outputs


def trial(params: Mapping[str, Any], settings: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
    """One point: the bundle of one (the estimates do not depend on what else is in a bundle)."""
    return bundle([params], settings, ctx)[0]
