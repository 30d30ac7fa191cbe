#!/usr/bin/env python3
"""cnn_reference.py — starpipe's residual CNN in PyTorch, and a checkpoint evaluated with it.

build_cnn() is the network models/cnn.c builds (torchvision's BasicBlock with
GroupNorm for BatchNorm, a 3x3 stride-1 stem, no max pooling), with the same
module names, so a starpipe checkpoint loads with load_state_dict:

    python3 tools/cnn_reference.py --load cnn.safetensors [--data-dir DIR]

loads the checkpoint (its metadata: widths, blocks, groups), evaluates the
Fashion-MNIST test set in PyTorch (fp32, eval mode) and prints the test loss
and accuracy, to compare with `starpipe eval --load cnn.safetensors`: the
same layers computed by another library give the same accuracy (the loss
agrees to rounding). PyTorch comes from a virtual environment
($STARPIPE_VENV, else ~/.cache/starpipe-venv, created on first use).
"""
import argparse
import gzip
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpt_reference import ensure_torch  # noqa: E402


def build_cnn(torch, widths, blocks=1, groups=8, channels=1, classes=10):
    nn, F = torch.nn, torch.nn.functional

    def conv(cin, cout, k, s):
        return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2, bias=False)

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = conv(cin, cout, 3, stride), nn.GroupNorm(groups, cout)
            self.conv2, self.bn2 = conv(cout, cout, 3, 1), nn.GroupNorm(groups, cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(conv(cin, cout, 1, stride), nn.GroupNorm(groups, cout))

        def forward(self, x):
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(y + (self.downsample(x) if self.downsample is not None else x))

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = conv(channels, widths[0], 3, 1), nn.GroupNorm(groups, widths[0])
            ch = widths[0]
            for l, w in enumerate(widths):
                layer = []
                for b in range(blocks):
                    layer.append(BasicBlock(ch, w, 2 if l > 0 and b == 0 else 1))
                    ch = w
                setattr(self, f"layer{l + 1}", nn.Sequential(*layer))
            self.n_layers = len(widths)
            self.fc = nn.Linear(ch, classes)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            for l in range(self.n_layers):
                x = getattr(self, f"layer{l + 1}")(x)
            return self.fc(x.mean(dim=(2, 3)))

    return CNN()


def read_idx(path):
    with gzip.open(path, "rb") as f:
        b = f.read()
    ndim = b[3]
    dims = struct.unpack(">" + "I" * ndim, b[4:4 + 4 * ndim])
    return dims, b[4 + 4 * ndim:]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--load", required=True, help="a checkpoint of 'starpipe train --model cnn'")
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    ensure_torch()
    import numpy as np
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(a.load, "pt") as f:
        meta = f.metadata()
    if meta.get("model") != "cnn":
        sys.exit(f"cnn_reference: {a.load} holds a {meta.get('model')} model, not a cnn")
    widths = [int(w) for w in meta["widths"].split(",")]
    model = build_cnn(torch, widths, int(meta["blocks"]), int(meta["groups"]), classes=int(meta["classes"]))
    sd = {k: v for k, v in load_file(a.load).items() if not k.startswith("optimizer.")}
    model.load_state_dict(sd)
    model.eval()
    (n, h, w), pix = read_idx(os.path.join(a.data_dir, "t10k-images-idx3-ubyte.gz"))
    _, lab = read_idx(os.path.join(a.data_dir, "t10k-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(np.frombuffer(pix, dtype=np.uint8).reshape(n, 1, h, w).astype(np.float32) / 255.0)
    y = torch.from_numpy(np.frombuffer(lab, dtype=np.uint8).astype(np.int64))
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, n, 500):
            logits = model(x[i:i + 500])
            loss += torch.nn.functional.cross_entropy(logits, y[i:i + 500], reduction="sum").item()
            correct += (logits.argmax(1) == y[i:i + 500]).sum().item()
    r = {"test_loss": loss / n, "test_accuracy": correct / n, "images": n}
    print(json.dumps(r) if a.json else f"PyTorch: test loss {r['test_loss']:.6f}, accuracy {r['test_accuracy']:.4f} "
          f"on {n} images")


if __name__ == "__main__":
    main()
