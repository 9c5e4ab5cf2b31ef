"""Every study, listed once. A study is one module: its grids, settings and trial function."""

from collections.abc import Iterable

from cchsweep.errors import UsageError
from cchsweep.study import Study
from searchspaces import (
    mi_calibration,
    mi_estimators,
    mnist_alpha,
    mnist_blur,
    mosei_noise,
    mosei_teacher,
    synthetic_lambda,
    synthetic_sigma12,
    tcga_estimators,
    tcga_fusion,
    tcga_noise,
)

STUDIES: dict[str, Study] = {
    m.STUDY.name: m.STUDY
    for m in (
        synthetic_sigma12,
        synthetic_lambda,
        mnist_blur,
        mnist_alpha,
        tcga_noise,
        tcga_fusion,
        tcga_estimators,
        mosei_teacher,
        mosei_noise,
        mi_estimators,
        mi_calibration,
    )
}


def check_known(names: Iterable[str]) -> None:
    """A one-line UsageError naming the first study that is not one of STUDIES."""
    for name in names:
        if name not in STUDIES:
            raise UsageError(f"unknown study {name!r}; `cchsweep list` shows: {', '.join(STUDIES)}")
