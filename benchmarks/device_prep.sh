#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh needs on a bare GPU machine (run here, from the repository root):
# the MNIST, BSDS500 and TCGA files in ./.devdata (57 MB; the folder is git-ignored). Then, with the
# project's device tool:  run(command="bash benchmarks/gpu_check.sh", carry=[".devdata"]).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-${CCHSWEEP_DATA:-../shared/data}}
mkdir -p .devdata
cp -r "$SRC/mnist" "$SRC/bsds500" "$SRC/tcga" .devdata/
du -sh .devdata
