"""bench_common.py — what the side-by-side benchmark scripts share.

bench_gpt.py, bench_cnn.py and bench_cpu.py all pin every process to the
same cores, time a PyTorch step function after a warm-up, run their
configurations in interleaved rounds (so a slow moment of the machine hits
all of them) and take medians over the rounds.
"""
import os
import statistics
import sys
import time


def pin(cores):
    """A preexec_fn for subprocess that restricts the child to cores (None: no restriction)."""
    return (lambda: os.sched_setaffinity(0, cores)) if cores else None


def pick_cores(arg):
    """The cores of --cores ("0,1"), else the first two this process may run on."""
    return [int(c) for c in arg.split(",")] if arg else sorted(os.sched_getaffinity(0))[:2]


def timed_steps(step, warmup, steps, sync=None):
    """Seconds taken by step(i) for i in [0, steps) after warmup untimed calls;
    sync() (e.g. a process-group barrier) runs before and after the timed ones."""
    for i in range(warmup):
        step(i)
    if sync:
        sync()
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    if sync:
        sync()
    return time.perf_counter() - t0


def interleaved(configs, rounds, tag):
    """Runs every (name, fn) of configs once per round, rounds times; returns
    {name: [fn() of each round]} and the medians {name: median}."""
    results = {name: [] for name, _ in configs}
    for r in range(rounds):
        for name, fn in configs:
            results[name].append(fn())
        print(f"{tag}: round {r + 1} of {rounds} done", file=sys.stderr)
    return results, {name: statistics.median(v) for name, v in results.items()}
