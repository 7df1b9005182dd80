#!/usr/bin/env bash
# `make demo`: the seed's study on the alpaca data when it is present, else the
# Fashion-MNIST quickstart; ends by saying where everything was written.
set -euo pipefail
cd "$(dirname "$0")/.."
cria=.build/release/cria
if [ -d "${CRIA_ALPACA_DIR:-}" ]; then
    config=Experiments/alpaca.yaml
    echo "demo: alpaca data found at $CRIA_ALPACA_DIR; running $config"
else
    config=Experiments/quickstart.yaml
    echo "demo: no alpaca data at '${CRIA_ALPACA_DIR:-}' (set CRIA_ALPACA_DIR); running $config on Fashion-MNIST"
fi
output=$("$cria" run "$config" | tee /dev/stderr | grep '^/' | tail -n 1)
trial=$(find "$output" -mindepth 1 -maxdepth 1 -type d | sort | head -n 1)
echo
echo "run directory:  $output"
echo "learning curves: $trial/curves.svg"
echo "metrics:         $trial/metrics.csv"
echo "summary:         $output/summary.md"
echo "model (Keras):   $trial/model.h5"
