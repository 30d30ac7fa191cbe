#!/usr/bin/env python3
"""plan_accuracy.py — the step `starpipe plan` predicts against the step measured.

For the bench's MLP (inputs 32, four hidden layers of 256, 256 classes, batch
512; `starpipe bench --help`) with K = 1 and 2 stages, M in {1, 4, 8, 16}
micro-batches and the gpipe and 1f1b schedules (pinned, eager), it calibrates
each micro-batch size once (`starpipe plan --calibrate`, in a StarPU home of
its own), asks `starpipe plan --json` for the predicted step of the cut the
run will use, and times --repeats runs of `starpipe bench` with that cut
(`--balance measured`): the step measured from its first task's start to its
last task's end (task_step_ms, what the prediction models) and the wall time
per step (step_ms). Prints one row per configuration with the medians and the
prediction's error against each, and the load average.

    python3 tools/plan_accuracy.py [--bin build/starpipe] [--repeats 5] [--home DIR]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import calibration_env  # noqa: E402

MODEL = ["--inputs", "32", "--classes", "256", "--hidden", "256,256,256,256", "--batch", "512"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(here, "..", "build", "starpipe"))
    p.add_argument("--home", help="StarPU home for the calibration (default: a temporary one)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    env, tmp = calibration_env(a.home, "plan_accuracy.")  # tmp (None with --home) lives until main returns
    configs = [(1, m, "gpipe") for m in (1, 4, 8, 16)] + [(2, m, s) for m in (1, 4, 8, 16) for s in ("gpipe", "1f1b")]
    calibrated = set()
    rows = []
    for k, m, sched in configs:
        run = MODEL + ["--stages", str(k), "--microbatches", str(m), "--cpus", "2"]
        if m not in calibrated:
            subprocess.run([a.bin, "plan", *run, "--calibrate"], check=True, capture_output=True, env=env)
            calibrated.add(m)
        d = json.loads(subprocess.run([a.bin, "plan", *run, "--schedule", sched, "--json"], check=True,
                                      capture_output=True, text=True, env=env).stdout)
        if not d["measured"]:
            raise SystemExit(f"plan_accuracy: K={k} M={m}: not calibrated: {d['note']}")
        task, wall = [], []
        for _ in range(a.repeats):
            out = subprocess.run([a.bin, "bench", *run,
                                  "--policies", "eager", "--schedules", sched, "--placements", "pinned",
                                  "--steps", str(a.steps), "--warmup", str(a.warmup), "--balance", "measured",
                                  "--json"], check=True, capture_output=True, text=True, env=env).stdout
            row = json.loads(out)["rows"][0]
            task.append(row["task_step_ms"])
            wall.append(row["step_ms"])
        rows.append((k, m, sched, d["chosen"]["starts"], d["chosen"]["step_ms"], statistics.median(task),
                     statistics.median(wall), os.getloadavg()[0]))
        r = rows[-1]
        print(f"K={k} M={m:2d} {sched:5s} starts {r[3]}: predicted {r[4]:7.2f} ms, measured {r[5]:7.2f} ms "
              f"(tasks), {r[6]:7.2f} ms (wall), load {r[7]:.2f}", flush=True)
    print("\n| K | M | schedule | cut | predicted ms | measured ms (tasks) | error | measured ms (wall) | error | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    within = 0
    for k, m, sched, starts, pred, task, wall, load in rows:
        e1, e2 = 100 * (pred / task - 1), 100 * (pred / wall - 1)
        within += abs(e1) <= 15
        print(f"| {k} | {m} | {sched} | {starts} | {pred:.2f} | {task:.2f} | {e1:+.1f}% | {wall:.2f} | {e2:+.1f}% "
              f"| {load:.2f} |")
    print(f"\nwithin 15% of the measured task step: {within} of {len(rows)} (medians of {a.repeats} runs)")


if __name__ == "__main__":
    main()
