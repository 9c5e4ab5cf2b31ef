#!/usr/bin/env bash
# The device check: run it on any machine with an NVIDIA GPU and torch (no Ray, DuckDB or latentmi
# needed), from the repository root, in well under 8 minutes on an H100/H200:
#
#   bash benchmarks/gpu_check.sh            # results under $OUT (default: a new temp folder)
#
# 1. benchmarks/cuda_check.py: stacked vs single-model training on CUDA, per network family; one CUDA
#    graph per step vs eager (CCHSWEEP_CUDA_GRAPHS); TF32 vs float32 against the seed spread
#    (CCHSWEEP_TF32); the smoke grids through the bundle engine vs the reference trial, eager and graphed.
# 2. benchmarks/sweep_speed.py --full --device cuda: the speed figures (eager, graphs, TF32, both) and
#    both MNIST paper grids' training on one GPU (through the CLI when Ray is installed, else the
#    bundle engine in-process; with graphs when they ran).
# 3. benchmarks/mi_speed.py --device cuda: one LMI estimate by latentmi and by lmi at n = 10,000 (300
#    epochs), and 50 lmi estimates in one call (latentmi travels as a wheel in ./.whl, --no-deps).
# 4. GPU utilisation sampled once a second by nvidia-smi during all three, summarised at the end.
#
# Data: $CCHSWEEP_DATA, else ./.devdata (mnist/, bsds500/, tcga/: benchmarks/device_prep.sh fills it).
# Wheels: any in ./.whl and ./.whlpl are installed to /tmp/site first (the device tool's convention);
# `--install` installs them and stops (polars' wheels travel in a call of their own: device_prep.sh).
# A rehearsal on a CPU machine: DEVICE=cpu SPEED_ARGS=--quick MI_ARGS=--quick bash benchmarks/gpu_check.sh
set -euo pipefail
DEVICE=${DEVICE:-cuda}
SPEED_ARGS=${SPEED_ARGS:---full}
MI_ARGS=${MI_ARGS:-}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
for wheels in .whl .whlpl; do
  if compgen -G "$wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels/*.whl
  fi
done
if [ -d /tmp/site ]; then  # also what an earlier call on this machine installed
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
if [ "${1:-}" = "--install" ]; then
  python3 -c 'import importlib.util as u; print({m: u.find_spec(m) is not None for m in ("polars", "latentmi")})'
  exit 0
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export CCHSWEEP_DATA=${CCHSWEEP_DATA:-$PWD/.devdata}
export CCHSWEEP_OFFLINE=1 PYTHONUNBUFFERED=1
python3 -c 'import json, torch; print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
  "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}))' | tee "$OUT/env.json"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 \
  > "$OUT/gpu_util.csv" 2>/dev/null &
SMI=$!
trap 'kill $SMI 2>/dev/null || true' EXIT
status=0
timeout 150 python3 benchmarks/cuda_check.py --device "$DEVICE" 2>&1 | tee "$OUT/cuda_check.jsonl" || status=1
timeout 270 python3 benchmarks/sweep_speed.py $SPEED_ARGS --device "$DEVICE" 2>&1 | tee "$OUT/sweep_speed.jsonl" || status=1
timeout 150 python3 benchmarks/mi_speed.py $MI_ARGS --device "$DEVICE" 2>&1 | tee "$OUT/mi_speed.jsonl" || status=1
kill $SMI 2>/dev/null || true
python3 - "$OUT/gpu_util.csv" <<'PY' | tee "$OUT/gpu_util.json"
import json, sys
rows = [line.split(", ") for line in open(sys.argv[1]) if line.count(",") == 2]
util = [float(r[1]) for r in rows if r[1].strip().replace(".", "").isdigit()]
mem = [float(r[2]) for r in rows if r[2].strip().replace(".", "").isdigit()]
print(json.dumps({"gpu_util_samples": len(util), "gpu_util_mean": round(sum(util) / len(util), 1) if util else None,
                  "gpu_util_max": max(util, default=None), "gpu_mem_max_mib": max(mem, default=None)}))
PY
exit $status
