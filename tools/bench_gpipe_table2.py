#!/usr/bin/env python3
"""bench_gpipe_table2.py — the shape of GPipe's Table 2, measured on CPU workers.

GPipe (Huang et al., 2019), Table 2, reports throughput for K partitions and M
micro-batches normalised to K = 2, M = 1. This script trains one MLP whose
layers split evenly for every K it runs (a narrow input layer, then 8 equal
W x W layers, the last one the classifier), with K in {1, 2, 4, 8} as far as
the machine's cores allow (one pinned CPU worker per stage) and M in
{1, 4, 32}, and prints the measured throughput normalised to K = 2, M = 1
beside the ideal K*M/(M+K-1) of a pipeline whose only loss is the fill-and-
drain bubble. The batch is large enough that a micro-batch of M = 32 still
has 128 rows. Each point is the median of --repeats runs; the first --warmup
steps of each run are left out.

    python3 tools/bench_gpipe_table2.py [--bin build/starpipe] [--width 256]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def run(args, k, m):
    cmd = [args.bin, "train", "--inputs", "32", "--classes", str(args.width),
           "--hidden", ",".join([str(args.width)] * 7), "--batch", str(args.batch),
           "--samples", str(args.batch * 2), "--stages", str(k), "--microbatches", str(m),
           "--placement", "pinned", "--cpus", str(args.cpus), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--schedule", args.schedule, "--json", "--quiet"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["samples_per_s"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(here, "..", "build", "starpipe"))
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--schedule", default="gpipe")
    p.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPU workers (default: the machine's cores)")
    args = p.parse_args()
    os.environ.setdefault("STARPU_SILENT", "1")
    ks = [k for k in (1, 2, 4, 8) if k <= args.cpus]
    ms = [1, 4, 32]
    print(f"MLP 32 -> 8 x ({args.width} x {args.width}), batch {args.batch}, {args.schedule} schedule, "
          f"{args.cpus} CPU workers, K in {ks}; median of {args.repeats} runs of {args.steps} steps")
    sps = {(k, m): statistics.median(run(args, k, m) for _ in range(args.repeats)) for k in ks for m in ms}
    base = sps[(2, 1)] if (2, 1) in sps else sps[(1, 1)]
    print("\nthroughput normalised to K=2, M=1 (measured / ideal K*M/(M+K-1), and the share of ideal reached)")
    print(f"{'':>6}" + "".join(f"{'M=' + str(m):>26}" for m in ms))
    worst = 1.0
    for k in ks:
        cells = []
        for m in ms:
            ideal = k * m / (m + k - 1)
            meas = sps[(k, m)] / base
            cells.append(f"{meas:6.2f} / {ideal:5.2f} ({meas / ideal:6.1%})")
            if m == 32:
                worst = min(worst, meas / ideal)
        print(f"{'K=' + str(k):>6}" + "".join(f"{c:>26}" for c in cells))
    print("\nper-micro-batch efficiency (K=1 at M against K=1 at M=1): " +
          ", ".join(f"M={m}: {sps[(1, m)] / sps[(1, 1)]:.1%}" for m in ms))
    print(f"worst share of the ideal at M=32: {worst:.1%} (target: at least 90%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
