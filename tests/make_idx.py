#!/usr/bin/env python3
"""make_idx.py DIR [--textures] — writes a small Fashion-MNIST look-alike into DIR for tests.

Four gzip IDX files named as Debian's dataset-fashion-mnist names them:
512 training and 100 test images of 28 x 28 pixels, 10 classes. Each class
lights a different band of rows, with seeded noise, so a small MLP learns it
quickly. With --textures each class is a texture instead, wherever it sits
(stripes of one of five periods, horizontal or vertical, at a random phase,
with noise): what a convolutional network with global pooling can tell
apart and a band's position is not. Nothing of the real data set is copied.
"""
import gzip
import random
import struct
import sys


def write(path, magic_dims, payload):
    ndim = len(magic_dims)
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, ndim]))
        for d in magic_dims:
            f.write(struct.pack(">I", d))
        f.write(payload)


def images(n, rng):
    pix, lab = bytearray(), bytearray()
    for _ in range(n):
        c = rng.randrange(10)
        lab.append(c)
        for r in range(28):
            band = c * 2 <= r < c * 2 + 4
            for _ in range(28):
                pix.append(min(255, (200 if band else 0) + rng.randrange(56)))
    return bytes(pix), bytes(lab)


def textures(n, rng):
    pix, lab = bytearray(), bytearray()
    for _ in range(n):
        c = rng.randrange(10)
        lab.append(c)
        period, vertical, phase = 2 + c % 5, c >= 5, rng.randrange(8)
        for r in range(28):
            for q in range(28):
                on = ((q if vertical else r) + phase) % period == 0
                pix.append(min(255, (200 if on else 0) + rng.randrange(56)))
    return bytes(pix), bytes(lab)


def main():
    out = sys.argv[1]
    make = textures if "--textures" in sys.argv[2:] else images
    rng = random.Random(5)
    for prefix, n in (("train", 512), ("t10k", 100)):
        pix, lab = make(n, rng)
        write(f"{out}/{prefix}-images-idx3-ubyte.gz", (n, 28, 28), pix)
        write(f"{out}/{prefix}-labels-idx1-ubyte.gz", (n,), lab)


if __name__ == "__main__":
    main()
