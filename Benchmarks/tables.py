#!/usr/bin/env python3
"""Prints the Markdown tables that README.md and docs/ quote, from Benchmarks/results/*.jsonl.

    python3 Benchmarks/tables.py speed            # inference: Cria, ONNX Runtime, Keras (latest bench-compare run)
    python3 Benchmarks/tables.py speed --run 2026-11-27T10:46:32Z   # the same for one run, by its timestamp
    python3 Benchmarks/tables.py runs             # every bench-compare run, one row each
    python3 Benchmarks/tables.py rounds [--run T] # the rounds of one run
    python3 Benchmarks/tables.py training         # training steps, latest run that has them
    python3 Benchmarks/tables.py data             # data loading, latest run that has it
    python3 Benchmarks/tables.py recipe           # the whole alpaca recipe, Cria vs Keras (compare-keras)
    python3 Benchmarks/tables.py accuracy         # validation accuracy per seed (compare-keras)
    python3 Benchmarks/tables.py openblas         # the test suite under each OpenBLAS kernel
    python3 Benchmarks/tables.py all
    python3 Benchmarks/tables.py check README.md docs/*.md   # every quoted table row still regenerates

Standard library only. Ratios are of medians within one run: on a shared
machine only numbers measured side by side are comparable, so no table mixes
runs. The record formats are described in Benchmarks/README.md.
"""
import argparse
import json
import os
import statistics
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def load(name):
    path = os.path.join(RESULTS, name)
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def pick(records, run, has=lambda r: True):
    """The record with timestamp `run`, else the latest one for which `has` holds."""
    if run:
        for record in records:
            if record.get("timestamp") == run:
                return record
        sys.exit(f"no run with timestamp {run}; see `tables.py runs`")
    chosen = [r for r in records if has(r)]
    if not chosen:
        sys.exit("no run has these figures")
    return max(chosen, key=lambda r: r["timestamp"])


def caption(record, command):
    settings = record.get("settings", {})
    parts = [f"{k}={v}" for k, v in settings.items() if k not in ("data",)]
    return (f"{command}; {record['date']}; {record['machine']}; "
            + ", ".join(parts) + "; " + ", ".join(f"{k} {v}" for k, v in record.get("software", {}).items()))


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "–"


def med(record, engine, key):
    return record.get("median", {}).get(engine, {}).get(key)


def cria_over_ort(record, batch):
    """Cria / ONNX Runtime as a speed ratio (>1: Cria faster), from medians or as recorded."""
    if batch == 32:
        a, b = med(record, "cria", "b32_img_s"), med(record, "ort", "b32_img_s")
        value = a / b if a and b else None
    else:
        a, b = med(record, "cria", "b1_ms"), med(record, "ort", "b1_ms")
        value = b / a if a and b else None
    if value is None:
        value = record.get("ratios", {}).get(f"cria_over_ort_b{batch}")
    return f"{value:.2f}×" if value else "–"


def speed(args):
    record = pick(load("bench-compare.jsonl"), args.run, lambda r: "keras" in r.get("median", {}))
    names = {"cria": "Cria", "ort": f"ONNX Runtime {record['software'].get('onnxruntime', '')}".strip(),
             "keras": f"Keras {record['software'].get('keras', '')} / TF {record['software'].get('tensorflow', '')} (`tf.function`)"}
    print(f"<!-- {caption(record, 'make bench-compare')} -->")
    print("| inference, median over rounds | batch 32 | batch 1 |")
    print("|---|---|---|")
    for engine in ("cria", "ort", "keras"):
        b32, b1 = med(record, engine, "b32_img_s"), med(record, engine, "b1_ms")
        print(f"| {names[engine]} | {b32:.0f} img/s | {b1:.2f} ms |")
    for other in ("ort", "keras"):
        b32 = ratio(med(record, "cria", "b32_img_s"), med(record, other, "b32_img_s"))
        b1 = ratio(med(record, other, "b1_ms"), med(record, "cria", "b1_ms"))
        short = {"ort": "ONNX Runtime", "keras": "Keras"}[other]
        print(f"| **Cria / {short}** (speed) | **{b32}** | **{b1}** |")
    pointwise = med(record, "cria", "b1_pointwise_only_ms")
    if pointwise:
        ort = med(record, "ort", "b1_ms")
        print(f"| Cria's 1×1 OpenBLAS calls alone, batch 1 | | {pointwise:.2f} ms = {pointwise / ort:.2f}× ONNX Runtime's whole model |")


def runs(args):
    print("<!-- make bench-compare; every run in Benchmarks/results/bench-compare.jsonl -->")
    print("| run | rounds | code | Cria / ORT, batch 32 | Cria / ORT, batch 1 | Cria batch 1 | ORT batch 1 | Cria / Keras, batch 32 |")
    print("|---|---|---|---|---|---|---|---|")
    for record in sorted(load("bench-compare.jsonl"), key=lambda r: r["timestamp"]):
        cb1, ob1 = med(record, "cria", "b1_ms"), med(record, "ort", "b1_ms")
        print(f"| {record['timestamp']} | {record['settings']['rounds']} | {record.get('code', '')} "
              f"| {cria_over_ort(record, 32)} | {cria_over_ort(record, 1)} "
              f"| {f'{cb1:.2f} ms' if cb1 else '–'} | {f'{ob1:.2f} ms' if ob1 else '–'} "
              f"| {ratio(med(record, 'cria', 'b32_img_s'), med(record, 'keras', 'b32_img_s'))} |")


def rounds(args):
    record = pick(load("bench-compare.jsonl"), args.run, lambda r: "rounds" in r)
    rows = record.get("rounds", [])
    columns = [("cria_b32_img_s", "Cria b32 (img/s)"), ("ort_b32_img_s", "ORT b32 (img/s)"), ("cria_b1_ms", "Cria b1 (ms)"),
               ("cria_b1_pointwise_only_ms", "Cria b1, 1×1 calls alone (ms)"), ("ort_b1_ms", "ORT b1 (ms)")]
    columns = [c for c in columns if any(c[0] in row for row in rows)]
    print(f"<!-- {caption(record, 'make bench-compare')} -->")
    print("| round | " + " | ".join(label for _, label in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for row in rows:
        print(f"| {row['round']} | " + " | ".join(f"{row[key]}" if key in row else "–" for key, _ in columns) + " |")


def training(args):
    record = pick(load("bench-compare.jsonl"), args.run, lambda r: "training" in r)
    c, k = record["training"]["cria"], record["training"]["keras"]
    print(f"<!-- {caption(record, 'make bench-compare')} -->")
    print("| training, batch 32, median over rounds | Cria | Keras (`train_on_batch`) | Cria / Keras |")
    print("|---|---|---|---|")
    for key, label in (("train_frozen_b32_img_s", "step, frozen base"),
                       ("train_finetune120_b32_img_s", "step, fine-tune from layer 120"),
                       ("train_all_b32_img_s", "step, `trainable=all`")):
        print(f"| {label} | {c[key]:.0f} img/s | {k[key]:.0f} img/s | **{ratio(c[key], k[key])}** |")
    print(f"| frozen-phase epoch of 210 images | first {c['train_frozen_first_epoch_s']:.2f} s, "
          f"then {c['train_frozen_cached_epoch_s']:.4f} s (prefix cache) | {k['train_frozen_epoch_s']:.2f} s (`fit`, every epoch) "
          f"| **{k['train_frozen_epoch_s'] / c['train_frozen_cached_epoch_s']:,.0f}×** from the second epoch |")
    print(f"| peak RSS of the training benchmark | {c['train_peak_rss_mb']:,.0f} MB | {k['train_peak_rss_mb']:,.0f} MB "
          f"| {c['train_peak_rss_mb'] / k['train_peak_rss_mb']:.2f}× the memory |")


def depths(args):
    """Training steps at each fine-tune depth: Cria against Keras and PyTorch, and Cria against its bound."""
    record = pick(load("training-compare.jsonl"), args.run)
    m = record["median"]
    labels = [("frozen", "base frozen"), ("finetune140", "`fine_tune_at: 140`"), ("finetune120", "`fine_tune_at: 120`"),
              ("finetune100", "`fine_tune_at: 100`"), ("finetune50", "`fine_tune_at: 50`"), ("all", "`trainable: all`")]
    print(f"<!-- {caption(record, 'make bench-compare (training rows)')} -->")
    print("| training step, batch 32, median over rounds | Cria | of its bound | Keras | PyTorch | Cria / Keras | Cria / PyTorch |")
    print("|---|---|---|---|---|---|---|")
    def cell(row):
        return f"{row['img_s']:.0f} img/s" if row.get("img_s") else "–"
    # Runs before the Keras engine built a fresh model per depth (their rows carry
    # no trainable_count) re-froze one model, and Keras 3 kept layers 120-139
    # frozen after that: their Keras rows below 140 timed fine_tune_at 140.
    keras_checked = "trainable_count" in m.get("keras", {}).get("frozen", {})
    for key, label in labels:
        c, k, t = (m.get(engine, {}).get(key, {}) for engine in ("cria", "keras", "torch"))
        if not keras_checked and key not in ("frozen", "finetune140"):
            k = {}
        print(f"| {label} | {cell(c)} | {c.get('fraction_of_bound', 0):.0%} | {cell(k)} | {cell(t)} "
              f"| **{ratio(c.get('img_s'), k.get('img_s'))}** | {ratio(c.get('img_s'), t.get('img_s'))} |")


def data(args):
    record = pick(load("bench-compare.jsonl"), args.run, lambda r: "data" in r)
    c, k = record["data"]["cria_seconds"], record["data"]["keras_seconds"]
    print(f"<!-- {caption(record, 'make bench-compare')} -->")
    print("| data loading: decode + resize the 262 alpaca photos into memory | seconds | Keras / Cria |")
    print("|---|---|---|")
    print(f"| Cria, `cria data bench` (in process, 2 threads) | {c:.2f} | **{k / c:.2f}×** |")
    print(f"| Keras, `image_dataset_from_directory` iterated once (in process, after import) | {k:.2f} | |")


def mean_std(values):
    if not values:
        return None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def recipe(args):
    record = pick(load("compare-keras.jsonl"), args.run, lambda r: "wall_s" in r.get("keras", {}))
    c, k = record["cria"], record["keras"]
    seeds = " ".join(str(s) for s in record["settings"]["seeds"])
    command = 'make compare-keras SEEDS="' + seeds + '"'
    print(f"<!-- {caption(record, command)} -->")
    print("| the whole alpaca recipe, mean over seeds | Cria | Keras | Keras / Cria |")
    print("|---|---|---|---|")
    for key, label in (("wall_s", "wall time, incl. start-up and data loading"), ("frozen_phase_s", "frozen phase (5 epochs)"),
                       ("fine_tune_phase_s", "fine-tune phase (5 epochs)")):
        print(f"| {label} | {c[key]:.1f} s | {k[key]:.1f} s | **{k[key] / c[key]:.1f}×** |")
    print(f"| peak RSS | {c['peak_rss_mb']:,} MB | {k['peak_rss_mb']:,} MB | Cria uses **{c['peak_rss_mb'] / k['peak_rss_mb']:.2f}×** the memory |")


def accuracy(args):
    record = pick(load("compare-keras.jsonl"), args.run, lambda r: "final_val_accuracy" in r.get("keras", {}) and "frozen_val_accuracy" in r["keras"])
    c, k = record["cria"], record["keras"]
    seeds = " ".join(str(s) for s in record["settings"]["seeds"])
    command = 'make compare-keras SEEDS="' + seeds + '"'
    print(f"<!-- {caption(record, command)} -->")
    print(f"| validation accuracy, {len(record['settings']['seeds'])} seeds (52 images; one image is 1.9 points) | Cria | Keras |")
    print("|---|---|---|")
    def cell(values):
        mean, std = mean_std(values)
        return f"{mean:.3f} ± {std:.3f} ({', '.join(f'{v:.3f}' for v in values)})"
    print(f"| after the frozen phase (epoch 5) | {cell(c['frozen_val_accuracy'])} | {cell(k['frozen_val_accuracy'])} |")
    print(f"| after fine-tuning from layer 120 (epoch 10), logit > 0 | **{cell(c['final_val_accuracy'])}** | **{cell(k['final_val_accuracy'])}** |")
    if "final_keras_val_accuracy" in k:
        print(f"| Keras's own `val_accuracy` (0.5 on logits) | | {cell(k['final_keras_val_accuracy'])} |")


def openblas(args):
    records = load("openblas-kernels.jsonl")
    first = records[0]
    print(f"<!-- {first['command']}; {first['date']}; {first['machine']}; OpenBLAS {first['openblas']}; commit {first['commit']} -->")
    print("| OpenBLAS kernel | threads | tests | failures |")
    print("|---|---|---|---|")
    for r in records:
        print(f"| {r['openblas_coretype']} | {r['threads']} | {r['tests']} | {r['failures']} |")


def check(files):
    """Every Markdown table in FILES whose header a table here prints must consist of rows it prints
    (a document may leave rows out, never change one). Exit status 1 on a mismatch."""
    import contextlib
    import io
    generated = {}
    for name, table in TABLES.items():
        if name == "rounds":
            continue
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            table(argparse.Namespace(run=None))
        rows = [line for line in buffer.getvalue().splitlines() if line.startswith("|")]
        generated[rows[0]] = (name, set(rows))
    bad = checked = 0
    for path in files:
        with open(path) as handle:
            lines = handle.read().splitlines()
        for number, line in enumerate(lines):
            if line in generated and (number == 0 or not lines[number - 1].startswith("|")):
                name, rows = generated[line]
                checked += 1
                for offset, row in enumerate(lines[number:], start=number):
                    if not row.startswith("|"):
                        break
                    if row not in rows:
                        bad += 1
                        print(f"{path}:{offset + 1}: not what `tables.py {name}` prints: {row}")
    print(f"{checked} quoted tables checked, {bad} rows differ")
    return bad == 0


TABLES = {"speed": speed, "runs": runs, "rounds": rounds, "training": training, "depths": depths, "data": data,
          "recipe": recipe, "accuracy": accuracy, "openblas": openblas}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("table", choices=list(TABLES) + ["all", "check"])
    parser.add_argument("files", nargs="*", help="with check: the documents whose tables to check")
    parser.add_argument("--run", help="a run's timestamp (default: the latest run with these figures)")
    args = parser.parse_args()
    if args.table == "check":
        sys.exit(0 if check(args.files) else 1)
    for name in (TABLES if args.table == "all" else [args.table]):
        if args.table == "all":
            print(f"\n## {name}\n")
        TABLES[name](args)


if __name__ == "__main__":
    main()
