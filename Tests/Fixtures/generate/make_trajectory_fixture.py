#!/usr/bin/env python3
"""Trajectory parity fixture: per-batch losses of a small two-phase run, float32 and float64.

    python3 Tests/Fixtures/generate/make_trajectory_fixture.py   (after make_fixtures.py; `make fixtures`)

With Cria's own augmented batches (what the committed fixture holds):
    CRIA_EXPORT_TRAJECTORY_BATCHES=/tmp/cria-batches.npy swift test --filter TrajectoryBatchExport
    python3 Tests/Fixtures/generate/make_trajectory_fixture.py /tmp/cria-batches.npy

The model is Tests/Fixtures/keras/train/model.h5 (the tutorial's transfer model on the
calibrated 0.35/96 base, Dropout(0.0), Dense(1) logits). The batches are the first 6
training-fixture images ([-1, 1]) run through RandomFlip("horizontal") + RandomRotation(0.2)
once per epoch (seeded) by Cria (the file given as argument, exported by the Swift test
TrajectoryBatchExport) or, without one, by Keras; one batch per epoch, stored in order as
batches.npy (epochs, 6, 96, 96, 3): the exact pixels both frameworks train on.

Run: 2 epochs with the base frozen, Adam(1e-3); then layers[120:] of the base trainable, a
fresh Adam(1e-4), 2 more epochs; BinaryCrossentropy(from_logits=True). In both BN modes of
the fine-tune phase: "train" (model(x, training=True): Keras 3's fit, batch statistics and
moving-average updates in the unfrozen BN layers) and "inference" (model(x, training=False):
moving statistics, gamma and beta still train). Each mode runs in float32 and again under the
"float64" dtype policy (exact arithmetic, as make_adam_reference_f64.py does).

Writes Tests/Fixtures/trajectory/{batches.npy, labels.npy, losses.json}. losses.json holds,
per mode, the per-batch losses (the loss of each batch before its update) in float32 and
float64, and a per-step tolerance for another float32 implementation:
    tol_i = 4 * max_{j<=i} |f32_j - f64_j| + 8 * B * 2^-24 * |f64_i|
i.e. a small multiple of Keras float32's own distance from exact arithmetic so far (rounding
that has entered the weights does not leave them), plus the float32 accumulation bound of a
B-term mean (B = 6) with a safety factor of 8.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fixtures as mf  # noqa: E402  (sets TF logging, seeds, paths)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

OUT = os.path.join(os.path.dirname(HERE), "trajectory")  # Tests/Fixtures/trajectory
IMAGES = 6
EPOCHS_FROZEN, EPOCHS_FINETUNE = 2, 2
SEED = 91


def batches(cria_batches):
    d = os.path.join(mf.OUT, "train")
    x = np.load(os.path.join(d, "inputs.npy"))[:IMAGES]
    y = np.load(os.path.join(d, "labels.npy"))[:IMAGES].astype(np.float32)
    if cria_batches:
        out = np.load(cria_batches).astype(np.float32)
        assert out.shape == (EPOCHS_FROZEN + EPOCHS_FINETUNE,) + x.shape, out.shape
        return out, y
    mf.fresh(SEED)
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal", seed=SEED),
                                keras.layers.RandomRotation(0.2, seed=SEED + 1)])
    out = np.stack([np.asarray(augment(x, training=True)) for _ in range(EPOCHS_FROZEN + EPOCHS_FINETUNE)])
    return out.astype(np.float32), y


def run(xs, y, mode, dtype):
    d = os.path.join(mf.OUT, "train")
    saved = keras.models.load_model(os.path.join(d, "model.h5"), compile=False)
    weights = {l.name: [np.asarray(w, dtype) for w in l.get_weights()]
               for l in saved.get_layer("mobilenetv2_0.35_96").layers if l.weights}
    dense = [np.asarray(w, dtype) for w in saved.get_layer("dense").get_weights()]
    mf.fresh(SEED + 2)
    keras.config.set_dtype_policy(dtype)   # after fresh(): clear_session resets it
    model, base = mf.build_transfer(weights, dense, mode == "train")
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    yt = tf.constant(y.astype(dtype))
    losses = []
    for phase, (epochs, lr) in enumerate(((EPOCHS_FROZEN, 1e-3), (EPOCHS_FINETUNE, 1e-4))):
        base.trainable = phase == 1
        if phase == 1:
            for layer in base.layers[:mf.FINE_TUNE_AT]:
                layer.trainable = False
        optimizer = keras.optimizers.Adam(learning_rate=lr)
        for _ in range(epochs):
            x = tf.constant(xs[len(losses)].astype(dtype))
            with tf.GradientTape() as tape:
                z = model(x, training=(mode == "train"))
                # Keras's loss object computes in floatx (float32) whatever the policy: in float64
                # the same stable formula is written out, max(z,0) - z*y + log1p(exp(-|z|)).
                loss = (loss_fn(yt, z) if dtype == "float32" else keras.ops.mean(
                    keras.ops.maximum(z, 0) - z * yt + keras.ops.log1p(keras.ops.exp(-keras.ops.abs(z)))))
            losses.append(float(loss))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
    assert model.trainable_weights[0].dtype == dtype, model.trainable_weights[0].dtype
    keras.config.set_dtype_policy("float32")
    return losses


def main():
    cria = sys.argv[1] if len(sys.argv) > 1 else None
    xs, y = batches(cria)
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "batches.npy"), xs)
    np.save(os.path.join(OUT, "labels.npy"), y)
    doc = {"keras_version": keras.__version__, "batches": "cria" if cria else "keras", "images": IMAGES, "epochs_frozen": EPOCHS_FROZEN,
           "epochs_finetune": EPOCHS_FINETUNE, "fine_tune_at": mf.FINE_TUNE_AT, "lr": [1e-3, 1e-4], "modes": {}}
    for mode in ("train", "inference"):
        f32, f64 = run(xs, y, mode, "float32"), run(xs, y, mode, "float64")
        tol, worst = [], 0.0
        for a, b in zip(f32, f64):
            worst = max(worst, abs(a - b))
            tol.append(4 * worst + 8 * IMAGES * 2.0 ** -24 * abs(b))
        doc["modes"][mode] = {"loss_float32": f32, "loss_float64": f64, "tolerance": tol}
        print(mode, "f32", f32, "\n     f64", f64, "\n     tol", tol)
    # The modes share the frozen phase, so their first losses must agree; they must part after.
    t, i = doc["modes"]["train"]["loss_float64"], doc["modes"]["inference"]["loss_float64"]
    assert abs(t[0] - i[0]) < 1e-9 and abs(t[1] - i[1]) < 1e-9, (t, i)
    assert abs(t[EPOCHS_FROZEN] - i[EPOCHS_FROZEN]) > 1e-4, "BN modes should differ in fine-tuning"
    tmp = os.path.join(OUT, "losses.json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, os.path.join(OUT, "losses.json"))


if __name__ == "__main__":
    main()
