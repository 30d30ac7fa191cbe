#!/usr/bin/env bash
# fuzz.sh [SECONDS] — builds the fuzz targets and runs each for SECONDS
# (default 60) under AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   fuzz_safetensors  the checkpoint reader (header JSON, tensor table, metadata, check against a model)
#   fuzz_idx          the IDX reader, plain and gzip
#   fuzz_args         the command line of train and eval
#
# build-fuzz/ is a clang build of the library with coverage (-DSTARPIPE_FUZZ=ON,
# CPU only). Each target starts from its checked-in seed corpus
# (tests/fuzz/<target>/, never modified) and writes what it learns to
# build-fuzz/corpus/<target>/, kept between runs. Any finding (a crash, a
# sanitizer report, a leak, an input that takes over 25 s) fails the script;
# the input is saved as build-fuzz/findings/<target>-* and printed as a path
# (replay: build-fuzz/<target> FILE). One line per target tells the number of
# executions.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
bash scripts/setup.sh
echo "fuzz: configuring build-fuzz (clang, libFuzzer, ASan + UBSan)" >&2
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTARPIPE_FUZZ=ON -DSTARPIPE_CUDA=OFF \
    -DSTARPIPE_MPI=OFF >/dev/null
targets=(fuzz_safetensors fuzz_idx fuzz_args)
echo "fuzz: compiling the targets" >&2
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}" >/dev/null
mkdir -p build-fuzz/findings
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
status=0
for t in "${targets[@]}"; do
    seeds=tests/fuzz/${t#fuzz_}
    corpus=build-fuzz/corpus/$t
    mkdir -p "$corpus"
    log=build-fuzz/$t.log
    echo "fuzz: $t for ${secs} s (log: $log)" >&2
    if build-fuzz/"$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="build-fuzz/findings/$t-" "$corpus" "$seeds" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        inputs=$(ls "$corpus" | wc -l)
        echo "fuzz: $t: ${runs:-?} executions in ${secs} s, ${inputs} inputs in its corpus, no finding"
    else
        status=1
        echo "fuzz: $t: FINDING (see $log):"
        grep -E "ERROR|SUMMARY|runtime error|Test unit written|artifact" "$log" | head -20
    fi
done
exit $status
