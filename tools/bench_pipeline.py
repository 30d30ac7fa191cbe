#!/usr/bin/env python3
"""bench_pipeline.py — pipeline speed-up on CPU workers, measured side by side.

Trains the same MLP of equal stages with K = 1 and K = 2 stages, pinned one stage per CPU worker, for
M in {1, 4, 16} micro-batches, and prints samples/s, the speed-up of K = 2
over K = 1 at the same M, and the ideal speed-up K·M/(M+K−1) of a pipeline
whose only loss is the fill-and-drain bubble.

The model: a narrow input layer (--inputs 32 → W) and four W × W layers (the
last one is the classifier over W classes), ReLU between. The input layer needs
no input gradient and is nearly free, so the four W × W layers, each one
forward GEMM and two backward GEMMs, split into two stages of equal cost.
Each point is the median of
--repeats runs; the first --warmup steps of every run are left out.

    python3 tools/bench_pipeline.py [--bin build/starpipe] [--width 512] [--batch 1024]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def run(args, k, m):
    cmd = [args.bin, "train", "--inputs", str(args.inputs), "--classes", str(args.width),
           "--hidden", ",".join([str(args.width)] * 4), "--batch", str(args.batch),
           "--samples", str(args.batch * 4), "--stages", str(k), "--microbatches", str(m),
           "--placement", "pinned", "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--cpus", str(args.cpus), "--json", "--quiet"]
    if args.sched:
        cmd += ["--sched", args.sched]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(here, "..", "build", "starpipe"))
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--inputs", type=int, default=32)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cpus", type=int, default=2, help="CPU workers (K = 2 needs 2)")
    p.add_argument("--sched", default=None, help="StarPU policy (default: StarPU's)")
    p.add_argument("--micro", default="1,4,16")
    args = p.parse_args()
    os.environ.setdefault("STARPU_SILENT", "1")
    ms = [int(x) for x in args.micro.split(",")]

    print(f"MLP {args.inputs} -> 4 x ({args.width} x {args.width}), batch {args.batch}, pinned, "
          f"{args.cpus} CPU workers, median of {args.repeats} runs of {args.steps} steps "
          f"({args.warmup} warm-up)")
    print(f"{'K':>2} {'M':>3} {'rows/mb':>7} {'samples/s':>10} {'speed-up':>9} {'ideal':>6} {'of ideal':>8}")
    base = {}
    worst = None
    for k in (1, 2):
        for m in ms:
            sps = statistics.median(run(args, k, m)["samples_per_s"] for _ in range(args.repeats))
            if k == 1:
                base[m] = sps
            speedup = sps / base[m]
            ideal = k * m / (m + k - 1)
            frac = speedup / ideal
            if k == 2 and m == max(ms):
                worst = frac
            print(f"{k:>2} {m:>3} {args.batch // m:>7} {sps:>10.1f} {speedup:>9.3f} {ideal:>6.3f} {frac:>7.1%}")
    print(f"K=2, M={max(ms)}: {worst:.1%} of the ideal speed-up (target: at least 90%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
