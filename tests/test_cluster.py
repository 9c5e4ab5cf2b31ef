"""A real multi-node Ray cluster on one machine: fractional GPUs, spreading, a node lost mid-sweep."""

import subprocess
import sys
import time

import pytest
import ray
from ray.cluster_utils import Cluster

from cchsweep.errors import UsageError
from cchsweep.runner import AUTOSCALE_GPUS, check_storage_is_shared, cpus_per_trial, gpu_per_trial, worker_slots
from conftest import q, run_cli

LOOPBACK = {"node_ip_address": "127.0.0.1"}



@pytest.fixture
def cluster():
    # The head runs only the driver and the writer: no CPUs for trials. Two workers with one
    # (fake) GPU each: 0.25 GPU per trial allows at most four trials per node, each with a quarter
    # of the node's 8 CPUs.
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **LOOPBACK})
    workers = [c.add_node(num_cpus=8, num_gpus=1, **LOOPBACK) for _ in range(2)]
    c.wait_for_nodes()
    yield c, workers
    c.shutdown()


def max_overlap(intervals):
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


@pytest.mark.slow
def test_fractional_gpu_trials_spread_over_worker_nodes(cluster, tmp_path):
    c, workers = cluster
    db = tmp_path / "r.duckdb"
    out = run_cli("run", "synthetic_sigma12", "--profile", "smoke", "--seeds", "5", "--set", "epochs=5",
                  "--set", "mi_epochs=1", "--db", str(db), "--address", c.address, "--gpu", "0.25",
                  "--bundle-size", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 CPU + 0.25 GPU per trial on 16 CPUs / 2 GPUs" in out.stderr  # the CPUs that go with a quarter GPU
    rows = q(db, "select node_id, gpu_fraction, status, started_at, finished_at, cpus from trials")
    assert len(rows) == 10 and all(r[2] == "ok" and r[1] == 0.25 and r[5] == 2 for r in rows)
    worker_ids = {w.node_id for w in workers}
    used = {r[0] for r in rows}
    assert used == worker_ids  # both workers ran trials, the head none
    for node in used:
        spans = [(r[3], r[4]) for r in rows if r[0] == node]
        assert max_overlap(spans) <= 4  # never more than 1 GPU's worth of 0.25 fractions at once


@pytest.mark.slow
def test_a_worker_node_lost_mid_sweep_is_survived(cluster, tmp_path, monkeypatch):
    c, workers = cluster
    # Ray rewrites 127.0.0.1 to the machine's outward IP unless its single-machine mode is on.
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    db = tmp_path / "r.duckdb"
    driver = subprocess.Popen([sys.executable, "-m", "cchsweep", "run", "synthetic_sigma12", "--profile", "smoke",
                               "--seeds", "4", "--db", str(db), "--address", c.address, "--gpu", "0.25",
                               "--max-failures", "3"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    doomed = workers[1]
    # wait until a trial actor is alive on the doomed node, then take the node away
    ray.init(address=c.address, logging_level="ERROR", _node_ip_address="127.0.0.1")
    try:
        from ray._private.state import actors  # the GCS actor table; needs no dashboard

        deadline = time.monotonic() + 180
        alive = []
        while time.monotonic() < deadline and not alive:
            time.sleep(0.5)
            alive = [a for a in actors().values() if a["State"] == "ALIVE"
                     and a["Address"]["NodeID"] == doomed.node_id and "Func" in a["ActorClassName"]]
        assert alive, "no trial ever started on the second worker"
        time.sleep(3)  # the trials are under way there
        c.remove_node(doomed)
    finally:
        ray.shutdown()
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    assert "8 ok, 0 failed" in stdout
    rows = q(db, "select node_id, attempts from trials where status = 'ok'")
    assert len(rows) == 8
    retried = [r for r in rows if r[1] > 1]
    assert retried and all(r[0] == workers[0].node_id for r in retried)  # rescheduled on the survivor


def test_gpu_fraction_choice():
    assert gpu_per_trial("auto", 0.25, {"GPU": 2.0}) == 0.25
    assert gpu_per_trial("auto", 0.25, {"CPU": 8.0}) == 0.0  # no GPU now: do not ask for one
    assert gpu_per_trial("0.5", 0.25, {}) == 0.5  # autoscaling clusters: ask explicitly
    with pytest.raises(UsageError, match="auto or a GPU fraction"):
        gpu_per_trial("lots", 0.25, {})


def test_local_storage_is_refused_on_a_multi_host_cluster(tmp_path):
    one_host = [{"NodeManagerAddress": "127.0.0.1", "Alive": True}] * 3
    check_storage_is_shared(one_host, tmp_path, declared_shared=False)
    two_hosts = [{"NodeManagerAddress": "10.0.0.1", "Alive": True}, {"NodeManagerAddress": "10.0.0.2", "Alive": True}]
    with pytest.raises(UsageError, match="spans 2 hosts.*--shared-storage"):
        check_storage_is_shared(two_hosts, tmp_path, declared_shared=False)
    check_storage_is_shared(two_hosts, tmp_path, declared_shared=True)
    dead = [{"NodeManagerAddress": "10.0.0.1", "Alive": True}, {"NodeManagerAddress": "10.0.0.2", "Alive": False}]
    assert check_storage_is_shared(dead, tmp_path, declared_shared=False) is None
    # a joined cluster of one host now: an autoscaler may add hosts that would not see the cache
    warning = check_storage_is_shared(dead, tmp_path, declared_shared=False, remote=True)
    assert warning.startswith("the cluster has one host now; workers an autoscaler adds later would not see")
    assert check_storage_is_shared(dead, tmp_path, declared_shared=True, remote=True) is None


def _node(cpus, gpus, alive=True):
    return {"Alive": alive, "Resources": {"CPU": cpus, **({"GPU": gpus} if gpus else {})}}


def test_a_trial_with_a_gpu_share_takes_the_cpus_that_go_with_it():
    one_gpu_box = [_node(16, 1)]  # the device machine: 16 CPUs, one GPU; a bundle holds the whole GPU
    assert cpus_per_trial(1.0, 1.0, one_gpu_box) == 16
    assert cpus_per_trial(1.0, 0.25, one_gpu_box) == 4
    assert cpus_per_trial(1.0, 0.0, one_gpu_box) == 1  # CPU-only trials keep the study's
    # a CPU-only head and two kinds of GPU worker: what fits on every GPU node (4 CPUs per GPU)
    mixed = [_node(8, 0), _node(4, 1), _node(16, 2), _node(64, 1, alive=False)]
    assert cpus_per_trial(1.0, 1.0, mixed) == 4
    assert cpus_per_trial(1.0, 0.1, mixed) == 1  # less than one CPU's worth: never fewer than the study asks
    assert cpus_per_trial(2.0, 0.25, [_node(4, 1)]) == 2
    assert cpus_per_trial(1.0, 1.0, [_node(8, 0)]) == 1  # no GPU node up yet (an autoscaler adds them)


def test_bundles_are_planned_for_the_gpus_an_autoscaler_will_add():
    """--gpu 0.25 on a cluster whose GPU workers are not up yet: sized for none, the grid was one bundle."""
    assert worker_slots({"CPU": 4.0, "GPU": 2.0}, 0.25, 1.0) == (8, None)
    slots, note = worker_slots({"CPU": 4.0}, 0.25, 1.0)
    assert slots == AUTOSCALE_GPUS * 4 == 16 and note.startswith("no GPU in the cluster yet: bundles sized for 4 GPUs")
    assert worker_slots({"CPU": 4.0}, 0.0, 1.0) == (4, None)  # CPU trials: one per core
    assert worker_slots({"CPU": 4.0}, 8.0, 1.0)[0] == 1
