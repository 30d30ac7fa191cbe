#!/usr/bin/env python3
"""sim_vs_measured.py — simulated against measured step times, row by row.

Runs `starpipe bench` for real --repeats times per (K, M), every run with
`--calibrate DIR` so that the perf models are the mean of the very tasks that
were measured, then `starpipe bench --simulate --calibration DIR` once per
(K, M) (a simulation is deterministic), and prints one row per (K, M, schedule,
policy, placement): the median measured step time (and its min-max over the
runs), the simulated one and their ratio. Then, per (K, M, schedule,
placement), the best policy measured and simulated, where the measured
figures of the best two differ by more than their noise (their min-max
ranges do not overlap).

With --replay, every measured run is a `starpipe train` of one row with its
own calibration, and is simulated from that calibration alone: a shared
machine's moods then reach the model and the measurement alike, and the ratio
measures the simulation itself (scheduling, dependencies, overheads) rather
than how the machine's load moved between calibration and measurement.

The model is tools/bench_pipeline.py's MLP: 32 -> 4 x (W x W), batch 1024.

    python3 tools/sim_vs_measured.py [--bin build/starpipe] [--calibration DIR] [--repeats 5] [--replay]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def bench(args, k, m, simulate):
    cmd = [args.bin, "bench", "--inputs", "32", "--hidden", ",".join([str(args.width)] * 4),
           "--classes", str(args.width), "--batch", str(args.batch), "--stages", str(k), "--microbatches", str(m),
           "--policies", args.policies, "--schedules", args.schedules, "--placements", args.placements,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--json"]
    cmd += ["--simulate", "--calibration", args.calibration] if simulate else ["--calibrate", args.calibration]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)["rows"]
    return {(r["schedule"], r["policy"], r["placement"]): r["step_ms"] for r in rows}


def train(args, k, m, sched, pol, pla, cal, simulate):
    cmd = [args.bin, "simulate" if simulate else "train", "--inputs", "32",
           "--hidden", ",".join([str(args.width)] * 4), "--classes", str(args.width), "--batch", str(args.batch),
           "--samples", str(args.batch * 4), "--stages", str(k), "--microbatches", str(m), "--schedule", sched,
           "--sched", pol, "--placement", pla, "--steps", str(args.steps + args.warmup), "--warmup",
           str(args.warmup), "--json", "--quiet"]
    cmd += ["--calibration", cal] if simulate else ["--calibrate", cal]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return args.batch / json.loads(out.strip().splitlines()[-1])["samples_per_s"] * 1e3


def replay(args, ks, ms):
    """Each run calibrates its own directory and is simulated from it alone."""
    rows = [(k, m, sched, pol, pla) for k in ks for m in ms for sched in args.schedules.split(",")
            for pla in args.placements.split(",") for pol in args.policies.split(",")]
    runs = {}
    for rep in range(args.repeats):
        for i, row in enumerate(rows):
            cal = os.path.join(args.calibration, f"run{rep}-{i}")
            meas = train(args, *row, cal, False)
            sim = train(args, *row, cal, True)
            runs.setdefault(row, []).append((meas, sim))
        print(f"replayed run {rep + 1} of {args.repeats}", file=sys.stderr)
    print(f"MLP 32 -> 4 x ({args.width} x {args.width}), batch {args.batch}; every run ({args.steps} measured steps "
          f"after {args.warmup}) simulated from its own calibration; step ms\n")
    print("| K | M | schedule | policy | placement | measured median (min-max) | simulated median | "
          "sim / measured, median (min-max) over the runs |")
    print("|---|---|---|---|---|---|---|---|")
    within = 0
    for row in rows:
        r = runs[row]
        meas = [a for a, _ in r]
        ratios = [b / a for a, b in r]
        med = statistics.median(ratios)
        within += abs(med - 1) <= 0.10
        print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} | {row[4]} | {statistics.median(meas):.1f} "
              f"({min(meas):.1f}-{max(meas):.1f}) | {statistics.median(b for _, b in r):.1f} | {med:.3f} "
              f"({min(ratios):.3f}-{max(ratios):.3f}) |")
    print(f"\nrows whose median ratio is within 10%: {within} of {len(rows)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"calibration": args.calibration, "runs": {"|".join(map(str, k)): v for k, v in runs.items()}},
                      f, indent=1)
    return 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(here, "..", "build", "starpipe"))
    p.add_argument("--calibration", default=None, help="where the models go (default: a new temporary directory)")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--stages", default="1,2")
    p.add_argument("--micro", default="1,4,16")
    p.add_argument("--policies", default="eager,lws,dmda")
    p.add_argument("--schedules", default="gpipe,1f1b,zb")
    p.add_argument("--placements", default="pinned,free")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write every figure to this file")
    p.add_argument("--replay", action="store_true", help="simulate every run from its own calibration")
    args = p.parse_args()
    os.environ.setdefault("STARPU_SILENT", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args.calibration is None:
        args.calibration = tempfile.mkdtemp(prefix="starpipe-cal-")
    ks = [int(x) for x in args.stages.split(",")]
    ms = [int(x) for x in args.micro.split(",")]
    if args.replay:
        return replay(args, ks, ms)
    measured = {}
    for rep in range(args.repeats):  # repeats outermost: the machine's moods spread over every row
        for k in ks:
            for m in ms:
                for key, ms_ in bench(args, k, m, False).items():
                    measured.setdefault((k, m) + key, []).append(ms_)
        print(f"measured run {rep + 1} of {args.repeats} done", file=sys.stderr)
    simulated = {}
    for k in ks:
        for m in ms:
            for key, ms_ in bench(args, k, m, True).items():
                simulated[(k, m) + key] = ms_

    print(f"MLP 32 -> 4 x ({args.width} x {args.width}), batch {args.batch}; step time in ms, measured median "
          f"(min-max) of {args.repeats} runs of {args.steps} steps beside the simulation from calibration "
          f"{args.calibration}\n")
    print("| K | M | schedule | policy | placement | measured ms | simulated ms | sim / measured |")
    print("|---|---|---|---|---|---|---|---|")
    within, rows, report = 0, 0, []
    for key in sorted(measured, key=lambda x: (x[0], x[1], x[2], x[4], x[3])):
        k, m, sched, pol, pla = key
        v = measured[key]
        med, sim = statistics.median(v), simulated.get(key, float("nan"))
        ratio = sim / med
        rows += 1
        within += abs(ratio - 1) <= 0.10
        print(f"| {k} | {m} | {sched} | {pol} | {pla} | {med:.1f} ({min(v):.1f}-{max(v):.1f}) | {sim:.1f} | "
              f"{ratio:.3f} |")
        report.append({"stages": k, "microbatches": m, "schedule": sched, "policy": pol, "placement": pla,
                       "measured_ms": v, "measured_median_ms": med, "simulated_ms": sim})
    print(f"\nrows within 10%: {within} of {rows}")

    print("\nbest policy per (K, M, schedule, placement), where the measured best two differ beyond their noise:")
    groups = {}
    for (k, m, sched, pol, pla), v in measured.items():
        groups.setdefault((k, m, sched, pla), []).append((statistics.median(v), min(v), max(v), pol))
    agree = distinct = 0
    for g in sorted(groups):
        runs = sorted(groups[g])
        if len(runs) < 2:
            continue
        best, second = runs[0], runs[1]
        k, m, sched, pla = g
        sim_best = min((simulated[(k, m, sched, pol, pla)], pol) for _, _, _, pol in runs)[1]
        separated = best[2] < second[1]  # the best's slowest run beats the runner-up's fastest
        if separated:
            distinct += 1
            agree += sim_best == best[3]
        print(f"  K={k} M={m:<2} {sched:<5} {pla:<6}: measured {best[3]:<5} ({best[0]:.1f} ms, next "
              f"{second[3]} {second[0]:.1f} ms{', beyond noise' if separated else ', within noise'}), "
              f"simulated {sim_best}")
    print(f"same best policy where the measurements tell them apart: {agree} of {distinct}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"calibration": args.calibration, "rows": report}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
