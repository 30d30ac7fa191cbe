#!/usr/bin/env bash
# cli_data.sh STARPIPE — the command on (small, generated) Fashion-MNIST-format
# files: training with per-epoch evaluation and JSON, checkpoints that resume
# bit-identically and evaluate with `starpipe eval`, and every bad data or
# checkpoint file giving a message that names the file, a non-zero exit and
# no partial output.
set -u
bin=${1:?usage: cli_data.sh path/to/starpipe}
here=$(cd "$(dirname "$0")" && pwd)
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
data=$tmp/data
mkdir -p "$data"
python3 "$here/make_idx.py" "$data"

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
field() { python3 -c "import json,sys; print(json.loads(open('$1').read().strip().splitlines()[-1])['$2'])"; }

common=(--data fashion-mnist --data-dir "$data" --hidden 32 --batch 64 --microbatches 4 --stages 2)

# training: JSON with the documented fields, learning happens
if timeout 120 "$bin" train "${common[@]}" --epochs 3 --json >"$tmp/run.json" 2>"$tmp/err"; then
    python3 - "$tmp/run.json" <<'PY' || fail "train --json: $(cat "$tmp/run.json")"
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
for k in ["test_accuracy", "test_loss", "epochs", "seconds", "samples_per_s", "params_checksum"]:
    assert k in d, f"missing {k}"
assert d["epochs"] == 3 and d["steps"] == 3 * (512 // 64), d
assert d["test_accuracy"] > 0.5, f"accuracy {d['test_accuracy']} on an easy set"
PY
    grep -q "^epoch 3: train loss" "$tmp/err" || fail "no per-epoch line when not on a terminal: $(cat "$tmp/err")"
else
    fail "train on generated data: $(cat "$tmp/err")"
fi

# on a terminal: a progress bar redrawn in place (script(1) provides the terminal)
if command -v script >/dev/null; then
    script -qec "'$bin' train --data fashion-mnist --data-dir '$data' --hidden 32 --batch 64 --epochs 2" /dev/null >"$tmp/tty" 2>&1
    grep -qa $'\repoch 1/2 \[' "$tmp/tty" || fail "no progress bar on a terminal: $(head -c 300 "$tmp/tty")"
    grep -qa "samples/s  loss" "$tmp/tty" || fail "the progress bar lacks samples/s and loss"
fi

# resume: N steps equal N/2 saved + N/2 resumed, bit for bit (crossing an epoch boundary)
"$bin" train "${common[@]}" --epochs 2 --steps 12 --json --quiet >"$tmp/whole.json" 2>"$tmp/err" || fail "whole run: $(cat "$tmp/err")"
"$bin" train "${common[@]}" --epochs 2 --steps 6 --save "$tmp/half.safetensors" --quiet 2>"$tmp/err" || fail "half run: $(cat "$tmp/err")"
"$bin" train "${common[@]}" --epochs 2 --steps 12 --resume "$tmp/half.safetensors" --json --quiet >"$tmp/resumed.json" 2>"$tmp/err" || fail "resumed run: $(cat "$tmp/err")"
a=$(field "$tmp/whole.json" params_checksum); b=$(field "$tmp/resumed.json" params_checksum)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "12 steps give $a, 6 + resume + 6 give $b"
# the checkpoint names its data set: resuming without --data gets fashion-mnist's defaults too
"$bin" train --data-dir "$data" --batch 64 --microbatches 4 --stages 2 --epochs 2 --steps 12 \
    --resume "$tmp/half.safetensors" --json --quiet >"$tmp/resumed2.json" 2>"$tmp/err" || fail "resume without --data: $(cat "$tmp/err")"
[ "$(field "$tmp/resumed2.json" params_checksum)" = "$a" ] || fail "resume without --data differs from the whole run"
# --save-every writes along the way; resuming from it is exact too
"$bin" train "${common[@]}" --epochs 2 --steps 9 --save "$tmp/every.safetensors" --save-every 4 --quiet 2>"$tmp/err" || fail "save-every: $(cat "$tmp/err")"
python3 - "$tmp/every.safetensors" <<'PY' || fail "the checkpoint is not readable safetensors"
import json, struct, sys, array
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
w = h["fc1.weight"]
assert w["dtype"] == "F32" and w["shape"] == [32, 784], w
s, e = w["data_offsets"]
vals = array.array("f", b[8 + n + s:8 + n + e])
assert len(vals) == 32 * 784 and all(abs(v) < 10 for v in vals)
assert h["__metadata__"]["starpipe.step"] == "9", h["__metadata__"]
assert "optimizer.fc1.weight.exp_avg" in h and "optimizer.fc1.weight.exp_avg_sq" in h
PY

# eval of a checkpoint: same accuracy as the run that wrote it
"$bin" train "${common[@]}" --epochs 1 --save "$tmp/e1.safetensors" --json --quiet >"$tmp/e1.json" 2>"$tmp/err" || fail "e1: $(cat "$tmp/err")"
if "$bin" eval --load "$tmp/e1.safetensors" --data-dir "$data" --batch 50 --microbatches 2 --json >"$tmp/eval.json" 2>"$tmp/err"; then
    [ "$(field "$tmp/eval.json" test_accuracy)" = "$(field "$tmp/e1.json" test_accuracy)" ] ||
        fail "eval accuracy $(field "$tmp/eval.json" test_accuracy) != training's $(field "$tmp/e1.json" test_accuracy)"
else
    fail "eval --load: $(cat "$tmp/err")"
fi

# expect CODE PATTERN ARGS...
expect() {
    local code=$1 pattern=$2; shift 2
    timeout 60 "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$code" ]; then fail "starpipe $* exited $rc, expected $code: $(head -3 "$tmp/err")"
    elif ! grep -qE -- "$pattern" "$tmp/err"; then fail "starpipe $*: stderr does not match '$pattern': $(head -3 "$tmp/err")"; fi
}
bad=$tmp/bad; mkdir -p "$bad"
cp "$data"/* "$bad"/
expect 1 "nowhere/train-images-idx3-ubyte.gz: cannot open" train --data fashion-mnist --data-dir "$tmp/nowhere"
printf 'garbage' | gzip > "$bad/t10k-labels-idx1-ubyte.gz"
expect 1 "t10k-labels-idx1-ubyte.gz: not an IDX file" train "${common[@]}" --data-dir "$bad"
python3 - "$data/train-images-idx3-ubyte.gz" "$bad/train-images-idx3-ubyte.gz" <<'PY'
import gzip, sys
raw = gzip.open(sys.argv[1]).read()
gzip.open(sys.argv[2], "wb").write(raw[:len(raw) // 2])
PY
expect 1 "train-images-idx3-ubyte.gz: truncated" train "${common[@]}" --data-dir "$bad"

# checkpoints that do not fit or are corrupt; unwritable save paths
expect 2 "the checkpoint has hidden 32" train "${common[@]}" --hidden 64 --resume "$tmp/e1.safetensors"
expect 1 "not-there.safetensors: cannot open" train "${common[@]}" --resume "$tmp/not-there.safetensors"
head -c 1000 "$tmp/e1.safetensors" > "$tmp/cut.safetensors"
expect 1 "cut.safetensors: (tensor .* truncated|corrupt|header length)" eval --load "$tmp/cut.safetensors" --data-dir "$data"
printf 'not a checkpoint at all' > "$tmp/junk.safetensors"
expect 1 "junk.safetensors: header length" eval --load "$tmp/junk.safetensors" --data-dir "$data"
expect 2 "the folder .*no/such/dir does not exist" train "${common[@]}" --epochs 1 --save "$tmp/no/such/dir/x.safetensors"
[ ! -e "$tmp/no/such/dir/x.safetensors" ] || fail "a failed save left a file"
ls "$tmp" | grep -q '\.tmp\.' && fail "a temporary checkpoint was left behind: $(ls "$tmp")"

if [ "$fails" -ne 0 ]; then echo "cli_data: $fails check(s) failed"; exit 1; fi
echo "cli_data: all checks passed"
