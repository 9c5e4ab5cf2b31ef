#!/usr/bin/env bash
# The device check: run it on any machine with an NVIDIA GPU and torch (no Ray, DuckDB or latentmi
# needed), from the repository root, in about 8 minutes on an H100/H200 ($BUDGET, default 500 s):
#
#   bash benchmarks/gpu_check.sh            # results under $OUT (default: a new temp folder)
#   bash benchmarks/gpu_check.sh --tcga     # then, where polars was missing: the TCGA bundles alone
#
# 1. benchmarks/cuda_check.py: stacked vs single-model training on CUDA, per network family; one CUDA
#    graph per step vs eager (CCHSWEEP_CUDA_GRAPHS); TF32 vs float32 against the seed spread
#    (CCHSWEEP_TF32); the smoke grids through the bundle engine vs the reference trial, eager and graphed.
# 2. benchmarks/mi_speed.py --device cuda: one LMI estimate by latentmi and by lmi at n = 10,000 (300
#    epochs), and 25 lmi estimates in one call (latentmi travels as a wheel in ./.whl, --no-deps).
# 3. benchmarks/sweep_speed.py --full --device cuda, with the time left: the speed figures (eager,
#    graphs, TF32, both), then both MNIST paper grids' training on one GPU (through the CLI when Ray
#    is installed, else the bundle engine in-process; with graphs when they ran). Its summary line
#    comes before the grid (grid_pending), and the grid starts no bundle it would not finish within
#    the budget (--deadline): each bundle's time is a grid_bundle line, and a grid cut short says
#    grid_complete false in the last summary; only a failed check makes the script exit non-zero.
# 4. GPU utilisation sampled once a second by nvidia-smi during all three, summarised at the end.
# Each step's JSON lines go to $OUT/NAME.jsonl; every step's stderr to $OUT/stderr.log (and the
# console). At most 7 files land in $OUT: the device tool brings back 8 at most.
#
# Data: $CCHSWEEP_DATA, else ./.devdata (mnist/, bsds500/, tcga/: benchmarks/device_prep.sh fills it).
# Wheels: any in ./.whl and ./.whlpl are installed to /tmp/site first (the device tool's convention).
# The TCGA cohort reader is polars, which the device image lacks and whose wheels (./.whlpl, 55 MB)
# do not fit in one 64 MiB device call beside ./.devdata: the first call skips TCGA (its rows say
# so) and `--tcga`, a second call carrying .whlpl and .devdata/tcga/brca, checks it.
# A rehearsal on a CPU machine: DEVICE=cpu SPEED_ARGS=--quick MI_ARGS=--quick bash benchmarks/gpu_check.sh
set -euo pipefail
DEVICE=${DEVICE:-cuda}
SPEED_ARGS=${SPEED_ARGS:---full}
MI_ARGS=${MI_ARGS:---batch 25}
BUDGET=${BUDGET:-500}
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
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export CCHSWEEP_DATA=${CCHSWEEP_DATA:-$PWD/.devdata}
export CCHSWEEP_OFFLINE=1 PYTHONUNBUFFERED=1
status=0
step() {  # step NAME SECONDS SCRIPT ARGS...: JSON lines to $OUT/NAME.jsonl, stderr to $OUT/stderr.log and here
  local name=$1 limit=$2 rc=0
  shift 2
  echo "== $name: $*" >>"$OUT/stderr.log"
  timeout "$limit" python3 "$@" 2> >(tee -a "$OUT/stderr.log" >&2) | tee "$OUT/$name.jsonl" || rc=$?
  if [ $rc -eq 124 ] && [ "$name" = sweep_speed ] && grep -q grid_pending "$OUT/$name.jsonl"; then
    echo "== $name: the paper grid outran the budget; its figures before the grid stand" | tee -a "$OUT/stderr.log" >&2
  elif [ $rc -ne 0 ]; then
    status=1
  fi
}
if [ "${1:-}" = "--tcga" ]; then
  step cuda_check_tcga 120 benchmarks/cuda_check.py --device "$DEVICE" --only tcga
  exit $status
fi
python3 -c 'import json, torch; print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
  "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}))' | tee "$OUT/env.json"
UTIL=$(mktemp)  # not under $OUT: only the summary of it comes back
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 \
  > "$UTIL" 2>/dev/null &
SMI=$!
trap 'kill $SMI 2>/dev/null || true' EXIT
step cuda_check 150 benchmarks/cuda_check.py --device "$DEVICE"
step mi_speed 150 benchmarks/mi_speed.py $MI_ARGS --device "$DEVICE"
left=$((BUDGET - SECONDS))
left=$((left > 60 ? left : 60))
step sweep_speed $left benchmarks/sweep_speed.py $SPEED_ARGS --deadline $((left - 10)) --device "$DEVICE"
kill $SMI 2>/dev/null || true
python3 - "$UTIL" <<'PY' | tee "$OUT/gpu_util.json"
import json, sys
rows = [line.split(", ") for line in open(sys.argv[1]) if line.count(",") == 2]
util = [float(r[1]) for r in rows if r[1].strip().replace(".", "").isdigit()]
mem = [float(r[2]) for r in rows if r[2].strip().replace(".", "").isdigit()]
print(json.dumps({"gpu_util_samples": len(util), "gpu_util_mean": round(sum(util) / len(util), 1) if util else None,
                  "gpu_util_max": max(util, default=None), "gpu_mem_max_mib": max(mem, default=None)}))
PY
exit $status
