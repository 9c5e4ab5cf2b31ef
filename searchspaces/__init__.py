"""Every study, listed once. A study is one module: its grids, settings and trial function."""

from cchsweep.study import Study
from searchspaces import synthetic_lambda, synthetic_sigma12

STUDIES: dict[str, Study] = {
    m.STUDY.name: m.STUDY
    for m in (synthetic_sigma12, synthetic_lambda)
}
