"""Every study, listed once. A study is one module: its grids, settings and trial function."""

from cchsweep.study import Study
from searchspaces import mnist_alpha, mnist_blur, synthetic_lambda, synthetic_sigma12

STUDIES: dict[str, Study] = {
    m.STUDY.name: m.STUDY
    for m in (synthetic_sigma12, synthetic_lambda, mnist_blur, mnist_alpha)
}
