#!/usr/bin/env bash
# cli_plan.sh STARPIPE — `starpipe plan` and --balance through the command,
# in a StarPU home of its own: without a calibration the plan is FLOPs only
# and says so; `plan --calibrate` records the ops' times (StarPU's files),
# after which the text and --json plans carry predicted times and a traced
# `train --balance measured` prints the measured stage times beside them;
# StarPU's file edited into garbage, and a calibration under another host
# name, are warned about and ignored (FLOPs), never a crash, and a new
# calibration replaces the bad file; bad options exit 2.
set -u
bin=${1:?usage: cli_plan.sh path/to/starpipe}
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
export STARPU_HOME=$tmp/home
unset STARPU_PERF_MODEL_DIR STARPU_HOSTNAME
mkdir -p "$STARPU_HOME"
model=(--hidden 128,128,32,32,32,32 --activation ln-gelu --inputs 64 --batch 64 --microbatches 4 --stages 2)

# ---- 1. no calibration: FLOPs, said so ----------------------------------------
"$bin" plan "${model[@]}" >"$tmp/out" 2>"$tmp/err" || fail "plan without calibration: exit $?"
grep -q "no calibration" "$tmp/err" || fail "plan without calibration does not say so: $(cat "$tmp/err")"
grep -q "cut by FLOPs" "$tmp/out" || fail "plan without calibration: $(cat "$tmp/out")"
grep -q "no predicted times" "$tmp/out" || fail "plan without calibration predicts: $(cat "$tmp/out")"
"$bin" plan "${model[@]}" --json >"$tmp/j0" 2>/dev/null || fail "plan --json: exit $?"
python3 - "$tmp/j0" <<'PY' || fail "plan --json without calibration"
import json, sys
d = json.load(open(sys.argv[1]), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
assert d["measured"] is False and d["cut_by"] == "FLOPs", d
c = d["chosen"]
assert c["step_ms"] is None and all(s["forward_ms"] is None for s in c["stages"]), c
assert c["starts"] == d["flops_cut"]["starts"] and len(c["starts"]) == 2 and c["starts"][0] == 0
assert sum(s["params"] for s in c["stages"]) == d["params"], "every parameter in one stage"
assert sum(len(s["ops"]) for s in c["stages"]) == d["ops"] and c["stages"][0]["ops"][:2] == ["linear", "layernorm"]
assert c["stages"][0]["bytes_next"] > 0 and c["stages"][1]["bytes_next"] == 0
PY

# ---- 2. calibrate, then predicted times -----------------------------------------
"$bin" plan "${model[@]}" --calibrate >"$tmp/cal" 2>"$tmp/err" || fail "plan --calibrate: exit $? $(tail -3 "$tmp/err")"
ls "$STARPU_HOME"/.starpu/sampling/codelets/45/starpipe_op_forward.* >/dev/null 2>&1 ||
    fail "no op model written by StarPU"
"$bin" plan "${model[@]}" >"$tmp/out" 2>"$tmp/err" || fail "plan after calibration: exit $?"
grep -q "predicted step" "$tmp/out" || fail "plan after calibration: $(cat "$tmp/out")"
[ -s "$tmp/err" ] && fail "plan after calibration warns: $(cat "$tmp/err")"
"$bin" plan "${model[@]}" --json >"$tmp/j1" 2>/dev/null || fail "plan --json after calibration: exit $?"
python3 - "$tmp/j1" <<'PY' || fail "plan --json after calibration"
import json, sys
d = json.load(open(sys.argv[1]), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
assert d["measured"] is True and d["cut_by"] == "measured cost", d
for cut in (d["chosen"], d["flops_cut"]):
    assert cut["step_ms"] > 0 and 0 <= cut["bubble"] < 1, cut
    assert all(s["forward_ms"] > 0 and s["backward_ms"] > 0 for s in cut["stages"]), cut
    assert cut["stages"][-1]["loss_ms"] > 0 and cut["stages"][0]["loss_ms"] == 0
    busiest = max(4 * (s["forward_ms"] + s["backward_ms"] + s["loss_ms"]) for s in cut["stages"])
    assert cut["step_ms"] >= busiest, (cut["step_ms"], busiest)
assert d["chosen"]["step_ms"] <= d["flops_cut"]["step_ms"] * (1 + 1e-9), "the FLOPs cut was a candidate"
PY

# ---- 3. a traced run: measured beside predicted -----------------------------------
"$bin" train "${model[@]}" --samples 256 --steps 4 --balance measured --trace "$tmp/t.json" >"$tmp/out" 2>"$tmp/err" ||
    fail "train --balance measured: exit $? $(tail -3 "$tmp/err")"
grep -q "cut by measured cost" "$tmp/out" || fail "train --balance measured: $(head -2 "$tmp/out")"
grep -q "^stages (measured vs predicted)" "$tmp/out" || fail "no measured vs predicted line: $(cat "$tmp/out")"
grep -q "predicted .* ms, [+-]" "$tmp/out" || fail "no predicted step: $(grep '^stages' "$tmp/out")"
"$bin" train "${model[@]}" --samples 256 --steps 2 --json --quiet >"$tmp/t.json" 2>"$tmp/err" || fail "train --json: exit $?"
python3 - "$tmp/t.json" "$tmp/j1" <<'PY' || fail "train's JSON: cut_by and predicted_step_ms"
import json, sys
t, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert t["cut_by"] == "measured cost" and t["stage_starts"] == p["chosen"]["starts"], (t, p["chosen"]["starts"])
assert abs(t["predicted_step_ms"] - p["chosen"]["step_ms"]) < 1e-3, (t["predicted_step_ms"], p["chosen"]["step_ms"])
PY
"$bin" train "${model[@]}" --samples 256 --steps 2 --balance flops >"$tmp/out" 2>&1 || fail "train --balance flops"
grep -q "cut by FLOPs" "$tmp/out" || fail "train --balance flops: $(head -1 "$tmp/out")"
"$bin" bench --hidden 128,128 --inputs 64 --batch 64 --microbatches 4 --policies eager --schedules gpipe \
    --placements pinned --steps 2 --warmup 1 --balance flops --json >"$tmp/b.json" 2>/dev/null ||
    fail "bench --balance flops: exit $?"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['cut_by']=='flops', d" "$tmp/b.json" ||
    fail "bench JSON cut_by"

# ---- 4. another machine's calibration: warned, ignored ------------------------------
STARPU_HOSTNAME=elsewhere "$bin" plan "${model[@]}" --json >"$tmp/j2" 2>"$tmp/err" || fail "foreign: exit $?"
grep -q "not on this machine ('elsewhere')" "$tmp/err" || fail "foreign calibration not named: $(cat "$tmp/err")"
python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['measured'] is False" "$tmp/j2" ||
    fail "a foreign calibration was used"
STARPU_HOSTNAME=elsewhere "$bin" train "${model[@]}" --samples 256 --steps 1 >"$tmp/out" 2>"$tmp/err" ||
    fail "train with a foreign calibration: exit $?"
grep -q "warning: .*not on this machine" "$tmp/err" || fail "train did not warn: $(cat "$tmp/err")"

# ---- 5. StarPU's file turned to garbage: warned, ignored, replaced ----------------------
f=$(ls "$STARPU_HOME"/.starpu/sampling/codelets/45/starpipe_op_forward.* | head -1)
python3 - "$f" <<'PY'
import sys
p = sys.argv[1]
b = open(p, "rb").read()
# keep StarPU's header, then garbage where its numbers were
open(p, "wb").write(b[: len(b) // 3] + b"\nthis is not a number 12 xx\n" * 4)
PY
for args in "--json" "--balance measured"; do
    timeout 120 "$bin" plan "${model[@]}" $args >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ $rc -eq 0 ] || fail "plan $args with a corrupt file: exit $rc $(tail -2 "$tmp/err")"
    grep -q "warning:" "$tmp/err" || fail "plan $args with a corrupt file: no warning"
done
python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['measured'] is False" "$tmp/out" 2>/dev/null ||
    grep -q "cut by FLOPs" "$tmp/out" || fail "a corrupt file was used: $(head -3 "$tmp/out")"
timeout 300 "$bin" train "${model[@]}" --samples 256 --steps 1 --balance measured >"$tmp/out" 2>"$tmp/err" ||
    fail "train with a corrupt file: exit $?"
grep -q "warning:" "$tmp/err" || fail "train with a corrupt file: no warning"
grep -q "cut by FLOPs" "$tmp/out" || fail "train with a corrupt file: $(head -1 "$tmp/out")"
timeout 300 "$bin" plan "${model[@]}" --calibrate >"$tmp/out" 2>"$tmp/err" ||
    fail "calibrating over a corrupt file: exit $? $(tail -2 "$tmp/err")"
grep -q "set aside" "$tmp/err" || fail "the corrupt file was not set aside: $(cat "$tmp/err")"
"$bin" plan "${model[@]}" --json >"$tmp/j3" 2>"$tmp/err" || fail "plan after recalibration"
python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['measured'] is True" "$tmp/j3" ||
    fail "recalibration did not replace the corrupt file: $(cat "$tmp/err")"

# ---- 6. --activation ln-gelu in a checkpoint: resumed as it was, a different one refused ----------
"$bin" train "${model[@]}" --samples 256 --steps 2 --save "$tmp/ln.st" --quiet --json >"$tmp/a.json" 2>"$tmp/err" ||
    fail "train ln-gelu --save: exit $?"
"$bin" train --resume "$tmp/ln.st" --steps 3 --quiet --json >"$tmp/b.json" 2>"$tmp/err" ||
    fail "resume an ln-gelu checkpoint: exit $? $(cat "$tmp/err")"
"$bin" train --resume "$tmp/ln.st" --activation gelu --steps 3 >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "activation" "$tmp/err" || fail "resume with another activation: $(cat "$tmp/err")"

# ---- 7. bad options: exit 2 --------------------------------------------------------------
expect2() {
    "$bin" "$@" >/dev/null 2>"$tmp/err"
    rc=$?
    [ $rc -eq 2 ] || fail "'$*' exits $rc, expected 2"
    [ -s "$tmp/err" ] || fail "'$*' says nothing"
}
expect2 plan "${model[@]}" --reps 0
expect2 plan "${model[@]}" --reps
expect2 plan "${model[@]}" --balance sideways
expect2 plan "${model[@]}" --stages 0
expect2 plan --hidden 8 --stages 9
expect2 plan "${model[@]}" --mpi
expect2 plan "${model[@]}" --frobnicate
expect2 train "${model[@]}" --balance sideways
expect2 train "${model[@]}" --cuts 3 --balance flops
expect2 train "${model[@]}" --balance auto
expect2 bench --balance sideways
"$bin" plan --help >"$tmp/out" || fail "plan --help: exit $?"
grep -q -- "--calibrate" "$tmp/out" || fail "plan --help does not document --calibrate"
"$bin" --help | grep -q "^  plan " || fail "starpipe --help does not list plan"

[ $fails -eq 0 ] && echo "cli_plan: all checks passed"
exit $((fails > 0))
