#!/usr/bin/env bash
# cli_cnn.sh STARPIPE — `starpipe train --model cnn` on small generated
# Fashion-MNIST-format files: a tiny residual CNN learns, its checkpoint
# holds torchvision's names and evaluates to the training's own accuracy,
# resuming is exact with augmentation on, K = 1 and K = 2 train the same
# weights, and bad CNN options exit non-zero with a message.
set -u
bin=${1:?usage: cli_cnn.sh path/to/starpipe}
here=$(cd "$(dirname "$0")" && pwd)
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
data=$tmp/data
mkdir -p "$data"
python3 "$here/make_idx.py" "$data" --textures

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
field() { python3 -c "import json,sys; print(json.loads(open('$1').read().strip().splitlines()[-1])['$2'])"; }

small=(--model cnn --data-dir "$data" --widths 8,16 --groups 4 --batch 32 --microbatches 4 --lr-warmup 0)

# training (2 stages by default): learns, JSON, the plan line names the CNN
if timeout 300 "$bin" train "${small[@]}" --epochs 4 --lr 5e-3 --save "$tmp/cnn.safetensors" --json \
    >"$tmp/run.json" 2>"$tmp/err"; then
    python3 - "$tmp/run.json" <<'PY' || fail "train --json: $(cat "$tmp/run.json")"
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert d["stages"] == 2 and d["epochs"] == 4 and d["steps"] == 4 * (512 // 32), d
assert d["test_accuracy"] > 0.5, f"accuracy {d['test_accuracy']} on an easy set (chance: 0.1)"
PY
    grep -q "CNN of widths 8,16, 1 block per layer, group norm of 4 groups, augmentation flip" "$tmp/err" ||
        fail "no CNN line: $(head -5 "$tmp/err")"
else
    fail "train --model cnn: $(cat "$tmp/err")"
fi

# the checkpoint: torchvision's names and PyTorch's shapes, the CNN's metadata
python3 - "$tmp/cnn.safetensors" <<'PY' || fail "checkpoint contents"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
want = {"conv1.weight": [8, 1, 3, 3], "bn1.weight": [8], "layer1.0.conv2.weight": [8, 8, 3, 3],
        "layer2.0.conv1.weight": [16, 8, 3, 3], "layer2.0.downsample.0.weight": [16, 8, 1, 1],
        "layer2.0.downsample.1.bias": [16], "fc.weight": [10, 16], "fc.bias": [10]}
for k, s in want.items():
    assert h[k]["shape"] == s, (k, h.get(k))
m = h["__metadata__"]
assert m["model"] == "cnn" and m["widths"] == "8,16" and m["blocks"] == "1" and m["groups"] == "4", m
assert m["augment"] == "flip" and m["data"] == "fashion-mnist", m
PY

# eval --load: the accuracy and loss the training ended with
if "$bin" eval --load "$tmp/cnn.safetensors" --data-dir "$data" --json >"$tmp/eval.json" 2>"$tmp/err"; then
    for k in test_accuracy test_loss; do
        [ "$(field "$tmp/eval.json" $k)" = "$(field "$tmp/run.json" $k)" ] ||
            fail "eval $k $(field "$tmp/eval.json" $k) != training's $(field "$tmp/run.json" $k)"
    done
else
    fail "eval --load: $(cat "$tmp/err")"
fi

# resume with flips and crops (drawn from seed, epoch and image): 12 steps = 6 saved + 6 resumed
aug=("${small[@]}" --augment flip,crop --epochs 2)
"$bin" train "${aug[@]}" --steps 12 --json --quiet >"$tmp/whole.json" 2>"$tmp/err" || fail "whole: $(cat "$tmp/err")"
"$bin" train "${aug[@]}" --steps 6 --save "$tmp/half.safetensors" --quiet 2>"$tmp/err" || fail "half: $(cat "$tmp/err")"
"$bin" train --data-dir "$data" --epochs 2 --steps 12 --resume "$tmp/half.safetensors" --json --quiet \
    >"$tmp/resumed.json" 2>"$tmp/err" || fail "resumed: $(cat "$tmp/err")"
a=$(field "$tmp/whole.json" params_checksum); b=$(field "$tmp/resumed.json" params_checksum)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "12 steps give $a, 6 + resume + 6 give $b"
# augmentation changes the run (else it is not applied)
"$bin" train "${small[@]}" --augment none --epochs 2 --steps 12 --json --quiet >"$tmp/plain.json" 2>"$tmp/err" ||
    fail "no augmentation: $(cat "$tmp/err")"
[ "$(field "$tmp/plain.json" params_checksum)" != "$a" ] || fail "--augment flip,crop trained the same weights as none"

# one stage and two: the same weights
"$bin" train "${small[@]}" --stages 1 --steps 6 --json --quiet >"$tmp/k1.json" 2>"$tmp/err" || fail "K=1: $(cat "$tmp/err")"
"$bin" train "${small[@]}" --stages 2 --schedule 1f1b --steps 6 --json --quiet >"$tmp/k2.json" 2>"$tmp/err" ||
    fail "K=2: $(cat "$tmp/err")"
[ "$(field "$tmp/k1.json" params_checksum)" = "$(field "$tmp/k2.json" params_checksum)" ] ||
    fail "K=1 and K=2 (1f1b) trained different weights"

# expect CODE PATTERN ARGS...
expect() {
    local code=$1 pattern=$2; shift 2
    timeout 60 "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$code" ]; then
        fail "starpipe $* exited $rc, expected $code: $(head -3 "$tmp/err")"
    elif ! grep -qE -- "$pattern" "$tmp/err"; then
        fail "starpipe $*: stderr does not match '$pattern': $(head -3 "$tmp/err")"
    fi
}
expect 2 "--model cnn trains on images" train --model cnn --data synthetic
expect 2 "--model cnn trains on images" train --model cnn --data text
expect 2 "--groups 8 does not divide the width 12" train --model cnn --widths 12,16
expect 2 "--widths expects" train --model cnn --widths 8,,16
expect 2 "--blocks expects an integer" train --model cnn --blocks 0
expect 2 "unknown augmentation 'rotate'" train --model cnn --augment rotate
expect 2 "describe a CNN" train --model mlp --data fashion-mnist --widths 8
expect 2 "describe a CNN" train --data fashion-mnist --augment flip
expect 2 "a CNN takes --widths" train --model cnn --hidden 8
expect 2 "the checkpoint has widths 8,16" train --data-dir "$data" --resume "$tmp/cnn.safetensors" --widths 8,32
expect 2 "the command line asks for --model mlp" eval --load "$tmp/cnn.safetensors" --data-dir "$data" --model mlp
"$bin" train --help | grep -q -- "--widths LIST" || fail "train --help does not document --widths"

[ "$fails" -eq 0 ] && echo "cli_cnn: all passed" || echo "cli_cnn: $fails failure(s)"
[ "$fails" -eq 0 ]
