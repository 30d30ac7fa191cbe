#!/usr/bin/env python3
"""gpt_reference.py — a starpipe GPT checkpoint in PyTorch: the same model,
the same validation windows, the same loss.

Builds nanoGPT's GPT (model.py: pre-LayerNorm blocks, causal self-attention,
MLP 4x with exact GELU, LM head; biases on, no attention dropout) from the
checkpoint's metadata, loads the safetensors weights with load_state_dict
(nanoGPT's names; a tied head reads transformer.wte.weight), encodes the
text with the vocabulary stored in the checkpoint, takes the validation
windows starpipe evaluates (the last 10% of the text, --eval-windows windows
spread evenly over it) and prints PyTorch's mean cross-entropy beside
`starpipe eval --load`'s, and their relative difference.

PyTorch is not a dependency of starpipe: the script creates a virtual
environment under ~/.cache/starpipe-venv (or uses $STARPIPE_VENV) and
installs torch, numpy and safetensors there from PyPI on first use.

    python3 tools/gpt_reference.py --load model.safetensors [--text PATH] [--bin build/starpipe]

Exit status 0 when the two agree within --tolerance (default 1e-4 relative).
"""
import argparse
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def ensure_torch():
    try:
        import torch  # noqa: F401
        import safetensors  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.environ.get("STARPIPE_VENV", os.path.expanduser("~/.cache/starpipe-venv"))
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        print(f"gpt_reference: creating {venv} with torch, numpy, safetensors (PyPI)", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([py, "-m", "pip", "install", "-q", "torch", "numpy", "safetensors"])
    os.execv(py, [py] + sys.argv)


def build_model(torch, meta):
    nn, F = torch.nn, torch.nn.functional
    V, T = int(meta["vocab_size"]), int(meta["context"])
    L, H, C = int(meta["layers"]), int(meta["heads"]), int(meta["embd"])

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(C, 3 * C)
            self.c_proj = nn.Linear(C, C)

        def forward(self, x):
            B, Tn, _ = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, Tn, H, C // H).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))
            mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, Tn, C)
            return self.c_proj(y)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(C, 4 * C)
            self.c_proj = nn.Linear(4 * C, C)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(C)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(C)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(V, C), wpe=nn.Embedding(T, C),
                h=nn.ModuleList([Block() for _ in range(L)]), ln_f=nn.LayerNorm(C)))
            self.lm_head = nn.Linear(C, V, bias=False)

        def forward(self, idx, targets):
            pos = torch.arange(idx.shape[1])
            x = self.transformer.wte(idx) + self.transformer.wpe(pos)
            for block in self.transformer.h:
                x = block(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            return F.cross_entropy(logits.view(-1, V), targets.view(-1), reduction="sum")

    return GPT()


def validation_windows(ids, context, max_windows):
    """The windows sp_text_windows takes: evenly spread over the last 10%."""
    n = len(ids)
    n_train = n - n // 10
    span = n - n_train - 1
    count = span // context
    if max_windows > 0:
        count = min(count, max_windows)
    stride = span // count
    xs, ys = [], []
    for w in range(count):
        s = n_train + w * stride
        xs.append(ids[s:s + context])
        ys.append(ids[s + 1:s + context + 1])
    return xs, ys


def main():
    ensure_torch()
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--load", required=True, help="a starpipe GPT checkpoint (safetensors)")
    p.add_argument("--text", help="the text (default: the one the checkpoint names)")
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build", "starpipe"))
    p.add_argument("--tolerance", type=float, default=1e-4)
    args = p.parse_args()

    with safe_open(args.load, framework="pt") as f:
        meta = f.metadata()
    if meta.get("model") != "gpt":
        sys.exit(f"gpt_reference: {args.load} is not a GPT checkpoint (model {meta.get('model')!r})")
    text_path = args.text or meta["text"]
    chars = [int(c) for c in meta["vocab"].split(",")]
    index = {chr(c): i for i, c in enumerate(chars)}
    with open(text_path, encoding="utf-8") as f:
        ids = [index[ch] for ch in f.read()]
    context, windows = int(meta["context"]), int(meta.get("eval_windows", "0"))

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = build_model(torch, meta)
    sd = {k: v for k, v in load_file(args.load).items() if not k.startswith("optimizer.")}
    if "lm_head.weight" not in sd:  # tied: nanoGPT's lm_head shares wte's tensor
        sd["lm_head.weight"] = sd["transformer.wte.weight"]
    model.load_state_dict(sd, strict=True)
    model.eval()
    xs, ys = validation_windows(ids, context, windows)
    total, tokens = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(xs), 64):
            x = torch.tensor(xs[i:i + 64], dtype=torch.long)
            y = torch.tensor(ys[i:i + 64], dtype=torch.long)
            total += float(model(x, y).double())
            tokens += y.numel()
    torch_loss = total / tokens

    env = dict(os.environ, STARPU_SILENT="1")
    out = subprocess.run([args.bin, "eval", "--load", args.load, "--text", text_path, "--json"],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"gpt_reference: starpipe eval failed:\n{out.stderr}")
    sp_loss = json.loads(out.stdout.strip().splitlines()[-1])["val_loss"]
    rel = abs(sp_loss - torch_loss) / abs(torch_loss)
    print(f"validation windows {len(xs)} x {context} characters of {text_path}")
    print(f"starpipe val_loss {sp_loss:.7f}   PyTorch {torch_loss:.7f}   relative difference {rel:.2e}"
          f" (tolerance {args.tolerance:.0e})")
    sys.exit(0 if rel <= args.tolerance else 1)


if __name__ == "__main__":
    main()
