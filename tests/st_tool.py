#!/usr/bin/env python3
"""st_tool.py — makes the damaged and hostile checkpoints of cli_hostile.sh.

A safetensors file is an 8-byte little-endian header length N, N bytes of
JSON, then the tensors' bytes. Each command reads IN and writes OUT:

  meta IN OUT KEY=VALUE...     set (or with KEY= and no value: drop) metadata keys
  poke IN OUT TENSOR I VALUE   element I of an F32 tensor set to VALUE (nan, -1, inf, ...), the
                               checksum (starpipe.checksum) recomputed, as a careful writer would
  fill IN OUT TENSOR VALUE     every element of an F32 tensor set to VALUE, the checksum recomputed
  flip IN OUT TENSOR I VALUE   as poke, but the checksum left as it was (damage, not an edit)
  header IN OUT EDIT           a raw edit of the header text or its length:
                               hlen-1 (the length one byte short), dup-meta (a metadata key twice),
                               dup-tensor (a tensor entry twice), overlap (a tensor's bytes start
                               inside the one before), leading-zero (an offset written 0512),
                               hole (a byte between two tensors), tail (a byte after the last one)
  mlp OUT INPUTS HIDDEN CLASSES [KEY=VALUE...]
                               a complete MLP checkpoint (zero weights, SGD state) of that size;
                               HIDDEN is "16,16"; the metadata keys given override the defaults
Only the standard library: no numpy, no safetensors package.
"""
import json
import struct
import sys


def read(path):
    b = open(path, "rb").read()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8:8 + n])
    return header, b[8 + n:]


def write(path, header, data, text=None):
    h = (text if text is not None else json.dumps(header, separators=(",", ":"))).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def tensors(header):
    return [(k, v) for k, v in header.items() if k != "__metadata__"]


def set_floats(header, data, name, fn):
    t = header[name]
    begin, end = t["data_offsets"]
    data = bytearray(data)
    count = (end - begin) // 4
    vals = list(struct.unpack(f"<{count}f", data[begin:end]))
    vals = fn(vals)
    data[begin:end] = struct.pack(f"<{count}f", *vals)
    return bytes(data)


def mlp(out, inputs, hidden, classes, extra):
    widths = [inputs] + [int(h) for h in hidden.split(",")] + [classes]
    meta = {"model": "mlp", "hidden": hidden, "activation": "relu", "data": "synthetic", "inputs": str(inputs),
            "classes": str(classes), "samples": "64", "epoch": "0", "batch_in_epoch": "0", "batch": "16",
            "microbatches": "4", "seed": "1", "lr": "0.05", "lr_schedule": "constant", "lr_warmup": "0",
            "starpipe.step": "0", "starpipe.optimizer": "sgd"}
    meta.update(extra)
    header, chunks, off = {"__metadata__": meta}, [], 0
    for prefix in ("", "optimizer."):
        for i in range(len(widths) - 1):
            for part, shape in (("weight", [widths[i + 1], widths[i]]), ("bias", [widths[i + 1]])):
                name = f"fc{i + 1}.{part}"
                if prefix:
                    name = f"optimizer.{name}.momentum_buffer"
                size = 4
                for d in shape:
                    size *= d
                header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + size]}
                chunks.append(bytes(size))
                off += size
    write(out, header, b"".join(chunks))


def header_edit(header, data, edit):
    text = json.dumps(header, separators=(",", ":"))
    names = [k for k, _ in tensors(header)]
    if edit == "hlen-1":
        h = text.encode()
        h += b" " * (-len(h) % 8 or 8)  # at least one space, so the JSON still parses one byte short
        return struct.pack("<Q", len(h) - 1) + h + data
    if edit == "dup-meta":
        k = next(iter(header["__metadata__"]))
        text = text.replace('"__metadata__":{', '"__metadata__":{' + json.dumps(k) + ':"x",', 1)
    elif edit == "dup-tensor":
        first = json.dumps(names[0]) + ":" + json.dumps(header[names[0]], separators=(",", ":"))
        text = text[:-1] + "," + first + "}"
    elif edit == "overlap":
        t = header[names[1]]
        t["data_offsets"] = [t["data_offsets"][0] - 4, t["data_offsets"][1] - 4]
        text = json.dumps(header, separators=(",", ":"))
        data = data + bytes(0)
    elif edit == "leading-zero":
        b0, e0 = header[names[0]]["data_offsets"]
        text = text.replace(f'"data_offsets":[{b0},{e0}]', f'"data_offsets":[{b0},0{e0}]', 1)
    elif edit == "hole":
        cut = header[names[0]]["data_offsets"][1]
        for _, t in tensors(header):
            if t["data_offsets"][0] >= cut:
                t["data_offsets"] = [t["data_offsets"][0] + 1, t["data_offsets"][1] + 1]
        text = json.dumps(header, separators=(",", ":"))
        data = data[:cut] + b"\0" + data[cut:]
    elif edit == "tail":
        data = data + b"\0"
    else:
        sys.exit(f"st_tool.py: unknown header edit {edit}")
    h = text.encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def main(argv):
    cmd = argv[1]
    if cmd == "mlp":
        out, inputs, hidden, classes = argv[2], int(argv[3]), argv[4], int(argv[5])
        mlp(out, inputs, hidden, classes, dict(kv.split("=", 1) for kv in argv[6:]))
        return
    header, data = read(argv[2])
    out = argv[3]
    if cmd == "meta":
        for kv in argv[4:]:
            k, v = kv.split("=", 1)
            if v == "" and kv.endswith("="):
                header["__metadata__"].pop(k, None)
            else:
                header["__metadata__"][k] = v
    elif cmd in ("poke", "flip"):
        name, i, value = argv[4], int(argv[5]), float(argv[6])
        data = set_floats(header, data, name, lambda v: v[:i] + [value] + v[i + 1:])
    elif cmd == "fill":
        name, value = argv[4], float(argv[5])
        data = set_floats(header, data, name, lambda v: [value] * len(v))
    elif cmd == "header":
        open(out, "wb").write(header_edit(header, data, argv[4]))
        return
    else:
        sys.exit(f"st_tool.py: unknown command {cmd}")
    if cmd in ("poke", "fill") and "starpipe.checksum" in header["__metadata__"]:
        header["__metadata__"]["starpipe.checksum"] = f"fnv1a64:{fnv1a64(data):016x}"
    write(out, header, data)


if __name__ == "__main__":
    main(sys.argv)
