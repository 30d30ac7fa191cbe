#!/usr/bin/env python3
"""gpu_bench.py — starpipe against PyTorch eager on one GPU, side by side.

The model of tools/torch_reference.py (4 x (W x W) linear layers with ReLU,
softmax cross-entropy, SGD, fp32, batch B) trained by starpipe with K = 1 and
K = 4 stages pinned to the GPU (each stage its own CUDA worker / stream) for
M in {1, 4, 16}, and by PyTorch in the same call. Prints both step times and
their ratio (PyTorch / starpipe: above 1 means starpipe is faster).

    python3 tools/gpu_bench.py [--bin build/starpipe] [--width 4096] [--batch 8192]
"""
import argparse
import json
import os
import subprocess
import sys


def starpipe(args, k, m):
    cmd = [args.bin, "train", "--device", "cuda", "--placement", "pinned", "--inputs", str(args.width),
           "--hidden", ",".join([str(args.width)] * 3), "--classes", str(args.width), "--batch", str(args.batch),
           "--samples", str(args.batch), "--stages", str(k), "--microbatches", str(m), "--optimizer", "sgd",
           "--steps", str(args.steps + args.warmup), "--warmup", str(args.warmup), "--json", "--quiet"]
    if args.tf32:
        cmd.append("--tf32")
    d = run_json(cmd)
    return args.batch / d["samples_per_s"] * 1e3


def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(here, "..", "build", "starpipe"))
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--batch", type=int, default=8192)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--tf32", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("STARPU_SILENT", "1")
    ref_cmd = [sys.executable, os.path.join(here, "torch_reference.py"), "--width", str(args.width), "--batch",
               str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)] + (["--tf32"] if args.tf32 else [])
    ref = run_json(ref_cmd)
    flop = 3 * 4 * 2 * args.batch * args.width * args.width
    print(f"{ref['device']}, PyTorch {ref['torch']}: MLP 4 x ({args.width} x {args.width}), batch {args.batch}, "
          f"fp32{' TF32' if args.tf32 else ''}, SGD")
    print(f"PyTorch eager: {ref['step_ms_from_host']:.2f} ms/step with the batch copied from the host, "
          f"{ref['step_ms_on_gpu']:.2f} ms with it already on the GPU")
    print(f"{'K':>2} {'M':>3} {'starpipe ms':>12} {'TFLOP/s':>8} {'PyTorch/starpipe':>17}")
    best = 0.0
    for k in (1, 4):
        for m in (1, 4, 16):
            ms = starpipe(args, k, m)
            ratio = ref["step_ms_from_host"] / ms
            best = max(best, ratio)
            print(f"{k:>2} {m:>3} {ms:>12.2f} {flop / ms / 1e9:>8.1f} {ratio:>17.3f}")
    print(f"best ratio {best:.3f} (target: at least 1.0, against PyTorch with the same host-to-GPU copy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
