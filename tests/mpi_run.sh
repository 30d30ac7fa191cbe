#!/usr/bin/env bash
# mpi_run.sh STARPIPE — several processes through StarPU-MPI, on one machine
# (oversubscribed: each rank gets one CPU worker):
# - weights after several steps are bit-identical for 1, 2 and 4 ranks, and to
#   the run without MPI, for the gpipe, 1f1b and zb schedules;
# - a checkpoint saved under 2 ranks resumes in one process bit-identically,
#   and one saved by one process resumes under 2 ranks;
# - a stage map naming a missing rank, and ranks given different options,
#   fail with a message and a non-zero exit on every rank, without hanging;
# - traces and the bench work under MPI (one track per rank and worker,
#   bytes sent between ranks);
# - a GPT with tied embeddings (the token embedding in stage 0 on rank 0, the
#   LM head that reuses it in stage 1 on rank 1) and dropout trains the same
#   weights under 2 ranks as in one process, for gpipe and 1f1b, and its
#   validation loss is the same;
# - a frozen rank (SIGSTOP) makes the other rank's stall watchdog name the
#   tasks it waits for and exit non-zero, leaving no process behind.
# Exits 77 (skipped) when starpipe was built without StarPU-MPI or mpirun is missing.
set -u
bin=${1:?usage: mpi_run.sh path/to/starpipe}
command -v mpirun >/dev/null || { echo "mpirun not found: skipped"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# containers often lack what Open MPI's shared-memory and network transports probe for
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
# Under the sanitizers: Open MPI's components leak and are unloaded before
# LeakSanitizer looks, so their reports cannot be suppressed by name; memory
# errors are still caught, leaks are checked by every other test.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
mpi() { local np=$1; shift; timeout 180 mpirun -np "$np" "$bin" "$@"; }
checksum() { python3 -c "import json,sys; print(json.loads(open('$1').read().strip().splitlines()[-1])['params_checksum'])"; }

if "$bin" train --mpi --steps 1 --quiet 2>&1 | grep -q "built without StarPU-MPI"; then
    echo "starpipe was built without StarPU-MPI: skipped"; exit 77
fi

run=(train --stages 4 --microbatches 4 --batch 64 --hidden 48,48,48 --inputs 24 --samples 256 --steps 4 --cpus 1 --quiet --json)
for sched in gpipe 1f1b zb; do
    "$bin" "${run[@]}" --schedule "$sched" >"$tmp/ref.json" 2>"$tmp/err" || fail "$sched without MPI: $(cat "$tmp/err")"
    ref=$(checksum "$tmp/ref.json")
    for np in 1 2 4; do
        if mpi "$np" "${run[@]}" --schedule "$sched" --mpi >"$tmp/np$np.json" 2>"$tmp/err"; then
            got=$(checksum "$tmp/np$np.json")
            [ "$got" = "$ref" ] || fail "$sched: $np ranks give $got, one process $ref"
        else
            fail "$sched with $np ranks: exit $?: $(tail -3 "$tmp/err")"
        fi
    done
done
# an explicit stage map (stages 0 and 3 on rank 1)
mpi 2 "${run[@]}" --mpi --stage-ranks 1,0,0,1 >"$tmp/map.json" 2>"$tmp/err" || fail "--stage-ranks 1,0,0,1: $(tail -3 "$tmp/err")"
[ "$(checksum "$tmp/map.json")" = "$ref" ] || fail "--stage-ranks 1,0,0,1 changes the weights"

# Fashion-MNIST-format files (generated): rank 1 holds only the last stage and
# reads labels only, rank 0 the pixels; same weights and test accuracy as one process
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$tmp/data" && python3 "$here/make_idx.py" "$tmp/data"
fm=(train --data fashion-mnist --data-dir "$tmp/data" --hidden 32,32 --batch 64 --microbatches 4 --stages 3 --epochs 1 --cpus 1 --quiet --json)
"$bin" "${fm[@]}" >"$tmp/fm1.json" 2>"$tmp/err" || fail "fashion in one process: $(cat "$tmp/err")"
mpi 2 "${fm[@]}" --mpi --stage-ranks 0,0,1 >"$tmp/fm2.json" 2>"$tmp/err" || fail "fashion under 2 ranks: $(tail -3 "$tmp/err")"
python3 - "$tmp/fm1.json" "$tmp/fm2.json" <<'PY' || fail "fashion: 2 ranks differ from one process"
import json, sys
a, b = (json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[1:])
assert a["params_checksum"] == b["params_checksum"], (a["params_checksum"], b["params_checksum"])
assert a["test_accuracy"] == b["test_accuracy"], (a["test_accuracy"], b["test_accuracy"])
PY

# the tied GPT across two ranks: wte's gradient from stage 0 (rank 0) and the
# LM head's from stage 1 (rank 1) meet in one fixed order
python3 - "$tmp/text.txt" <<'PY'
import random, sys
r = random.Random(3)
words = "to be or not that is the question whether tis nobler in mind suffer slings and arrows".split()
lines = [" ".join(r.choice(words) for _ in range(r.randint(3, 8))).capitalize() + "." for _ in range(1500)]
open(sys.argv[1], "w").write("\n".join(lines))
PY
gpt=(train --model gpt --text "$tmp/text.txt" --layers 2 --heads 2 --embd 16 --context 16 --batch 8 --microbatches 4
     --stages 2 --tie-embeddings --dropout 0.1 --steps 4 --eval-every 2 --eval-windows 8 --cpus 1 --quiet --json)
for sched in gpipe 1f1b; do
    "$bin" "${gpt[@]}" --schedule "$sched" >"$tmp/gpt1.json" 2>"$tmp/err" || fail "GPT $sched in one process: $(cat "$tmp/err")"
    mpi 2 "${gpt[@]}" --schedule "$sched" --mpi >"$tmp/gpt2.json" 2>"$tmp/err" || fail "GPT $sched under 2 ranks: $(tail -3 "$tmp/err")"
    python3 - "$tmp/gpt1.json" "$tmp/gpt2.json" <<'PY' || fail "GPT $sched: 2 ranks differ from one process"
import json, sys
a, b = (json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[1:])
assert a["params_checksum"] == b["params_checksum"], (a["params_checksum"], b["params_checksum"])
assert a["val_loss"] == b["val_loss"], (a["val_loss"], b["val_loss"])
PY
done

# the residual CNN (its stages' forward tasks carry the convolutions' scratch) over 2 ranks
mkdir -p "$tmp/tex" && python3 "$here/make_idx.py" "$tmp/tex" --textures
cnn=(train --model cnn --data-dir "$tmp/tex" --widths 8,16 --groups 4 --batch 32 --microbatches 4 --lr-warmup 0
     --epochs 1 --cpus 1 --quiet --json)
"$bin" "${cnn[@]}" >"$tmp/cnn1.json" 2>"$tmp/err" || fail "CNN in one process: $(cat "$tmp/err")"
mpi 2 "${cnn[@]}" --mpi >"$tmp/cnn2.json" 2>"$tmp/err" || fail "CNN under 2 ranks: $(tail -3 "$tmp/err")"
python3 - "$tmp/cnn1.json" "$tmp/cnn2.json" <<'PY' || fail "CNN: 2 ranks differ from one process"
import json, sys
a, b = (json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[1:])
assert a["params_checksum"] == b["params_checksum"], (a["params_checksum"], b["params_checksum"])
assert a["test_accuracy"] == b["test_accuracy"], (a["test_accuracy"], b["test_accuracy"])
PY

# checkpoints across process counts: 4 steps = 2 + save + 2 more
half=(train --stages 4 --microbatches 4 --batch 64 --hidden 48,48,48 --inputs 24 --samples 256 --cpus 1 --quiet)
"$bin" "${run[@]}" --schedule gpipe >"$tmp/whole.json" 2>/dev/null
whole=$(checksum "$tmp/whole.json")
mpi 2 "${half[@]}" --mpi --steps 2 --save "$tmp/np2.safetensors" 2>"$tmp/err" || fail "save under 2 ranks: $(tail -3 "$tmp/err")"
"$bin" "${half[@]}" --steps 4 --resume "$tmp/np2.safetensors" --json >"$tmp/r1.json" 2>"$tmp/err" || fail "resume in 1 process: $(cat "$tmp/err")"
[ "$(checksum "$tmp/r1.json")" = "$whole" ] || fail "saved under 2 ranks, resumed in 1: $(checksum "$tmp/r1.json") != $whole"
"$bin" "${half[@]}" --steps 2 --save "$tmp/np1.safetensors" 2>"$tmp/err" || fail "save in 1 process: $(cat "$tmp/err")"
mpi 2 "${half[@]}" --mpi --steps 4 --resume "$tmp/np1.safetensors" --json >"$tmp/r2.json" 2>"$tmp/err" || fail "resume under 2 ranks: $(tail -3 "$tmp/err")"
[ "$(checksum "$tmp/r2.json")" = "$whole" ] || fail "saved in 1 process, resumed under 2 ranks: $(checksum "$tmp/r2.json") != $whole"

# errors: every rank says so and exits non-zero, nobody hangs (timeout 180 would give 124)
mpi 2 "${run[@]}" --mpi --stage-ranks 0,1,1,5 >/dev/null 2>"$tmp/err"; rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "a stage map naming rank 5 of 2: exit $rc"
[ "$(grep -c "stage 3 is mapped to rank 5 but there are 2 ranks" "$tmp/err")" -eq 2 ] ||
    fail "both ranks should name the bad stage map: $(cat "$tmp/err")"
timeout 180 mpirun -np 1 "$bin" "${run[@]}" --mpi --microbatches 4 : -np 1 "$bin" "${run[@]}" --mpi --microbatches 2 \
    >/dev/null 2>"$tmp/err"; rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "ranks with different options: exit $rc"
[ "$(grep -c "different options or graphs" "$tmp/err")" -eq 2 ] || fail "both ranks should report the mismatch: $(cat "$tmp/err")"

# traces and the bench under MPI
mpi 2 "${run[@]}" --mpi --trace "$tmp/t.json" 2>"$tmp/err" >/dev/null || fail "trace under MPI: $(tail -3 "$tmp/err")"
python3 - "$tmp/t.json" "$tmp/t.svg" <<'PY' || fail "the MPI trace"
import json, sys, xml.etree.ElementTree as ET
d = json.load(open(sys.argv[1]))
slices = [e for e in d["traceEvents"] if e["ph"] == "X"]
per_step = 4 * 4 * 2 + 4 + 4
assert len(slices) == 2 * per_step, len(slices)
assert {e["pid"] for e in slices} == {0, 1}, "one process per rank"
assert {e["name"] for e in slices if e["pid"] == 1} >= {"F s3 m0", "B s2 m1", "L m3"}, "stages 2 and 3 ran on rank 1"
ET.parse(sys.argv[2])
PY
mpi 2 bench --mpi --cpus 1 --policies eager --schedules gpipe --placements pinned --hidden 32,32 --batch 32 \
    --microbatches 4 --steps 2 --warmup 1 --json >"$tmp/bench.json" 2>"$tmp/err" || fail "bench under MPI: $(tail -3 "$tmp/err")"
python3 -c "
import json; d = json.load(open('$tmp/bench.json'))
assert len(d['rows']) == 1 and d['rows'][0]['bytes_between_ranks'] > 0, d" || fail "bench --mpi rows: $(cat "$tmp/bench.json")"

# a frozen rank (SIGSTOP on rank 1 of 2) does not hang the other forever: the stall watchdog names the
# waiting tasks, every rank that can exits non-zero, and no process is left behind
marker="--seed 424242"
timeout 120 mpirun -np 2 "$bin" train --mpi --stages 2 --hidden 64,64 --inputs 16 --samples 256 --batch 64 \
    --microbatches 4 --steps 100000000 --cpus 1 --quiet $marker --stall-timeout 3 >/dev/null 2>"$tmp/stall" &
job=$!
victim=""
for _ in $(seq 100); do # rank 1, once it trains
    sleep 0.1
    for p in $(pgrep -f -- "train --mpi .*$marker" || true); do
        tr '\0' '\n' </proc/"$p"/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p
    done
    [ -n "$victim" ] && break
done
sleep 2
[ -n "$victim" ] && kill -STOP "$victim"
wait "$job"
rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "a frozen rank: mpirun exited $rc (124: hung)"
grep -qE "rank 0: stalled: .* waiting: .*[FBUL] s?[0-9m]" "$tmp/stall" || fail "no stall report naming tasks: $(head -5 "$tmp/stall")"
sleep 1
if pgrep -f -- "train --mpi .*$marker" >/dev/null; then
    fail "processes left behind: $(pgrep -af -- "train --mpi .*$marker")"
    kill -KILL $(pgrep -f -- "train --mpi .*$marker") 2>/dev/null
fi

if [ "$fails" -ne 0 ]; then echo "mpi_run: $fails check(s) failed"; exit 1; fi
echo "mpi_run: all checks passed"
