"""The device check (benchmarks/cuda_check.py, what gpu_check.sh runs first) where only torch is.

The device machine has torch, numpy, scipy and pillow but no Ray, DuckDB or polars. Here the check
runs on the CPU with those three made unimportable: it must finish with its summary, check the
synthetic and MNIST bundles against the reference, and say that the TCGA bundles (whose cohort
reader is polars) were skipped, not crash before the summary as it once did.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

BLOCKED = ("ray", "duckdb", "polars")
RUN_WITHOUT = (  # a fresh interpreter where importing any of BLOCKED fails, as where it is not installed
    "import runpy, sys\n"
    "class NotInstalled:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    f"        if name.partition('.')[0] in {BLOCKED!r}:\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, NotInstalled())\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def test_the_device_check_runs_without_ray_duckdb_or_polars(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT, str(ROOT / "benchmarks" / "cuda_check.py"), "--device", "cpu",
         "--data-dir", str(Path(os.environ["CCHSWEEP_DATA"]).resolve())],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env=dict(os.environ, OMP_NUM_THREADS="1", CCHSWEEP_OFFLINE="1"),
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    summary = rows[-1]
    assert summary["check"] == "summary" and summary["ok"] is True
    assert summary["skipped"] == ["tcga_noise", "tcga_fusion"]
    checked = {r["study"]: r for r in rows if r["check"] == "bundle" and "skipped" not in r}
    assert sorted(checked) == ["mnist_blur", "synthetic_sigma12"] and all(r["ok"] for r in checked.values())
    assert checked["synthetic_sigma12"]["max_rel_mse_diff"] <= 1e-3
    families = [r for r in rows if r["check"] == "family"]
    assert len(families) == 4 and all(r["ok"] for r in families)
    assert not any(name in line for line in out.stderr.splitlines() for name in ("Traceback",))


def test_the_tcga_call_checks_only_the_tcga_bundles(tmp_path):
    # gpu_check.sh --tcga (the second device call, the one that brings polars): here without polars,
    # so both TCGA bundles are skipped and say so; nothing else runs
    out = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT, str(ROOT / "benchmarks" / "cuda_check.py"), "--device", "cpu",
         "--only", "tcga", "--data-dir", str(Path(os.environ["CCHSWEEP_DATA"]).resolve())],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=dict(os.environ, CCHSWEEP_OFFLINE="1"),
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [(r["check"], r.get("study")) for r in rows] == [
        ("bundle", "tcga_noise"), ("bundle", "tcga_fusion"), ("summary", None)]
    assert rows[-1]["ok"] is True and rows[-1]["skipped"] == ["tcga_noise", "tcga_fusion"]
    # without the data it asks for it
    bare = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cuda_check.py"), "--device", "cpu", "--only", "tcga"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "CCHSWEEP_DATA": ""},
    )
    assert bare.returncode == 1 and "--only tcga needs the data" in bare.stderr


GRID = (  # sweep_speed's grid (what --full times on the device), at smoke scale, with a deadline
    "import json, sys\n"
    f"sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'benchmarks')!r}]\n"
    "import sweep_speed\n"
    "print(json.dumps(sweep_speed.grid_wall('cpu', sys.argv[1], float(sys.argv[2]), 'smoke')))\n"
)


def test_the_grid_stops_between_bundles_at_its_deadline_and_says_what_finished(tmp_path):
    data = str(Path(os.environ["CCHSWEEP_DATA"]).resolve())
    script = tmp_path / "grid.py"
    script.write_text(GRID)

    def grid(deadline: float) -> tuple[list[dict], dict]:
        out = subprocess.run(
            [sys.executable, "-c", RUN_WITHOUT, str(script), data, str(deadline)],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
            env=dict(os.environ, OMP_NUM_THREADS="1", CCHSWEEP_OFFLINE="1"),
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        return rows[:-1], rows[-1]

    # no deadline to speak of: both smoke grids through the in-process bundle engine (no Ray here)
    bundles, whole = grid(1e9)
    assert [(b["study"], b["points"], b["points_done"]) for b in bundles] == [("mnist_blur", 4, 4), ("mnist_alpha", 2, 6)]
    assert whole["grid_via"] == "engine" and whole["grid_wall_s"] >= sum(b["seconds"] for b in bundles) > 0
    # a deadline already spent: no bundle starts, and the summary says so instead of a wall time
    bundles, cut = grid(0.0)
    assert bundles == [] and "grid_wall_s" not in cut
    assert (cut["grid_complete"], cut["grid_points_done"], cut["grid_points"]) == (False, 0, 6)
