#!/usr/bin/env bash
# sim_run.sh STARPIPE — simulation through the command (needs starpipe-sim
# beside STARPIPE, built when CMake finds the SimGrid StarPU):
#   - a real run with --calibrate records the models, and simulating it twice
#     gives the same step time, JSON and trace, byte for byte;
#   - the simulated trace follows the dependency order: every F(s,m) after
#     F(s-1,m), L(m) after F(K-1,m), B(s,m) after B(s+1,m) (or L(m)) and after
#     F(s,m), W(s,m) after B(s,m), U(s) after every B/W of stage s, and no
#     worker runs two tasks at once;
#   - bench --simulate gives a row per combination, deterministically;
#   - a what-if machine with more cores (tools/whatif_platform.py) runs with
#     one worker per core, and one with GPUs (from StarPU's shipped 4-GPU
#     calibration and CPU models relabelled as CUDA ones, a fixture) moves
#     data between simulated GPUs;
#   - a missing calibration, a directory that holds none, a foreign machine,
#     a platform file that does not parse and a configuration never calibrated
#     stop with a message naming what is missing, never with a zero-cost run.
# It does not check how close the simulated times are to measured ones
# (README, "Simulation", has that table): CI machines are too noisy for it.
set -u
bin=${1:?usage: sim_run.sh path/to/starpipe}
here=$(cd "$(dirname "$0")/.." && pwd)
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
if [ ! -x "$(dirname "$bin")/starpipe-sim" ]; then
    echo "starpipe-sim was not built (scripts/setup.sh --simgrid): skipped"
    exit 77
fi
cal=$tmp/cal
model=(--hidden 64,64,64 --inputs 16 --classes 8 --batch 64)

# 1. calibrate: K = 3, M = 4, every schedule, pinned and free placement
if ! "$bin" bench --calibrate "$cal" "${model[@]}" --stages 3 --microbatches 4 --steps 6 --warmup 1 \
    --policies eager,dmda --schedules gpipe,1f1b,zb --placements pinned,free --csv >"$tmp/cal.csv" 2>"$tmp/err"; then
    cat "$tmp/err"
    fail "calibration run"
fi
[ -d "$cal/.starpu/sampling/codelets" ] || fail "--calibrate wrote no perf models into $cal"

# 2. deterministic: two simulations, the same figures and the same trace
sim=(simulate --calibration "$cal" "${model[@]}" --stages 3 --microbatches 4 --steps 4 --sched dmda --json --quiet)
for sched in gpipe zb; do
    for i in 1 2; do
        "$bin" "${sim[@]}" --schedule "$sched" --trace "$tmp/$sched$i.json" --trace-steps 2 \
            >"$tmp/$sched$i.out" 2>"$tmp/err" || { cat "$tmp/err"; fail "$sched: simulation $i"; }
    done
    cmp -s "$tmp/${sched}1.out" "$tmp/${sched}2.out" || fail "$sched: two simulations print different figures"
    cmp -s "$tmp/${sched}1.json" "$tmp/${sched}2.json" || fail "$sched: two simulations write different traces"
    python3 - "$tmp/${sched}1.out" "$tmp/${sched}1.json" "$sched" <<'PY' || fail "$sched: simulated run"
import json, sys
out, trace, sched = sys.argv[1:]
d = json.loads(open(out).read().strip().splitlines()[-1])
assert d["seconds"] > 0 and d["samples_per_s"] > 0, d
assert 0 <= d["bubble_mean"] < 1, d
K, M = 3, 4
ev = [e for e in json.load(open(trace))["traceEvents"] if e.get("ph") == "X"]
per_step = K * M * (3 if sched == "zb" else 2) + M + K
assert len(ev) == 2 * per_step, f"{len(ev)} slices, expected {2 * per_step}"
t = {}
for e in ev:
    t[(e["args"]["step"], e["name"])] = (e["ts"], e["ts"] + e["dur"])
    assert e["dur"] > 0, f"{e['name']}: a simulated task that costs nothing"
eps = 1e-3  # µs: trace times are printed to the nanosecond
def after(step, later, earlier):
    a, b = t[(step, later)], t[(step, earlier)]
    assert a[0] + eps >= b[1], f"step {step}: {later} starts at {a[0]} before {earlier} ends at {b[1]}"
for step in {s for s, _ in t}:
    for m in range(M):
        for s in range(1, K):
            after(step, f"F s{s} m{m}", f"F s{s-1} m{m}")
        after(step, f"L m{m}", f"F s{K-1} m{m}")
        after(step, f"B s{K-1} m{m}", f"L m{m}")
        for s in range(K):
            after(step, f"B s{s} m{m}", f"F s{s} m{m}")
            if s < K - 1:
                after(step, f"B s{s} m{m}", f"B s{s+1} m{m}")
            if sched == "zb":
                after(step, f"W s{s} m{m}", f"B s{s} m{m}")
    for s in range(K):
        for m in range(M):
            after(step, f"U s{s}", f"{'W' if sched == 'zb' else 'B'} s{s} m{m}")
        if (step - 1, f"U s{s}") in t:  # the next step's forward reads the updated parameters
            a, b = t[(step, f"F s{s} m0")], t[(step - 1, f"U s{s}")]
            assert a[0] + eps >= b[1], f"step {step}: F s{s} m0 starts before the previous step's U s{s} ends"
by_worker = {}
for e in ev:
    by_worker.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"], e["name"]))
for w, spans in by_worker.items():
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        assert b0 + eps >= a1, f"worker {w} runs {an} and {bn} at once"
PY
done

# 3. bench --simulate: every combination, twice the same
for i in 1 2; do
    "$bin" bench --simulate --calibration "$cal" "${model[@]}" --stages 3 --microbatches 4 --steps 4 --warmup 1 \
        --policies eager,dmda --schedules gpipe,1f1b,zb --placements pinned,free --csv >"$tmp/bench$i.csv" 2>"$tmp/err" ||
        { cat "$tmp/err"; fail "bench --simulate $i"; }
done
cmp -s "$tmp/bench1.csv" "$tmp/bench2.csv" || fail "bench --simulate: two runs differ"
[ "$(grep -c '^\(eager\|dmda\),' "$tmp/bench1.csv")" = 12 ] || fail "bench --simulate: expected 12 rows"

# 4. bad input: a message, a non-zero exit, no simulation at zero cost
expect() { # expect WHAT PATTERN COMMAND...
    local what=$1 pattern=$2
    shift 2
    if "$@" >"$tmp/out" 2>"$tmp/err"; then
        fail "$what: accepted"
    elif ! grep -q -- "$pattern" "$tmp/err"; then
        fail "$what: message lacks '$pattern': $(cat "$tmp/err")"
    fi
}
expect "missing calibration" "does not exist" "$bin" "${sim[@]}" --calibration "$tmp/nowhere"
mkdir -p "$tmp/empty"
expect "directory without calibration" "holds no StarPU calibration" "$bin" "${sim[@]}" --calibration "$tmp/empty"
expect "foreign machine" "has no calibration of machine 'elsewhere'" "$bin" "${sim[@]}" --machine elsewhere
printf '<?xml version="1.0"?>\n<platform version="4.1">\n<zone id="AS0" routing="Full">\n<host id="MAIN" speed="1f"/>\n</platform>\n' >"$tmp/bad.xml"
expect "unparsable platform" "does not parse: line 5" "$bin" "${sim[@]}" --platform "$tmp/bad.xml"
printf '<?xml version="1.0"?>\n<platform version="4.1"><zone id="AS0" routing="Full"><host id="MAIN" speed="1f"/></zone></platform>\n' >"$tmp/nocpu.xml"
expect "platform without CPUs" "CPU0" "$bin" "${sim[@]}" --platform "$tmp/nocpu.xml"
# M = 2: micro-batches of 32 rows were never calibrated (M = 4 had 16)
expect "uncalibrated codelet" "codelet 'starpipe_stage_forward' has no calibrated model for task 'F s0 m0'" \
    "$bin" simulate --calibration "$cal" "${model[@]}" --stages 3 --microbatches 2 --steps 2 --quiet
# starpipe-sim itself (SimGrid loads the calibration's platform before its main runs)
expect "starpipe-sim --calibrate" "needs a real run" \
    env STARPU_HOME="$cal" "$(dirname "$bin")/starpipe-sim" train --calibrate "$tmp/c2"

# 5. a what-if machine: 6 cores of this kind, one worker each (GPUs need a GPU calibration)
python3 "$here/tools/whatif_platform.py" --calibration "$cal" --name g2 --cpus 4 --gpus 2 >"$tmp/whatif" 2>&1 &&
    fail "a GPU what-if machine from a CPU-only calibration was accepted"
grep -q "has no GPU in its calibration" "$tmp/whatif" || fail "GPU what-if refusal: $(cat "$tmp/whatif")"
if python3 "$here/tools/whatif_platform.py" --calibration "$cal" --name whatif6 --cpus 6 >"$tmp/whatif" 2>&1; then
    "$bin" "${sim[@]}" --machine whatif6 --cpus 6 >"$tmp/w.out" 2>"$tmp/err" || { cat "$tmp/err"; fail "what-if run"; }
    python3 -c "import json,sys; d=json.loads(open('$tmp/w.out').read().strip().splitlines()[-1]); assert d['workers'] == 6, d" ||
        fail "what-if machine: expected 6 workers"
else
    cat "$tmp/whatif"
    fail "whatif_platform.py"
fi

# 6. simulated GPUs: StarPU's own calibrated bus of a 4-GPU machine (sirocco,
# shipped with StarPU) and, standing in for a GPU calibration, this test's
# CPU models relabelled as CUDA ones (a fixture: only the plumbing is checked
# — GPU platform, links, transfers, one worker per GPU — not any GPU timing)
shipped=${STARPU_SIMGRID_PREFIX:-/opt/starpu-1.4-simgrid}/share/starpu/perfmodels/sampling/bus
if [ -f "$shipped/sirocco.platform.v4.xml" ]; then
    gcal=$tmp/gcal
    mkdir -p "$gcal/.starpu/sampling/bus"
    for f in platform.v4.xml config bandwidth latency affinity; do cp "$shipped/sirocco.$f" "$gcal/.starpu/sampling/bus/"; done
    python3 - "$cal/.starpu/sampling/codelets" "$gcal/.starpu/sampling/codelets" <<'PY' || fail "GPU fixture"
import glob, os, sys
src, dst = sys.argv[1:]
for f in glob.glob(os.path.join(src, "*", "starpipe_*")):
    if os.path.basename(f).split(".")[-1] in ("whatif6", "g2"):
        continue
    lines = open(f).read().split("\n")
    out = ["1" if i and lines[i - 1].startswith("# device type (CPU") else l for i, l in enumerate(lines)]
    to = os.path.join(dst, os.path.basename(os.path.dirname(f)))
    os.makedirs(to, exist_ok=True)
    base = os.path.basename(f).rsplit(".", 1)[0]
    open(os.path.join(to, base + ".sirocco"), "w").write("\n".join(out))
PY
    python3 "$here/tools/whatif_platform.py" --calibration "$gcal" --machine sirocco --name nv3 --cpus 4 --gpus 3 \
        --host-bandwidth 25 --host-latency 10 --gpu-bandwidth 450 --gpu-latency 2 --gpu-link direct >"$tmp/whatif" 2>&1 ||
        { cat "$tmp/whatif"; fail "GPU what-if machine"; }
    for i in 1 2; do
        STARPU_NWORKER_PER_CUDA=1 "$bin" simulate --calibration "$gcal" --machine nv3 "${model[@]}" --stages 3 \
            --microbatches 4 --steps 4 --sched dmda --device cuda --json --quiet --trace "$tmp/gpu$i.json" \
            >"$tmp/gpu$i.out" 2>"$tmp/err" || { cat "$tmp/err"; fail "simulated GPUs: run $i"; }
    done
    grep -q "no bus performance model" "$tmp/err" && fail "simulated GPUs: StarPU lacks a bus figure: $(cat "$tmp/err")"
    cmp -s "$tmp/gpu1.out" "$tmp/gpu2.out" || fail "simulated GPUs: two simulations differ"
    python3 -c "
import json
d = json.loads(open('$tmp/gpu1.out').read().strip().splitlines()[-1])
assert d['workers'] == 3 and d['device'] == 'cuda' and d['bytes_moved'] > 0, d
names = {e['args']['name'] for e in json.load(open('$tmp/gpu1.json'))['traceEvents'] if e.get('ph') == 'M'}
assert len([n for n in names if n.startswith('CUDA ')]) == 3, names
" || fail "simulated GPUs: expected 3 CUDA workers and bytes moved"
fi

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "sim_run: all checks passed"
