import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _data_env():
    os.environ.setdefault("CCHSWEEP_DATA", str(SHARED_DATA))
    yield


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The real command line, in a fresh process, as a user would run it."""
    env = dict(os.environ, CCHSWEEP_DATA=os.environ.get("CCHSWEEP_DATA", str(SHARED_DATA)))
    return subprocess.run([sys.executable, "-m", "cchsweep", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def q(db, sql: str) -> list[tuple]:
    """Read the results database the way a user's SQL would: a read-only connection."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()
