#!/usr/bin/env python3
"""Reads the JSON lines of one compare.sh run and prints medians and ratios.

Each line is an engines.py inference timing ({"engine", "batch", "img_s"}),
a `cria bench --json` object (inference_b32_img_s, inference_b1_ms, train_*),
an engines.py training record ({"engine": "keras", "record": "train", train_*}),
or a data-loading timing ({"engine", "data_seconds"}) from engines.py data or
`cria data bench --json`.
Ratios are of medians over the rounds of this one run: on a shared machine
only numbers measured side by side are comparable.

With --append FILE it also appends the run as one JSON line to FILE
(compare.sh: Benchmarks/results/bench-compare.jsonl), the record that
Benchmarks/tables.py reads; the format is in Benchmarks/README.md.
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
    return rates, cria_extra, training, data


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


def run_record(log, rates, cria_extra, training, data, settings):
    """One bench-compare run in the format of Benchmarks/results/bench-compare.jsonl."""
    import datetime
    import importlib.metadata
    import os
    import subprocess

    def version(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    def command(*args):
        try:
            return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip() or None
        except (OSError, subprocess.CalledProcessError):
            return None

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown CPU")
    software = {"cria": command("git", "rev-parse", "--short", "HEAD"),
                "openblas": command("dpkg-query", "-W", "-f=${Version}", "libopenblas0-pthread"),
                "onnxruntime": version("onnxruntime"), "tensorflow": version("tensorflow") or version("tensorflow-cpu"),
                "keras": version("keras")}
    median = defaultdict(dict)
    for (engine, batch), values in rates.items():
        value = statistics.median(values)
        if batch == 32:
            median[engine]["b32_img_s"] = round(value, 1)
        else:
            median[engine]["b1_ms"] = round(1000 / value, 2)
    if cria_extra.get("inference_b1_pointwise_only_ms"):
        median["cria"]["b1_pointwise_only_ms"] = round(statistics.median(cria_extra["inference_b1_pointwise_only_ms"]), 2)
    rounds = []
    for i in range(max((len(v) for v in rates.values()), default=0)):
        row = {"round": i + 1}
        for (engine, batch), values in rates.items():
            if i < len(values):
                key = f"{engine}_b32_img_s" if batch == 32 else f"{engine}_b1_ms"
                row[key] = round(values[i], 1) if batch == 32 else round(1000 / values[i], 2)
        pointwise = cria_extra.get("inference_b1_pointwise_only_ms", [])
        if i < len(pointwise):
            row["cria_b1_pointwise_only_ms"] = round(pointwise[i], 2)
        rounds.append(row)
    now = datetime.datetime.now(datetime.timezone.utc)
    record = {"benchmark": "bench-compare", "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "date": now.strftime("%Y-%m-%d"),
              "machine": f"{os.cpu_count()}-core {cpu}", "software": {k: v for k, v in software.items() if v},
              "settings": settings, "log": log, "median": dict(median), "rounds": rounds,
              "source": "Benchmarks/summarize.py"}
    extra = {key: round(statistics.median(values), 4) for key, values in cria_extra.items() if key != "inference_b1_pointwise_only_ms"}
    if extra:
        record["cria"] = extra
    med = {key: statistics.median(values) for key, values in training.items()}
    if any(engine == "keras" for engine, _ in med):
        record["training"] = {engine: {key: round(value, 4) for (e, key), value in med.items() if e == engine} for engine in ("cria", "keras")}
    if data.get("cria") and data.get("keras"):
        record["data"] = {"cria_seconds": round(statistics.median(data["cria"]), 3), "keras_seconds": round(statistics.median(data["keras"]), 3)}
    return record


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description="Medians and ratios of one compare.sh run.")
    parser.add_argument("log")
    parser.add_argument("header", nargs="?", default="")
    parser.add_argument("--append", metavar="FILE", help="append the run as one JSON line to FILE")
    parser.add_argument("--model", default="")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--train", default="1")
    args = parser.parse_args()
    collected = main(args.log, args.header)
    if args.append:
        settings = {"model": args.model, "size": args.size, "threads": args.threads, "rounds": args.rounds, "train": args.train == "1"}
        with open(args.append, "a") as handle:
            handle.write(json.dumps(run_record(args.log, *collected, settings)) + "\n")
        print(f"\nappended to {args.append}; tables: python3 Benchmarks/tables.py speed", file=sys.stderr)
