#!/usr/bin/env bash
# train.sh [starpipe train options] — set-up and build if missing, then a
# short pipelined training run: an MLP in 2 stages, 8 micro-batches per batch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
export STARPU_HOME=${STARPU_HOME:-$PWD/build/starpu-home} STARPU_SILENT=${STARPU_SILENT:-1}
if [ $# -eq 0 ]; then
    set -- --hidden 256,256,256 --stages 2 --microbatches 8 --batch 256 --steps 200 --optimizer adamw
fi
exec ./build/starpipe train "$@"
