#!/usr/bin/env python3
"""Keras's side of the cross-validated parity harness: the seed's recipe on K folds.

Regenerate the committed data (Keras 3 with tensorflow-cpu; resumes where it stopped):

    nice -n 19 python3 Notebooks-export/keras_cv.py --folds 10 --seeds 1 2 3 \\
        --configs recipe recipe-bn-inference flip none

Each finished run appends one JSON line to Notebooks-export/parity/keras-cv.jsonl
(--output); runs whose (config, folds, fold, seed) are already there are skipped.

Folds (Cria's `data.folds: K` uses the same definition):
  * the files are indexed by Keras's own `dataset_utils.index_directory` with
    shuffle=True, seed=--data-seed (42), exactly as image_dataset_from_directory
    does before validation_split: np.random.RandomState(42) shuffles the paths and a
    fresh RandomState(42) the labels;
  * with n files in that order, fold k (0-based) holds positions [k*n//K, (k+1)*n//K);
    the training set is every other position, in order.
Images are read by Keras's own `paths_and_labels_to_dataset` (bilinear resize, no
antialias, float32 in 0..255); the training set is shuffled per epoch as
image_dataset_from_directory(batch_size=32, seed=42) does (buffer 8*32, seed 42); the
held-out fold is not shuffled.

Recipe (keras_reference.py): keras.utils.set_random_seed(seed); Input -> augmentation
-> preprocess_input -> MobileNetV2 base (Weights/dog_breed_mobilenetv2.h5's nested base)
-> GlobalAveragePooling2D -> Dropout(0.2) -> Dense(1) logits; BinaryCrossentropy
(from_logits=True); 5 epochs with the base frozen, Adam 1e-3; then layers[120:] of the
base trainable, Adam 1e-4, 5 more epochs; batch 32; 160x160.

Configs:
  recipe               flip+rotation 0.2; base(x, training=False) as the tutorial writes it.
                       Keras 3's Functional.call injects the outer training=True into every
                       nested layer (keras/src/models/functional.py, operation_fn), and
                       BatchNormalization uses batch statistics when `training and
                       self.trainable`: the unfrozen BN layers train on batch statistics
                       during fine-tuning. fine_tune_bn_mode "train".
  recipe-bn-inference  flip+rotation 0.2; the base is wrapped in a layer that always calls it
                       with training=False, so the unfrozen BN layers use their moving
                       statistics (never updated) while gamma and beta still train: Cria's
                       bn_mode "inference". (Setting BN.trainable=False would also give
                       inference mode, but would freeze gamma and beta too.)
  flip                 RandomFlip("horizontal") only, BN "train".
  none                 no augmentation, BN "train".

Per run: val_accuracy = mean(1[logit > 0] == label) over the held-out fold; val_loss = mean
BCE from logits (float64); val_keras_binary_accuracy = Keras's BinaryAccuracy(threshold=0.5)
on the raw logits (what metrics=["accuracy"] reports: the known trap);
train_accuracy_final = the last fine-tune epoch's training accuracy (logit > 0, augmented,
dropout on), as fit reports it.
"""
import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_NAME = "mobilenetv2_1.00_160"
FINE_TUNE_AT = 120
IMG_SIZE = (160, 160)
BATCH = 32
CONFIGS = {
    "recipe": {"augment": "flip+rotation", "fine_tune_bn_mode": "train"},
    "recipe-bn-inference": {"augment": "flip+rotation", "fine_tune_bn_mode": "inference"},
    "flip": {"augment": "flip", "fine_tune_bn_mode": "train"},
    "none": {"augment": "none", "fine_tune_bn_mode": "train"},
}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("CRIA_ALPACA_DIR")
                    or os.path.join(os.path.dirname(REPO), "shared", "data", "alpaca"))
    ap.add_argument("--weights", default=os.path.join(REPO, "Weights", "dog_breed_mobilenetv2.h5"))
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--only-folds", type=int, nargs="*", help="run only these fold indices")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--configs", nargs="+", default=["recipe", "recipe-bn-inference", "flip", "none"],
                    choices=sorted(CONFIGS))
    ap.add_argument("--data-seed", type=int, default=42, help="index_directory / shuffle seed (the split seed)")
    ap.add_argument("--epochs-frozen", type=int, default=5)
    ap.add_argument("--epochs-finetune", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--output", default=os.path.join(REPO, "Notebooks-export", "parity", "keras-cv.jsonl"))
    ap.add_argument("--log", default=None, help="progress log (default: stderr)")
    return ap.parse_args()


def fold_split(n, folds, k):
    """Positions of fold k and of its training set, in order."""
    lo, hi = k * n // folds, (k + 1) * n // folds
    return list(range(lo, hi)), [i for i in range(n) if i < lo or i >= hi]


def done_keys(path):
    keys = set()
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    r = json.loads(line)
                    keys.add((r["config"], r["folds"], r["fold"], r["seed"]))
    return keys


def append_line(path, record):
    """One O_APPEND write of a whole line, then fsync: a crash leaves whole lines only."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = (json.dumps(record, sort_keys=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def main():
    args = parse_args()
    log = open(args.log, "a", buffering=1) if args.log else sys.stderr

    def say(msg):
        log.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + msg + "\n")

    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    from keras.src.utils import dataset_utils, image_dataset_utils

    paths, labels, class_names = dataset_utils.index_directory(
        args.data, "inferred", formats=image_dataset_utils.ALLOWLIST_FORMATS,
        shuffle=True, seed=args.data_seed)
    n = len(paths)
    say(f"{n} files, classes {class_names}, first {os.path.relpath(paths[0], args.data)}")

    src = keras.models.load_model(args.weights, compile=False)
    base_weights = src.get_layer(BASE_NAME).get_weights()
    del src
    keras.backend.clear_session()

    class InferenceBase(keras.layers.Layer):
        """Calls the base with training=False whatever the outer call says (BN on moving statistics)."""
        def __init__(self, base, **kw):
            super().__init__(**kw)
            self.base = base

        def call(self, inputs, training=None):
            return self.base(inputs, training=False)

    def dataset(idx, shuffle):
        ds = image_dataset_utils.paths_and_labels_to_dataset(
            image_paths=[paths[i] for i in idx], image_size=IMG_SIZE, num_channels=3,
            labels=[labels[i] for i in idx], label_mode="int", num_classes=len(class_names),
            interpolation="bilinear", data_format="channels_last",
            shuffle=shuffle, shuffle_buffer_size=BATCH * 8, seed=args.data_seed)
        return ds.batch(BATCH).prefetch(tf.data.AUTOTUNE)

    def run(config, fold, seed):
        spec = CONFIGS[config]
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        val_idx, train_idx = fold_split(n, args.folds, fold)
        train_ds, val_ds = dataset(train_idx, True), dataset(val_idx, False)

        layers = []
        if spec["augment"] in ("flip", "flip+rotation"):
            layers.append(keras.layers.RandomFlip("horizontal"))
        if spec["augment"] == "flip+rotation":
            layers.append(keras.layers.RandomRotation(0.2))
        base = keras.applications.MobileNetV2(input_shape=IMG_SIZE + (3,), include_top=False, weights=None)
        base.set_weights(base_weights)
        base.trainable = False
        inputs = keras.Input(shape=IMG_SIZE + (3,))
        x = keras.Sequential(layers, name="data_augmentation")(inputs) if layers else inputs
        x = keras.applications.mobilenet_v2.preprocess_input(x)
        if spec["fine_tune_bn_mode"] == "inference":
            x = InferenceBase(base)(x)
        else:
            x = base(x, training=False)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dropout(0.2)(x)
        model = keras.Model(inputs, keras.layers.Dense(1)(x))

        def compile_model(lr):
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                          loss=keras.losses.BinaryCrossentropy(from_logits=True),
                          metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy_logits")])

        started = time.perf_counter()
        compile_model(1e-3)
        model.fit(train_ds, epochs=args.epochs_frozen, verbose=0)
        base.trainable = True
        for layer in base.layers[:FINE_TUNE_AT]:
            layer.trainable = False
        compile_model(1e-4)
        history = model.fit(train_ds, epochs=args.epochs_frozen + args.epochs_finetune,
                            initial_epoch=args.epochs_frozen, verbose=0)
        # Evidence of the BN mode: did the unfrozen BN layers' moving statistics or gammas move?
        bn = [l for l in base.layers[FINE_TUNE_AT:] if isinstance(l, keras.layers.BatchNormalization)]
        moved = lambda attr: any(not np.array_equal(getattr(l, attr).numpy(), before_of(l, attr)) for l in bn)
        before_of = lambda l, attr: base_weights[[id(w) for w in base.weights].index(id(getattr(l, attr)))]
        logits = np.concatenate([model(xb, training=False).numpy().reshape(-1) for xb, _ in val_ds]).astype(np.float64)
        y = np.array([labels[i] for i in val_idx], dtype=np.float64)
        # BCE from logits, stably: max(z,0) - z*y + log(1 + exp(-|z|)).
        loss = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
        return {
            "framework": "keras", "keras_version": keras.__version__, "tensorflow_version": tf.__version__,
            "config": config, "augment": spec["augment"], "fine_tune_bn_mode": spec["fine_tune_bn_mode"],
            "folds": args.folds, "fold": fold, "seed": seed, "data_seed": args.data_seed,
            "n_train": len(train_idx), "n_val": len(val_idx),
            "val_accuracy": float(np.mean((logits > 0) == (y == 1))),
            "val_loss": float(np.mean(loss)),
            "val_keras_binary_accuracy": float(np.mean((logits > 0.5) == (y == 1))),
            "train_accuracy_final": float(history.history["accuracy_logits"][-1]),
            "bn_moving_mean_moved": bool(moved("moving_mean")), "bn_gamma_moved": bool(moved("gamma")),
            "seconds": round(time.perf_counter() - started, 1),
        }

    done = done_keys(args.output)
    folds = args.only_folds if args.only_folds else range(args.folds)
    # Configs innermost: paired (fold, seed) comparisons between configs fill in together.
    grid = [(c, k, s) for group in (args.configs[:2], args.configs[2:]) for s in args.seeds for k in folds for c in group]
    todo = [g for g in grid if (g[0], args.folds, g[1], g[2]) not in done]
    say(f"{len(grid) - len(todo)} of {len(grid)} runs already in {args.output}")
    for i, (config, fold, seed) in enumerate(todo):
        record = run(config, fold, seed)
        append_line(args.output, record)
        say(f"[{i + 1}/{len(todo)}] {config} fold {fold} seed {seed}: val_accuracy {record['val_accuracy']:.4f} "
            f"val_loss {record['val_loss']:.4f} ({record['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
