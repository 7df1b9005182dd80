#!/usr/bin/env python3
"""Reads the JSON lines of one compare.sh run and prints medians and ratios.

Each line is an engines.py inference timing ({"engine", "batch", "img_s"}),
a `cria bench --json` object (inference_b32_img_s, inference_b1_ms, train_*),
an engines.py training record ({"engine": "keras", "record": "train", train_*}),
or a data-loading timing ({"engine", "data_seconds"}) from engines.py data or
`cria data bench --json`.
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
    training = defaultdict(list)  # (engine, key) -> values per round
    data = defaultdict(list)  # engine -> seconds per round
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "data_seconds" in record:
                data[record["engine"]].append(record["data_seconds"])
                continue
            if record.get("record") == "train":
                for key, value in record.items():
                    if key.startswith("train_"):
                        training[(record["engine"], key)].append(value)
                continue
            for key, value in record.items():
                if key.startswith("train_") and value is not None:
                    training[("cria", key)].append(value)
            if "engine" in record:
                rates[(record["engine"], record["batch"])].append(record["img_s"])
            elif "inference_b32_img_s" in record:
                if record.get("inference_b32_img_s"):
                    rates[("cria", 32)].append(record["inference_b32_img_s"])
                rates[("cria", 1)].append(1000.0 / record["inference_b1_ms"])
                for key in ("inference_b1_pointwise_only_ms", "gemm_gflops", "achieved_gflops", "fraction_of_sgemm", "peak_rss_mb",
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
    floor, ort_b1 = cria_extra.get("inference_b1_pointwise_only_ms"), med.get(("ort", 1))
    if floor and ort_b1:
        floor = statistics.median(floor)
        print()
        print(f"Batch 1, Cria's 1x1 OpenBLAS calls alone (depthwise, first conv and pooling skipped): "
              f"{floor:.2f} ms, {floor * ort_b1 / 1000:.2f}x ONNX Runtime's whole model ({1000 / ort_b1:.2f} ms)")
    if cria_extra:
        print()
        print("Cria, medians over rounds: " + ", ".join(
            f"{key} {statistics.median(values):.3g}" for key, values in cria_extra.items()))
    print_training(training)
    print_data(data)


def print_training(training):
    med = {key: statistics.median(values) for key, values in training.items()}
    if not any(engine == "keras" for engine, _ in med):
        return
    print()
    print("Training at batch 32 (the tutorial's model: base, GAP, Dropout, Dense(1); random images, no augmentation)")
    print()
    print("| | Cria | Keras/TF | Cria / Keras |")
    print("|---|---|---|---|")
    rows = [("train_frozen_b32_img_s", "step, frozen base (img/s)"),
            ("train_finetune120_b32_img_s", "step, fine-tune from layer 120 (img/s)"),
            ("train_all_b32_img_s", "step, trainable=all (img/s)")]
    for key, label in rows:
        c, k = med.get(("cria", key)), med.get(("keras", key))
        if c and k:
            print(f"| {label} | {c:.1f} | {k:.1f} | **{c / k:.2f}x** |")
        else:
            print(f"| {label} | {c or '-'} | {k or '-'} | - |")
    first, cached = med.get(("cria", "train_frozen_first_epoch_s")), med.get(("cria", "train_frozen_cached_epoch_s"))
    keras_epoch = med.get(("keras", "train_frozen_epoch_s"))
    if cached and keras_epoch:
        print(f"| frozen-phase epoch, 210 images (s): Cria first / cached, Keras any | {first:.3f} / {cached:.4f} | {keras_epoch:.2f} "
              f"| **{keras_epoch / cached:.0f}x** (cached) |")
    c, k = med.get(("cria", "train_peak_rss_mb")), med.get(("keras", "train_peak_rss_mb"))
    if c and k:
        print(f"| peak RSS of the training benchmark (MB) | {c:.0f} | {k:.0f} | {c / k:.2f} of Keras's |")


def print_data(data):
    c, k = data.get("cria"), data.get("keras")
    if not c or not k:
        return
    c, k = statistics.median(c), statistics.median(k)
    print()
    print("Data loading: decode + bilinear resize of every image, in memory (image_dataset_from_directory iterated once)")
    print()
    print("| | seconds | Keras / Cria |")
    print("|---|---|---|")
    print(f"| Cria (`cria data bench`) | {c:.3f} | **{k / c:.2f}x** |")
    print(f"| Keras/TF | {k:.3f} | |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
