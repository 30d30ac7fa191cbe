#!/usr/bin/env bash
# cli_trace.sh STARPIPE — measured timelines and the bench through the command:
# the Chrome trace JSON parses and holds one slice per task of the traced
# steps; the SVG is well-formed XML with one box per task; `starpipe bench`
# prints a row per requested combination (table, CSV, JSON) and refuses an
# unknown policy; its progress in a log is plain lines.
set -u
bin=${1:?usage: cli_trace.sh path/to/starpipe}
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
small=(--hidden 32,32,32 --inputs 16 --batch 48 --samples 192 --steps 5 --quiet)

# K=3 stages, M=6: per step 3·6 F + 3·6 B (+ 3·6 W for zb) + 6 L + 3 U tasks
for sched in gpipe 1f1b zb; do
    if "$bin" train "${small[@]}" --stages 3 --microbatches 6 --schedule "$sched" --trace "$tmp/$sched.json" \
        --trace-steps 2 --json >"$tmp/$sched.out" 2>"$tmp/err"; then
        python3 - "$tmp/$sched.json" "$tmp/$sched.svg" "$sched" <<'PY' || fail "$sched: trace files"
import json, sys, xml.etree.ElementTree as ET
trace, svg, sched = sys.argv[1:]
d = json.load(open(trace))
slices = [e for e in d["traceEvents"] if e.get("ph") == "X"]
per_step = 3 * 6 * (3 if sched == "zb" else 2) + 6 + 3
assert len(slices) == 2 * per_step, f"{len(slices)} slices, expected {2 * per_step}"
names = {(e["name"], e["args"]["step"]) for e in slices}
assert len(names) == len(slices), "a task appears twice"
assert {e["args"]["step"] for e in slices} == {4, 5}, "the last two steps"
assert "F s2 m5" in {e["name"] for e in slices} and "U s0" in {e["name"] for e in slices}
if sched == "zb":
    assert "W s1 m3" in {e["name"] for e in slices}
assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in slices)
threads = {e["args"]["name"] for e in d["traceEvents"] if e.get("ph") == "M"}
assert any(t.startswith("CPU") for t in threads), threads
root = ET.parse(svg).getroot()
boxes = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find("{http://www.w3.org/2000/svg}title") is not None]
assert len(boxes) == len(slices), f"{len(boxes)} boxes in the SVG, {len(slices)} slices"
PY
        python3 -c "import json,sys; d=json.loads(open('$tmp/$sched.out').read()); assert 0 <= d['bubble_mean'] < 1 and 0 < d['bubble_ideal'] < 1, d" ||
            fail "$sched: JSON lacks the timeline figures"
    else
        fail "train --schedule $sched --trace: $(cat "$tmp/err")"
    fi
done
# an unwritable trace path: an error, and no file
"$bin" train "${small[@]}" --trace "$tmp/no/dir/t.json" >/dev/null 2>"$tmp/err" && fail "unwritable trace path accepted"
grep -q "no/dir/t.json" "$tmp/err" || fail "the trace error does not name the file: $(cat "$tmp/err")"

# bench: one row per (policy, schedule, placement); CSV and JSON agree
b=(--hidden 32,32 --inputs 16 --classes 8 --batch 32 --microbatches 4 --steps 2 --warmup 1)
if "$bin" bench "${b[@]}" --policies eager,dmda --schedules gpipe,1f1b --placements pinned,free --json >"$tmp/bench.json" 2>"$tmp/err"; then
    python3 - "$tmp/bench.json" <<'PY' || fail "bench --json rows"
import json, sys
d = json.load(open(sys.argv[1]))
rows = {(r["policy"], r["schedule"], r["placement"]) for r in d["rows"]}
want = {(p, s, l) for p in ("eager", "dmda") for s in ("gpipe", "1f1b") for l in ("pinned", "free")}
assert rows == want, rows ^ want
for r in d["rows"]:
    assert r["samples_per_s"] > 0 and r["speedup_vs_m1"] > 0 and 0 <= r["bubble_mean"] <= 1, r
    assert abs(r["bubble_ideal"] - 1 / 5) < 1e-9, r  # (K-1)/(M+K-1) with K=2, M=4
    assert r["peak_stash_bytes"] > 0 and len(r["bubble"]) >= 1, r
PY
else
    fail "bench --json: $(cat "$tmp/err")"
fi
"$bin" bench "${b[@]}" --policies lws --schedules zb --placements pinned --csv >"$tmp/bench.csv" 2>"$tmp/err" || fail "bench --csv: $(cat "$tmp/err")"
[ "$(wc -l < "$tmp/bench.csv")" -eq 2 ] && head -1 "$tmp/bench.csv" | grep -q "^policy,schedule,placement,step_ms" ||
    fail "bench --csv: $(cat "$tmp/bench.csv")"
"$bin" bench "${b[@]}" --policies eager,nosuch >/dev/null 2>"$tmp/err"; rc=$?
[ "$rc" -eq 2 ] && grep -q "unknown scheduling policy 'nosuch'" "$tmp/err" || fail "bench with an unknown policy: exit $rc, $(cat "$tmp/err")"

# the table's progress on stderr: plain lines in a log, no carriage returns
if "$bin" bench "${b[@]}" --policies eager --schedules gpipe,1f1b --placements pinned >"$tmp/bench.txt" 2>"$tmp/err"; then
    grep -q $'\r' "$tmp/err" && fail "bench progress in a log holds carriage returns: $(cat -A "$tmp/err" | head -3)"
    [ "$(grep -c '^bench: [0-9]* of 2 runs done$' "$tmp/err")" -eq 2 ] || fail "bench progress lines: $(cat "$tmp/err")"
    grep -q "^eager  *1f1b  *pinned" "$tmp/bench.txt" || fail "bench table: $(cat "$tmp/bench.txt")"
else
    fail "bench (table): $(cat "$tmp/err")"
fi

if [ "$fails" -ne 0 ]; then echo "cli_trace: $fails check(s) failed"; exit 1; fi
echo "cli_trace: all checks passed"
