#!/usr/bin/env bash
# Cria's side of the Keras parity study (`make parity-recipe`): the seed's recipe and its
# variants, each cross-validated on FOLDS folds × SEEDS seeds, then compared fold by fold
# with the committed Keras runs. Rerunning resumes: finished runs are kept.
#   FOLDS=10 SEEDS="1 2 3" CONFIGS="recipe recipe-bn-inference flip none" make parity-recipe
# RUN_DIRS_<config> (recipe-bn-inference: RUN_DIRS_recipe_bn_inference) names existing trial or
# experiment directories for a config instead (globs allowed, space-separated): they are
# compared as they are and nothing is run for it. Runs of one config may then come from
# several sweeps, e.g. seed 1 in one and seeds 2-3 in another, or the fine_tune_at=120
# trials of Experiments/alpaca-cv.yaml.
set -euo pipefail
FOLDS=${FOLDS:-10}
SEEDS=${SEEDS:-1 2 3}
CONFIGS=${CONFIGS:-recipe recipe-bn-inference flip none}
REFERENCE=${REFERENCE:-Notebooks-export/parity/keras-cv.jsonl}
OUT=${OUT:-Notebooks-export/parity}
RUNS=${RUNS:-runs/parity}
CRIA=${CRIA:-$(swift build -c release --show-bin-path)/cria}

# Cria's repeats use seeds seed, seed+1, ...: SEEDS must be consecutive.
read -r -a seeds <<< "$SEEDS"
first=${seeds[0]}
for i in "${!seeds[@]}"; do
    if [ "${seeds[$i]}" -ne $((first + i)) ]; then echo "SEEDS must be consecutive integers, got: $SEEDS" >&2; exit 1; fi
done

mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
report="$OUT/cria-vs-keras-cv.md"
{
    echo "# Cria vs Keras, $FOLDS-fold cross-validation × seeds $SEEDS"
    echo
    echo "Regenerate with \`make parity-recipe FOLDS=$FOLDS SEEDS=\"$SEEDS\"\`. Cria's runs: \`$OUT/cria-cv.jsonl\`; Keras's: \`$REFERENCE\`."
    echo
} > "$work/report.md"
for config in $CONFIGS; do
    case "$config" in
        recipe) file=Experiments/alpaca.yaml; extra=() ;;
        recipe-bn-inference) file=Experiments/alpaca-bn-inference.yaml; extra=() ;;
        flip) file=Experiments/alpaca.yaml; extra=(--set augment=flip) ;;
        none) file=Experiments/alpaca.yaml; extra=(--set augment=none) ;;
        *) echo "unknown config $config (recipe, recipe-bn-inference, flip, none)" >&2; exit 1 ;;
    esac
    override="RUN_DIRS_${config//-/_}"
    if [ -n "${!override:-}" ]; then
        # shellcheck disable=SC2206  # word splitting and globbing are the point
        directories=(${!override})
        echo "$config: comparing ${#directories[@]} existing director(ies) from $override" >&2
    else
        "$CRIA" sweep "$file" "${extra[@]}" --set data.folds="$FOLDS" --set seed="$first" --set repeats="${#seeds[@]}" \
            --set experiment.runs_dir="$RUNS" --set experiment.name="$config" --stamp "folds$FOLDS" -q
        directories=("$RUNS/$config/folds$FOLDS")
    fi
    "$CRIA" compare "${directories[@]}" --export-jsonl "$work/$config.jsonl" --label "$config"
    if [ -f "$REFERENCE" ] && grep -q "\"config\": *\"$config\"" "$REFERENCE"; then
        "$CRIA" compare "${directories[@]}" --reference "$REFERENCE" --reference-config "$config" -o "$work/$config.md" > /dev/null
        sed 's/^# /## /; s/^## `/### `/' "$work/$config.md" >> "$work/report.md"
        echo >> "$work/report.md"
    else
        echo "## $config: no Keras runs for this config in \`$REFERENCE\`" >> "$work/report.md"
        echo >> "$work/report.md"
    fi
done
cat "$work"/*.jsonl > "$OUT/cria-cv.jsonl"
mv "$work/report.md" "$report"
echo "wrote $report and $OUT/cria-cv.jsonl"
