#!/usr/bin/env python3
"""Decode + resize the alpaca images: Cria vs Keras's image_dataset_from_directory, same run.

    python3 Benchmarks/data_speed.py [--rounds 3]       (make bench-data)

Cria: `cria data tensor <every image> --size 160 --output x.npy` (decode with
TurboJPEG, bilinear resize, write float32 NHWC). Keras: build
image_dataset_from_directory(DIR, image_size=(160, 160), batch_size=32) and
iterate it once (decode + resize in tf.data). Wall time of each, measured from
outside by the same clock, interleaved, medians over rounds; TensorFlow's
import time is reported separately and not counted against Keras.
"""
import argparse
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
    cria, keras = [], []
    for _ in range(args.rounds):
        start = time.time()
        subprocess.run([args.cria, "data", "tensor", *files, "--size", "160", "--output", output], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cria.append(time.time() - start)
        result = subprocess.run([sys.executable, "-c", KERAS, args.data], check=True, capture_output=True, text=True)
        count, seconds = result.stdout.split()[-2:]
        keras.append(float(seconds))
    c, k = statistics.median(cria), statistics.median(keras)
    print(f"{len(files)} images, decode + bilinear resize to 160x160, medians over {args.rounds} rounds")
    print(f"| | seconds | images/s |\n|---|---|---|\n| Cria (`cria data tensor`, whole process) | {c:.2f} | {len(files) / c:.0f} |")
    print(f"| Keras `image_dataset_from_directory`, iterated once (after import) | {k:.2f} | {len(files) / k:.0f} |")
    print(f"| **Keras / Cria** | **{k / c:.2f}×** | |")


if __name__ == "__main__":
    main()
