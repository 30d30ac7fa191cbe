#!/usr/bin/env bash
# build.sh [--sanitize] — set-up if missing, then configure and build starpipe.
#   build/       the normal build (RelWithDebInfo)
#   build-asan/  with --sanitize: AddressSanitizer + UndefinedBehaviorSanitizer
# Its own progress lines go to stderr (scripts/train.sh silences stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dir=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${1:-}" = --sanitize ]; then
    dir=build-asan
    flags=(-DCMAKE_BUILD_TYPE=Debug -DSTARPIPE_SANITIZE=ON)
fi
echo "build: configuring $dir" >&2
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
echo "build: compiling $dir (a minute or two)" >&2
cmake --build "$dir" -j"$(nproc)"
