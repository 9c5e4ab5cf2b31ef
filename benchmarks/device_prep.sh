#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh needs on a bare GPU machine (run here, from the repository root):
# - ./.devdata: the MNIST, BSDS500 and TCGA files (57 MB);
# - ./.whl: the latentmi 0.1.3 wheel (9 kB; the reference for benchmarks/mi_speed.py);
# - ./.whlpl: polars and its runtime for Python 3.12 (55 MB; the TCGA cohort reader's, which the
#   device image lacks). With .devdata it would pass the 64 MiB one device call carries, so the check
#   runs first without it (its TCGA rows say `skipped`) and the TCGA bundles come in a second call:
#     run(command="bash benchmarks/gpu_check.sh", carry=[".devdata", ".whl"], timeout_s=540)
#     run(command="bash benchmarks/gpu_check.sh --tcga", carry=[".whlpl", ".devdata/tcga/brca"], timeout_s=150)
# Make the second call at once (the machine stays warm 30 s; a fresh start costs minutes): start,
# ~540 s and ~60 s fit the 15 minutes a session gets (the TCGA check took 12 s on 2 CPU cores).
# All three folders are git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-${CCHSWEEP_DATA:-../shared/data}}
mkdir -p .devdata
cp -r "$SRC/mnist" "$SRC/bsds500" "$SRC/tcga" .devdata/
du -sh .devdata
mkdir -p .whl .whlpl
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl latentmi==0.1.3
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whlpl polars==2.1.0 polars-runtime-32==2.1.0
du -sh .whl .whlpl
