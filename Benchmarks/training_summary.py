#!/usr/bin/env python3
"""Training rows of one compare.sh run: medians over rounds, ratios, fraction of the bound.

  training_summary.py LOG --machine TEXT --size 160 --threads 2 --rounds 3 [--append FILE] [--note TEXT]

LOG holds, per round, one `cria bench --json` object (its "training" array:
img/s, bound and peak RSS per depth) and one line per other engine from
Benchmarks/training_engines.py ({"engine": "keras"|"torch", "record": "train",
"train_<depth>_b32_img_s", "train_<depth>_b32_peak_rss_mb", and the count of
trainable variables or tensors it checked}). Ratios are of
medians over the rounds of this one run, and per round (engines of a round ran
one after another): on a shared machine only numbers measured side by side
compare. With --append the run is appended as one JSON line to FILE.
"""
import argparse
import datetime
import json
import statistics
from collections import defaultdict

DEPTHS = ["frozen", "finetune140", "finetune120", "finetune100", "finetune50", "all"]
LABELS = {"frozen": "frozen base", "finetune140": "fine_tune_at: 140", "finetune120": "fine_tune_at: 120",
          "finetune100": "fine_tune_at: 100", "finetune50": "fine_tune_at: 50", "all": "trainable: all"}


def read(path):
    """Per round (in log order): {engine: {depth: {"img_s", "peak_rss_mb", ...}}}."""
    rounds, current, software = [], {}, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "training" in record and "model" in record:
                engine = "cria"
                depths = {row["key"]: {"img_s": row["img_s"], "peak_rss_mb": row["peak_rss_mb"],
                                       "bound_img_s": row["bound_img_s"], "fraction_of_bound": row["fraction_of_bound"],
                                       "trainable_multiply_adds_m": row["trainable_multiply_adds_m"]}
                          for row in record["training"]}
                depths["inference_b32_img_s"] = record.get("inference_b32_img_s")
            elif record.get("record") == "train" and record.get("engine") in ("keras", "torch"):
                engine = record["engine"]
                for key in ("keras", "tensorflow", "torch", "cpu_capability"):
                    if key in record:
                        software[key] = record[key]
                # The count of what each depth trained (variables in Keras, parameter
                # tensors in PyTorch), which training_engines.py checks against the
                # depth: the record that the timed step was that depth's.
                depths = {d: {"img_s": record.get(f"train_{d}_b32_img_s"), "peak_rss_mb": record.get(f"train_{d}_b32_peak_rss_mb"),
                              "trainable_count": record.get(f"train_{d}_trainable_variables",
                                                            record.get(f"train_{d}_trainable_tensors"))}
                          for d in DEPTHS if f"train_{d}_b32_img_s" in record}
            else:
                continue
            if engine in current:  # a second record of an engine starts the next round
                rounds.append(current)
                current = {}
            current[engine] = depths
    if current:
        rounds.append(current)
    return rounds, software


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log")
    parser.add_argument("--machine", default="")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--append")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    rounds, software = read(args.log)
    engines = [e for e in ("cria", "keras", "torch") if any(e in r for r in rounds)]

    med = defaultdict(dict)
    for engine in engines:
        for depth in DEPTHS:
            for field in ("img_s", "peak_rss_mb", "bound_img_s", "fraction_of_bound", "trainable_multiply_adds_m",
                          "trainable_count"):
                value = median([r[engine][depth].get(field) for r in rounds if engine in r and depth in r[engine]])
                if value is not None:
                    med[engine].setdefault(depth, {})[field] = round(value, 4)
    inference = median([r["cria"].get("inference_b32_img_s") for r in rounds if "cria" in r])

    def ratio(a, b):
        return round(a / b, 3) if a and b else None

    ratios, per_round = {}, defaultdict(dict)
    for other in ("keras", "torch"):
        if other not in engines or "cria" not in engines:
            continue
        for depth in DEPTHS:
            c, o = med["cria"].get(depth, {}).get("img_s"), med[other].get(depth, {}).get("img_s")
            ratios[f"cria_over_{other}_{depth}"] = ratio(c, o)
            per_round[f"cria_over_{other}_{depth}"] = [
                ratio(r["cria"][depth]["img_s"], r[other][depth]["img_s"])
                for r in rounds if "cria" in r and other in r and depth in r["cria"] and depth in r[other]]
    if "keras" in engines and "cria" in engines:
        c, k = med["cria"].get("all", {}).get("peak_rss_mb"), med["keras"].get("all", {}).get("peak_rss_mb")
        ratios["cria_over_keras_peak_rss_all"] = ratio(c, k)

    print(f"Training steps, batch 32, MobileNetV2 1.0/{args.size}: medians of {len(rounds)} interleaved rounds "
          f"({args.threads} threads, {args.machine})")
    if inference:
        print(f"Cria inference in the same runs: {inference:.1f} img/s (batch 32)")
    print()
    head = "| depth | Cria img/s | bound | of bound |" + "".join(f" {e.capitalize()} img/s | Cria / {e.capitalize()} |" for e in engines[1:]) \
        + " Cria RSS MB |" + "".join(f" {e.capitalize()} RSS MB |" for e in engines[1:])
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for depth in DEPTHS:
        c = med["cria"].get(depth, {})
        cells = [LABELS[depth], f"{c.get('img_s', 0):.1f}", f"{c.get('bound_img_s', 0):.1f}",
                 f"{100 * c.get('fraction_of_bound', 0):.0f} %"]
        for other in engines[1:]:
            o = med[other].get(depth, {})
            cells += [f"{o.get('img_s', 0):.1f}", f"{ratios.get(f'cria_over_{other}_{depth}') or 0:.2f}x"]
        cells.append(f"{c.get('peak_rss_mb', 0):.0f}")
        cells += [f"{med[other].get(depth, {}).get('peak_rss_mb', 0):.0f}" for other in engines[1:]]
        print("| " + " | ".join(cells) + " |")

    if args.append:
        now = datetime.datetime.now(datetime.timezone.utc)
        record = {"benchmark": "training-compare", "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "date": now.strftime("%Y-%m-%d"), "machine": args.machine,
                  "software": software, "settings": {"size": args.size, "threads": args.threads, "rounds": len(rounds),
                                                     "batch": 32},
                  "cria_inference_b32_img_s": inference, "median": med, "ratios": ratios, "per_round": per_round,
                  "log": args.log}
        if args.note:
            record["note"] = args.note
        with open(args.append, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
