#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh needs on a bare GPU machine (run here, from the repository root):
# the MNIST and BSDS500 files in ./.devdata (48 MB; both folders are git-ignored). Then, with the
# project's device tool:  run(command="bash benchmarks/gpu_check.sh", carry=[".devdata"]).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-${CCHSWEEP_DATA:-../shared/data}}
mkdir -p .devdata
cp -r "$SRC/mnist" "$SRC/bsds500" .devdata/
du -sh .devdata
