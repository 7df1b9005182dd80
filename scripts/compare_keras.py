#!/usr/bin/env python3
"""Run the seed's recipe in Cria and in Keras on the same machine, and compare.

    make compare-keras                     # seeds 42 (one run each)
    make compare-keras SEEDS="1 2 3"       # several training seeds; the split seed stays 42

Both runs read the same data (CRIA_ALPACA_DIR, default ../shared/data/alpaca),
use the same split (validation_split=0.2, seed=42), the same pretrained base
(Weights/dog_breed_mobilenetv2.h5) and the same recipe (5 frozen epochs with
Adam 1e-3, then 5 epochs fine-tuning from layer 120 with Adam 1e-4). Runs are
interleaved (Cria, Keras, Cria, Keras, ...) so that load on a shared machine
hits both alike. Wall time and peak RSS are measured from outside by
/usr/bin/time, for both engines the same way. Only the ratios of one run of
this script mean anything on a shared machine.

Prints both histories, total wall time, time per phase, peak RSS and the
ratios, and writes the same as Markdown to runs/compare-keras/<stamp>/report.md.
Appends the run as one JSON line to Benchmarks/results/compare-keras.jsonl
($RESULTS), from which `python3 Benchmarks/tables.py recipe` and `accuracy`
print the README's tables.
Standard library only; Keras runs in the interpreter given by $KERAS_PYTHON
(default: python3), which needs tensorflow-cpu.
"""
import csv
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(command, env=None):
    """Runs a command under /usr/bin/time; returns (wall seconds, peak RSS MB, stdout)."""
    stats = os.path.join(REPO, "runs", "compare-keras", ".time")
    os.makedirs(os.path.dirname(stats), exist_ok=True)
    started = time.time()
    result = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", stats] + command, cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-3000:])
        sys.exit(f"error: {' '.join(command[:3])} ... failed with status {result.returncode}")
    wall, rss_kb = open(stats).read().split()[-2:]
    return float(wall), float(rss_kb) / 1024, result.stdout, time.time() - started


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def phase_seconds(rows, boundary):
    frozen = sum(float(r.get("seconds") or 0) for r in rows if int(r["epoch"]) < boundary)
    fine = sum(float(r.get("seconds") or 0) for r in rows if int(r["epoch"]) >= boundary)
    return frozen, fine


def run_cria(seed, cria):
    wall, rss, out, _ = timed([cria, "run", "Experiments/alpaca.yaml", "--quiet", "--set", f"seed={seed}"])
    stamp_dir = [line.strip() for line in out.splitlines() if line.strip().startswith("/")][-1]
    trial = [d for d in sorted(os.listdir(stamp_dir)) if os.path.isdir(os.path.join(stamp_dir, d))][0]
    rows = read_csv(os.path.join(stamp_dir, trial, "metrics.csv"))
    frozen, fine = phase_seconds(rows, 5)
    return {"wall": wall, "rss": rss, "rows": rows, "frozen_s": frozen, "fine_s": fine, "dir": os.path.join(stamp_dir, trial)}


def run_keras(seed, python):
    output = os.path.join(REPO, "runs", "compare-keras", f"keras-seed{seed}-{int(time.time())}")
    wall, rss, _, _ = timed([python, "Notebooks-export/keras_reference.py", "--seed", str(seed), "--output", output])
    rows = read_csv(os.path.join(output, "metrics.csv"))
    timing = json.load(open(os.path.join(output, "timing.json"))).get("timing", {})
    frozen = timing.get("frozen_fit_s", phase_seconds(rows, 5)[0])
    fine = timing.get("finetune_fit_s", phase_seconds(rows, 5)[1])
    return {"wall": wall, "rss": rss, "rows": rows, "frozen_s": frozen, "fine_s": fine, "dir": output}


def mean(values):
    return statistics.mean(values) if values else float("nan")


def results_record(seeds, results):
    """One run in the format of Benchmarks/results/compare-keras.jsonl (Benchmarks/README.md)."""
    def engine(name):
        runs = results[name]
        logit_key = "val_accuracy" if name == "cria" else "val_accuracy_logits"
        record = {"wall_s": round(mean([r["wall"] for r in runs]), 1),
                  "frozen_phase_s": round(mean([r["frozen_s"] for r in runs]), 1),
                  "fine_tune_phase_s": round(mean([r["fine_s"] for r in runs]), 1),
                  "peak_rss_mb": round(mean([r["rss"] for r in runs])),
                  "frozen_val_accuracy": [round(float(r["rows"][4][logit_key]), 4) for r in runs if len(r["rows"]) > 4],
                  "final_val_accuracy": [round(float(r["rows"][-1][logit_key]), 4) for r in runs]}
        if name == "keras":
            record["final_keras_val_accuracy"] = [round(float(r["rows"][-1]["val_accuracy"]), 4) for r in runs]
        return record

    def version(module):
        try:
            return subprocess.run([os.environ.get("KERAS_PYTHON", sys.executable), "-c", f"import {module}; print({module}.__version__)"],
                                  capture_output=True, text=True, timeout=120).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return None

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown CPU")
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    software = {"cria": commit or None, "tensorflow": version("tensorflow"), "keras": version("keras")}
    return {"benchmark": "compare-keras", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": f"{os.cpu_count()}-core {cpu}",
            "software": {k: v for k, v in software.items() if v},
            "settings": {"config": "Experiments/alpaca.yaml", "seeds": seeds},
            "cria": engine("cria"), "keras": engine("keras"), "source": "scripts/compare_keras.py"}


def main():
    seeds = [int(s) for s in os.environ.get("SEEDS", "42").split()]
    cria = os.environ.get("CRIA", os.path.join(REPO, ".build", "release", "cria"))
    python = os.environ.get("KERAS_PYTHON", sys.executable)
    os.environ.setdefault("CRIA_ALPACA_DIR", os.path.join(os.path.dirname(REPO), "shared", "data", "alpaca"))
    results = {"cria": [], "keras": []}
    for seed in seeds:
        print(f"seed {seed}: cria ...", flush=True)
        results["cria"].append(run_cria(seed, cria))
        print(f"seed {seed}: keras ...", flush=True)
        results["keras"].append(run_keras(seed, python))

    lines = ["# Cria vs Keras: the alpaca recipe, same machine, same run", "",
             f"Seeds {seeds}; split seed 42; {time.strftime('%Y-%m-%d %H:%M')} on {os.uname().nodename} "
             f"({os.cpu_count()} cores).", "", "## Histories (first seed)", ""]
    lines.append("| epoch | Cria loss | Cria acc | Cria val_loss | Cria val_acc | Keras loss | Keras acc (logit>0) | Keras val_loss | Keras val_acc (logit>0) | Keras `accuracy` (0.5 on logits) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for c, k in zip(results["cria"][0]["rows"], results["keras"][0]["rows"]):
        def f(row, key):
            value = row.get(key)
            return f"{float(value):.4f}" if value not in (None, "", "NA") else "–"
        lines.append(f"| {c['epoch']} | {f(c, 'loss')} | {f(c, 'accuracy')} | {f(c, 'val_loss')} | {f(c, 'val_accuracy')} | "
                     f"{f(k, 'loss')} | {f(k, 'accuracy_logits')} | {f(k, 'val_loss')} | {f(k, 'val_accuracy_logits')} | {f(k, 'accuracy')} |")

    def stat(engine, key):
        return mean([r[key] for r in results[engine]])

    def final_val(engine):
        key = "val_accuracy" if engine == "cria" else "val_accuracy_logits"
        return [float(r["rows"][-1][key]) for r in results[engine]]

    lines += ["", "## Totals (mean over seeds)", "", "| | Cria | Keras | Keras / Cria |", "|---|---|---|---|"]
    for label, key in [("wall time, whole recipe (s)", "wall"), ("frozen phase (s)", "frozen_s"), ("fine-tune phase (s)", "fine_s")]:
        c, k = stat("cria", key), stat("keras", key)
        lines.append(f"| {label} | {c:.1f} | {k:.1f} | **{k / c:.2f}×** |")
    c, k = stat("cria", "rss"), stat("keras", "rss")
    lines.append(f"| peak RSS (MB) | {c:.0f} | {k:.0f} | Cria uses **{c / k:.2f}×** Keras's memory |")
    cv, kv = final_val("cria"), final_val("keras")
    spread = lambda v: f"{mean(v):.4f} ± {statistics.stdev(v):.4f}" if len(v) > 1 else f"{mean(v):.4f}"
    lines.append(f"| final val accuracy | {spread(cv)} | {spread(kv)} | |")
    report = "\n".join(lines) + "\n"
    out_dir = os.path.join(REPO, "runs", "compare-keras", time.strftime("%Y-%m-%d_%H-%M-%S"))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "report.md"), "w") as handle:
        handle.write(report)
    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump({e: [{k: v for k, v in r.items() if k != "rows"} for r in rs] for e, rs in results.items()}, handle, indent=1)
    results_path = os.environ.get("RESULTS", os.path.join(REPO, "Benchmarks", "results", "compare-keras.jsonl"))
    with open(results_path, "a") as handle:
        handle.write(json.dumps(results_record(seeds, results)) + "\n")
    print(report)
    print(f"written to {out_dir}/report.md; appended to {results_path}")


if __name__ == "__main__":
    main()
