#!/usr/bin/env python3
"""bench_gpt.py — the same GPT training step in starpipe and in PyTorch eager, on the same cores.

The model is nanoGPT's GPT (pre-LayerNorm blocks, causal self-attention, MLP
4x with exact GELU, untied LM head, no dropout), trained with AdamW on
batches of --batch windows of --context characters, the defaults being those
of starpipe's GPT main job (`starpipe train --model gpt`). It runs:

  starpipe   K = 1 (M = 1), and K = 2 pinned with M = 2, 4 and 8
             (`starpipe train --model gpt ... --json`, its tokens_per_s: the steps after --warmup,
             evaluation excluded)
  PyTorch    eager, torch.set_num_threads(1) and (2), the same model built by
             tools/gpt_reference.py, torch.optim.AdamW, random windows of the same vocabulary

every process restricted to the same cores (--cores, default the first two), in
interleaved rounds (each round runs every configuration once, so a slow
moment of the machine hits all of them), and prints the median tokens/s of
each over the rounds, and the ratio of starpipe's best to PyTorch with 2
threads. Not a test: it takes minutes with the defaults. PyTorch comes from a
virtual environment as for gpt_reference.py ($STARPIPE_VENV, else
~/.cache/starpipe-venv, created on first use).

    python3 tools/bench_gpt.py [--rounds 5] [--steps 20] [--warmup 5] [--json]
    python3 tools/bench_gpt.py --layers 1 --embd 32 --heads 2 --context 16 --batch 8 --steps 3 --warmup 1 --rounds 1
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_common import interleaved, pick_cores, pin, timed_steps  # noqa: E402
from gpt_reference import build_model, ensure_torch  # noqa: E402

DEFAULT_TEXT = "/usr/local/share/starpipe/shakespeare.txt"


def torch_worker(a):
    """One PyTorch measurement in this process: prints {"tokens_per_s": ...}."""
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    meta = dict(vocab_size=a.vocab, context=a.context, layers=a.layers, heads=a.heads, embd=a.embd)
    model = build_model(torch, meta)  # forward(idx, targets) -> summed cross-entropy
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    n_tok = a.batch * a.context
    g = torch.Generator().manual_seed(a.seed)
    batches = [(torch.randint(0, a.vocab, (a.batch, a.context), generator=g),
                torch.randint(0, a.vocab, (a.batch, a.context), generator=g)) for _ in range(4)]

    def step(i):
        x, y = batches[i % len(batches)]
        loss = model(x, y) / n_tok  # the mean over every token, as starpipe's loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    dt = timed_steps(step, a.warmup, a.steps)
    print(json.dumps({"tokens_per_s": a.steps * n_tok / dt}))


def run_starpipe(a, cores, stages, micro):
    cmd = [a.bin, "train", "--model", "gpt", "--text", a.text, "--layers", str(a.layers), "--heads",
           str(a.heads), "--embd", str(a.embd), "--context", str(a.context), "--batch", str(a.batch),
           "--stages", str(stages), "--microbatches", str(micro), "--placement", "pinned",
           "--cpus", str(len(cores)), "--steps", str(a.warmup + a.steps), "--warmup", str(a.warmup),
           "--eval-every", str(a.warmup + a.steps), "--eval-windows", "1", "--seed", str(a.seed),
           "--quiet", "--json"]
    env = dict(os.environ, STARPU_SILENT="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=pin(cores))
    if out.returncode != 0:
        sys.exit(f"bench_gpt: {' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"]


def run_torch(a, cores, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", "--threads", str(threads)]
    for k in ("layers", "heads", "embd", "context", "batch", "steps", "warmup", "seed", "vocab"):
        cmd += ["--" + k, str(getattr(a, k))]
    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pin(cores))
    if out.returncode != 0:
        sys.exit(f"bench_gpt: PyTorch with {threads} threads failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build", "starpipe"))
    p.add_argument("--text", default=DEFAULT_TEXT, help="the text (its characters are the vocabulary)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--embd", type=int, default=128)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20, help="measured steps per run")
    p.add_argument("--warmup", type=int, default=5, help="steps before the measurement")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the medians are over them)")
    p.add_argument("--micro", default="2,4,8", help="M for K = 2")
    p.add_argument("--cores", default="", help="comma-separated core ids (default: the first two)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--vocab", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    ensure_torch()
    if a.torch_worker:
        return torch_worker(a)

    if not os.path.exists(a.text):
        sys.exit(f"bench_gpt: {a.text} is missing (run scripts/setup.sh, or give --text PATH)")
    with open(a.text, encoding="utf-8") as f:
        a.vocab = len(set(f.read()))
    cores = pick_cores(a.cores)
    configs = [("starpipe K=1", lambda: run_starpipe(a, cores, 1, 1))]
    for m in (int(x) for x in a.micro.split(",") if x):
        if a.batch % m == 0:
            configs.append((f"starpipe K=2 M={m}", lambda m=m: run_starpipe(a, cores, 2, m)))
    configs += [(f"PyTorch {t} thread{'s' if t > 1 else ''}", lambda t=t: run_torch(a, cores, t)) for t in (1, 2)]
    print(f"bench_gpt: GPT {a.layers} layers, {a.heads} heads, {a.embd} wide, context {a.context}, vocabulary "
          f"{a.vocab}, batch {a.batch}; {a.warmup} + {a.steps} steps per run, {a.rounds} rounds, cores {cores}",
          file=sys.stderr)
    results, med = interleaved(configs, a.rounds, "bench_gpt")
    print(f"{'configuration':<22} {'tokens/s (median)':>18} {'min':>10} {'max':>10}")
    for name, v in results.items():
        print(f"{name:<22} {med[name]:>18.0f} {min(v):>10.0f} {max(v):>10.0f}")
    best = max((n for n in med if n.startswith("starpipe")), key=med.get)
    ratio = med[best] / med["PyTorch 2 threads"]
    print(f"starpipe's best ({best}) / PyTorch eager with 2 threads: {ratio:.3f}")
    if a.json:
        print(json.dumps({"config": {k: getattr(a, k) for k in ("layers", "heads", "embd", "context", "batch",
                                                                 "vocab", "steps", "warmup", "rounds")},
                          "cores": cores, "tokens_per_s": results, "median": med, "best": best,
                          "ratio_best_to_torch_2_threads": ratio}))


if __name__ == "__main__":
    main()
