#!/usr/bin/env bash
# gpu_balance.sh — a mixed placement (stage 0 on the CPUs, stage 1 on GPU 0)
# cut by measured cost against the FLOPs cut, both timed, on the GPU machine
# (issue 13). Build and bundle here first (DEVELOPERS.md, "The GPU machine"):
#
#   here:                            bash tools/gpu_prepare.sh
#   device run, carry [".deps/gpu"]:  bash tools/gpu_balance.sh
#
# Calibrates the MLP on both worker kinds (plan --calibrate with the map),
# prints both cuts with their predicted steps (plan), then trains each cut
# 5 times, alternating, and prints the median samples/s of each. Logs and
# the plan's JSON go to $OUT.
set -u
out=${OUT:-/tmp/gpu-balance}
mkdir -p "$out"
bin=${BIN:-.deps/gpu/bin/starpipe}
[ -x "$bin" ] || { echo "no $bin: run tools/gpu_prepare.sh first and carry .deps/gpu"; exit 1; }
[ -d .deps/gpu/lib ] && export LD_LIBRARY_PATH="$PWD/.deps/gpu/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export STARPU_HOME=$out/home STARPU_SILENT=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$STARPU_HOME"
model=(--inputs 1024 --hidden 2048,2048,2048,2048,2048,2048 --classes 1000 --batch 2048 --microbatches 8
       --stages 2 --placement cpu,cuda0 --samples 8192)
nvidia-smi -L 2>&1 | tee "$out/gpu.txt"
"$bin" plan "${model[@]}" --calibrate 2>&1 | tee "$out/calibrate.txt"
"$bin" plan "${model[@]}" 2>&1 | tee "$out/plan.txt"
"$bin" plan "${model[@]}" --json >"$out/plan.json"
for r in 1 2 3 4 5; do
    for b in flops measured; do
        "$bin" train "${model[@]}" --steps 12 --warmup 3 --balance "$b" --json --quiet >"$out/$b.$r.json" 2>>"$out/train.err"
    done
done
python3 - "$out" <<'PY'
import json, statistics, sys, glob
out = sys.argv[1]
for b in ("flops", "measured"):
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{b}.*.json"))]
    sps = [r["samples_per_s"] for r in runs]
    print(f"--balance {b:8s}: stage starts {runs[0]['stage_starts']}, samples/s median {statistics.median(sps):.1f} "
          f"(runs {', '.join(f'{x:.1f}' for x in sps)})")
PY
