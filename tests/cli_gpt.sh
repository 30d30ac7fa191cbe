#!/usr/bin/env bash
# cli_gpt.sh STARPIPE — the GPT through the command, on a small generated
# text and a tiny model (seconds, not minutes):
# - train --model gpt --data text: strict JSON with the documented fields, the
#   validation loss falls, a line per evaluation in a log and a progress bar
#   on a terminal;
# - N steps equal N/2 saved + N/2 resumed, bit for bit (dropout and tied
#   embeddings on), and eval --load gives the validation loss training ended with;
# - generate is reproducible (same seed, same text, whatever the stages),
#   prints only characters of the vocabulary, and its JSON is strict;
# - bad input: characters outside the vocabulary, a prompt longer than the
#   context or empty, heads that do not divide the width, an empty or binary
#   text, a GPT checkpoint given to an MLP run and the reverse, a text that
#   does not fit a checkpoint's vocabulary, bad generate options; each a
#   message and the documented exit status (2 usage, 1 run failure).
set -u
bin=${1:?usage: cli_gpt.sh path/to/starpipe}
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# every JSON the command prints must be strict: no NaN or Infinity
strict() { python3 -c "
import json, sys
def bad(c): raise ValueError('not strict JSON: ' + c)
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1], parse_constant=bad)
" "$1"; }
field() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])[sys.argv[2]])" "$1" "$2"; }

# a small play: speakers, verse made of a few hundred words, stage directions
python3 - "$tmp/play.txt" <<'PY'
import random, sys
r = random.Random(7)
names = ["HAMLET", "OPHELIA", "HORATIO", "KING", "QUEEN", "GHOST"]
words = ("the and to of my a i you is that in not it with his be your for this but he have as thou so what "
         "him me by all do will no we are our shall if good lord now come let more o on they here love how "
         "night king sweet heaven death sleep dream speak").split()
out = []
while sum(map(len, out)) < 60000:
    out.append(r.choice(names) + ".")
    for _ in range(r.randint(1, 4)):
        line = " ".join(r.choice(words) for _ in range(r.randint(4, 9)))
        out.append(line[0].upper() + line[1:] + r.choice([",", ".", ";", "!", "?"]))
    if r.random() < 0.1:
        out.append("[Exit " + r.choice(names).capitalize() + ".]")
    out.append("")
open(sys.argv[1], "w").write("\n".join(out))
PY
text=$tmp/play.txt
gpt=(train --model gpt --text "$text" --layers 2 --heads 2 --embd 32 --context 16 --batch 16 --microbatches 4
     --stages 2 --eval-windows 32)

# training: strict JSON with the documented fields; the validation loss falls
if timeout 120 "$bin" "${gpt[@]}" --steps 60 --eval-every 20 --lr 0.01 --lr-warmup 5 --save "$tmp/g.safetensors" \
    --json >"$tmp/train.json" 2>"$tmp/err"; then
    strict "$tmp/train.json" || fail "train --json is not strict JSON: $(cat "$tmp/train.json")"
    python3 - "$tmp/train.json" "$text" <<'PY' || fail "train --json: $(cat "$tmp/train.json")"
import json, math, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
for k in ["val_loss", "train_loss", "tokens_per_s", "steps", "seconds", "params_checksum", "evals", "val_windows",
          "vocab_size", "context", "stages", "microbatches", "final_loss"]:
    assert k in d, f"missing {k}"
vocab = len(set(open(sys.argv[2]).read()))
assert d["vocab_size"] == vocab and d["steps"] == 60 and d["val_windows"] == 32 and d["context"] == 16, d
assert [e["step"] for e in d["evals"]] == [20, 40, 60], d["evals"]
assert d["evals"][-1]["val_loss"] == d["val_loss"] and d["evals"][-1]["train_loss"] == d["train_loss"], d
# a uniform guess costs ln(vocab) nats per character; the model must do clearly better
assert d["val_loss"] < math.log(vocab) - 0.5, f"val_loss {d['val_loss']} against ln {vocab} = {math.log(vocab)}"
assert d["evals"][-1]["val_loss"] < d["evals"][0]["val_loss"], d["evals"]
assert d["tokens_per_s"] > 0 and d["seconds"] > 0, d
PY
    grep -qE "^step 40/60: train loss [0-9.]+, val loss [0-9.]+ \(nats per character\)" "$tmp/err" ||
        fail "no line per evaluation when not on a terminal: $(cat "$tmp/err")"
    grep -q "GPT of 2 layers, 2 heads, 32 wide, context 16" "$tmp/err" || fail "the plan does not describe the GPT"
else
    fail "train --model gpt: $(cat "$tmp/err")"
fi

# on a terminal: a progress bar with tokens/s, loss and the validation loss
if command -v script >/dev/null; then
    script -qec "'$bin' train --model gpt --text '$text' --layers 1 --heads 2 --embd 16 --context 16 --batch 8 --steps 30 --eval-every 10 --eval-windows 8" /dev/null >"$tmp/tty" 2>&1
    grep -qa $'\rstep [0-9]*/30 \[' "$tmp/tty" || fail "no progress bar on a terminal: $(head -c 300 "$tmp/tty")"
    grep -qaE "tokens/s  loss [0-9.]+  val [0-9.]+  left" "$tmp/tty" || fail "the progress bar lacks tokens/s, loss, val"
fi

# resume: 12 steps equal 6 saved + 6 resumed, bit for bit, with dropout and a tied
# embedding across the two stages; the resumed run takes M and the schedule from
# the checkpoint, and K may differ
tied=("${gpt[@]}" --dropout 0.1 --tie-embeddings --eval-every 4 --lr 0.005 --lr-warmup 3 --quiet --json)
"$bin" "${tied[@]}" --steps 12 >"$tmp/whole.json" 2>"$tmp/err" || fail "whole run: $(cat "$tmp/err")"
"$bin" "${tied[@]}" --steps 6 --lr-decay-steps 12 --save "$tmp/half.safetensors" >/dev/null 2>"$tmp/err" ||
    fail "half run: $(cat "$tmp/err")"
"$bin" train --resume "$tmp/half.safetensors" --steps 12 --stages 3 --eval-every 4 --json --quiet \
    >"$tmp/resumed.json" 2>"$tmp/err" || fail "resumed run: $(cat "$tmp/err")"
a=$(field "$tmp/whole.json" params_checksum); b=$(field "$tmp/resumed.json" params_checksum)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "12 steps give $a, 6 + resume + 6 give $b"
[ "$(field "$tmp/whole.json" val_loss)" = "$(field "$tmp/resumed.json" val_loss)" ] ||
    fail "the resumed run ends with another validation loss"
python3 - "$tmp/half.safetensors" <<'PY' || fail "the GPT checkpoint's metadata"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
m = h["__metadata__"]
for k in ["model", "vocab", "vocab_size", "context", "layers", "heads", "embd", "dropout", "tie_embeddings", "text",
          "eval_windows", "batch", "microbatches", "seed", "lr_schedule", "lr_decay_steps"]:
    assert k in m, f"missing metadata {k}"
assert m["model"] == "gpt" and m["tie_embeddings"] == "true" and m["lr_decay_steps"] == "12", m
assert len(m["vocab"].split(",")) == int(m["vocab_size"]), m["vocab"]
assert "lm_head.weight" not in h and h["transformer.wte.weight"]["shape"] == [int(m["vocab_size"]), 32], "tied head"
assert h["transformer.h.0.attn.c_attn.weight"]["shape"] == [96, 32], "nanoGPT's (out, in) layout"
PY

# eval --load: the validation loss training ended with, from anywhere (the checkpoint names its text)
if (cd / && "$bin" eval --load "$tmp/g.safetensors" --json >"$tmp/eval.json" 2>"$tmp/err"); then
    strict "$tmp/eval.json" || fail "eval --json is not strict JSON: $(cat "$tmp/eval.json")"
    [ "$(field "$tmp/eval.json" val_loss)" = "$(field "$tmp/train.json" val_loss)" ] ||
        fail "eval val_loss $(field "$tmp/eval.json" val_loss) != training's $(field "$tmp/train.json" val_loss)"
    [ "$(field "$tmp/eval.json" params_checksum)" = "$(field "$tmp/train.json" params_checksum)" ] ||
        fail "eval loaded other weights"
else
    fail "eval --load: $(cat "$tmp/err")"
fi
"$bin" eval --load "$tmp/g.safetensors" --text "$text" --eval-windows 0 --json >"$tmp/all.json" 2>"$tmp/err" ||
    fail "eval --text --eval-windows 0: $(cat "$tmp/err")"
[ "$(field "$tmp/all.json" val_windows)" -gt 32 ] 2>/dev/null || fail "--eval-windows 0 should take every window"

# generate: reproducible, whatever the stages; only characters of the vocabulary
gen=(generate --load "$tmp/g.safetensors" --prompt "KING." --tokens 120 --quiet)
"$bin" "${gen[@]}" --seed 5 >"$tmp/s1" 2>"$tmp/err" || fail "generate: $(cat "$tmp/err")"
"$bin" "${gen[@]}" --seed 5 --stages 1 >"$tmp/s2" 2>"$tmp/err" || fail "generate --stages 1: $(cat "$tmp/err")"
"$bin" "${gen[@]}" --seed 6 >"$tmp/s3" 2>"$tmp/err" || fail "generate --seed 6: $(cat "$tmp/err")"
cmp -s "$tmp/s1" "$tmp/s2" || fail "the same seed gave other text with 1 stage: $(head -c 200 "$tmp/s1") / $(head -c 200 "$tmp/s2")"
cmp -s "$tmp/s1" "$tmp/s3" && fail "seeds 5 and 6 gave the same text"
python3 - "$tmp/s1" "$text" <<'PY' || fail "generate's output: $(head -c 300 "$tmp/s1")"
import sys
out, text = open(sys.argv[1]).read(), open(sys.argv[2]).read()
assert out.startswith("KING."), "the prompt comes first"
body = out[len("KING."):-1]  # then the characters, then a newline
assert len(body) == 120, f"{len(body)} characters generated, 120 asked"
extra = set(body) - set(text)
assert not extra, f"characters outside the vocabulary: {extra}"
PY
if "$bin" "${gen[@]}" --samples 4 --microbatches 2 --top-k 3 --temperature 0.5 --json >"$tmp/gen.json" 2>"$tmp/err"; then
    strict "$tmp/gen.json" || fail "generate --json is not strict JSON"
    python3 - "$tmp/gen.json" <<'PY' || fail "generate --json: $(cat "$tmp/gen.json")"
import json, sys
d = json.loads(open(sys.argv[1]).read())
assert len(d["samples"]) == 4 and all(s.startswith("KING.") and len(s) == 125 for s in d["samples"]), d["samples"]
assert d["top_k"] == 3 and d["tokens"] == 120 and d["microbatches"] == 2, d
PY
else
    fail "generate --samples 4 --json: $(cat "$tmp/err")"
fi

# expect CODE PATTERN ARGS...: exit status CODE, stderr matching PATTERN, no JSON on stdout
expect() {
    local code=$1 pattern=$2; shift 2
    timeout 60 "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$code" ]; then fail "starpipe $* exited $rc, expected $code: $(head -3 "$tmp/err")"
    elif ! grep -qE -- "$pattern" "$tmp/err"; then fail "starpipe $*: stderr does not match '$pattern': $(head -3 "$tmp/err")"
    elif grep -q '^{' "$tmp/out"; then fail "starpipe $*: printed a result after failing"; fi
}
g=$tmp/g.safetensors
"$bin" train --hidden 8 --inputs 4 --batch 8 --samples 32 --steps 2 --save "$tmp/mlp.safetensors" --quiet 2>/dev/null ||
    fail "the MLP checkpoint"
printf '' >"$tmp/empty.txt"
printf 'PK\003\004\000\000binary\377\376' >"$tmp/binary.txt"
printf '%s\n' "Hamlet. thé vocabulary grows" >"$tmp/accent.txt"; cat "$text" >>"$tmp/accent.txt"

expect 2 "character 'é' \(U\+00E9\) is not in the model's vocabulary" generate --load "$g" --prompt "café"
expect 2 "--prompt has 20 characters, more than the model's context of 16" generate --load "$g" --prompt "KING. To be or not t"
expect 2 "--prompt is empty" generate --load "$g" --prompt ""
expect 2 "--temperature must be a number greater than 0" generate --load "$g" --temperature 0
expect 2 "--temperature must be a number greater than 0" generate --load "$g" --temperature -1
expect 2 "--temperature must be a number greater than 0" generate --load "$g" --temperature nan
expect 2 "--top-k must be an integer of at least 1" generate --load "$g" --top-k 0
expect 2 "--tokens expects an integer" generate --load "$g" --tokens 0
expect 2 "not divisible by 3 micro-batches" generate --load "$g" --samples 4 --microbatches 3
expect 2 "generate needs --load" generate --prompt "KING."
expect 2 "unknown option '--bogus'" generate --load "$g" --bogus
expect 1 "holds an mlp model; generate needs a GPT" generate --load "$tmp/mlp.safetensors"
expect 1 "nothere.safetensors: cannot open" generate --load "$tmp/nothere.safetensors"
expect 2 "--heads 3 does not divide --embd 32" train --model gpt --text "$text" --heads 3 --embd 32
expect 1 "empty.txt: the text file is empty" train --model gpt --text "$tmp/empty.txt"
expect 1 "binary.txt: not UTF-8 text" train --model gpt --text "$tmp/binary.txt"
expect 1 "nothere.txt: cannot open the text file" train --data text --text "$tmp/nothere.txt"
expect 1 "accent.txt: character 'é' \(U\+00E9\) at position 10 is not in the model's vocabulary" \
    train --resume "$g" --text "$tmp/accent.txt" --steps 70
expect 1 "accent.txt: character 'é'" eval --load "$g" --text "$tmp/accent.txt"
expect 2 "the checkpoint holds a gpt model; the command line asks for --model mlp" train --model mlp --resume "$g"
expect 2 "the checkpoint has data text" eval --load "$g" --data fashion-mnist
expect 2 "the checkpoint holds an mlp model; the command line asks for --model gpt" \
    train --model gpt --resume "$tmp/mlp.safetensors"
expect 2 "the checkpoint has layers 2" train --resume "$g" --layers 3
expect 2 "--hidden and --activation describe an MLP" train --resume "$g" --hidden 32
expect 2 "--model gpt trains on text" train --model gpt --data synthetic
expect 2 "--data text trains --model gpt" train --data text --model mlp
expect 2 "--epochs does not apply to text" train --model gpt --text "$text" --epochs 2
expect 2 "describe a GPT" train --layers 2
expect 2 "--dropout expects a number" train --model gpt --text "$text" --dropout 1
expect 2 "describe synthetic data" train --model gpt --text "$text" --samples 10

# the default corpus: trains when scripts/setup.sh installed it, else says to run it
corpus=/usr/local/share/starpipe/shakespeare.txt
if [ -s "$corpus" ]; then
    "$bin" train --model gpt --layers 1 --heads 2 --embd 16 --context 16 --batch 4 --microbatches 2 --steps 2 \
        --eval-windows 2 --json --quiet >"$tmp/corpus.json" 2>"$tmp/err" || fail "train on the default corpus: $(cat "$tmp/err")"
    [ "$(field "$tmp/corpus.json" text)" = "$corpus" ] || fail "the default text is not $corpus"
else
    expect 1 "the default corpus $corpus is not installed: run scripts/setup.sh" train --model gpt --steps 2
fi

# help: every option of generate documented; the top-level help lists it
"$bin" generate --help >"$tmp/help" || fail "generate --help exited non-zero"
for opt in load prompt tokens temperature top-k seed samples stages microbatches placement sched cpus device json \
           quiet help; do
    grep -q -- "--$opt" "$tmp/help" || fail "generate --help does not document --$opt"
done
"$bin" --help | grep -qE "^  generate " || fail "starpipe --help does not list generate"

if [ "$fails" -ne 0 ]; then echo "cli_gpt: $fails check(s) failed"; exit 1; fi
echo "cli_gpt: all checks passed"
