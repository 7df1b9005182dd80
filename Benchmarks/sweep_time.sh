#!/usr/bin/env bash
# `make bench-sweep`: the alpaca sweep's grid (Experiments/alpaca-sweep.yaml, one repeat,
# 72 trials) timed end to end with cria, against one run of the Keras recipe in the same run.
#
#   make bench-sweep                     # the whole grid (72 trials of 10 epochs) + one Keras recipe
#   TRIALS=6 make bench-sweep            # about 6 trials spread over the grid (a slow or shared machine)
#   CRIA=/path/to/cria PYTHON=/path/to/python bash Benchmarks/sweep_time.sh
#   RESULTS=/tmp/x.jsonl bash Benchmarks/sweep_time.sh   # append elsewhere than Benchmarks/results/sweep-time.jsonl
#
# Order: the first half of the trials, then the Keras recipe
# (Notebooks-export/keras_reference.py: 5 frozen + 5 fine-tune epochs, fine_tune_at 120,
# flip+rotation), then the rest, so that both sides see the machine's load of the same stretch.
# Each cria trial is a whole recipe too (two phases, 10 epochs, validation every epoch), with
# its own depth, learning rate, augmentation and BatchNorm mode; the first trial also decodes
# the images into data.cache. Prints seconds per trial against Keras's seconds per recipe.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=${CONFIG:-Experiments/alpaca-sweep.yaml}
PYTHON=${PYTHON:-python3}
export CRIA_ALPACA_DIR=${CRIA_ALPACA_DIR:-$(cd .. && pwd)/shared/data/alpaca}
RESULTS=${RESULTS:-Benchmarks/results/sweep-time.jsonl}
STAMP=bench-sweep-$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-bench-out}/$STAMP
mkdir -p "$OUT"
export TF_CPP_MIN_LOG_LEVEL=2

if [[ -z "${CRIA:-}" ]]; then
    echo "building cria (release)..." >&2
    swift build -c release --scratch-path .build-bench >&2
    CRIA=$(swift build -c release --scratch-path .build-bench --show-bin-path)/cria
fi
GRID=$("$CRIA" sweep "$CONFIG" --set repeats=1 --dry-run | grep -cE '^ +[0-9]+ ')
# A sample of the grid is every STRIDE-th trial (cria sweep --shard 0/STRIDE): the grid's order
# varies the last axes fastest (BatchNorm mode, augmentation), so the stride is kept prime to 2
# and 3 and the sample mixes them, rather than taking the first, cheapest trials.
STRIDE=1
if [[ -n "${TRIALS:-}" && "$TRIALS" -lt "$GRID" ]]; then
    STRIDE=$(( GRID / TRIALS ))
    while (( STRIDE % 2 == 0 || STRIDE % 3 == 0 )); do STRIDE=$(( STRIDE + 1 )); done
fi
TRIALS=$(( (GRID + STRIDE - 1) / STRIDE ))
FIRST=$(( (TRIALS + 1) / 2 ))
echo "grid: $GRID trials with one repeat; timing $TRIALS (every $STRIDE-th)" >&2

cria_part() {  # runs (resumes) the sweep for $1 more trials; prints its wall seconds
    local start end
    start=$(date +%s.%N)
    "$CRIA" sweep "$CONFIG" --set repeats=1 --shard "0/$STRIDE" --stamp "$STAMP" --limit "$1" --quiet >> "$OUT/cria.log" 2>&1
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}
echo "cria: trials 1-$FIRST..." >&2
first_s=$(cria_part "$FIRST")
echo "keras: one recipe run..." >&2
k_start=$(date +%s.%N)
$PYTHON Notebooks-export/keras_reference.py --output "$OUT/keras" > "$OUT/keras.log" 2>&1
keras_s=$(echo "$(date +%s.%N) - $k_start" | bc)
second_s=0
if (( TRIALS > FIRST )); then
    echo "cria: trials $((FIRST + 1))-$TRIALS..." >&2
    second_s=$(cria_part "$((TRIALS - FIRST))")
fi

$PYTHON - "$OUT" "$RESULTS" "$GRID" "$TRIALS" "$first_s" "$second_s" "$keras_s" "$CONFIG" "$STRIDE" <<'PY'
import datetime, json, os, subprocess, sys
out, results, grid, trials, first_s, second_s, keras_s, config, stride = sys.argv[1:]
grid, trials, first_s, second_s, keras_s = int(grid), int(trials), float(first_s), float(second_s), float(keras_s)
timing = json.load(open(os.path.join(out, "keras", "timing.json")))
cria_s = first_s + second_s
per_trial = cria_s / trials
machine = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
machine += f", {os.cpu_count()} cores"
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"sweep grid of {config} with one repeat: {grid} trials; timed {trials}, every {stride}-th ({machine})")
print(f"| | seconds | per trial / recipe |")
print(f"|---|---|---|")
print(f"| cria, {trials} trials | {cria_s:.0f} | {per_trial:.1f} |")
print(f"| Keras, one recipe run (keras_reference.py) | {keras_s:.0f} (fit {timing['timing']['frozen_fit_s'] + timing['timing']['finetune_fit_s']:.0f}) | {keras_s:.1f} |")
print(f"Keras recipe / cria trial: {keras_s / per_trial:.2f}x; the whole grid at this rate: cria {per_trial * grid / 60:.0f} min, "
      f"Keras {keras_s * grid / 60:.0f} min")
now = datetime.datetime.now(datetime.timezone.utc)
record = {"benchmark": "bench-sweep", "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "date": now.strftime("%Y-%m-%d"),
          "machine": machine, "software": {"cria": commit, **timing.get("versions", {})},
          "settings": {"config": config, "repeats": 1, "grid_trials": grid, "trials_timed": trials, "every_nth_trial": int(stride),
                       "order": "first half of the cria trials, the Keras recipe, the rest"},
          "cria": {"seconds": round(cria_s, 1), "seconds_per_trial": round(per_trial, 2),
                   "first_half_s": round(first_s, 1), "second_half_s": round(second_s, 1)},
          "keras": {"seconds_per_recipe": round(keras_s, 1), "fit_s": round(timing["timing"]["frozen_fit_s"] + timing["timing"]["finetune_fit_s"], 1),
                    "peak_rss_mb": round(timing["timing"].get("peak_rss_mb", 0), 1)},
          "keras_recipe_over_cria_trial": round(keras_s / per_trial, 3),
          "load_average_end": list(os.getloadavg()), "log": out}
with open(results, "a") as f:
    f.write(json.dumps(record) + "\n")
PY
