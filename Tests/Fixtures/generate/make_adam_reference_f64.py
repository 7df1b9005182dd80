#!/usr/bin/env python3
"""Exact-arithmetic reference for the three-Adam-step training fixture.

    python3 Tests/Fixtures/generate/make_adam_reference_f64.py   (after make_fixtures.py)

Why: Adam's first steps move a weight by about lr·sign(g) whatever |g| is, so where
a gradient is float32 rounding noise two float32 implementations step opposite
ways. Keras against itself (train_on_batch against a GradientTape loop) ends
2.5e-4 apart after three steps, above the 1e-4 tolerance of the test. This script
reruns the same three steps in float64 (Keras 3 under the "float64" dtype policy,
the committed model's weights and inputs), which is the result exact arithmetic
would give, and records how far Keras's own float32 goldens (train/<mode>/after3)
are from it, tensor by tensor. Cria's test then holds Cria to the same reference:
no further from exact arithmetic than Keras float32 is.

Writes, under Tests/Fixtures/keras/train/ (float64 results stored as float32,
6e-8 relative): <mode>/grad_f64/, after1_f64/, grad2_f64/ and after3_f64/
<layer>__<var>.npy (the first step's gradients, the weights after one step,
the second step's gradients at those weights, the weights after three steps),
prefix_f64_block_13_pad.npy (the frozen prefix's output), and adam_f64.json
(Keras float32's distance from them).
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

TOLERANCE = 1e-4


def save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.asarray(array, np.float32))


def main():
    d = os.path.join(mf.OUT, "train")
    x32 = np.load(os.path.join(d, "inputs.npy"))
    y32 = np.load(os.path.join(d, "labels.npy"))
    saved = keras.models.load_model(os.path.join(d, "model.h5"), compile=False)
    base32 = saved.get_layer("mobilenetv2_0.35_96")
    weights = {l.name: [np.asarray(w, np.float64) for w in l.get_weights()] for l in base32.layers if l.weights}
    dense = [np.asarray(w, np.float64) for w in saved.get_layer("dense").get_weights()]
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    # The frozen prefix's output (base.layers[:120] end at block_13_pad) in float64: fed to
    # Cria's trainable part, it separates the prefix's float32 rounding from the rest.
    mf.fresh(84)
    keras.config.set_dtype_policy("float64")
    exact_base = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), include_top=False, weights=None)
    for layer in exact_base.layers:
        if layer.weights:
            layer.set_weights(weights[layer.name])
    boundary = keras.Model(exact_base.input, exact_base.get_layer("block_13_pad").output)
    save(os.path.join(d, "prefix_f64_block_13_pad.npy"), np.asarray(boundary(x32.astype(np.float64), training=False)))
    report = {"note": __doc__.strip().split("\n\n")[1], "tolerance_relative_to_tensor_max": TOLERANCE, "modes": {}}
    for mode, base_training in (("train", True), ("inference", False)):
        mf.fresh(84)
        keras.config.set_dtype_policy("float64")  # after fresh(): clear_session resets it
        model, _ = mf.build_transfer(weights, dense, base_training)
        assert model.trainable_weights[0].dtype == "float64"
        x, y = tf.constant(x32.astype(np.float64)), tf.constant(y32.astype(np.float64))
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=base_training))
        gradients = {}
        for (name, _), g in zip(mf.trainable_vars(model), tape.gradient(loss, model.trainable_weights)):
            exact = np.asarray(g, np.float64)
            out = os.path.join(d, mode, "grad_f64", name + ".npy")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            np.save(out, exact.astype(np.float32))
            golden = np.load(os.path.join(d, mode, "grad", name + ".npy")).astype(np.float64)
            gradients[name] = float(np.abs(golden - exact).max() / max(np.abs(exact).max(), 1e-30))
        worst_gradient = max(gradients.items(), key=lambda kv: kv[1])
        print(f"{mode}: Keras float32 gradients vs float64: worst {worst_gradient[1]:.3g} of the tensor's scale ({worst_gradient[0]})")
        optimizer = keras.optimizers.Adam(learning_rate=1e-3)
        step_losses = []
        for step in range(3):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=base_training))
            step_losses.append(float(loss))
            step_gradients = tape.gradient(loss, model.trainable_weights)
            if step == 1:
                # The second step's gradients at the first step's exact weights: Cria, given
                # the same weights, must reproduce them (no rounding history in between).
                for (name, _), g in zip(mf.trainable_vars(model), step_gradients):
                    save(os.path.join(d, mode, "grad2_f64", name + ".npy"), np.asarray(g, np.float64))
            optimizer.apply_gradients(zip(step_gradients, model.trainable_weights))
            if step == 0:
                for name, variable in mf.trainable_vars(model):
                    save(os.path.join(d, mode, "after1_f64", name + ".npy"), np.asarray(variable.numpy(), np.float64))
        tensors = {}
        for name, variable in mf.trainable_vars(model):
            exact = np.asarray(variable.numpy(), np.float64)
            out = os.path.join(d, mode, "after3_f64", name + ".npy")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            np.save(out, exact.astype(np.float32))
            golden = np.load(os.path.join(d, mode, "after3", name + ".npy")).astype(np.float64)
            scale = max(float(np.abs(golden).max()), 1e-3)
            difference = np.abs(golden - exact)
            tensors[name] = {"keras_float32_worst": float(difference.max()),
                             "keras_float32_beyond_tolerance": int((difference > TOLERANCE * scale).sum()),
                             "count": int(difference.size)}
        worst = max(tensors.items(), key=lambda kv: kv[1]["keras_float32_worst"])
        beyond = sum(t["keras_float32_beyond_tolerance"] for t in tensors.values())
        print(f"{mode}: Keras float32 vs float64 after 3 Adam steps: worst {worst[1]['keras_float32_worst']:.3g} "
              f"({worst[0]}), {beyond} of {sum(t['count'] for t in tensors.values())} weights beyond 1e-4 of their tensor's scale")
        print(f"{mode}: float64 step losses {step_losses}")
        report["modes"][mode] = {"step_losses_float64": step_losses, "after3": tensors, "gradient_relative_error_keras_float32": gradients}
    with open(os.path.join(d, "adam_f64.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
