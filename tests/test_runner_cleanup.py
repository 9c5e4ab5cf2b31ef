"""A sweep refused after its embedded Ray started leaves no Ray behind in the caller's process (a
library user, a notebook): it used to, until the process exited."""

import pytest

from cchsweep.errors import UsageError
from cchsweep.grid import plan
from cchsweep.runner import run_sweep
from cchsweep.store import Store
from searchspaces import STUDIES


@pytest.mark.slow
def test_a_run_refused_after_ray_started_stops_its_ray(tmp_path):
    import ray

    the_plan = plan(STUDIES["synthetic_sigma12"], "smoke", ["mi_estimator=ksg", "epochs=1"])
    with pytest.raises(UsageError, match="--gpu 'lots': give auto or a GPU fraction"):
        run_sweep(the_plan, tmp_path / "r.duckdb", tmp_path / "store", gpu="lots")  # checked once Ray is up
    assert not ray.is_initialized()
    assert Store(tmp_path / "r.duckdb").query("select run_id from runs")[1] == []  # no run row was started
