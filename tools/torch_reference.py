#!/usr/bin/env python3
"""torch_reference.py — the GPU benchmark's baseline: the same model in PyTorch eager.

An MLP of 4 x (W x W) linear layers with ReLU between (the last one the
classifier over W classes), softmax cross-entropy, SGD with momentum 0.9,
fp32 without TF32, batch B, on one GPU. Prints one JSON line with the mean
step time over --steps steps after --warmup, for the batch copied from host
memory every step (as starpipe does) and for a batch already on the GPU.

    python3 tools/torch_reference.py --width 4096 --batch 8192
"""
import argparse
import json
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--batch", type=int, default=8192)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--tf32", action="store_true")
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    dev = torch.device("cuda")
    w = a.width
    layers = []
    for i in range(4):
        layers.append(torch.nn.Linear(w, w))
        if i < 3:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x_host = torch.rand(a.batch, w).pin_memory()
    y_host = torch.randint(0, w, (a.batch,)).pin_memory()
    x_dev, y_dev = x_host.to(dev), y_host.to(dev)

    def step(from_host):
        x = x_host.to(dev, non_blocking=True) if from_host else x_dev
        y = y_host.to(dev, non_blocking=True) if from_host else y_dev
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "width": w, "batch": a.batch,
           "tf32": a.tf32}
    for from_host in (True, False):
        for _ in range(a.warmup):
            step(from_host)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = step(from_host)
        loss.item()
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) / a.steps * 1e3
        out["step_ms_from_host" if from_host else "step_ms_on_gpu"] = ms
    print(json.dumps(out))


if __name__ == "__main__":
    main()
