"""Nothing cchsweep starts by itself listens beyond loopback: the sockets of a live embedded Ray.

While a real `cchsweep run` and a real `cchsweep advise` work, every listening TCP socket of every
process they started (the GCS, raylets, agents, workers, the driver) is listed by pid and must be
on 127.0.0.1 or ::1.
"""

import ipaddress
import os
import subprocess
import sys
import time

import psutil
import pytest

from conftest import SHARED_DATA

pytestmark = pytest.mark.slow



def is_loopback(ip: str) -> bool:
    """127.0.0.0/8 or ::1, also as an IPv4-mapped IPv6 address (::ffff:127.0.0.1, how Ray's gRPC
    servers bind)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)


def listening_sockets(args: list[str], cwd, timeout: float = 300) -> tuple[subprocess.CompletedProcess, set]:
    """Run the CLI and, until it exits, poll the listening sockets of it and all its descendants:
    the set of (process name, ip, port) seen."""
    env = dict(os.environ, CCHSWEEP_DATA=str(SHARED_DATA))
    proc = subprocess.Popen([sys.executable, "-m", "cchsweep", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: set[tuple[str, str, int]] = set()
    deadline = time.monotonic() + timeout
    root = psutil.Process(proc.pid)
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in family:
            try:
                name = p.name()
                for c in p.net_connections(kind="tcp"):
                    if c.status == psutil.CONN_LISTEN:
                        seen.add((name, c.laddr.ip, c.laddr.port))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        time.sleep(0.2)
    out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), seen


def assert_loopback_only(seen: set) -> None:
    names = {name for name, _, _ in seen}
    # The embedded Ray was caught alive: its GCS and raylet were among the listeners.
    assert "gcs_server" in names and "raylet" in names, sorted(seen)
    exposed = sorted(s for s in seen if not is_loopback(s[1]))
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_embedded_sweep_listens_on_loopback_only(tmp_path):
    done, seen = listening_sockets(["run", "synthetic_sigma12", "--profile", "smoke", "--set", "sigma12=0.3",
                                    "--set", "mi_epochs=2", "--db", str(tmp_path / "r.duckdb")], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(seen) >= 4  # GCS, raylet (node manager and object manager), agents, workers
    assert_loopback_only(seen)


def test_advise_listens_on_loopback_only(tmp_path):
    done, seen = listening_sockets(["advise", str(SHARED_DATA / "tcga" / "brca"), "--student", "cnv",
                                    "--teachers", "mrna", "--estimator", "ksg", "--repeats", "1"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_loopback_only(seen)


class _RayRegisteredAt:
    """What check_loopback_nodes reads of the `ray` module: its node table (and shutdown)."""

    def __init__(self, *addresses):
        self.addresses, self.stopped = addresses, False

    def nodes(self):
        return [{"NodeManagerAddress": a, "Alive": True} for a in self.addresses] + [
            {"NodeManagerAddress": "10.0.0.9", "Alive": False}  # a dead node is not listening
        ]

    def is_initialized(self):
        return True

    def shutdown(self):
        self.stopped = True


def test_a_node_registered_off_loopback_stops_the_run():
    from cchsweep.errors import UsageError
    from cchsweep.raystart import check_loopback_nodes

    fine = _RayRegisteredAt("127.0.0.1")
    check_loopback_nodes(fine, None)
    assert not fine.stopped
    lan = _RayRegisteredAt("127.0.0.1", "192.168.1.20")
    with pytest.raises(UsageError, match=r"registered its node at 192\.168\.1\.20, not 127\.0\.0\.1"):
        check_loopback_nodes(lan, None)
    assert lan.stopped  # the embedded Ray it started is shut down, not left listening
