#!/usr/bin/env python3
"""Check that Keras 3 loads the model files Cria writes, and record its outputs.

Usage:
    python3 Tests/Fixtures/generate/check_cria_saves.py DIR [--stem cria_transfer]

DIR holds what Cria's `KerasWriter` wrote (the Swift test
`SavedModelRoundTripTests` writes them when `CRIA_WRITE_ROUNDTRIP=DIR` is set;
`make check-keras-roundtrip` does both steps):

  <stem>.h5          Keras 3 legacy full model   -> keras.models.load_model
  <stem>.weights.h5  Keras 3 weights (optional)  -> model.load_weights into a
                     model rebuilt from the .h5's config with fresh weights

For each file it predicts on DIR/input.npy (created here, seeded, values in
[0, 255], if absent) and writes `keras_full_output.npy` /
`keras_weights_output.npy`, the predictions Cria's tests compare against.

It also re-saves the loaded model with Keras itself and compares the HDF5
trees: every group, dataset (path, shape, dtype, values) and attribute
(names, string values, charsets) must match what Keras writes for the same
model, except the attributes Keras does not write (`cria_metadata`) and the
text of `model_config`, whose layers are compared after parsing.  Values
equal after Keras's positional `weight_names` loading prove the order is right.

Exits non-zero on any mismatch.  Needs keras>=3, tensorflow, h5py.
"""
import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import h5py  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import keras  # noqa: E402
from keras.src.legacy.saving import saving_utils  # noqa: E402

failures = []


def fail(message):
    failures.append(message)
    print("FAIL:", message)


def tree(path):
    """{hdf5 path: description} for every object and attribute in a file."""
    out = {}
    with h5py.File(path, "r") as f:
        def attrs(name, obj):
            for key in obj.attrs:
                value = obj.attrs[key]
                raw = obj.attrs.get_id(key)
                kind = raw.get_type()
                if isinstance(kind, h5py.h5t.TypeStringID):
                    cset = "utf8" if kind.get_cset() == h5py.h5t.CSET_UTF8 else "ascii"
                    vlen = kind.is_variable_str()
                    if isinstance(value, np.ndarray):
                        value = [v.decode() if isinstance(v, bytes) else str(v) for v in value.tolist()]
                    elif isinstance(value, bytes):
                        value = value.decode()
                    desc = ("str", cset, vlen, raw.shape, value)
                else:
                    desc = ("num", str(kind.dtype), raw.shape, np.asarray(value).tolist())
                out[f"{name}@{key}"] = desc

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = ("dataset", obj.shape, str(obj.dtype), obj.chunks, obj.compression)
                out[name + "#values"] = np.asarray(obj[()])
            else:
                out[name] = ("group",)
            attrs(name, obj)

        attrs("/", f)
        f.visititems(visit)
    return out


def compare_trees(ours, keras_path, label, ignore_attrs=("cria_metadata",)):
    theirs = tree(keras_path)
    for key in sorted(set(ours) | set(theirs)):
        if any(key.endswith("@" + a) for a in ignore_attrs):
            continue
        if key.endswith("@model_config"):
            continue  # compared structurally below
        if key not in theirs:
            fail(f"{label}: Cria's file has {key}, Keras's does not")
        elif key not in ours:
            fail(f"{label}: Keras's file has {key}, Cria's does not")
        elif key.endswith("#values"):
            if ours[key].dtype != theirs[key].dtype or not np.array_equal(ours[key], theirs[key]):
                fail(f"{label}: values of {key[:-7]} differ after Keras loaded them")
        elif ours[key] != theirs[key]:
            fail(f"{label}: {key}: Cria {ours[key]!r} != Keras {theirs[key]!r}")
    print(f"{label}: compared {len(ours)} entries against Keras's own save")


def layer_summary(config):
    """(class, name, trainable, inbound layer names) per layer, recursively."""
    rows = []

    def walk(model_config, prefix):
        for layer in model_config["config"]["layers"]:
            name = layer.get("name", layer["config"].get("name"))
            inbound = []
            for node in layer.get("inbound_nodes", []):
                text = json.dumps(node)
                inbound += [h.split('"')[0] for h in text.split('"keras_history": ["')[1:]]
            rows.append((prefix + name, layer["class_name"], layer["config"].get("trainable", True), tuple(inbound)))
            if layer["class_name"] in ("Functional", "Sequential", "Model"):
                walk(layer, prefix + name + "/")

    walk(config, "")
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--stem", default="cria_transfer")
    parser.add_argument("--input", help="input .npy (default DIR/input.npy, created if absent)")
    parser.add_argument("--expected", help="what the model Cria re-saved predicted on --input (checked within 1e-4 of scale)")
    parser.add_argument("--prefix", default="", help="prefix for the output .npy names")
    args = parser.parse_args()
    d = args.dir
    full_path = os.path.join(d, args.stem + ".h5")
    weights_path = os.path.join(d, args.stem + ".weights.h5")
    input_path = args.input or os.path.join(d, "input.npy")
    if not os.path.exists(full_path):
        sys.exit(f"{full_path}: missing; run the Swift test with CRIA_WRITE_ROUNDTRIP={d} first")

    model = keras.models.load_model(full_path, compile=False)
    print(f"{full_path}: loaded by Keras {keras.__version__}: {model.name}, {len(model.layers)} layers, "
          f"{model.count_params()} params ({sum(int(np.prod(w.shape)) for w in model.trainable_weights)} trainable)")
    if not os.path.exists(input_path):
        shape = (2,) + tuple(model.input_shape[1:])
        x = np.random.default_rng(20261127).uniform(0, 255, size=shape).astype(np.float32)
        np.save(input_path, x)
        print(f"{input_path}: created {shape}")
    x = np.load(input_path)
    full_output = np.asarray(model.predict(x, verbose=0), dtype=np.float32)
    np.save(os.path.join(d, args.prefix + "keras_full_output.npy"), full_output)
    print("keras_full_output:", full_output.reshape(len(x), -1)[:, :4].tolist())
    if args.expected:
        expected = np.load(args.expected)
        difference = float(np.max(np.abs(full_output - expected)))
        scale = float(np.max(np.abs(expected)))
        print(f"vs {args.expected}: max|diff| = {difference:g} ({difference / scale:g} of scale {scale:g})")
        if difference > 1e-4 * scale:
            fail(f"{full_path}: Keras's predictions differ from {args.expected} by {difference}")

    with h5py.File(full_path, "r") as f:
        cria_config = json.loads(f.attrs["model_config"])
        metadata = json.loads(f.attrs["cria_metadata"]) if "cria_metadata" in f.attrs else None
    print("cria_metadata:", metadata)
    # Trainable flags as Keras rebuilt them, against the config Cria wrote.
    resaved_config = {"class_name": model.__class__.__name__, "config": model.get_config()}
    ours, keras_rows = layer_summary(cria_config), layer_summary(json.loads(json.dumps(resaved_config, default=str)))
    if [r[:3] for r in ours] != [r[:3] for r in keras_rows] or [r[3] for r in ours] != [r[3] for r in keras_rows]:
        for a, b in zip(ours, keras_rows):
            if a != b:
                fail(f"config: Cria {a} != Keras {b}")
                break
        if len(ours) != len(keras_rows):
            fail(f"config: {len(ours)} layers in Cria's config, {len(keras_rows)} after Keras rebuilt it")
    else:
        print(f"config: {len(ours)} layers (nested included) rebuilt with the same names, classes, trainable flags and connections")

    with tempfile.TemporaryDirectory() as tmp:
        resave = os.path.join(tmp, "keras.h5")
        model.save(resave)
        compare_trees(tree(full_path), resave, "legacy .h5")

        if os.path.exists(weights_path):
            with h5py.File(full_path, "r") as f:
                fresh = saving_utils.model_from_config(json.loads(f.attrs["model_config"]))
            before = np.asarray(fresh.predict(x, verbose=0))
            fresh.load_weights(weights_path)
            weights_output = np.asarray(fresh.predict(x, verbose=0), dtype=np.float32)
            np.save(os.path.join(d, args.prefix + "keras_weights_output.npy"), weights_output)
            difference = float(np.max(np.abs(weights_output - full_output)))
            print(f"{weights_path}: load_weights into a rebuilt model; max|diff| vs load_model = {difference:g} "
                  f"(before loading: {float(np.max(np.abs(before - full_output))):g})")
            if difference > 1e-6:
                fail(f"{weights_path}: predictions differ from the full model's by {difference}")
            resave_weights = os.path.join(tmp, "keras.weights.h5")
            fresh.save_weights(resave_weights)
            compare_trees(tree(weights_path), resave_weights, ".weights.h5")

    if failures:
        sys.exit(f"{len(failures)} problem(s)")
    print("OK: Keras loads Cria's files; outputs written to", d)


if __name__ == "__main__":
    main()
