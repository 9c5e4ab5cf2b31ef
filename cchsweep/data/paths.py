"""Where data live: `--data-dir`, else $CCHSWEEP_DATA, else the per-user cache directory.

Data are never shipped with the package; a user either points at a directory they already
have (possibly read-only, e.g. a shared mount) or lets the loaders download into the cache.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from cchsweep.errors import UsageError

DATA_ENV = "CCHSWEEP_DATA"
OFFLINE_ENV = "CCHSWEEP_OFFLINE"


def default_data_dir() -> Path:
    # A "data" subfolder so that downloaded data sets and built artifacts do not share a level.
    import platformdirs  # here, not at the top: the engine also runs where only torch is installed

    return Path(platformdirs.user_cache_dir("cchsweep")) / "data"


def resolve_data_dir(cli_value: str | None) -> Path:
    """The data directory; an explicitly named one must exist, the default one need not yet."""
    for value, source in ((cli_value, "--data-dir"), (os.environ.get(DATA_ENV), f"${DATA_ENV}")):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                problem = "is a file, not a directory" if path.exists() else "does not exist"
                raise UsageError(
                    f"data directory {path} (from {source}) {problem}; create it, fix the "
                    f"path, or leave {source} unset to use {default_data_dir()}"
                )
            return path
    return default_data_dir()


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """An explicit argument wins; otherwise $CCHSWEEP_OFFLINE=1 (CI, air-gapped hosts) forbids."""
    if allow_download is not None:
        return allow_download
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("", "0", "false", "no", "off")


def missing_files(directory: Path, names: Iterable[str]) -> list[str]:
    return [name for name in names if not (directory / name).is_file()]


def missing_data_error(what: str, directory: Path, names: Iterable[str], todo: str) -> UsageError:
    """One line naming the expected location and files, and what the user should do."""
    listed = ", ".join(names)
    return UsageError(f"{what} not found: expected {listed} in {directory}; {todo}")


def would_download(what: str, directory: Path, urls: Sequence[str]) -> str:
    """A dry run's report of data a real run would fetch before it starts, as nothing may be fetched
    or created now: what, where it would go and from where, so a download is not mistaken for a stop.
    UsageError when a real run could not write there, since it would then stop instead."""
    _check_creatable(directory, what)
    fallback = " or a fallback" if len(urls) > 1 else ""
    return f"{what} not in {directory} (a real run would download it first, from {urls[0]}{fallback})"


def _check_creatable(directory: Path, what: str) -> None:
    """The directory exists and is writable, or its nearest existing ancestor is a writable directory
    (a real run creates the rest): checked without creating anything."""
    existing = Path(directory).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        problem = f"{existing} is a file, not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    else:
        return
    raise UsageError(
        f"{what} not in {directory}, and a real run could not download it there: {problem}; "
        "fix that, or point --data-dir/$CCHSWEEP_DATA at a directory holding the data"
    )


STALE_STAGING_SECONDS = 3600.0  # a live download writes into its staging folder far more often than this


def remove_stale_staging(directory: Path, prefix: str, older_than: float = STALE_STAGING_SECONDS) -> None:
    """Remove staging folders `prefix*` under `directory` untouched for `older_than` seconds: what a
    killed download left (up to ~74 MB each for BSDS500). A running one's folder is newer: kept."""
    if not directory.is_dir():
        return
    now = time.time()
    for path in directory.glob(f"{prefix}*"):
        try:
            if path.is_dir() and now - path.stat().st_mtime > older_than:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass
