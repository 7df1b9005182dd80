#!/usr/bin/env python3
"""Decode + resize the alpaca images: Cria vs Keras's image_dataset_from_directory, same run.

    python3 Benchmarks/data_speed.py [--rounds 3]       (make bench-data)

Cria: `cria data bench DIR --size 160 --json` (index the folder, decode with
TurboJPEG, bilinear resize into the dataset's memory, all cores), timed inside
the process. Keras: build image_dataset_from_directory(DIR, image_size=(160,
160), batch_size=32, shuffle=False) and iterate it once (decode + resize in
tf.data), timed inside the process after `import tensorflow`. Neither side's
process start-up or imports count. Interleaved rounds, medians.
Also `cria data tensor` as a whole process (start-up and the .npy write included).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERAS = r"""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, tensorflow as tf
start = time.time()
ds = keras.utils.image_dataset_from_directory(sys.argv[1], image_size=(160, 160), batch_size=32, shuffle=False, verbose=False)
n = sum(int(x.shape[0]) for x, _ in ds)
print(n, time.time() - start)
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default=os.environ.get("CRIA_ALPACA_DIR", os.path.join(os.path.dirname(REPO), "shared", "data", "alpaca")))
    parser.add_argument("--cria", default=os.path.join(REPO, ".build", "release", "cria"))
    args = parser.parse_args()
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(args.data) for f in names
                   if f.lower().endswith((".jpg", ".jpeg", ".png", ".bmp")))
    output = os.path.join(REPO, "bench-out", "data-speed.npy")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    cria, keras, process = [], [], []
    for _ in range(args.rounds):
        result = subprocess.run([args.cria, "data", "bench", args.data, "--size", "160", "--rounds", "1", "--json"],
                                check=True, capture_output=True, text=True)
        cria.append(json.loads(result.stdout)["data_seconds"])
        start = time.time()
        subprocess.run([args.cria, "data", "tensor", *files, "--size", "160", "--output", output], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process.append(time.time() - start)
        result = subprocess.run([sys.executable, "-c", KERAS, args.data], check=True, capture_output=True, text=True)
        count, seconds = result.stdout.split()[-2:]
        keras.append(float(seconds))
    c, k, p = statistics.median(cria), statistics.median(keras), statistics.median(process)
    print(f"{len(files)} images, decode + bilinear resize to 160x160, medians over {args.rounds} rounds")
    print(f"| | seconds | images/s |\n|---|---|---|\n| Cria (`cria data bench`, in process) | {c:.2f} | {len(files) / c:.0f} |")
    print(f"| Keras `image_dataset_from_directory`, iterated once (in process, after import) | {k:.2f} | {len(files) / k:.0f} |")
    print(f"| **Keras / Cria** | **{k / c:.2f}×** | |")
    print(f"| Cria `cria data tensor` (whole process, incl. start-up and writing the 80 MB .npy) | {p:.2f} | {len(files) / p:.0f} |")


if __name__ == "__main__":
    main()
