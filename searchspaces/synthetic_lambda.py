"""Synthetic Gaussian regression across KD weights lambda (paper Appendix B, Figure 4).

Same data, networks and MI as synthetic_sigma12 (the cache shares them); only lambda varies.
"""

from cchsweep.study import Cost, Profile, Study
from cchsweep.trials.synthetic import ENGINE
from searchspaces.synthetic_sigma12 import (
    PAPER,
    PARAMS,
    QUICK,
    QUICK_SEEDS,
    QUICK_SIGMA12,
    SEEDS,
    SIGMA12,
    SMOKE,
    SMOKE_SEEDS,
    validate,
)

NAME = "synthetic_lambda"

# --- grids ----------------------------------------------------------------------------------
LAMBDAS = [0.2, 0.5, 0.7, 0.8]
SMOKE_SIGMA12 = [0.1, 0.7]
SMOKE_LAMBDAS = [0.2, 0.8]

STUDY = Study(
    name=NAME,
    description="Gaussian regression: KD gain vs sigma12 for lambda in {0.2, 0.5, 0.7, 0.8}",
    reproduces="Figure 4",
    task="regression",
    params=PARAMS,
    profiles={
        "paper": Profile(
            grid={"sigma12": SIGMA12, "lam": LAMBDAS, "seed": SEEDS},
            settings=PAPER,
            cost=Cost(142_600, False, "synthetic_sigma12's MI (shared through the cache) and 480 models"),
        ),
        "smoke": Profile(
            grid={"sigma12": SMOKE_SIGMA12, "lam": SMOKE_LAMBDAS, "seed": SMOKE_SEEDS[:1]}, settings=SMOKE
        ),
        # quick: synthetic_sigma12's quick settings (its MI shared through the cache). Measured on
        # 2 cores after synthetic_sigma12's quick run had filled the MI cache: 255 s (alone, add
        # that run's ~1,000 s of MI). Outcome: 15 of 32 conditions determined on the gain (6/8 at
        # lambda 0.5), negative at small sigma12 and positive at large for every lambda; against
        # the closed-form gap 14/15 agree (rho 0.85); against the estimated gaps 7-8 of 12-15.
        "quick": Profile(
            grid={"sigma12": QUICK_SIGMA12, "lam": LAMBDAS, "seed": QUICK_SEEDS},
            settings=QUICK,
            cost=Cost(255, True, "32 trials, with synthetic_sigma12's MI already cached"),
        ),
    },
    **ENGINE,
    validate=validate,
    closed_form=True,
    columns=("sigma13", "sigma23"),
)
