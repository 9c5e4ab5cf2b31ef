#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh needs on a bare GPU machine (run here, from the repository root):
# the MNIST, BSDS500 and TCGA files in ./.devdata (57 MB) and the latentmi 0.1.3 wheel in ./.whl (9 kB;
# the reference for benchmarks/mi_speed.py); both folders are git-ignored. Then, with the project's
# device tool:  run(command="bash benchmarks/gpu_check.sh", carry=[".devdata", ".whl"]).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-${CCHSWEEP_DATA:-../shared/data}}
mkdir -p .devdata
cp -r "$SRC/mnist" "$SRC/bsds500" "$SRC/tcga" .devdata/
du -sh .devdata
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl latentmi==0.1.3
