#!/usr/bin/env python3
"""bench_cpu.py — starpipe against PyTorch on the same CPU cores: eager and torch.distributed.pipelining.

Two MLPs (ReLU between layers, softmax cross-entropy, SGD with momentum 0.9,
lr 0.05, random data), the models of the CPU-throughput issue:

  small   784 -> 512 -> 256 -> 10, batch 128
  large   1024 -> 4 x 1024 -> 10, batch 512

For each model, every round runs once each of:

  starpipe   K = 2 stages, M in --micro, policies in --policies (`starpipe train ... --json`,
             its samples_per_s: the steps after --warmup); stages pinned one per worker,
             except under the parallel-task policies (pheft, peager), where the
             placement is free and a stage task may run on both cores at once;
             and one stage (K = 1, M = 1) under --one-stage's policy (pheft)
  PyTorch    eager, torch.set_num_threads(1) and (2)
  PyTorch    torch.distributed.pipelining, ScheduleGPipe and Schedule1F1B: 2 processes
             x 1 thread, gloo, each pinned to one of the cores, the same cut as
             starpipe's K = 2 run (its stage_starts) and the same M (--pipe-micro);
             the stage shapes are given explicitly (input_args/output_args), as
             shape inference deadlocks on gloo

every process restricted to the same two cores, in interleaved rounds, and
prints the median samples/s of each over the rounds and the ratios of
starpipe's best to each PyTorch figure.

--main-job instead compares the Fashion-MNIST main job (`starpipe train
--data fashion-mnist`: 784-512-256-10, AdamW lr 1e-3, weight decay 0.01,
cosine decay over 15 epochs, batch 128, test set after every epoch) with the
same training in PyTorch eager with 2 threads: wall time of the training
(evaluations included, start-up and data loading excluded for both) and final
test accuracy, in interleaved rounds; round r trains from seed r on both
sides, so the accuracies compare as samples of runs, not one run each.

PyTorch comes from a virtual environment as for gpt_reference.py
($STARPIPE_VENV, else ~/.cache/starpipe-venv, created on first use); it is not a
dependency of starpipe. Not a test: it takes minutes.

    python3 tools/bench_cpu.py [--rounds 5] [--models small,large] [--json]
    python3 tools/bench_cpu.py --main-job [--rounds 3]
"""
import argparse
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_common import interleaved, pick_cores, pin, timed_steps  # noqa: E402
from gpt_reference import ensure_torch  # noqa: E402

MODELS = {
    "small": dict(inputs=784, hidden=[512, 256], classes=10, batch=128, steps=300, warmup=30),
    "large": dict(inputs=1024, hidden=[1024] * 4, classes=10, batch=512, steps=40, warmup=5),
}
FASHION = "/usr/share/datasets/fashion-mnist"


def quiet_env(threads=1):
    return dict(os.environ, STARPU_SILENT="1", OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                MKL_NUM_THREADS=str(threads))


# ---- starpipe -----------------------------------------------------------------

PARALLEL_POLICIES = ("pheft", "peager")  # tasks on combined workers: placement free


def run_starpipe(a, cores, m, micro, policy, stages=2):
    samples = m["batch"] * 4
    placement = "free" if policy in PARALLEL_POLICIES else "pinned"
    cmd = [a.bin, "train", "--inputs", str(m["inputs"]), "--classes", str(m["classes"]),
           "--hidden", ",".join(map(str, m["hidden"])), "--batch", str(m["batch"]), "--samples", str(samples),
           "--stages", str(stages), "--microbatches", str(micro), "--placement", placement, "--sched", policy,
           "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--cpus", str(len(cores)),
           "--steps", str(m["warmup"] + m["steps"]), "--warmup", str(m["warmup"]), "--quiet", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), preexec_fn=pin(cores))
    if out.returncode != 0:
        sys.exit(f"bench_cpu: {' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- PyTorch (these run in child processes of this script) ----------------------

def build_ops(torch, m):
    """The MLP as starpipe's op list: linear, relu, ..., linear."""
    ops, width = [], m["inputs"]
    for h in m["hidden"]:
        ops += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    ops.append(torch.nn.Linear(width, m["classes"]))
    return ops


def random_batches(torch, m):
    """Four batches of random inputs and labels, x (4B, inputs) and y (4B); batch i is rows [iB, (i+1)B)."""
    return torch.randn(m["batch"] * 4, m["inputs"]), torch.randint(0, m["classes"], (m["batch"] * 4,))


def eager_worker(a, m):
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = torch.nn.Sequential(*build_ops(torch, m))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = random_batches(torch, m)
    b = m["batch"]

    def step(i):
        j = (i % 4) * b
        loss = torch.nn.functional.cross_entropy(model(x[j:j + b]), y[j:j + b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    print(json.dumps({"samples_per_s": m["steps"] * b / timed_steps(step, m["warmup"], m["steps"])}))


def pipe_worker(a, m):
    import torch
    import torch.distributed as dist
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe
    torch.set_num_threads(1)
    torch.manual_seed(1)
    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo", rank=rank, world_size=2)
    ops = build_ops(torch, m)
    starts = [int(s) for s in a.starts.split(",")] + [len(ops)]
    sub = torch.nn.Sequential(*ops[starts[rank]:starts[rank + 1]])

    def width_in(i):  # features entering op i
        for op in reversed(ops[:i]):
            if isinstance(op, torch.nn.Linear):
                return op.out_features
        return m["inputs"]

    mb = m["batch"] // a.micro
    x_in = torch.zeros(mb, width_in(starts[rank]), requires_grad=rank > 0)  # stage 1 sends input gradients back
    x_out = torch.zeros(mb, width_in(starts[rank + 1]), requires_grad=rank == 0)  # stage 0 receives them
    stage = PipelineStage(sub, rank, 2, torch.device("cpu"), input_args=x_in, output_args=x_out)
    kind = ScheduleGPipe if a.schedule == "gpipe" else Schedule1F1B
    sched = kind(stage, n_microbatches=a.micro, loss_fn=torch.nn.functional.cross_entropy)
    opt = torch.optim.SGD(sub.parameters(), lr=0.05, momentum=0.9)
    x, y = random_batches(torch, m)
    b = m["batch"]

    def step(i):
        j = (i % 4) * b
        opt.zero_grad(set_to_none=True)
        if rank == 0:
            sched.step(x[j:j + b])
        else:
            sched.step(target=y[j:j + b], losses=[])
        opt.step()

    dt = timed_steps(step, m["warmup"], m["steps"], sync=dist.barrier)
    if rank == 0:
        print(json.dumps({"samples_per_s": m["steps"] * b / dt}))
    dist.destroy_process_group()


def run_eager(a, cores, name, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "eager", "--model-name", name,
           "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(threads), preexec_fn=pin(cores))
    if out.returncode != 0:
        sys.exit(f"bench_cpu: PyTorch eager with {threads} threads failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_pipe(a, cores, name, schedule, starts, micro):
    port = str(free_port())
    procs = []
    for rank in range(2):
        env = dict(quiet_env(1), RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "pipe", "--model-name", name,
               "--schedule", schedule, "--starts", ",".join(map(str, starts)), "--micro", str(micro)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                      preexec_fn=pin([cores[rank % len(cores)]])))
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        sys.exit(f"bench_cpu: torch.distributed.pipelining ({schedule}) did not finish in 10 minutes")
    for p, (_, err) in zip(procs, outs):
        if p.returncode != 0:
            sys.exit(f"bench_cpu: torch.distributed.pipelining ({schedule}) failed:\n{err}")
    return json.loads(outs[0][0].strip().splitlines()[-1])["samples_per_s"]


# ---- the main job against PyTorch -----------------------------------------------

def read_idx(path):
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main_job_worker(a):
    import numpy as np
    import torch
    torch.set_num_threads(2)
    torch.manual_seed(a.seed)
    xs = torch.from_numpy(read_idx(f"{FASHION}/train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255)
    ys = torch.from_numpy(read_idx(f"{FASHION}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xt = torch.from_numpy(read_idx(f"{FASHION}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255)
    yt = torch.from_numpy(read_idx(f"{FASHION}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    epochs, b = 15, 128
    per_epoch = len(xs) // b
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + __import__("math").cos(__import__("math").pi * min(s / (epochs * per_epoch), 1))))
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(xs), generator=g)
        for i in range(per_epoch):
            idx = order[i * b:(i + 1) * b]
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xt).argmax(1) == yt).float().mean().item()
    print(json.dumps({"seconds": time.perf_counter() - t0, "test_accuracy": acc}))


def run_main_job(a, cores):
    def starpipe(seed):
        cmd = [a.bin, "train", "--data", "fashion-mnist", "--cpus", str(len(cores)), "--seed", str(seed), "--quiet",
               "--json"]
        out = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), preexec_fn=pin(cores))
        if out.returncode != 0:
            sys.exit(f"bench_cpu: {' '.join(cmd)} failed:\n{out.stderr}")
        d = json.loads(out.stdout.strip().splitlines()[-1])
        return d["seconds"], d["test_accuracy"]

    def torch_run(seed):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "main-job", "--seed", str(seed)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(2), preexec_fn=pin(cores))
        if out.returncode != 0:
            sys.exit(f"bench_cpu: the PyTorch main job failed:\n{out.stderr}")
        d = json.loads(out.stdout.strip().splitlines()[-1])
        return d["seconds"], d["test_accuracy"]

    # round r trains from seed r + 1 on both sides (initial weights and the
    # order of the samples): the accuracies compare as two samples of runs
    res = {"starpipe (main job defaults)": [], "PyTorch eager, 2 threads": []}
    for r in range(a.rounds):
        res["starpipe (main job defaults)"].append(starpipe(r + 1))
        res["PyTorch eager, 2 threads"].append(torch_run(r + 1))
        print(f"bench_cpu: round {r + 1} of {a.rounds} done", file=sys.stderr)
    print(f"{'Fashion-MNIST main job, 15 epochs':<34} {'seconds (median)':>16} {'min':>8} {'max':>8} "
          f"{'accuracy mean':>14} {'min':>7} {'max':>7}")
    med = {}
    for name, v in res.items():
        secs, accs = [s for s, _ in v], [100 * acc for _, acc in v]
        med[name] = statistics.median(secs)
        print(f"{name:<34} {med[name]:>16.1f} {min(secs):>8.1f} {max(secs):>8.1f} "
              f"{statistics.mean(accs):>13.2f}% {min(accs):>6.2f}% {max(accs):>6.2f}%")
    names = list(res)
    print(f"PyTorch time / starpipe time: {med[names[1]] / med[names[0]]:.3f} (above 1: starpipe faster)")
    if a.json:
        print(json.dumps({"main_job": {k: [{"seconds": s, "test_accuracy": acc} for s, acc in v]
                                       for k, v in res.items()}, "median_seconds": med}))


# ---- the throughput comparison ------------------------------------------------

def run_models(a, cores):
    summary = {}
    for name in a.models.split(","):
        m = MODELS[name]
        probe = run_starpipe(a, cores, m, a.pipe_micro, "lws")
        starts = probe["stage_starts"]
        configs = []
        for micro in (int(x) for x in a.micro.split(",")):
            for pol in a.policies.split(","):
                configs.append((f"starpipe K=2 M={micro} {pol}",
                                lambda micro=micro, pol=pol: run_starpipe(a, cores, m, micro, pol)["samples_per_s"]))
        if a.one_stage:
            configs.append((f"starpipe K=1 M=1 {a.one_stage}",
                            lambda: run_starpipe(a, cores, m, 1, a.one_stage, stages=1)["samples_per_s"]))
        configs += [(f"PyTorch eager, {t} thread{'s' if t > 1 else ''}",
                     lambda t=t: run_eager(a, cores, name, t)) for t in (1, 2)]
        configs += [(f"PyTorch pipelining {s}, M={a.pipe_micro}",
                     lambda s=s: run_pipe(a, cores, name, s, starts, a.pipe_micro)) for s in ("gpipe", "1f1b")]
        print(f"bench_cpu: {name}: {m['inputs']} -> {' -> '.join(map(str, m['hidden']))} -> {m['classes']}, "
              f"batch {m['batch']}, cut at ops {starts}; {m['warmup']} + {m['steps']} steps per run, "
              f"{a.rounds} rounds, cores {cores}", file=sys.stderr)
        results, med = interleaved(configs, a.rounds, f"bench_cpu: {name}")
        print(f"\n{name} model ({m['inputs']}-{'-'.join(map(str, m['hidden']))}-{m['classes']}, batch {m['batch']})")
        print(f"{'configuration':<34} {'samples/s (median)':>19} {'min':>9} {'max':>9}")
        for n, v in results.items():
            print(f"{n:<34} {med[n]:>19.0f} {min(v):>9.0f} {max(v):>9.0f}")
        best = max((n for n in med if n.startswith("starpipe")), key=med.get)
        ratios = {n: med[best] / med[n] for n in med if not n.startswith("starpipe")}
        for n, r in ratios.items():
            print(f"starpipe's best ({best}) / {n}: {r:.3f}")
        best2 = max((n for n in med if n.startswith("starpipe K=2")), key=med.get)
        if best2 != best:
            for n in (x for x in med if x.startswith("PyTorch eager, 2")):
                print(f"starpipe's best with two stages ({best2}) / {n}: {med[best2] / med[n]:.3f}")
        summary[name] = {"samples_per_s": results, "median": med, "best": best, "ratios": ratios,
                         "stage_starts": starts}
    if a.json:
        print(json.dumps({"rounds": a.rounds, "cores": cores, "models": summary}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build", "starpipe"))
    p.add_argument("--models", default="small,large", help="comma-separated: small, large")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the medians are over them)")
    p.add_argument("--micro", default="1,2,4", help="M of starpipe's K = 2 runs")
    p.add_argument("--policies", default="dmda,pheft", help="StarPU policies of starpipe's runs")
    p.add_argument("--one-stage", default="pheft", metavar="POLICY",
                   help="also run starpipe with one stage (K=1, M=1) under this parallel-task policy, each "
                        "task on both cores ('' to leave it out)")
    p.add_argument("--pipe-micro", type=int, default=4, help="M of torch.distributed.pipelining's runs")
    p.add_argument("--main-job", action="store_true", help="the Fashion-MNIST main job against PyTorch instead")
    p.add_argument("--cores", default="", help="two comma-separated core ids (default: the first two)")
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    p.add_argument("--worker", choices=("eager", "pipe", "main-job"), help=argparse.SUPPRESS)
    p.add_argument("--model-name", default="small", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--schedule", default="gpipe", help=argparse.SUPPRESS)
    p.add_argument("--starts", default="0,1", help=argparse.SUPPRESS)
    a = p.parse_args()
    for name in a.models.split(","):
        if name not in MODELS:
            sys.exit(f"bench_cpu: unknown model {name!r} (small or large)")
    if a.rounds < 1:
        sys.exit("bench_cpu: --rounds must be at least 1")
    ensure_torch()
    if a.worker == "eager":
        return eager_worker(a, MODELS[a.model_name])
    if a.worker == "pipe":
        a.micro = int(a.micro)
        return pipe_worker(a, MODELS[a.model_name])
    if a.worker == "main-job":
        return main_job_worker(a)
    if not os.path.exists(a.bin):
        sys.exit(f"bench_cpu: {a.bin} is missing (bash scripts/build.sh)")
    cores = pick_cores(a.cores)
    if len(cores) != 2:
        sys.exit(f"bench_cpu: needs two cores, got {cores}")
    if a.main_job:
        return run_main_job(a, cores)
    run_models(a, cores)


if __name__ == "__main__":
    main()
