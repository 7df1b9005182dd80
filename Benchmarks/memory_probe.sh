#!/usr/bin/env bash
# The two measurements behind the batch-1 analysis in docs/inference-speed.md:
# the cache this process really gets, and what a batch-1 sgemm loses when its
# weights come from DRAM. Needs gcc and libopenblas-dev (make setup).
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
gcc -O2 probes/cache_sweep.c -o "$out/cache_sweep"
gcc -O2 probes/sgemm_cold.c -o "$out/sgemm_cold" -lopenblas
echo "== effective cache (read rate by buffer size)"
"$out/cache_sweep"
echo "== batch-1 sgemm shapes of MobileNetV2 1.0/160 (one thread's channel slice)"
"$out/sgemm_cold" 25 160 480 960    # 5x5 block expand, half the channels
"$out/sgemm_cold" 25 960 80 160     # 5x5 block project, half the output channels
"$out/sgemm_cold" 100 96 288 576    # 10x10 block expand, half the channels
