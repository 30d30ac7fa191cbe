#!/usr/bin/env bash
# cli_errors.sh STARPIPE — the command's contract: bad options give a clear
# message and a non-zero exit (2 for usage) without crashing or hanging; a
# good run ends with a JSON object holding the documented fields; --help
# documents every option the parser accepts.
set -u
bin=${1:?usage: cli_errors.sh path/to/starpipe}
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect CODE PATTERN ARGS...: exit status CODE, stderr matching PATTERN
expect() {
    local code=$1 pattern=$2; shift 2
    timeout 60 "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$code" ]; then
        echo "FAIL: starpipe $* exited $rc, expected $code"; sed 's/^/  stderr: /' "$tmp/err" | head -5
        fails=$((fails + 1))
    elif ! grep -qE -- "$pattern" "$tmp/err"; then
        echo "FAIL: starpipe $*: stderr does not match '$pattern':"; sed 's/^/  stderr: /' "$tmp/err" | head -5
        fails=$((fails + 1))
    fi
}

small=(--hidden 16,16 --inputs 8 --batch 16 --steps 2 --samples 64)
expect 2 "unknown command" frobnicate
expect 2 "unknown data set 'mnist' \(choose synthetic, fashion-mnist or text\)" train --data mnist
expect 2 "unknown device 'tpu'" train --device tpu
expect 2 "unknown schedule 'pipedream'" train --schedule pipedream
expect 2 "--stage-ranks needs --mpi" train --stage-ranks 0
# without a GPU, --device cuda is a clear error (with one, it trains)
if ! timeout 60 "$bin" train --device cuda --steps 1 --hidden 8 --inputs 4 --batch 8 --samples 16 --quiet 2>"$tmp/err"; then
    grep -q "no CUDA worker" "$tmp/err" || { echo "FAIL: --device cuda without a GPU: $(cat "$tmp/err")"; fails=$((fails + 1)); }
fi
expect 2 "eval needs --load" eval
expect 2 "--load is for 'starpipe eval'" train --load x.safetensors
expect 2 "--save-every needs --save" train --save-every 3
expect 2 "unknown learning-rate schedule" train --lr-schedule step
expect 2 "fashion-mnist has 784 and 10" train --data fashion-mnist --inputs 8
expect 2 "unknown option '--bogus'" train --bogus
expect 2 "unknown scheduling policy 'nope'" train --sched nope
expect 2 "unknown placement 'everywhere'" train --placement everywhere
expect 2 "unknown model 'resnet'" train --model resnet
expect 2 "unknown optimizer 'adam'" train --optimizer adam
expect 2 "--stages expects an integer" train --stages 0
expect 2 "--stages expects an integer" train --stages two
expect 2 "--microbatches expects an integer" train --microbatches 0
expect 2 "--microbatches expects an integer" train --microbatches -1
expect 2 "not divisible by 3 micro-batches" train --batch 16 --microbatches 3
expect 2 "--batch expects an integer" train --batch 12abc
expect 2 "--hidden expects" train --hidden 16,,16
expect 2 "--hidden expects an integer" train --hidden 16,0
expect 2 "--lr expects a number" train --lr -1
expect 2 "--lr expects a number" train --lr nan
expect 2 "--momentum expects a number" train --momentum 1.5
expect 2 "--cpus expects an integer" train --cpus 0
expect 2 "--cuts needs K-1 entries" train --stages 3 --cuts 2
expect 2 "needs a value or is unknown" train --stages
expect 2 "unexpected argument 'extra'" train extra
expect 2 "--warmup must be less than --steps" train --steps 2 --warmup 2
expect 2 "larger than the data set" train --batch 128 --samples 64
expect 1 "6 stages but the graph has only 5 ops" train "${small[@]}" --stages 6
expect 1 "cut point 1 \(9\)" train "${small[@]}" --stages 2 --cuts 9

# a good run: JSON on stdout with every documented field
if timeout 120 "$bin" train "${small[@]}" --stages 2 --microbatches 4 --json >"$tmp/json" 2>"$tmp/err"; then
    if ! python3 - "$tmp/json" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
need = ["final_loss", "steps", "stages", "microbatches", "sched", "samples_per_s", "params_checksum"]
missing = [k for k in need if k not in d]
assert not missing, f"missing fields {missing}"
assert d["steps"] == 2 and d["stages"] == 2 and d["microbatches"] == 4, d
assert d["samples_per_s"] > 0 and len(d["params_checksum"]) == 16, d
PY
    then echo "FAIL: --json output: $(cat "$tmp/json")"; fails=$((fails + 1)); fi
else
    echo "FAIL: a good run failed:"; cat "$tmp/err"; fails=$((fails + 1))
fi

# STARPU_SCHED picks the policy when --sched is absent; --sched wins over it
got=$(STARPU_SCHED=eager timeout 120 "$bin" train "${small[@]}" --json 2>/dev/null | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["sched"])')
[ "$got" = eager ] || { echo "FAIL: STARPU_SCHED=eager gave policy '$got'"; fails=$((fails + 1)); }
got=$(STARPU_SCHED=eager timeout 120 "$bin" train "${small[@]}" --sched dmda --json 2>/dev/null | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["sched"])')
[ "$got" = dmda ] || { echo "FAIL: --sched dmda with STARPU_SCHED=eager gave '$got'"; fails=$((fails + 1)); }

# --help documents every long option the parser knows
"$bin" train --help >"$tmp/help" || { echo "FAIL: --help exited non-zero"; fails=$((fails + 1)); }
for opt in model hidden activation inputs classes samples stages cuts microbatches batch placement \
           sched cpus steps warmup optimizer lr momentum weight-decay seed json quiet help data data-dir \
           epochs save save-every resume load lr-schedule schedule chunks-per-worker recompute trace \
           trace-steps mpi stage-ranks device tf32 layers heads embd context dropout tie-embeddings text \
           eval-every eval-windows lr-warmup lr-decay-steps; do
    grep -q -- "--$opt" "$tmp/help" || { echo "FAIL: --help does not document --$opt"; fails=$((fails + 1)); }
done

# the top-level help lists each command once and points to the commands' own
# --help instead of printing their options; without a command it is an error
if "$bin" --help >"$tmp/top" 2>"$tmp/err"; then
    for c in train eval generate bench; do
        [ "$(grep -cE "^  $c " "$tmp/top")" -eq 1 ] || { echo "FAIL: starpipe --help lists '$c' $(grep -cE "^  $c " "$tmp/top") times"; fails=$((fails + 1)); }
    done
    grep -q "starpipe <command> --help" "$tmp/top" || { echo "FAIL: starpipe --help does not point to the commands' --help"; fails=$((fails + 1)); }
    [ "$(grep -c '^usage:' "$tmp/top")" -eq 1 ] && ! grep -q -- "--hidden" "$tmp/top" ||
        { echo "FAIL: starpipe --help prints a command's usage:"; head -5 "$tmp/top"; fails=$((fails + 1)); }
else
    echo "FAIL: starpipe --help exited non-zero"; fails=$((fails + 1))
fi
expect 2 "starpipe <command>"
expect 2 "see 'starpipe bench --help'" bench --bogus

if [ "$fails" -ne 0 ]; then echo "cli_errors: $fails check(s) failed"; exit 1; fi
echo "cli_errors: all checks passed"
