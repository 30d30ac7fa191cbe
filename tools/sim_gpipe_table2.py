#!/usr/bin/env python3
"""sim_gpipe_table2.py — GPipe's Table 2 on a machine this one is not: simulated.

GPipe (Huang et al., 2019, arXiv:1811.06965), Table 2, reports training
throughput for K partitions and M micro-batches normalised to K = 2, M = 1.
tools/bench_gpipe_table2.py measures that shape on the cores the machine has
(K = 2 at most on 2 cores). This script asks StarPU + SimGrid about a machine
with --cores cores of this kind:

  1. calibrate: real `starpipe train --calibrate DIR` runs of the same MLP as
     bench_gpipe_table2.py (32 -> 8 x (W x W), batch 4096) for every (K, M);
     K = 8 stages run on the real cores there (stage s on worker s mod n), so
     every task's duration is measured on a real core;
  2. write a what-if machine of --cores such cores (tools/whatif_platform.py);
  3. simulate every (K, M) on it, one pinned worker per stage;

and prints the simulated throughput normalised to K = 2, M = 1 beside the
ideal K*M/(M+K-1) and GPipe's AmoebaNet and Transformer figures (TPUs). The
simulation assumes what the what-if machine says: more cores of the same speed
and no shared memory bandwidth between them.

    python3 tools/sim_gpipe_table2.py [--bin build/starpipe] [--cores 8] [--calibration DIR]

On a GPU machine, --gpus G does the same with GPUs: the calibration runs put
every stage on the one GPU, one task at a time (STARPU_NWORKER_PER_CUDA=1,
so that no task is measured while sharing the GPU), the what-if machine has
G GPUs of that kind (--whatif-args passes link figures to
whatif_platform.py) and stage s runs on GPU s mod G. The GPU mode has not
been run on a real GPU yet (README, "Simulation").
"""
import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile

# GPipe, Table 2: normalised training throughput on TPUs, (K, M) -> value
GPIPE_AMOEBANET = {(2, 1): 1.00, (4, 1): 1.13, (8, 1): 1.38, (2, 4): 1.07, (4, 4): 1.26, (8, 4): 1.72,
                   (2, 32): 1.21, (4, 32): 1.84, (8, 32): 3.48}
GPIPE_TRANSFORMER = {(2, 1): 1.0, (4, 1): 1.07, (8, 1): 1.3, (2, 4): 1.7, (4, 4): 3.2, (8, 4): 4.8,
                     (2, 32): 1.8, (4, 32): 3.4, (8, 32): 6.3}


def train(args, k, m, extra):
    cmd = [args.bin] + extra + ["--inputs", "32", "--classes", str(args.width),
                                "--hidden", ",".join([str(args.width)] * 7), "--batch", str(args.batch),
                                "--samples", str(args.batch * 2), "--stages", str(k), "--microbatches", str(m),
                                "--placement", "pinned", "--schedule", args.schedule, "--json", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"sim_gpipe_table2: {' '.join(cmd)} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(here, "..", "build", "starpipe"))
    p.add_argument("--calibration", default=None, help="calibration directory (default: a new temporary one)")
    p.add_argument("--skip-calibration", action="store_true", help="reuse --calibration as it is")
    p.add_argument("--machine", default=None, help="the calibrated machine's name (default: this host's)")
    p.add_argument("--cores", type=int, default=8)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--schedule", default="gpipe")
    p.add_argument("--calibration-steps", type=int, default=12)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--stages", default="2,4,8", help="the K to run (default 2,4,8)")
    p.add_argument("--gpus", type=int, default=0, help="simulate GPUs of the calibrated kind instead of cores")
    p.add_argument("--whatif-args", default="", help="more options for whatif_platform.py (links)")
    args = p.parse_args()
    os.environ.setdefault("STARPU_SILENT", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    cal = args.calibration or tempfile.mkdtemp(prefix="starpipe-cal-")
    machine = args.machine or os.environ.get("STARPU_HOSTNAME") or socket.gethostname().split(".")[0]
    ks, ms = [int(k) for k in args.stages.split(",")], [1, 4, 32]
    device = ["--device", "cuda"] if args.gpus else []
    if args.gpus:  # one worker per GPU: calibrated alone on it, and one stage per simulated GPU
        os.environ["STARPU_NWORKER_PER_CUDA"] = "1"
    if not args.skip_calibration:
        for k in ks:
            for m in ms:
                train(args, k, m, ["train", "--calibrate", cal, "--steps", str(args.calibration_steps)] + device)
                print(f"calibrated K={k} M={m}", file=sys.stderr)
    whatif = f"{machine}-{args.gpus}gpu" if args.gpus else f"{machine}-{args.cores}cpu"
    subprocess.run([sys.executable, os.path.join(here, "whatif_platform.py"), "--calibration", cal,
                    "--machine", machine, "--name", whatif, "--gpus", str(args.gpus),
                    "--cpus", str(args.cores + args.gpus if args.gpus else args.cores)]
                   + shlex.split(args.whatif_args), check=True, stdout=subprocess.DEVNULL)
    sps = {}
    for k in ks:
        for m in ms:
            workers = [] if args.gpus else ["--cpus", str(args.cores)]
            d = train(args, k, m, ["simulate", "--calibration", cal, "--machine", whatif, "--steps", str(args.steps),
                                   "--warmup", str(args.warmup)] + workers + device)
            sps[(k, m)] = d["samples_per_s"]
    base = sps[(2, 1)] if (2, 1) in sps else sps[(ks[0], 1)]
    what = f"{args.gpus} GPUs" if args.gpus else f"{args.cores} cores"
    print(f"MLP 32 -> 8 x ({args.width} x {args.width}), batch {args.batch}, {args.schedule}, pinned; simulated "
          f"on '{whatif}' ({what} of '{machine}', calibration {cal}); throughput normalised to "
          f"K=2, M=1 ({base:.0f} samples/s)\n")
    print("| K | M | simulated | ideal K·M/(M+K−1) | of ideal | GPipe AmoebaNet | GPipe Transformer |")
    print("|---|---|---|---|---|---|---|")
    for m in ms:
        for k in ks:
            ideal = k * m / (m + k - 1)
            s = sps[(k, m)] / base
            a, t = GPIPE_AMOEBANET.get((k, m)), GPIPE_TRANSFORMER.get((k, m))
            print(f"| {k} | {m} | {s:.2f} | {ideal:.2f} | {s / ideal:.0%} | {f'{a:.2f}' if a else '-'} | {f'{t:.2f}' if t else '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
