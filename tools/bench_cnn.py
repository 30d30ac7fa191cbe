#!/usr/bin/env python3
"""bench_cnn.py — the same CNN training step in starpipe and in PyTorch eager, on the same cores.

The model is starpipe's residual CNN (`starpipe train --model cnn`: a 3x3
stem, basic blocks with group norm, stride-2 downsampling with 1x1
projections, global average pooling, a linear classifier), trained with
AdamW on batches of --batch Fashion-MNIST-sized images (1 x 28 x 28), the
defaults being those of starpipe's CNN job. It runs:

  starpipe   K = 1 (M = 1), and K = 2 pinned with M = 2, 4, 8 and 16
             (`starpipe train --model cnn --augment none ... --json`, its samples_per_s: the
             steps after --warmup, within the first epoch, so no evaluation)
  PyTorch    eager, torch.set_num_threads(1) and (2), the same network
             (tools/cnn_reference.py's build_cnn), torch.optim.AdamW, random images

every process restricted to the same cores (--cores, default the first two),
in interleaved rounds (each round runs every configuration once, so a slow
moment of the machine hits all of them), and prints the median images/s of
each over the rounds and the ratio of starpipe's best to PyTorch with 2
threads. Not a test: it takes minutes with the defaults. PyTorch comes from
a virtual environment ($STARPIPE_VENV, else ~/.cache/starpipe-venv, created
on first use).

    python3 tools/bench_cnn.py [--rounds 3] [--steps 20] [--warmup 3] [--json]
    python3 tools/bench_cnn.py --widths 8,16 --batch 32 --steps 3 --warmup 1 --rounds 1 --micro 4
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cnn_reference import build_cnn  # noqa: E402
from bench_common import interleaved, pick_cores, pin, timed_steps  # noqa: E402
from gpt_reference import ensure_torch  # noqa: E402


def torch_worker(a):
    """One PyTorch measurement in this process: prints {"samples_per_s": ...}."""
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    widths = [int(w) for w in a.widths.split(",")]
    model = build_cnn(torch, widths, a.blocks, a.groups)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    g = torch.Generator().manual_seed(a.seed)
    batches = [(torch.rand(a.batch, 1, 28, 28, generator=g), torch.randint(0, 10, (a.batch,), generator=g))
               for _ in range(4)]

    def step(i):
        x, y = batches[i % len(batches)]
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    dt = timed_steps(step, a.warmup, a.steps)
    print(json.dumps({"samples_per_s": a.steps * a.batch / dt}))


def run_starpipe(a, cores, stages, micro):
    cmd = [a.bin, "train", "--model", "cnn", "--data-dir", a.data_dir, "--widths", a.widths, "--blocks",
           str(a.blocks), "--groups", str(a.groups), "--augment", "none", "--batch", str(a.batch),
           "--stages", str(stages), "--microbatches", str(micro), "--placement", "pinned",
           "--cpus", str(len(cores)), "--steps", str(a.warmup + a.steps), "--warmup", str(a.warmup),
           "--seed", str(a.seed), "--quiet", "--json"]
    env = dict(os.environ, STARPU_SILENT="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=pin(cores))
    if out.returncode != 0:
        sys.exit(f"bench_cnn: {' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]


def run_torch(a, cores, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", "--threads", str(threads)]
    for k in ("widths", "blocks", "groups", "batch", "steps", "warmup", "seed"):
        cmd += ["--" + k, str(getattr(a, k))]
    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pin(cores))
    if out.returncode != 0:
        sys.exit(f"bench_cnn: PyTorch with {threads} threads failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build", "starpipe"))
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--widths", default="32,64,128")
    p.add_argument("--blocks", type=int, default=1)
    p.add_argument("--groups", type=int, default=8)
    p.add_argument("--batch", type=int, default=64, help="images per step (the CNN job trains with 32; 64 keeps M = 16 possible)")
    p.add_argument("--steps", type=int, default=20, help="measured steps per run")
    p.add_argument("--warmup", type=int, default=3, help="steps before the measurement")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the medians are over them)")
    p.add_argument("--micro", default="2,4,8,16", help="M for K = 2")
    p.add_argument("--cores", default="", help="comma-separated core ids (default: the first two)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args()
    ensure_torch()
    if a.torch_worker:
        return torch_worker(a)

    cores = pick_cores(a.cores)
    configs = [("starpipe K=1", lambda: run_starpipe(a, cores, 1, 1))]
    for m in (int(x) for x in a.micro.split(",") if x):
        if a.batch % m == 0:
            configs.append((f"starpipe K=2 M={m}", lambda m=m: run_starpipe(a, cores, 2, m)))
    configs += [(f"PyTorch {t} thread{'s' if t > 1 else ''}", lambda t=t: run_torch(a, cores, t)) for t in (1, 2)]
    print(f"bench_cnn: CNN widths {a.widths}, {a.blocks} block(s) per layer, {a.groups} groups, batch {a.batch} "
          f"of 1x28x28; {a.warmup} + {a.steps} steps per run, {a.rounds} rounds, cores {cores}", file=sys.stderr)
    results, med = interleaved(configs, a.rounds, "bench_cnn")
    print(f"{'configuration':<22} {'images/s (median)':>18} {'min':>10} {'max':>10}")
    for name, v in results.items():
        print(f"{name:<22} {med[name]:>18.1f} {min(v):>10.1f} {max(v):>10.1f}")
    best = max((n for n in med if n.startswith("starpipe K=2")), key=med.get, default="starpipe K=1")
    ratio = med[best] / med["PyTorch 2 threads"]
    print(f"starpipe K=2 best ({best}) / PyTorch eager with 2 threads: {ratio:.3f}")
    if a.json:
        print(json.dumps({"config": {k: getattr(a, k) for k in ("widths", "blocks", "groups", "batch", "steps",
                                                                 "warmup", "rounds")},
                          "cores": cores, "samples_per_s": results, "median": med, "best": best,
                          "ratio_best_to_torch_2_threads": ratio}))


if __name__ == "__main__":
    main()
