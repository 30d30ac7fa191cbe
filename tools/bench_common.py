"""bench_common.py — what the side-by-side benchmark scripts share.

bench_gpt.py, bench_cnn.py and bench_cpu.py all pin every process to the
same cores, time a PyTorch step function after a warm-up, run their
configurations in interleaved rounds (so a slow moment of the machine hits
all of them) and take medians over the rounds. bench_balance.py and
plan_accuracy.py calibrate StarPU's perf models in a home of their own.
"""
import os
import statistics
import sys
import tempfile
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


def calibration_env(home, prefix):
    """(env, tmp): the environment of runs that calibrate StarPU's perf models
    and read them back in home of their own, else in a temporary folder (tmp,
    which the caller keeps alive); StarPU's other model-path and host-name
    variables are dropped so that only this home counts."""
    tmp = None
    if not home:
        tmp = tempfile.TemporaryDirectory(prefix=prefix)
        home = tmp.name
    env = dict(os.environ, STARPU_HOME=home, STARPU_SILENT="1")
    env.pop("STARPU_PERF_MODEL_DIR", None)
    env.pop("STARPU_HOSTNAME", None)
    return env, tmp
