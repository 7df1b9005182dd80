#!/usr/bin/env python3
"""Keras's augmentation draws, recovered from Keras's own outputs on probe images.

    python3 Tests/Fixtures/generate/make_augmentation_draws.py     # -> Tests/Fixtures/augmentation/

For every augmentation Cria offers (flip, rotation, zoom, translation, contrast,
brightness), the Keras 3 layer with Cria's recipe factor is applied with training=True to
COUNT copies of a probe image in one batch (one independent draw per image, as in fit),
and the drawn parameter is measured back from each output image:

  * probe.npy (64x64x3, float32 0..255): channel 0 and 2 hold an elongated Gaussian blob
    (sigma 6 px along x, 3 px along y, peak 200) centred at ((W-1)/2, (H-1)/2); channel 1
    is 200 on the left half, 0 on the right.
  * flip: 1 if channel 1's right half is brighter than its left, else 0.
  * rotation (degrees): the blob's principal-axis angle from second moments of channel 0,
    -0.5*atan2(2*mu11, mu20 - mu02) in degrees (rows grow downwards, Keras's positive angle
    turns counter-clockwise). Keras's range +-72 deg lies inside the unambiguous +-90.
  * zoom: sigma_x(probe) / sigma_x(output) (RandomZoom(f) with no width factor uses the
    height draw for both axes; a zoom above 1 zooms out).
  * translation_x / translation_y: the blob centroid's shift divided by the width / height.
  * contrast: std(output) / std(input) of channel 0 of grey.npy (100 + blob/4: no clipping).
  * brightness: (mean(output) - mean(input)) / 255 on grey.npy, channel 0.
The same measurement on Cria's outputs (Tests/CriaDataTests/AugmentationDistributionTests)
gives draws to compare with a two-sample Kolmogorov-Smirnov test. Interpolation error is the
same on both sides (the pinned transforms already agree with Keras to 1e-3/255), and the
calibration block records the recovery error on pinned Keras parameters.
Deterministic: the layers are seeded (seed=SEED+i, one seed per layer) and keras.utils.set_random_seed(SEED).
"""
import json
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # Tests/Fixtures/generate/ -> repository root
OUT = os.path.join(REPO, "Tests", "Fixtures", "augmentation")
COUNT = 2000
SIZE = 64
SEED = 1337


def probes(np):
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    c = (SIZE - 1) / 2
    blob = 200 * np.exp(-((x - c) ** 2 / (2 * 6.0 ** 2) + (y - c) ** 2 / (2 * 3.0 ** 2)))
    half = np.where(x < SIZE / 2, 200.0, 0.0)
    probe = np.stack([blob, half, blob], axis=-1).astype(np.float32)
    grey = np.stack([100 + blob / 4] * 3, axis=-1).astype(np.float32)
    return probe, grey


def moments(np, channel):
    """Centroid (x, y) and central second moments (mu20, mu02, mu11) of a non-negative image."""
    img = channel.astype(np.float64)
    y, x = np.mgrid[0:img.shape[0], 0:img.shape[1]].astype(np.float64)
    m = img.sum()
    cx, cy = (img * x).sum() / m, (img * y).sum() / m
    return cx, cy, (img * (x - cx) ** 2).sum() / m, (img * (y - cy) ** 2).sum() / m, (img * (x - cx) * (y - cy)).sum() / m


def recover(np, kind, out, probe, grey):
    if kind == "flip":
        ch = out[..., 1]
        return float(ch[:, SIZE // 2:].mean() > ch[:, :SIZE // 2].mean())
    if kind == "rotation":
        _, _, mu20, mu02, mu11 = moments(np, out[..., 0])
        return -0.5 * math.degrees(math.atan2(2 * mu11, mu20 - mu02))
    if kind == "zoom":
        return math.sqrt(moments(np, probe[..., 0])[2] / moments(np, out[..., 0])[2])
    if kind in ("translation_x", "translation_y"):
        a, b = moments(np, probe[..., 0]), moments(np, out[..., 0])
        return (b[0] - a[0]) / SIZE if kind == "translation_x" else (b[1] - a[1]) / SIZE
    if kind == "contrast":
        return float(out[..., 0].astype(np.float64).std() / grey[..., 0].astype(np.float64).std())
    if kind == "brightness":
        return float((out[..., 0].astype(np.float64).mean() - grey[..., 0].astype(np.float64).mean()) / 255)
    raise ValueError(kind)


def main():
    import numpy as np
    import keras
    keras.utils.set_random_seed(SEED)
    probe, grey = probes(np)
    L = keras.layers
    # Cria's preset factors (Experiments/README.md): rotation 0.2, the others 0.1.
    layers = {
        "flip": (lambda: L.RandomFlip("horizontal", seed=SEED + 0), probe, {"mode": "horizontal"}),
        "rotation": (lambda: L.RandomRotation(0.2, seed=SEED + 1), probe, {"factor": 0.2}),
        "zoom": (lambda: L.RandomZoom(0.1, seed=SEED + 2), probe, {"factor": 0.1}),
        "translation_x": (lambda: L.RandomTranslation(0.1, 0.1, seed=SEED + 3), probe, {"factor": [0.1, 0.1]}),
        "contrast": (lambda: L.RandomContrast(0.1, seed=SEED + 4), grey, {"factor": 0.1}),
        "brightness": (lambda: L.RandomBrightness(0.1, seed=SEED + 5), grey, {"factor": 0.1}),
    }
    doc = {"keras_version": keras.__version__, "count": COUNT, "size": [SIZE, SIZE], "seed": SEED,
           "draws": {}, "layers": {}, "calibration": {}}
    for name, (make, source, args) in layers.items():
        batch = np.repeat(source[None], COUNT, axis=0)
        out = keras.ops.convert_to_numpy(make()(batch, training=True))
        kinds = ["translation_x", "translation_y"] if name == "translation_x" else [name]
        for kind in kinds:
            values = [recover(np, kind, out[i], probe, grey) for i in range(COUNT)]
            doc["draws"][kind] = [round(v, 7) for v in values]
            doc["layers"][kind] = args
            print(f"{kind}: min {min(values):.4f} max {max(values):.4f} mean {np.mean(values):.4f}")

    # Recovery error on pinned parameters (lower == upper bound of the factor).
    cal = doc["calibration"]
    errs = []
    for deg in (-70, -45, -10, 0, 5, 30, 60, 71):
        f = deg / 360
        out = keras.ops.convert_to_numpy(L.RandomRotation((f, f))(probe[None], training=True))[0]
        errs.append(abs(recover(np, "rotation", out, probe, grey) - deg))
    cal["rotation_max_abs_error_degrees"] = max(errs)
    errs = []
    for z in (-0.1, -0.05, 0.0, 0.05, 0.1):
        out = keras.ops.convert_to_numpy(L.RandomZoom((z, z))(probe[None], training=True))[0]
        errs.append(abs(recover(np, "zoom", out, probe, grey) - (1 + z)))
    cal["zoom_max_abs_error"] = max(errs)
    errs = []
    for t in (-0.1, -0.03, 0.0, 0.07, 0.1):
        out = keras.ops.convert_to_numpy(L.RandomTranslation((t, t), (t, t))(probe[None], training=True))[0]
        errs.append(max(abs(recover(np, "translation_x", out, probe, grey) - t),
                        abs(recover(np, "translation_y", out, probe, grey) - t)))
    cal["translation_max_abs_error"] = max(errs)
    cal["note"] = "max |recovered - pinned| over a few pinned parameters; the KS tests compare recovered values on both sides"
    print(json.dumps(cal))
    assert cal["rotation_max_abs_error_degrees"] < 0.5, cal
    assert cal["zoom_max_abs_error"] < 0.01, cal
    assert cal["translation_max_abs_error"] < 0.005, cal
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "probe.npy"), probe)
    np.save(os.path.join(OUT, "grey.npy"), grey)
    tmp = os.path.join(OUT, "keras_draws.json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(tmp, os.path.join(OUT, "keras_draws.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
