#!/usr/bin/env bash
# cli_hostile.sh STARPIPE — the command against a hostile or careless user
# (issue 11): sizes StarPU cannot hold, damaged and crafted checkpoints
# (tests/st_tool.py makes them), non-finite weights, odd save paths, killed
# and size-limited saves, numbers out of range, a bad environment. Each case
# must end with a clear message and its exit status (1: the run failed, 2:
# usage), never a crash, a hang, a silent success or a file left behind.
set -u
bin=${1:?usage: cli_hostile.sh path/to/starpipe}
here=$(cd "$(dirname "$0")" && pwd)
st() { python3 "$here/st_tool.py" "$@"; }
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect CODE PATTERN ARGS...: exit status CODE, stderr matching PATTERN
expect() {
    local code=$1 pattern=$2; shift 2
    timeout "${limit:-120}" "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$code" ]; then
        fail "starpipe $* exited $rc, expected $code"; sed 's/^/  stderr: /' "$tmp/err" | head -5
    elif ! grep -qE -- "$pattern" "$tmp/err"; then
        fail "starpipe $*: stderr does not match '$pattern':"; sed 's/^/  stderr: /' "$tmp/err" | head -5
    fi
}

# peak CMD...: the largest resident size (MB) of the command, which must exit non-zero
peak() { python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)' "$@"; }

small=(--hidden 16,16 --inputs 8 --batch 16 --samples 64 --quiet)
python3 -c 'import random; r = random.Random(1)
print("\n".join(" ".join(r.choice(["to", "be", "or", "not", "that", "is", "the", "question"]) for _ in range(8))
      for _ in range(400)))' >"$tmp/text.txt"
gpt=(--text "$tmp/text.txt" --layers 1 --heads 2 --embd 16 --context 8 --batch 8 --microbatches 2 --eval-windows 4
     --quiet)
"$bin" train "${gpt[@]}" --steps 2 --save "$tmp/gpt.st" >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
"$bin" train "${small[@]}" --steps 2 --save "$tmp/good.st" >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
"$bin" train "${small[@]}" --steps 2 --optimizer adamw --save "$tmp/adam.st" >/dev/null 2>"$tmp/err" \
    || { cat "$tmp/err"; exit 1; }

# ---- 1. buffers StarPU cannot hold (its vectors count elements in 32 bits) ----
# one activation buffer of 32768 x 65536 = 2^31 elements: refused before anything is allocated
expect 1 "would hold 4295[0-9]* elements, more than the 2147483647" \
    train --inputs 1 --hidden 65536 --classes 2 --samples 32768 --batch 32768 --microbatches 1 --steps 1
# the same model from a crafted 2 MB checkpoint through --resume
st mlp "$tmp/wide.st" 1 65536 2 samples=32768 batch=32768 microbatches=1
expect 1 "would hold 4295[0-9]* elements" train --resume "$tmp/wide.st" --steps 1 --quiet

# ---- 3. a small file cannot make starpipe allocate a large model; runs that cannot fit are refused ----
st meta "$tmp/good.st" "$tmp/claims.st" hidden=20000,20000 # 4e8 parameters (6 GB with their state) in 5 KB
expect 1 "claims.st: tensor 'fc1.weight' has shape \(16, 8\), the model expects \(20000, 8\)" \
    train --resume "$tmp/claims.st" --steps 3
mb=$(peak "$bin" train --resume "$tmp/claims.st" --steps 3)
[ "$mb" -lt 1024 ] || fail "a 5 KB checkpoint claiming 4e8 parameters made starpipe take $mb MB"
st meta "$tmp/gpt.st" "$tmp/gpt-claims.st" layers=64 embd=4096 heads=32
expect 1 "gpt-claims.st: tensor '.*' has shape .*, the model expects" generate --load "$tmp/gpt-claims.st" --tokens 2
expect 1 "gpt-claims.st: tensor '.*' has shape .*, the model expects" train --resume "$tmp/gpt-claims.st" --steps 3
mb=$(peak "$bin" generate --load "$tmp/gpt-claims.st" --tokens 2)
[ "$mb" -lt 1024 ] || fail "a GPT checkpoint claiming 64 layers of 4096 made starpipe take $mb MB"
# the start-up line says what the run takes; a run past the machine's memory is refused before it starts
"$bin" train --hidden 16,16 --inputs 8 --batch 16 --samples 64 --steps 1 >"$tmp/out" 2>"$tmp/err"
grep -qE "workers, about [0-9.]+ MiB of memory" "$tmp/out" || fail "no memory estimate in the start-up line: $(head -1 "$tmp/out")"
wide=30000; for i in $(seq 15); do wide="$wide,30000"; done # 1.35e10 parameters in 16 stages
expect 1 "the run needs about [0-9.]+ GiB of memory \(parameters [0-9.]+, .*more than the [0-9.]+ GiB this machine has" \
    train --hidden "$wide" --stages 16 --steps 1
expect 1 "the run needs about [0-9.]+ GiB of memory .*stashes [0-9.]{3}" \
    train --hidden 4096 --samples 16777216 --batch 16777216 --microbatches 1048576 --steps 1

# ---- 4. non-finite weights and impossible optimizer state are refused on load, naming the tensor ----
st poke "$tmp/good.st" "$tmp/nan.st" fc2.weight 5 nan
expect 1 "nan.st: tensor 'fc2.weight' holds a non-finite value \(nan at element 5\)" \
    train --resume "$tmp/nan.st" --steps 3 --save "$tmp/resaved.st"
[ -e "$tmp/resaved.st" ] && fail "a checkpoint with a NaN weight was resumed and saved again"
st poke "$tmp/good.st" "$tmp/inf.st" optimizer.fc1.bias.momentum_buffer 0 inf
expect 1 "tensor 'optimizer.fc1.bias.momentum_buffer' holds a non-finite value \(inf at element 0\)" \
    train --resume "$tmp/inf.st" --steps 3
st poke "$tmp/adam.st" "$tmp/negsq.st" optimizer.fc3.weight.exp_avg_sq 7 -1
expect 1 "tensor 'optimizer.fc3.weight.exp_avg_sq' holds a negative value \(-1 at element 7\)" \
    train --resume "$tmp/negsq.st" --steps 3 --optimizer adamw
st fill "$tmp/gpt.st" "$tmp/gpt-nan.st" transformer.wte.weight nan
expect 1 "gpt-nan.st: tensor 'transformer.wte.weight' holds a non-finite value" eval --load "$tmp/gpt-nan.st"
expect 1 "gpt-nan.st: tensor 'transformer.wte.weight' holds a non-finite value" generate --load "$tmp/gpt-nan.st"

# ---- 8. every number read from a checkpoint is bounded and strictly written --------
for kv in starpipe.step=9223372036854775807 starpipe.step=99999999999999999999 starpipe.step=-1 \
          starpipe.step=" 2" starpipe.step=+2 starpipe.step=02; do
    st meta "$tmp/good.st" "$tmp/num.st" "$kv"
    expect 1 "num.st: metadata 'starpipe.step' is missing or not a count" train --resume "$tmp/num.st" --steps 3
done
for kv in epoch=9223372036854775807 epoch=1e3 batch_in_epoch=4611686018427387904 inputs=08 classes=0x10 \
          batch=" 16" seed=18446744073709551616 microbatches=4.0 lr_warmup=-0 lr_decay_steps=9223372036854775807; do
    st meta "$tmp/good.st" "$tmp/num.st" "$kv"
    expect 1 "num.st: metadata '${kv%%=*}' is missing or out of range" train --resume "$tmp/num.st" --steps 3
done
for kv in lr=inf lr=nan lr=" 0.1" lr=0.1x; do
    st meta "$tmp/good.st" "$tmp/num.st" "$kv"
    expect 1 "num.st: metadata 'lr' is not a learning rate" train --resume "$tmp/num.st" --steps 3
done
st meta "$tmp/gpt.st" "$tmp/num.st" dropout=" 0.1"
expect 1 "num.st: metadata 'dropout' or 'tie_embeddings' is missing or out of range" generate --load "$tmp/num.st"
st meta "$tmp/gpt.st" "$tmp/num.st" context=08
expect 1 "num.st: metadata 'context' is missing or out of range" generate --load "$tmp/num.st"

# ---- 9. strict readers: anything the writer would not write is refused ------------
for edit in "hlen-1:bytes after the last tensor" "dup-meta:metadata key '.*' appears twice" \
            "dup-tensor:tensor '.*' appears twice" "overlap:tensor '.*' starts at byte [0-9]+, inside" \
            "leading-zero:number with a leading zero" "hole:tensor '.*' starts at byte [0-9]+, after a gap" \
            "tail:bytes after the last tensor"; do
    st header "$tmp/good.st" "$tmp/edit.st" "${edit%%:*}"
    expect 1 "edit.st: .*${edit#*:}" train --resume "$tmp/edit.st" --steps 3
done
st meta "$tmp/good.st" "$tmp/act.st" activation=swish
expect 1 "act.st: metadata 'activation' is 'swish', not relu, gelu or ln-gelu" train --resume "$tmp/act.st" --steps 3
st meta "$tmp/good.st" "$tmp/sched.st" lr_schedule=step
expect 1 "sched.st: metadata 'lr_schedule' is 'step', not constant or cosine" train --resume "$tmp/sched.st" --steps 3
st meta "$tmp/good.st" "$tmp/data.st" data=imagenet
expect 1 "data.st: not a starpipe checkpoint \(metadata model/data missing or unknown\)" train --resume "$tmp/data.st"
st meta "$tmp/gpt.st" "$tmp/vocab.st" vocab=1,2,x
expect 1 "vocab.st: metadata 'text' or 'vocab' is missing" generate --load "$tmp/vocab.st"
# the tensors' bytes carry a checksum: one changed weight (still finite) is found; a file without one still loads
grep -q "starpipe.checksum" "$tmp/good.st" || fail "a saved checkpoint has no starpipe.checksum"
st flip "$tmp/good.st" "$tmp/flip.st" fc1.weight 3 0.125
expect 1 "flip.st: the tensors' bytes do not match the checkpoint's checksum" train --resume "$tmp/flip.st" --steps 3
st meta "$tmp/good.st" "$tmp/sum.st" starpipe.checksum=fnv1a64:zz
expect 1 "sum.st: metadata 'starpipe.checksum' is not" train --resume "$tmp/sum.st" --steps 3
st meta "$tmp/good.st" "$tmp/old.st" starpipe.checksum=
"$bin" train --resume "$tmp/old.st" --steps 3 --quiet >/dev/null 2>"$tmp/err" || fail "a checkpoint without checksum: $(cat "$tmp/err")"
# IDX files: a gzip member cut before its CRC trailer, images that are not 28 x 28
mkdir -p "$tmp/fm" "$tmp/fm-crc" "$tmp/fm-flat"
python3 "$here/make_idx.py" "$tmp/fm"
cp "$tmp"/fm/* "$tmp/fm-crc/"; cp "$tmp"/fm/* "$tmp/fm-flat/"
python3 - "$tmp/fm-crc/train-labels-idx1-ubyte.gz" "$tmp/fm-flat/train-images-idx3-ubyte.gz" <<'PY'
import gzip, struct, sys
labels, images = sys.argv[1:]
b = open(labels, "rb").read()
open(labels, "wb").write(b[:-8])  # the CRC-32 and length trailer gone
raw = gzip.open(images).read()
n = struct.unpack(">I", raw[4:8])[0]
gzip.open(images, "wb").write(raw[:8] + struct.pack(">II", 1, 784) + raw[16:])  # n x 1 x 784
PY
expect 1 "train-labels-idx1-ubyte.gz: (corrupt gzip data|truncated)" train --data fashion-mnist --data-dir "$tmp/fm-crc" --steps 1
expect 1 "train-images-idx3-ubyte.gz: images are 1 x 784, not 28 x 28" \
    train --data fashion-mnist --data-dir "$tmp/fm-flat" --steps 1

# ---- 12. --steps 0 --save: the initial weights and a zero optimizer state -----------
"$bin" train "${small[@]}" --steps 0 --save "$tmp/init.st" --json >"$tmp/out" 2>"$tmp/err" \
    || fail "--steps 0 --save: $(cat "$tmp/err")"
python3 - "$tmp/init.st" "$tmp/out" <<'PY' || fail "--steps 0: the checkpoint or the JSON is wrong"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
assert h["__metadata__"]["starpipe.step"] == "0", h["__metadata__"]
for k, t in h.items():
    if k.startswith("optimizer."):
        s, e = t["data_offsets"]
        assert b[8 + n + s:8 + n + e] == bytes(e - s), f"{k} is not zero"
d = json.loads(open(sys.argv[2]).read(), parse_constant=lambda c: 1 / 0)
assert d["steps"] == 0 and d["final_loss"] is None, d
PY
# one step from the saved initial weights is the first step of a fresh run
"$bin" train "${small[@]}" --steps 1 --json >"$tmp/fresh.json" 2>/dev/null
"$bin" train "${small[@]}" --resume "$tmp/init.st" --steps 1 --json >"$tmp/resumed.json" 2>/dev/null
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["params_checksum"])' "$tmp/fresh.json")" = \
  "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["params_checksum"])' "$tmp/resumed.json")" ] \
    || fail "a step from --steps 0's checkpoint differs from a fresh run's first step"
"$bin" train --data fashion-mnist --data-dir "$tmp/fm" --hidden 16 --batch 64 --epochs 0 --save "$tmp/init-fm.st" \
    --quiet >/dev/null 2>"$tmp/err" || fail "--epochs 0 --save: $(cat "$tmp/err")"
"$bin" train "${gpt[@]}" --steps 0 --save "$tmp/init-gpt.st" >/dev/null 2>"$tmp/err" \
    || fail "text --steps 0 --save: $(cat "$tmp/err")"

# ---- 10. the environment StarPU needs is checked before StarPU starts -----------
limit=20
STARPU_HOME="$tmp/good.st" expect 1 "StarPU keeps its performance models in .*good.st/.starpu/sampling \\(from STARPU_HOME\\): .*good.st is not a folder" \
    train "${small[@]}" --steps 1
if [ "$(id -u)" -ne 0 ]; then # root writes anywhere
    mkdir -p "$tmp/rohome"; STARPU_HOME="$tmp/rohome" "$bin" train "${small[@]}" --steps 1 >/dev/null 2>&1
    chmod -R a-w "$tmp/rohome"
    STARPU_HOME="$tmp/rohome" expect 1 "StarPU keeps its performance models in .*rohome/.starpu/sampling \\(from STARPU_HOME\\): cannot write" \
        train "${small[@]}" --steps 1
    chmod -R u+w "$tmp/rohome"
fi
# StarPU waits forever for memory it may not take: refused, with what the run needs
STARPU_LIMIT_CPU_MEM=1 expect 1 "STARPU_LIMIT_CPU_MEM=1 \(MB\) is less than the [0-9.]+ MB StarPU must allocate" \
    train --hidden 512,512 --inputs 64 --batch 512 --samples 1024 --steps 2 --quiet
STARPU_LIMIT_CPU_MEM=1000 "$bin" train "${small[@]}" --steps 2 >/dev/null 2>"$tmp/err" \
    || fail "a run within STARPU_LIMIT_CPU_MEM: $(cat "$tmp/err")"
limit=120

# ---- 2. --save and --trace write regular files only --------------------------
mkfifo "$tmp/fifo"
expect 2 "fifo: exists and is not a regular file \(a FIFO\)" train "${small[@]}" --steps 1 --save "$tmp/fifo"
[ -p "$tmp/fifo" ] || fail "--save replaced a FIFO"
expect 2 "fifo: exists and is not a regular file" train "${small[@]}" --steps 1 --trace "$tmp/fifo"
[ -p "$tmp/fifo" ] || fail "--trace replaced a FIFO"
mkdir "$tmp/dir"
expect 2 "dir: exists and is not a regular file \(a directory\)" train "${small[@]}" --steps 1 --save "$tmp/dir"
if [ "$(id -u)" -eq 0 ]; then # a device node, as the issue's root user made it
    mknod "$tmp/null" c 1 3
    expect 2 "null: exists and is not a regular file \(a character device\)" \
        train "${small[@]}" --steps 1 --save "$tmp/null"
    [ -c "$tmp/null" ] || fail "--save replaced a device node"
fi
# a symbolic link: the checkpoint is written (atomically) to the file it points to, the link stays
cp "$tmp/good.st" "$tmp/real.st"
ln -s real.st "$tmp/link.st"
"$bin" train "${small[@]}" --steps 3 --save "$tmp/link.st" >/dev/null 2>"$tmp/err" || fail "--save to a symlink: $(cat "$tmp/err")"
[ -L "$tmp/link.st" ] || fail "--save replaced the symbolic link with a file"
python3 -c "import sys, json, struct; b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; \
assert json.loads(b[8:8 + n])['__metadata__']['starpipe.step'] == '3'" "$tmp/real.st" \
    || fail "--save through a symlink did not update the file it points to"
ls "$tmp" | grep -q '\.tmp\.' && fail "temporary files left: $(ls "$tmp")"
ln -s missing.st "$tmp/dangling.st"
expect 2 "dangling.st: a symbolic link to .*missing.st, which does not exist" \
    train "${small[@]}" --steps 1 --save "$tmp/dangling.st"
[ -L "$tmp/dangling.st" ] || fail "--save replaced a dangling symbolic link"

# ---- 6. saves cut short leave nothing behind ------------------------------------
# kill -9 during --save-every 1 (a 16 MB checkpoint each step: most kills land inside a save)
mkdir "$tmp/killed"
for i in $(seq 12); do
    "$bin" train --hidden 1024,1024,1024 --inputs 8 --batch 16 --samples 64 --steps 100000 --save-every 1 \
        --save "$tmp/killed/k.st" --quiet >/dev/null 2>&1 &
    pid=$!
    sleep "0.$((RANDOM % 6 + 4))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
done
left=$(ls "$tmp/killed" | grep -c '\.tmp\.')
[ "$left" -eq 0 ] || fail "12 kill -9 during saves left $left temporary files: $(ls "$tmp/killed")"
# under a file size limit the write fails with EFBIG (SIGXFSZ is ignored), the usual clean-up runs
(ulimit -f 64; exec "$bin" train "${small[@]}" --hidden 256,256 --steps 1 --save "$tmp/limited.st") 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] || fail "a save past ulimit -f exited $rc, expected 1 (153: killed by SIGXFSZ)"
grep -q "limited.st: write failed (File too large)" "$tmp/err" || fail "ulimit -f: $(cat "$tmp/err")"
ls "$tmp" | grep -q '\.tmp\.' && fail "a save past ulimit -f left $(ls "$tmp" | grep '\.tmp\.')"
[ -e "$tmp/limited.st" ] && fail "a save past ulimit -f left a partial checkpoint"

# ---- 7. output folders are checked before the run, not after it --------------
# (--steps 1000000 would take minutes: the refusal must come first)
limit=20
expect 2 "nowhere/x.st: the folder .*nowhere does not exist" \
    train "${small[@]}" --steps 1000000 --save "$tmp/nowhere/x.st"
expect 2 "nowhere/t.json: the folder .*nowhere does not exist" \
    train "${small[@]}" --steps 1000000 --trace "$tmp/nowhere/t.json"
expect 2 "good.st/x.st: the folder .*good.st is not a folder" \
    train "${small[@]}" --steps 1000000 --save "$tmp/good.st/x.st"
expect 2 "fifo: exists and is not a regular file" train "${small[@]}" --steps 1000000 --save "$tmp/fifo"
touch "$tmp/t.json"; mkfifo "$tmp/t.svg"
expect 2 "t.svg: exists and is not a regular file" train "${small[@]}" --steps 1000000 --trace "$tmp/t.json"
if [ "$(id -u)" -ne 0 ]; then # root may write anywhere
    mkdir "$tmp/ro"; chmod 555 "$tmp/ro"
    expect 2 "ro/x.st: cannot write in the folder" train "${small[@]}" --steps 1000000 --save "$tmp/ro/x.st"
fi
limit=120

echo "cli_hostile: $fails failure(s)"
[ "$fails" -eq 0 ]
