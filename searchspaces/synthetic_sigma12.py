"""Synthetic Gaussian regression, KD gain vs the teacher-student correlation sigma12.

Paper: Section 4.1, Figure 1 (sigma13 = 0.9, sigma23 = 0.4, lambda = 0.3, ten seeds).
"""

from cchsweep.data.synthetic import coefficients
from cchsweep.mi.triplet import DEFAULT_ESTIMATORS, ESTIMATORS, MANY_ESTIMATORS, QUICK_MI
from cchsweep.study import Cost, Param, Profile, Study
from cchsweep.trials.synthetic import ENGINE

NAME = "synthetic_sigma12"

# --- grids ----------------------------------------------------------------------------------
SIGMA12 = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
SEEDS = list(range(10))
SMOKE_SIGMA12 = [0.1, 0.7]
SMOKE_SEEDS = [0, 1]

# --- settings ---------------------------------------------------------------------------------
# Table 10; the test split is 5,000 (Table 10) where the text says 1,000. The paper gives no
# batch size: 500 (20 Adam steps per epoch) is ours. MI on all 5,000 test samples by lmi at latentmi's
# defaults (300 epochs, lr 1e-4), KSG and MINE (their own defaults), 3 repeats each.
PAPER = dict(
    sigma13=0.9,
    sigma23=0.4,
    n_train=10_000,
    n_test=5_000,
    p=100,
    hidden=64,
    epochs=300,
    lr=0.01,
    batch_size=500,
    mi_estimator=DEFAULT_ESTIMATORS,
    mi_epochs=300,
    mi_lr=1e-4,
    mi_repeats=3,
    mi_n=5_000,
)
# Seconds on a CPU: 2,000 / 500 samples, 10 epochs, lmi alone at 10 epochs with lr 1e-3, one estimate
# on the 500 test samples.
SMOKE = dict(
    PAPER,
    n_train=2_000,
    n_test=500,
    epochs=10,
    batch_size=250,
    mi_estimator="lmi",
    mi_epochs=10,
    mi_lr=1e-3,
    mi_repeats=1,
    mi_n=500,
)

# quick: the paper's data, networks and training (stacked: ~2.6 s per model), 50,000 test samples,
# MI on the first 1,000 with the quick MI, one estimate; sigma12 0, 0.3 and 0.6 at 7 seeds. Chosen
# by measurement (2026-12-01, alone on 2 cores, Intel): 527 s; KD gain -0.0037 ± 0.0007 (0),
# -0.0023 ± 0.0011 (0.3), +0.0019 ± 0.0010 (0.6): the sign changes between 0.3 and 0.6 (closed-form
# CCH 0.402, small-lambda risk 0.356); 0 determined, 0.3 and 0.6 not (2.1 and 2.0 SE; 7 seeds need
# 2.45). The gain is 2-3% of the test MSE (~0.11) and its spread over seeds is the training's: 8 seeds' gains
# scored on 5,000 and on 200,000 fresh test samples spread 0.0027-0.0039 and 0.0019-0.0029 (the
# larger test set is nearly free, seeds are not: MI is ~80% of the time). The grid before, sigma12
# 0, 0.2, 0.4, 0.6 at 5 seeds on 5,000 test samples (481 s), determined none of its 4 under the t
# rule (2 SE called 2); the paper's 8 values at 3 seeds (1,028 s on shared cores) 2 of 8 under 2 SE.
# The gap's sign is the estimator's: KSG positive at every sigma12, lmi negative at all but one draw.
QUICK = dict(PAPER, n_test=50_000, mi_n=1_000, mi_repeats=1, **QUICK_MI)
QUICK_SIGMA12 = [0.0, 0.3, 0.6]
QUICK_SEEDS = list(range(7))
QUICK_COST = Cost(527, True, "21 trials, alone")

# paper on a CPU: 240 models at ~2.35 s, but 720 lmi estimates at 300 epochs on 5,000 rows (~390 s
# each on one core) dominate: ~39 h on 2 cores. A GPU job. Without lmi (--set mi_estimator=ksg,mine)
# it ran in 2,744 s alone on 2 cores (2026-12-01; 3,924 s before on shared cores): the gain's means
# change sign between sigma12 0.3 and 0.4, and the closed-form gap agrees in 4/4 conditions the t
# rule determines (README, "Paper profiles, measured: synthetic").
PAPER_COST = Cost(
    141_500,
    False,
    "720 lmi estimates at ~390 s per core dominate",
    without_lmi=Cost(2_744, True, "mi_estimator=ksg,mine, alone"),
)

PARAMS = {
    "sigma12": Param(float, -0.99, 0.99, "teacher-student correlation"),
    "sigma13": Param(float, -0.99, 0.99, "teacher-label correlation"),
    "sigma23": Param(float, -0.99, 0.99, "student-label correlation"),
    "lam": Param(float, 0.0, 100.0, "KD weight lambda in eq. (4); 0 is no KD"),
    "seed": Param(int, 0, 2**31 - 1),
    "n_train": Param(int, 10, 10**7),
    "n_test": Param(int, 10, 10**7),
    "p": Param(int, 1, 10_000, "dimension of each modality"),
    "hidden": Param(int, 1, 100_000),
    "epochs": Param(int, 1, 100_000),
    "lr": Param(float, 1e-8, 10.0),
    "batch_size": Param(int, 1, 10**7),
    "mi_estimator": Param(str, choices=ESTIMATORS, many=True, help=MANY_ESTIMATORS),
    "mi_epochs": Param(int, 1, 100_000),
    "mi_lr": Param(float, 1e-8, 1.0),
    "mi_repeats": Param(int, 1, 1_000),
    "mi_n": Param(int, 20, 10**7, "test samples used for MI"),
}


def validate(values):
    coefficients(values["sigma12"], values["sigma13"], values["sigma23"])


STUDY = Study(
    name=NAME,
    description="Gaussian regression: KD gain and representation MI as sigma12 varies (lambda = 0.3)",
    reproduces="Figure 1",
    task="regression",
    params=PARAMS,
    profiles={
        "paper": Profile(grid={"sigma12": SIGMA12, "lam": [0.3], "seed": SEEDS}, settings=PAPER, cost=PAPER_COST),
        "smoke": Profile(grid={"sigma12": SMOKE_SIGMA12, "lam": [0.3], "seed": SMOKE_SEEDS}, settings=SMOKE),
        "quick": Profile(
            grid={"sigma12": QUICK_SIGMA12, "lam": [0.3], "seed": QUICK_SEEDS}, settings=QUICK, cost=QUICK_COST
        ),
    },
    **ENGINE,
    validate=validate,
    closed_form=True,
    columns=("sigma13", "sigma23"),
    # Figure 1 reports its curves only as a plot; the reference is the closed-form crossing.
    reference={"closed_form_crossing_sigma12": 0.4022},
)
