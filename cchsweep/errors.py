"""The one exception type the CLI turns into a one-line message and exit code 2, and Ctrl-C that
library code cannot lose."""

from __future__ import annotations

import signal
from types import FrameType

INTERRUPTS: list[int] = []  # the SIGINTs this process received while `on_interrupt` handled them


class UsageError(Exception):
    """Bad input from the user: say what is wrong and what to do, in one line."""


def on_interrupt(signum: int, frame: object) -> None:
    """cli.main's SIGINT handler: records the Ctrl-C, then raises it as Python's own handler does."""
    INTERRUPTS.append(signum)
    raise KeyboardInterrupt


def on_terminate(signum: int, frame: FrameType | None) -> None:
    """cli.main's SIGTERM handler (`kill`, a batch scheduler's stop): the signal taken as Ctrl-C, by
    whatever handles SIGINT at that moment (on_interrupt, or Ray Tune's during a sweep, which stops
    the trials and stores what finished), so the run ends interrupted, not failed. ray.init replaces
    it for its few seconds (raystart.start_ray puts it back): a SIGTERM then ends the process as Ray's
    handler does, before any trial ran."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
        return
    INTERRUPTS.append(signum)
    raise KeyboardInterrupt


def check_interrupted() -> None:
    """Raise a Ctrl-C that library code swallowed. Measured: a SIGINT 4-6 s into `cchsweep run`, while
    scipy's extension modules were importing (or during ray.init), vanished and the sweep ran on."""
    if INTERRUPTS:
        raise KeyboardInterrupt
