#!/usr/bin/env bash
# make test-slurm: Experiments/slurm/sweep.sbatch on a real one-node Slurm cluster.
#
#  1. starts the cluster (scripts/slurm-local.sh), and stops it on exit;
#  2. runs the smoke sweep (Experiments/slurm/smoke-sweep.yaml: 4 trials of 1 + 1 epochs,
#     alpaca photos when $CRIA_ALPACA_DIR has them, else Fashion-MNIST) unsharded, as the reference;
#  3. submits it twice at once, sharing one runs directory:
#       A: --array=1-3%2  (ids from 1, throttled to 2 running tasks: 3 shards)
#       B: --array=0-1    (2 shards); task 1 is cancelled (scancel) in the middle of its
#          second trial, then resubmitted with the same stamp and shard count;
#  4. waits for every job, each wait bounded;
#  5. merges both with `cria report` and checks each summary.csv, and every trial's
#     metrics.csv, equal the reference apart from timings;
#  6. checks the cancelled task's finished trial was kept (same summary.json and model.h5)
#     and that the rerun ran only the interrupted trial; requeues a finished task of A
#     (scontrol requeue keeps the array job id) and checks it finds its trial done;
#  7. starts TensorBoard on sweep B (scripts/check_tensorboard.py) and checks its HParams,
#     scalars and text against the trial files.
# Every task gets one CPU and one thread, like the reference run: metrics are bit-identical
# for a given thread count, so "equal" means equal.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${CRIA_SLURM_TEST_DIR:-$ROOT/.build/test-slurm}
CONFIG=Experiments/slurm/smoke-sweep.yaml
CRIA=${CRIA:-$ROOT/.build/release/cria}
WAIT=${CRIA_SLURM_TIMEOUT:-300}
export SLURM_LOCAL_DIR=$WORK/cluster

log() { printf '%s test-slurm: %s\n' "$(date +%T)" "$*" >&2; }

diagnostics() {
    log "diagnostics:"
    squeue -t all 2>/dev/null | head -20 >&2 || true
    for file in "$WORK"/logs/*.log; do [ -f "$file" ] && { echo "--- $file" >&2; tail -n 15 "$file" >&2; }; done
    for file in "$SLURM_LOCAL_DIR"/slurmctld.log "$SLURM_LOCAL_DIR"/slurmd.log; do
        [ -f "$file" ] && { echo "--- $file" >&2; grep -iE "error|fatal" "$file" | tail -n 10 >&2; }
    done
    return 0
}

fail() { log "FAIL: $*"; diagnostics; exit 1; }

# Waits until the shell condition $1 holds, polling every 0.05 s, for at most $2 seconds.
wait_until() {
    local deadline=$((SECONDS + $2))
    until eval "$1"; do
        [ $SECONDS -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# Waits until no task of job $1 is pending or running.
wait_job() {
    wait_until "[ -z \"\$(squeue -h -j $1 -o %i 2>/dev/null)\" ]" "$WAIT" || fail "job $1 still queued or running after ${WAIT}s"
}

# The states of job $1's tasks, one "task=state" per line.
task_states() {
    scontrol -o show job "$1" | sed -E 's/.*ArrayTaskId=([0-9]+).*JobState=([A-Z_]+).*/\1=\2/' | sort -n
}

submit() {
    local id
    id=$(sbatch --parsable --cpus-per-task=1 --mem=1G --time=20 --output="$WORK/logs/%A_%a.log" "$@") || fail "sbatch $*"
    echo "${id%%;*}"
}

[ -x "$CRIA" ] || { log "error: no $CRIA (make test-slurm builds it)"; exit 1; }
bash scripts/slurm-local.sh stop 2>/dev/null || true
rm -rf "$WORK"
mkdir -p "$WORK/logs"
trap 'bash scripts/slurm-local.sh stop' EXIT
started=$SECONDS
bash scripts/slurm-local.sh start
eval "$(bash scripts/slurm-local.sh env)"

SETS=(--set "experiment.runs_dir=$WORK/runs")
if [ -n "${CRIA_ALPACA_DIR:-}" ] && [ -d "$CRIA_ALPACA_DIR" ] && [ -n "$(ls -A "$CRIA_ALPACA_DIR")" ]; then
    SETS+=(--set data.source=directory)
    log "data: the alpaca photos in $CRIA_ALPACA_DIR"
else
    log "data: Fashion-MNIST (no alpaca photos in '${CRIA_ALPACA_DIR:-}')"
fi
RUNS=$WORK/runs/smoke-sweep

# The shard mapping alone, with Slurm's variables set by hand and `cria sweep --dry-run`:
# any contiguous range is shards id mod n; a range with gaps is refused.
for id in 1 2 3; do
    out=$(SLURM_ARRAY_TASK_ID=$id SLURM_ARRAY_JOB_ID=99 SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=3 \
          CRIA=$CRIA bash Experiments/slurm/sweep.sbatch "$CONFIG" "${SETS[@]}" --dry-run 2>&1) || fail "sweep.sbatch --dry-run: $out"
    grep -q "shard $((id % 3))/3: " <<<"$out" || fail "task $id of --array=1-3 is not shard $((id % 3))/3: $out"
done
if out=$(SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_JOB_ID=99 SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_MAX=6 \
         CRIA=$CRIA bash Experiments/slurm/sweep.sbatch "$CONFIG" --dry-run 2>&1); then
    fail "sweep.sbatch accepted --array=0-6:3 without CRIA_SHARDS: $out"
fi
grep -q "with gaps" <<<"$out" || fail "sweep.sbatch refused --array=0-6:3 for another reason: $out"

log "reference: the unsharded sweep, one thread"
CRIA_THREADS=1 "$CRIA" sweep "$CONFIG" "${SETS[@]}" --stamp reference --quiet >"$WORK/logs/reference.log" 2>&1 \
    || fail "the reference sweep failed: $(tail -n 5 "$WORK/logs/reference.log")"
mapfile -t IDS < <(python3 -c 'import json, sys; print("\n".join(t["id"] for t in json.load(open(sys.argv[1]))["trials"]))' "$RUNS/reference/sweep.json")
[ ${#IDS[@]} -eq 4 ] || fail "expected 4 trials, sweep.json lists ${#IDS[@]}"

JOB_A=$(submit --array=1-3%2 Experiments/slurm/sweep.sbatch "$CONFIG" "${SETS[@]}")
JOB_B=$(submit --array=0-1 Experiments/slurm/sweep.sbatch "$CONFIG" "${SETS[@]}")
log "submitted array jobs $JOB_A (--array=1-3%2) and $JOB_B (--array=0-1)"
grep -q "ArrayTaskThrottle=2" <(scontrol -o show job "$JOB_A") || fail "job $JOB_A has no throttle of 2"

# Job B's task 1 is shard 1/2: trials 1 and 3. Cancel it once trial 1 has finished and
# trial 3 has logged its first epoch, so the cancel lands in the middle of a trial.
KEPT=$RUNS/slurm-$JOB_B/${IDS[1]}
VICTIM=$RUNS/slurm-$JOB_B/${IDS[3]}
wait_until "[ -f '$KEPT/summary.json' ] && [ -s '$VICTIM/metrics.jsonl' ] && [ ! -f '$VICTIM/summary.json' ]" "$WAIT" \
    || fail "task ${JOB_B}_1 never reached the middle of its second trial"
scancel "${JOB_B}_1"
log "cancelled ${JOB_B}_1 during trial ${IDS[3]} (epochs logged: $(wc -l <"$VICTIM/metrics.jsonl"))"
wait_until "[ -z \"\$(squeue -h -j ${JOB_B}_1 -o %i)\" ]" 60 || fail "${JOB_B}_1 did not stop after scancel"
[ ! -f "$VICTIM/summary.json" ] || fail "trial ${IDS[3]} finished before the cancel took effect (trials too short to interrupt)"
kept_before=$(sha256sum "$KEPT/summary.json" "$KEPT/model.h5")

wait_job "$JOB_A"
wait_job "$JOB_B"
states_a=$(task_states "$JOB_A" | tr '\n' ' ')
states_b=$(task_states "$JOB_B" | tr '\n' ' ')
[ "$states_a" = "1=COMPLETED 2=COMPLETED 3=COMPLETED " ] || fail "job $JOB_A tasks: $states_a"
[ "$states_b" = "0=COMPLETED 1=CANCELLED " ] || fail "job $JOB_B tasks: $states_b"
for task in 1 2 3; do
    shard=$((task % 3))
    grep -q "^shard $shard/3 (task $task of array job $JOB_A" "$WORK/logs/${JOB_A}_$task.log" || fail "task $task of $JOB_A did not run shard $shard/3"
done
log "job $JOB_A: $states_a; job $JOB_B: $states_b"

# Requeueing keeps the array job id, hence the directory: task 2 (shard 2/3, one finished
# trial) runs again, appends to its log, and finds nothing to do. Slurm holds a requeued
# job for a while; StartTime=now releases it.
scontrol requeue "${JOB_A}_2" || fail "scontrol requeue ${JOB_A}_2"
scontrol update JobId="${JOB_A}_2" StartTime=now || fail "scontrol update ${JOB_A}_2 StartTime=now"
wait_until "grep -q 'restart 1' '$WORK/logs/${JOB_A}_2.log'" "$WAIT" || fail "the requeued task ${JOB_A}_2 did not start again"
wait_job "$JOB_A"
[ "$(task_states "$JOB_A" | tr '\n' ' ')" = "1=COMPLETED 2=COMPLETED 3=COMPLETED " ] || fail "job $JOB_A after requeue: $(task_states "$JOB_A")"
[ "$(grep -c "^shard 2/3 (task 2 of array job $JOB_A" "$WORK/logs/${JOB_A}_2.log")" -eq 2 ] || fail "the requeued task's log lost its first run"
grep -q "1 trial(s) in this shard, 1 already finished, running 0" "$WORK/logs/${JOB_A}_2.log" \
    || fail "the requeued task did not find its finished trial in slurm-$JOB_A"
log "requeued ${JOB_A}_2: same directory, its finished trial kept"

JOB_C=$(submit --array=1 --export="ALL,CRIA_STAMP=slurm-$JOB_B,CRIA_SHARDS=2" Experiments/slurm/sweep.sbatch "$CONFIG" "${SETS[@]}")
log "resubmitted task 1 of $JOB_B as $JOB_C (CRIA_STAMP=slurm-$JOB_B, CRIA_SHARDS=2)"
wait_job "$JOB_C"
[ "$(task_states "$JOB_C" | tr '\n' ' ')" = "1=COMPLETED " ] || fail "job $JOB_C: $(task_states "$JOB_C")"
grep -q "2 trial(s) in this shard, 1 already finished, running 1" "$WORK/logs/${JOB_C}_1.log" \
    || fail "the resubmitted task did not skip the finished trial: $(grep -m1 'trial(s) in this shard' "$WORK/logs/${JOB_C}_1.log")"
[ "$(sha256sum "$KEPT/summary.json" "$KEPT/model.h5")" = "$kept_before" ] || fail "the finished trial ${IDS[1]} was rewritten by the rerun"
[ -f "$VICTIM/summary.json" ] || fail "the interrupted trial ${IDS[3]} did not finish on resubmission"

for sweep in "slurm-$JOB_A" "slurm-$JOB_B"; do
    "$CRIA" report "$RUNS/$sweep" >"$WORK/logs/report-$sweep.log" 2>&1 || fail "cria report $sweep: $(tail -n 3 "$WORK/logs/report-$sweep.log")"
done
python3 - "$RUNS/reference" "$RUNS/slurm-$JOB_A" "$RUNS/slurm-$JOB_B" <<'EOF' || fail "a merged sweep differs from the unsharded one"
# summary.csv and every metrics.csv equal the reference, apart from timings: wall_seconds and
# seconds, and peak_rss_mb (the process's peak so far, so it depends on which trials a
# process ran before).
import csv, os, sys
TIMINGS = {"wall_seconds", "peak_rss_mb", "seconds"}

def rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMINGS} for row in csv.DictReader(f)]

reference, failures = sys.argv[1], []
ids = [row["trial_id"] for row in rows(os.path.join(reference, "summary.csv"))]
for sweep in sys.argv[2:]:
    name = os.path.basename(sweep)
    expected, merged = rows(os.path.join(reference, "summary.csv")), rows(os.path.join(sweep, "summary.csv"))
    if merged != expected:
        failures.append("%s/summary.csv:\n  %s\nreference:\n  %s" % (name, merged, expected))
    for trial in ids:
        if rows(os.path.join(sweep, trial, "metrics.csv")) != rows(os.path.join(reference, trial, "metrics.csv")):
            failures.append("%s/%s/metrics.csv differs from the reference" % (name, trial))
    print("%s: summary.csv (%d trials) and every metrics.csv equal the unsharded sweep's, timings aside" % (name, len(merged)))
for failure in failures:
    print(failure, file=sys.stderr)
sys.exit(1 if failures else 0)
EOF

PYTHON=${CRIA_PYTHON:-}
[ -z "$PYTHON" ] && [ -x "$ROOT/.venv/bin/python" ] && PYTHON=$ROOT/.venv/bin/python
PYTHON=${PYTHON:-python3}
if "$PYTHON" -c "import tensorboard" 2>/dev/null; then
    "$PYTHON" scripts/check_tensorboard.py "$RUNS/slurm-$JOB_B" --timeout 120 || fail "TensorBoard does not show sweep slurm-$JOB_B as expected"
elif [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; then
    fail "CI has no tensorboard in $PYTHON (set CRIA_PYTHON to the environment scripts/python-env.sh builds)"
else
    log "skipped the TensorBoard check: no tensorboard module in $PYTHON (set CRIA_PYTHON)"
fi
log "passed in $((SECONDS - started))s"
