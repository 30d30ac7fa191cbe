#!/usr/bin/env bash
# gpu_check.sh — every GPU check of a session, in one call on the GPU machine
# (see DEVELOPERS.md: build here with CUDA, bundle the runtime, carry both).
#
#   here:                            bash tools/gpu_prepare.sh
#   device run, carry [".deps/gpu"]:  bash tools/gpu_check.sh
#
# Runs every test program directly (CTest's files hold this machine's paths),
# then the benchmark against PyTorch and the main jobs on the GPU, writing
# everything under $OUT.
set -u
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
bin=.deps/gpu/bin
[ -x "$bin/starpipe" ] || { echo "no $bin/starpipe: run tools/gpu_prepare.sh first and carry .deps/gpu"; exit 1; }
export LD_LIBRARY_PATH="$PWD/.deps/gpu/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export STARPU_HOME=/tmp/starpu-home STARPU_SILENT=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$STARPU_HOME"
nvidia-smi -L 2>&1 | tee "$out/gpu.txt"
tests=()
for t in "$bin"/test_*; do tests+=("$t"); done
for s in cli_errors cli_data cli_trace cli_gpt; do
    [ -f "tests/$s.sh" ] && tests+=("tests/$s.sh $bin/starpipe")
done
for t in "${tests[@]}"; do
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
# the main jobs on the GPU (issue 15): Fashion-MNIST all on the GPU and with
# stage 0 on the CPUs, the GPT's default run on the GPU; time and result
for run in "fashion-cuda --data fashion-mnist --device cuda" \
           "fashion-mixed --data fashion-mnist --placement cpu,cuda0" \
           "gpt-cuda --model gpt --device cuda"; do
    name=${run%% *}
    /usr/bin/time -f "$name: %e s" timeout 120 $bin/starpipe train ${run#* } --json >"$out/$name.json" 2>"$out/$name.err"
    tail -1 "$out/$name.err"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], {k: d.get(k) for k in ('test_accuracy', 'val_loss', 'seconds', 'samples_per_s', 'tokens_per_s')})" \
        "$out/$name.json" "$name" 2>/dev/null || echo "$name: no JSON"
done | tee "$out/main_jobs.txt"
