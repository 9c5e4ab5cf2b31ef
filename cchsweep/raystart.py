"""The one place cchsweep starts (or joins) Ray: `cchsweep run`, the boundary search, `advise`
and `advise --verify` all come through `start_ray`.

An embedded Ray (no --address) serves only this process and has no authentication, so every
socket it opens must be on the loopback interface. Ray rewrites a loopback node address to the
machine's outward IP, and its GCS, raylets, agents and gRPC servers then listen on all
interfaces, unless its single-machine mode is on: `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` in the
environment before `ray.init` (measured with ray 2.60; `tests/test_loopback.py` lists the
sockets of a live sweep). A cluster given by --address keeps its own addresses and its own
authentication (token auth, see README).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from cchsweep.errors import INTERRUPTS, UsageError, on_terminate

LOOPBACK = "127.0.0.1"
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def is_loopback(address: str | None) -> bool:
    """None (an embedded Ray) or an address on this machine's loopback interface."""
    if address is None:
        return True
    host = address.split("://", 1)[-1].rpartition(":")[0]
    return host in (LOOPBACK, "localhost", "::1", "[::1]")


def start_ray(address: str | None = None):
    """Start an embedded loopback-only Ray (address None) or join the cluster at `address`.

    Returns the `ray` module; raises UsageError (one line) when the cluster cannot be joined.
    Whoever started an embedded Ray shuts it down (`stop_ray`).
    """
    # The database is the record: Tune's own CSV/JSON/TensorBoard loggers only add overhead.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # a failed trial's traceback stays in its error row and Tune's error file; the progress shows one
    # ERROR line per point (writer.DuckDBWriter), not Tune's ~50-line log record of every attempt
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    loopback = is_loopback(address)
    if loopback:
        os.environ[SINGLE_MACHINE_ENV] = "0"
    import ray
    from ray._private import ray_constants

    if loopback:
        # Ray reads the variable once, when ray_constants is first imported; a process that
        # imported ray before this call (a library user, advise) needs the constant itself set.
        ray_constants.ENABLE_RAY_CLUSTER = False

    local: dict[str, Any] = {"_node_ip_address": LOOPBACK} if loopback else {}
    ours = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is on_terminate
    with _held_interrupt() as interrupted:
        try:
            # "local" always starts a fresh embedded Ray; None would join whatever cluster this
            # machine last started (ray start, or a test cluster), live or dead.
            ray.init(
                address=address or "local",
                include_dashboard=False,
                logging_level=logging.ERROR,
                log_to_driver=False,
                ignore_reinit_error=True,
                **local,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(
                f"cannot reach a Ray cluster at --address {address}: {first}; start one with "
                f"`ray start --head` or `ray up ray_cluster.yaml`, or drop --address"
            ) from None
    if ours:  # ray.init took SIGTERM over (it printed a C stack and exited 1 mid-sweep): as Ctrl-C again
        signal.signal(signal.SIGTERM, on_terminate)
    if interrupted:
        stop_ray(ray, address)
        raise KeyboardInterrupt
    if loopback:
        check_loopback_nodes(ray, address)
    return ray


def check_loopback_nodes(ray, address: str | None) -> None:
    """The embedded Ray must have registered its node as 127.0.0.1: Ray rewrites a loopback node
    address to the LAN address unless told not to (SINGLE_MACHINE_ENV), and its ports then bind to
    the network. Should a Ray release stop honouring that, the run stops here, before any trial."""
    outside = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]} - {LOOPBACK})
    if outside:
        stop_ray(ray, address)
        raise UsageError(
            f"the local Ray registered its node at {', '.join(outside)}, not {LOOPBACK}: it would be reachable "
            f"from the network, so the run stops; check {SINGLE_MACHINE_ENV} and this Ray version"
        )


@contextlib.contextmanager
def _held_interrupt() -> Iterator[list[int]]:
    """Ctrl-C during ray.init, recorded (errors.INTERRUPTS) and raised once it returns, not inside
    Ray's startup, where it can be lost (see errors.check_interrupted)."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def held(signum: int, frame: object) -> None:
        caught.append(signum)
        INTERRUPTS.append(signum)

    previous = signal.signal(signal.SIGINT, held)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_ray(ray, address: str | None) -> None:
    """Shut down a Ray this process started itself; a joined cluster keeps running."""
    if ray is not None and address is None and ray.is_initialized():
        ray.shutdown()


def worker_device() -> str:
    """ "cuda" inside a Ray task or actor that was given a GPU (and torch sees one), else "cpu"."""
    import torch

    try:
        import ray
    except ImportError:
        return "cpu"
    return "cuda" if ray.is_initialized() and ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"


def new_run_id(name: str) -> str:
    """NAME-YYYYMMDDTHHMMSS-xxxxxx (UTC): sortable by start, unique across concurrent runs."""
    return f"{name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
