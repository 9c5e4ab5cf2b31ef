"""CMU-MOSEI, text teacher -> vision student: KD gain and MI vs Gaussian noise on the teacher's input.

Paper: Section 4.3, Table 4; networks Table 14, settings Table 15 (as mosei_teacher). Trial:
cchsweep.trials.mosei.trial. Noise: x + N(0, (level * train_std)^2) per text feature and time
step on the teacher's train and test inputs (noise_space "sequence", train std over rows and
steps; applied to the pooled features as std / sqrt(L), the same distribution), one rng per seed
so all levels share the noise pattern; the teacher is trained clean and frozen, its soft targets
come from the noisy train inputs. noise_space "pooled" (via --set) scales by the pooled features'
train std instead: a much stronger perturbation. The teacher, the no-KD student and I_SL / I_TL
are shared by all levels (artifact cache); I_TS is estimated per level.

Table 4 as printed has its two F1 columns swapped: "Student KD F1" is constant at 0.6204, which is
Table 3's NO-KD vision F1, and "Student No-KD F1" at 0% is 0.6315, Table 3's KD F1. REFERENCE
stores the columns with that swap undone (kd = the varying column).
"""

from cchsweep.study import Param, Profile, Study
from cchsweep.trials.mosei import NOISE_SPACES, VARY, bundle, check_data, trial, validate
from searchspaces.mosei_teacher import PAPER, SEEDS, SMOKE
from searchspaces.mosei_teacher import PARAMS as TEACHER_PARAMS
from searchspaces.mosei_teacher import STUDY as TEACHER_STUDY

NAME = "mosei_noise"

# --- grids ----------------------------------------------------------------------------------
NOISE = [0.0, 0.2, 0.4, 0.6, 0.8]  # fractions of each text feature's train std (the paper's 0%..80%)
SMOKE_NOISE = [0.0, 0.8]

NOISE_PAPER = dict(PAPER, noise_space="sequence")
NOISE_SMOKE = dict(SMOKE, noise_space="sequence")

PARAMS = {
    **TEACHER_PARAMS,
    "noise": Param(float, 0.0, 1.0, "Gaussian noise std on the teacher's input, as a fraction of train std"),
    "noise_space": Param(
        str,
        choices=NOISE_SPACES,
        help="noise std from the raw sequence's train std per step (sequence) or the pooled rows'",
    ),
}

# --- the paper's numbers (Table 4) -------------------------------------------------------------
REFERENCE = {
    "columns": ("i_ts", "i_sl", "kd_f1_weighted", "nokd_f1_weighted"),
    # noise -> column -> (mean, std); F1 columns un-swapped (see the module doc)
    "table4": {
        0.0: {
            "i_ts": (1.3543, 0.0052),
            "i_sl": (0.0816, 0.0084),
            "kd_f1_weighted": (0.6315, 0.0022),
            "nokd_f1_weighted": (0.6204, 0.0030),
        },
        0.2: {
            "i_ts": (0.0034, 0.0040),
            "i_sl": (0.0816, 0.0084),
            "kd_f1_weighted": (0.6192, 0.0062),
            "nokd_f1_weighted": (0.6204, 0.0030),
        },
        0.4: {
            "i_ts": (-0.0007, 0.0045),
            "i_sl": (0.0816, 0.0084),
            "kd_f1_weighted": (0.6189, 0.0039),
            "nokd_f1_weighted": (0.6204, 0.0030),
        },
        0.6: {
            "i_ts": (-0.0056, 0.0058),
            "i_sl": (0.0816, 0.0084),
            "kd_f1_weighted": (0.6184, 0.0022),
            "nokd_f1_weighted": (0.6204, 0.0030),
        },
        0.8: {
            "i_ts": (-0.0060, 0.0053),
            "i_sl": (0.0816, 0.0084),
            "kd_f1_weighted": (0.6156, 0.0033),
            "nokd_f1_weighted": (0.6204, 0.0030),
        },
    },
    "as_printed": {"kd_column_constant": 0.6204, "nokd_column_at_0": 0.6315},
    "teacher": TEACHER_STUDY.reference["teacher"],
    "settings": TEACHER_STUDY.reference["settings"],
    "claim": "KD helps at 0% (I_TS > I_SL) and stops helping once I_TS < I_SL (from 20% on)",
}


def _grid(noise: list[float], seeds: list[int]) -> dict:
    return {
        "teacher_modality": ["text"],
        "student_modality": ["vision"],
        "noise": noise,
        "temperature": [4.5],
        "lam": [0.5],
        "seed": seeds,
    }


STUDY = Study(
    name=NAME,
    description="CMU-MOSEI text teacher -> vision student: KD gain (weighted F1) and MI vs teacher input noise",
    reproduces="Table 4 (Tables 14, 15)",
    task="classification",
    params=PARAMS,
    profiles={
        "paper": Profile(grid=_grid(NOISE, SEEDS), settings=NOISE_PAPER),
        "smoke": Profile(grid=_grid(SMOKE_NOISE, [0]), settings=NOISE_SMOKE),
    },
    trial=trial,
    bundle=bundle,
    bundle_vary=VARY,
    resources=TEACHER_STUDY.resources,
    validate=validate,
    reference=REFERENCE,
    check_data=check_data,
)
