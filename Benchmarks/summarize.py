#!/usr/bin/env python3
"""Reads the JSON lines of one compare.sh run and prints medians and ratios.

Each line is either an engines.py timing ({"engine", "batch", "img_s"}) or a
`cria bench --json` object (inference_b32_img_s, inference_b1_ms, ...).
Ratios are of medians over the rounds of this one run: on a shared machine
only numbers measured side by side are comparable.
"""
import json
import statistics
import sys
from collections import defaultdict


def main(path, header):
    rates = defaultdict(list)  # (engine, batch) -> img/s per round
    cria_extra = defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "engine" in record:
                rates[(record["engine"], record["batch"])].append(record["img_s"])
            elif "inference_b32_img_s" in record:
                if record.get("inference_b32_img_s"):
                    rates[("cria", 32)].append(record["inference_b32_img_s"])
                rates[("cria", 1)].append(1000.0 / record["inference_b1_ms"])
                for key in ("gemm_gflops", "achieved_gflops", "fraction_of_sgemm", "peak_rss_mb",
                            "time_fraction_pointwise", "time_fraction_depthwise", "time_fraction_first_conv",
                            "time_fraction_other"):
                    if record.get(key) is not None:
                        cria_extra[key].append(record[key])
    med = {key: statistics.median(values) for key, values in rates.items()}
    print(header)
    print()
    print("| engine | batch 32 (img/s) | batch 1 (img/s) | batch 1 (ms) | rounds |")
    print("|---|---|---|---|---|")
    names = {"cria": "Cria", "ort": "ONNX Runtime", "keras": "Keras/TF (tf.function)"}
    for engine in ("cria", "ort", "keras"):
        b32, b1 = med.get((engine, 32)), med.get((engine, 1))
        rounds = len(rates.get((engine, 32), []))
        print(f"| {names[engine]} | {b32:.1f} | {b1:.1f} | {1000 / b1:.2f} | {rounds} |" if b32 and b1
              else f"| {names[engine]} | - | - | - | {rounds} |")
    print()
    print("| ratio (medians, this run) | batch 32 | batch 1 |")
    print("|---|---|---|")
    for other in ("ort", "keras"):
        cells = []
        for batch in (32, 1):
            a, b = med.get(("cria", batch)), med.get((other, batch))
            cells.append(f"{a / b:.2f}x" if a and b else "-")
        print(f"| Cria / {names[other]} | {cells[0]} | {cells[1]} |")
    if cria_extra:
        print()
        print("Cria, medians over rounds: " + ", ".join(
            f"{key} {statistics.median(values):.3g}" for key, values in cria_extra.items()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
