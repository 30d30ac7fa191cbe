#!/usr/bin/env bash
# cli_json.sh STARPIPE — every JSON the command prints parses with a strict
# parser: one object on stdout and nothing else, no NaN, Infinity or other
# non-JSON constant (a figure that is not finite is null), as JSON (RFC 8259)
# says. Covers train (synthetic, Fashion-MNIST stopped inside an epoch so
# that its test figures do not exist yet, with a trace's figures, text),
# eval (Fashion-MNIST, text), generate and bench.
set -u
bin=${1:?usage: cli_json.sh path/to/starpipe}
here=$(cd "$(dirname "$0")" && pwd)
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
mkdir -p "$tmp/data"
python3 "$here/make_idx.py" "$tmp/data"
python3 -c 'import random; r = random.Random(2)
print("\n".join(" ".join(r.choice(["to", "be", "or", "not", "that", "is", "the", "question"]) for _ in range(8))
      for _ in range(400)))' >"$tmp/text.txt"

# strict NAME KEY=EXPECTED...: stdout of the last command is one strict JSON object, with
# KEY null when EXPECTED is null, else present
strict() {
    local name=$1; shift
    python3 - "$tmp/out" "$@" <<'PY' || fail "$name: $(head -c 600 "$tmp/out")"
import json, sys
text = open(sys.argv[1]).read()
def bad(c):
    raise ValueError(f"non-JSON constant {c}")
d = json.loads(text, parse_constant=bad)  # one value, nothing around it but white space
assert isinstance(d, dict), type(d)
for kv in sys.argv[2:]:
    k, v = kv.split("=")
    assert k in d, f"missing {k}"
    assert (d[k] is None) == (v == "null"), f"{k} = {d[k]!r}, expected {v}"
PY
}

# run NAME ARGS...: the command must succeed
run() {
    local name=$1; shift
    timeout 300 "$bin" "$@" >"$tmp/out" 2>"$tmp/err" || { fail "$name exited $?: $(tail -3 "$tmp/err")"; return 1; }
}

fm=(--data fashion-mnist --data-dir "$tmp/data" --hidden 32 --batch 64 --microbatches 4 --stages 2)
gpt=(--text "$tmp/text.txt" --layers 1 --heads 2 --embd 16 --context 8 --batch 8 --microbatches 2 --eval-windows 4)

run "train synthetic" train --hidden 16 --inputs 8 --batch 16 --samples 64 --steps 2 --json &&
    strict "train synthetic" final_loss=number samples_per_s=number
# the issue's case: 3 steps end inside the first epoch, so there is no test loss yet
run "train fashion-mnist --steps 3" train "${fm[@]}" --steps 3 --json --save "$tmp/fm.st" &&
    strict "train fashion-mnist --steps 3" test_loss=null test_accuracy=null final_loss=number
run "train fashion-mnist --epochs 1 --trace" train "${fm[@]}" --epochs 1 --trace "$tmp/t.json" --json &&
    strict "train fashion-mnist --trace" test_loss=number bubble_mean=number
python3 -c "import json, sys; json.load(open(sys.argv[1]), parse_constant=lambda c: 1 / 0)" "$tmp/t.json" ||
    fail "the Chrome trace is not strict JSON"
run "eval fashion-mnist" eval --load "$tmp/fm.st" --data-dir "$tmp/data" --json &&
    strict "eval fashion-mnist" test_loss=number test_accuracy=number
run "train text" train "${gpt[@]}" --steps 4 --eval-every 2 --json --save "$tmp/g.st" &&
    strict "train text" val_loss=number train_loss=number
run "eval text" eval --load "$tmp/g.st" --json && strict "eval text" val_loss=number
run "generate" generate --load "$tmp/g.st" --tokens 5 --samples 2 --json && strict "generate" tokens_per_s=number
run "bench" bench --hidden 16 --inputs 8 --classes 4 --batch 16 --microbatches 2 --steps 1 --warmup 0 \
    --policies eager --schedules gpipe --placements pinned --json && strict "bench"

if [ "$fails" -ne 0 ]; then echo "cli_json: $fails check(s) failed"; exit 1; fi
echo "cli_json: every JSON output is strict"
