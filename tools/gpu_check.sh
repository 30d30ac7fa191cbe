#!/usr/bin/env bash
# gpu_check.sh — every GPU check of a session, in one call on the GPU machine
# (see DEVELOPERS.md: build here with CUDA, bundle the runtime, carry both).
#
#   here:                            bash tools/gpu_prepare.sh
#   device run, carry [".deps/gpu"]:  bash tools/gpu_check.sh
#
# Runs the test programs directly (CTest's files hold this machine's paths),
# then the benchmark against PyTorch, writing everything under $OUT.
set -u
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
bin=.deps/gpu/bin
[ -x "$bin/starpipe" ] || { echo "no $bin/starpipe: run tools/gpu_prepare.sh first and carry .deps/gpu"; exit 1; }
export LD_LIBRARY_PATH="$PWD/.deps/gpu/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export STARPU_HOME=/tmp/starpu-home STARPU_SILENT=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$STARPU_HOME"
nvidia-smi -L 2>&1 | tee "$out/gpu.txt"
for t in $bin/test_gradcheck $bin/test_partition $bin/test_idx $bin/test_checkpoint $bin/test_bad_input \
         $bin/test_few_microbatches $bin/test_schedules $bin/test_equivalence $bin/test_cuda \
         "tests/cli_errors.sh $bin/starpipe" "tests/cli_data.sh $bin/starpipe" "tests/cli_trace.sh $bin/starpipe"; do
    name=$(basename "${t%% *}")
    timeout 600 $t >"$out/$name.log" 2>&1
    rc=$?
    case $rc in
        0) echo "PASS $name" ;;
        77) echo "SKIP $name" ;;
        *) echo "FAIL $name (exit $rc)"; tail -20 "$out/$name.log" ;;
    esac
done | tee "$out/tests.txt"
grep -h "CUDA vs CPU\|GPU" "$out/test_cuda.log" 2>/dev/null | tee "$out/cuda_checks.txt"
python3 tools/gpu_bench.py --bin $bin/starpipe 2>&1 | tee "$out/bench.txt"
