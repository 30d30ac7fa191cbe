#!/usr/bin/env python3
"""bench_balance.py — the measured cut against the FLOPs cut, timed side by side.

A model where FLOPs mislead: a few wide linear layers (cheap per FLOP: large
matrix products) then many narrow ones, each followed by a layer norm and a
GELU (dear per FLOP: small products, element-wise passes, per-op overhead).
It calibrates the model once (`starpipe plan --calibrate`, StarPU's measured
op times in a StarPU home of its own), prints both cuts and their predicted
steps (`starpipe plan`), then trains the model with `--balance flops` and
`--balance measured` in alternation, --rounds times each, and prints the
median samples/s of each and their ratio, the ratio within each round (the
two runs of a round see about the same load on a shared machine) and the
load average.

    python3 tools/bench_balance.py [--bin build/starpipe] [--rounds 5] [--home DIR]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import calibration_env  # noqa: E402


def model_args(a):
    hidden = [a.wide] * a.wide_layers + [a.narrow] * a.narrow_layers
    return ["--inputs", str(a.inputs), "--classes", str(a.classes), "--hidden", ",".join(map(str, hidden)),
            "--activation", "ln-gelu", "--batch", str(a.batch), "--microbatches", str(a.m), "--stages", "2",
            "--placement", "pinned", "--cpus", "2", "--sched", a.sched]


def plan(a, env, extra=()):
    out = subprocess.run([a.bin, "plan", *model_args(a), "--json", *extra], check=True, capture_output=True,
                         text=True, env=env).stdout
    return json.loads(out)


def train(a, env, balance):
    cmd = [a.bin, "train", *model_args(a), "--samples", str(a.batch * 4), "--steps", str(a.steps), "--warmup",
           str(a.warmup), "--balance", balance, "--json", "--quiet"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(here, "..", "build", "starpipe"))
    p.add_argument("--home", help="StarPU home for the calibration (default: a temporary one)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--inputs", type=int, default=128)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--wide", type=int, default=128)
    p.add_argument("--wide-layers", type=int, default=4)
    p.add_argument("--narrow", type=int, default=32)
    p.add_argument("--narrow-layers", type=int, default=40)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--m", type=int, default=4)
    p.add_argument("--sched", default="eager")
    a = p.parse_args()
    env, tmp = calibration_env(a.home, "bench_balance.")  # tmp (None with --home) lives until main returns
    subprocess.run([a.bin, "plan", *model_args(a), "--calibrate"], check=True, capture_output=True, env=env)
    d = plan(a, env)
    if not d["measured"]:
        sys.exit("bench_balance: the calibration did not take: " + d["note"])
    for name, cut in (("measured cut", d["chosen"]), ("FLOPs cut", d["flops_cut"])):
        st = cut["stages"]
        print(f"{name:12s}: stage 1 starts at op {cut['starts'][1]:3d} of {d['ops']}; predicted per micro-batch "
              f"{st[0]['forward_ms'] + st[0]['backward_ms']:.3f} | "
              f"{st[1]['forward_ms'] + st[1]['backward_ms'] + st[1]['loss_ms']:.3f} ms, "
              f"step {cut['step_ms']:.2f} ms; FLOPs per sample {st[0]['flops_per_sample']:.3g} | "
              f"{st[1]['flops_per_sample']:.3g}")
    sps = {"flops": [], "measured": []}
    loads = []
    for r in range(a.rounds):
        for bal in (("flops", "measured") if r % 2 == 0 else ("measured", "flops")):
            sps[bal].append(train(a, env, bal)["samples_per_s"])
        loads.append(os.getloadavg()[0])
    f, m = statistics.median(sps["flops"]), statistics.median(sps["measured"])
    pairs = [b / a for a, b in zip(sps["flops"], sps["measured"])]  # the same round: the same load, mostly
    print(f"\nsamples/s over {a.rounds} interleaved rounds ({a.steps} steps after {a.warmup} warm-up each):")
    print(f"  --balance flops    : median {f:9.1f}  (runs: {', '.join(f'{x:.1f}' for x in sps['flops'])})")
    print(f"  --balance measured : median {m:9.1f}  (runs: {', '.join(f'{x:.1f}' for x in sps['measured'])})")
    print(f"  measured / flops   : {m / f:.3f}  ({100 * (m / f - 1):+.1f}%); predicted "
          f"{d['flops_cut']['step_ms'] / d['chosen']['step_ms']:.3f}")
    print(f"  per round, measured / flops: {', '.join(f'{x:.3f}' for x in pairs)} (median {statistics.median(pairs):.3f})")
    print(f"  load average (1 min) during the rounds: {', '.join(f'{x:.2f}' for x in loads)}")


if __name__ == "__main__":
    main()
