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
    timeout 120 "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$code" ]; then
        fail "starpipe $* exited $rc, expected $code"; sed 's/^/  stderr: /' "$tmp/err" | head -5
    elif ! grep -qE -- "$pattern" "$tmp/err"; then
        fail "starpipe $*: stderr does not match '$pattern':"; sed 's/^/  stderr: /' "$tmp/err" | head -5
    fi
}

small=(--hidden 16,16 --inputs 8 --batch 16 --samples 64 --quiet)
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

echo "cli_hostile: $fails failure(s)"
[ "$fails" -eq 0 ]
