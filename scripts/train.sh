#!/usr/bin/env bash
# train.sh [starpipe train options] — set-up and build if missing, then a
# main job:
#   - by default an MLP trained on Fashion-MNIST (the defaults of
#     `starpipe train --data fashion-mnist`: 784-512-256-10 in 2 stages, one
#     micro-batch of 128, on CPUs the pheft policy running each stage task on
#     every core, AdamW with cosine decay, 15 epochs), evaluated on the test
#     set after every epoch;
#   - with --model gpt (or --data text, --text PATH) the GPT on Shakespeare's
#     plays (the defaults of `starpipe train --data text`, tools/data.c);
#   - with --resume PATH, the run that the checkpoint names.
# Extra arguments are passed to starpipe train.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
export STARPU_HOME=${STARPU_HOME:-$PWD/build/starpu-home} STARPU_SILENT=${STARPU_SILENT:-1}
for arg in "$@"; do
    case "$arg" in
    --data | --data=* | --model | --model=* | --text | --text=* | --resume | --resume=*)
        exec ./build/starpipe train "$@" ;;
    esac
done
exec ./build/starpipe train --data fashion-mnist "$@"
