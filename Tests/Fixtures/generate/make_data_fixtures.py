"""Writes the CriaData fixtures under Tests/Fixtures/data/ from TensorFlow and Keras.

Run from the repository root:  python3 Tests/Fixtures/generate/make_data_fixtures.py
Needs tensorflow, keras 3, numpy and pillow. Tests never need any of them: they only
read what this script commits (a few MB).

What it writes, and which Cria behaviour each file pins down:
- splits/<name>.json      Keras's own image_dataset_from_directory(...).file_paths for
                          synthetic trees (1, 2, 10, 327 files) and seeds 42, 1, 1234.
- splits/alpaca.json      the seed-42 split of the real alpaca folder (relative paths).
- numpy_shuffle.json      np.random.RandomState(seed).shuffle(list(range(n))).
- decode/*                tiny JPEG/PNG/BMP files and TF's decode_image(channels=3) arrays.
- resize/*                tf.image.resize outputs and image_dataset_from_directory outputs
                          with crop_to_aspect_ratio.
- alpaca/*                TF-decoded-and-resized 160x160 arrays of a few real photos.
- augment/*               Keras 3 augmentation layers applied with pinned parameters.
- fashion_mnist/*         IDX facts and TF-resized RGB sneakers from the Debian IDX files.
"""
import io
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import tensorflow as tf
import keras
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # Tests/Fixtures/generate/ -> repository root
OUT = os.path.join(ROOT, "Tests", "Fixtures", "data")
ALPACA = os.environ.get("CRIA_ALPACA_DIR", os.path.join(ROOT, "..", "shared", "data", "alpaca"))
SEEDS = [42, 1, 1234]


def out(*parts):
    path = os.path.join(OUT, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def save_json(value, *parts):
    with open(out(*parts), "w") as f:
        json.dump(value, f, indent=1, ensure_ascii=False)
        f.write("\n")


def relative(paths, directory):
    return [os.path.relpath(p, directory) for p in paths]


# --- Splits ---------------------------------------------------------------------------

def tree_ten():
    # Names that sort differently by code point, locale and case; non-images; a hidden
    # class folder; nested folders; a hidden file with an image extension (Keras keeps it).
    # Ten of these are images.
    return [
        "b/Zeta.JPG", "b/alpha.png", "b/\u00e9mile.jpeg", "b/\u00c9mile.jpg",
        "b/a b.png", "b/notes.txt", "a/sub/x.png", "a/sub2/y.PNG", "a/.hidden.jpg",
        "a/readme.md", ".git/z.png", "a/x.bmp", "a/y.gif",
    ]


def tree_many():
    rng = np.random.RandomState(7)
    files = []
    classes = ["alpaca", "llama", "not alpaca"]
    counts = [114, 90, 123]
    for name, count in zip(classes, counts):
        for i in range(count):
            stem = "%016x" % rng.randint(0, 2**62)
            folder = name + ("/nested" if i % 17 == 0 else "")
            ext = [".jpg", ".png", ".jpeg", ".JPG"][i % 4]
            files.append(f"{folder}/{stem}{ext}")
    return files


def build_tree(files):
    directory = tempfile.mkdtemp(prefix="cria-split-")
    for rel in files:
        path = os.path.join(directory, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"not decoded: image_dataset_from_directory only lists files until iterated")
    return directory


def keras_split(directory, **kwargs):
    result = keras.utils.image_dataset_from_directory(directory, image_size=(8, 8), verbose=False, **kwargs)
    if isinstance(result, list):
        return [relative(r.file_paths, directory) for r in result]
    return relative(result.file_paths, directory)


def make_splits():
    trees = {
        "one": (["only/a.png"], None),
        "two": (["cat/x.png", "dog/y.png"], 0.5),
        "ten": (tree_ten(), 0.2),
        "many": (tree_many(), 0.2),
    }
    for name, (files, split) in trees.items():
        directory = build_tree(files)
        cases = []
        labels = None if name == "one" else "inferred"
        for seed in SEEDS:
            case = {"seed": seed, "labels": labels}
            case["all"] = keras_split(directory, labels=labels, shuffle=True, seed=seed)
            if split:
                training, validation = keras_split(directory, labels=labels, shuffle=True, seed=seed,
                                                   validation_split=split, subset="both")
                case.update(validation_split=split, training=training, validation=validation)
            cases.append(case)
        unshuffled = keras_split(directory, labels=labels, shuffle=False)
        save_json({"files": files, "unshuffled": unshuffled, "cases": cases}, "splits", name + ".json")
        shutil.rmtree(directory)
    if os.path.isdir(ALPACA):
        training, validation = keras_split(ALPACA, validation_split=0.2, subset="both", seed=42)
        save_json({"seed": 42, "validation_split": 0.2, "training": training, "validation": validation},
                  "splits", "alpaca.json")


def make_numpy_shuffles():
    cases = []
    for seed in [0, 1, 42, 1234, 2**32 - 1]:
        for n in [0, 1, 2, 3, 10, 100, 1000]:
            x = list(range(n))
            np.random.RandomState(seed).shuffle(x)
            cases.append({"seed": seed, "n": n, "permutation": x})
    state = np.random.RandomState(42)
    save_json({"cases": cases, "seed42_random_sample": [repr(state.random_sample()) for _ in range(5)]},
              "numpy_shuffle.json")


# --- Decoding -------------------------------------------------------------------------

def pattern(height, width, seed=0):
    # Smooth gradients plus noise: exercises both the IDCT and chroma upsampling.
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255.0 / max(width - 1, 1), y * 255.0 / max(height - 1, 1),
                     128 + 100 * np.sin(x / 3.0 + y / 5.0)], axis=-1)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def make_decode():
    rgb = pattern(23, 37)
    gray = rgb[..., 0]
    images = {}

    def pil(image, fmt, **kw):
        buffer = io.BytesIO()
        image.save(buffer, fmt, **kw)
        return buffer.getvalue()

    images["jpeg_420.jpg"] = pil(Image.fromarray(rgb), "JPEG", quality=90, subsampling=2)
    images["jpeg_422.jpg"] = pil(Image.fromarray(rgb), "JPEG", quality=90, subsampling=1)
    images["jpeg_444.jpg"] = pil(Image.fromarray(rgb), "JPEG", quality=75, subsampling=0)
    images["jpeg_progressive.jpg"] = pil(Image.fromarray(rgb), "JPEG", quality=85, progressive=True)
    images["jpeg_gray.jpg"] = pil(Image.fromarray(gray), "JPEG", quality=90)
    images["jpeg_cmyk.jpg"] = pil(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=90)
    images["png_rgb8.png"] = pil(Image.fromarray(rgb), "PNG")
    rgba = np.concatenate([rgb, pattern(23, 37, 1)[..., :1]], axis=-1)
    images["png_rgba8.png"] = pil(Image.fromarray(rgba, "RGBA"), "PNG")
    images["png_gray8.png"] = pil(Image.fromarray(gray), "PNG")
    images["png_gray1.png"] = pil(Image.fromarray(gray).convert("1"), "PNG")
    images["png_la8.png"] = pil(Image.fromarray(np.stack([gray, rgba[..., 3]], -1), "LA"), "PNG")
    palette = Image.fromarray(rgb).quantize(colors=50)
    images["png_palette.png"] = pil(palette, "PNG")
    palette.info["transparency"] = 3
    images["png_palette_trns.png"] = pil(palette, "PNG", transparency=3)
    rng = np.random.RandomState(3)
    rgb16 = rng.randint(0, 65536, size=(11, 13, 3)).astype(np.uint16)
    images["png_rgb16.png"] = tf.io.encode_png(tf.constant(rgb16)).numpy()
    rgba16 = rng.randint(0, 65536, size=(11, 13, 4)).astype(np.uint16)
    images["png_rgba16.png"] = tf.io.encode_png(tf.constant(rgba16)).numpy()
    gray16 = rng.randint(0, 65536, size=(11, 13, 1)).astype(np.uint16)
    images["png_gray16.png"] = tf.io.encode_png(tf.constant(gray16)).numpy()
    images["bmp_24.bmp"] = pil(Image.fromarray(rgb), "BMP")
    images["bmp_32.bmp"] = pil(Image.fromarray(rgba, "RGBA"), "BMP")

    index = {}
    for name, data in images.items():
        with open(out("decode", name), "wb") as f:
            f.write(data)
        decoded = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        assert decoded.dtype == np.uint8, (name, decoded.dtype)
        np.save(out("decode", name + ".npy"), decoded)
        index[name] = list(decoded.shape)
    save_json(index, "decode", "index.json")


# --- Resize ---------------------------------------------------------------------------

def make_resize():
    rng = np.random.RandomState(11)
    source = (rng.rand(13, 17, 3) * 255).astype(np.float32)
    np.save(out("resize", "source_13x17.npy"), source)
    cases = {}
    for method in ["bilinear", "nearest", "area"]:
        for h, w in [(7, 9), (31, 40), (13, 17), (5, 30)]:
            name = f"{method}_{h}x{w}"
            result = tf.image.resize(source, (h, w), method=method, antialias=False).numpy().astype(np.float32)
            np.save(out("resize", name + ".npy"), result)
            cases[name] = {"method": method, "size": [h, w]}
    # The full Keras loading path (decode, crop_to_aspect_ratio, resize) on a 37x23 PNG.
    directory = tempfile.mkdtemp(prefix="cria-resize-")
    shutil.copy(out("decode", "png_rgb8.png"), os.path.join(directory, "a.png"))
    for crop in [False, True]:
        for method in ["bilinear", "nearest", "area"]:
            for h, w in [(16, 24), (20, 10)]:
                ds = keras.utils.image_dataset_from_directory(
                    directory, labels=None, image_size=(h, w), interpolation=method, shuffle=False,
                    crop_to_aspect_ratio=crop, batch_size=None, verbose=False)
                image = next(iter(ds)).numpy().astype(np.float32)
                name = f"keras_{'crop_' if crop else ''}{method}_{h}x{w}"
                np.save(out("resize", name + ".npy"), image)
                cases[name] = {"method": method, "size": [h, w], "crop_to_aspect_ratio": crop,
                               "source": "decode/png_rgb8.png"}
    shutil.rmtree(directory)
    save_json(cases, "resize", "index.json")


def make_alpaca():
    if not os.path.isdir(ALPACA):
        print("alpaca data not found; skipping the real-photo fixtures", file=sys.stderr)
        return
    chosen = []
    for cls in ["alpaca", "not alpaca"]:
        names = sorted(n for n in os.listdir(os.path.join(ALPACA, cls)) if n.lower().endswith(".jpg"))
        chosen += [f"{cls}/{n}" for n in names[:2]]
    index = {}
    for i, rel in enumerate(chosen):
        data = tf.io.read_file(os.path.join(ALPACA, rel))
        decoded = tf.io.decode_image(data, channels=3, expand_animations=False)
        resized = tf.image.resize(decoded, (160, 160), method="bilinear").numpy().astype(np.float32)
        np.save(out("alpaca", f"{i}_160.npy"), resized)
        d = decoded.numpy().astype(np.int64)
        # Whole-image checksums of TF's decode, so every pixel is checked without committing it.
        index[str(i)] = {"file": rel, "shape": list(decoded.shape), "sum": int(d.sum()),
                         "weighted_sum": int((d.reshape(-1) * (np.arange(d.size) % 251 + 1)).sum())}
    save_json(index, "alpaca", "index.json")


# --- Augmentation ---------------------------------------------------------------------

def make_augment():
    from keras import layers
    image = pattern(12, 16, 5).astype(np.float32)[None]
    np.save(out("augment", "source.npy"), image[0])
    cases = {}

    def save(name, result, **params):
        np.save(out("augment", name + ".npy"), np.asarray(result, dtype=np.float32)[0])
        cases[name] = params

    for mode in ["horizontal", "vertical", "horizontal_and_vertical"]:
        layer = layers.RandomFlip(mode)
        flips = tf.constant([[[[True]]]])
        save(f"flip_{mode}", layer.transform_images(image, {"flips": flips, "input_shape": image.shape}),
             mode=mode)
    for fill in ["reflect", "constant", "nearest", "wrap"]:
        for interp in ["bilinear", "nearest"]:
            for angle in [30.0, -71.5, 180.0]:
                layer = layers.RandomRotation(0.5, fill_mode=fill, interpolation=interp, fill_value=17.0)
                matrix = layer._compute_affine_matrix(
                    center_x=0.5, center_y=0.5, angle=tf.constant([angle]),
                    translate_x=tf.zeros([1]), translate_y=tf.zeros([1]), scale=tf.ones([1]),
                    shear_x=tf.zeros([1]), shear_y=tf.zeros([1]), height=12, width=16)
                result = layer.transform_images(image, {"rotation_matrix": matrix})
                save(f"rotate_{fill}_{interp}_{angle}", result, degrees=angle, fill_mode=fill,
                     interpolation=interp, fill_value=17.0)
    for fill in ["reflect", "constant"]:
        for hz, wz in [(0.7, 0.7), (1.3, 0.8)]:
            layer = layers.RandomZoom(0.5, fill_mode=fill)
            t = {"height_zoom": tf.constant([[hz]]), "width_zoom": tf.constant([[wz]])}
            save(f"zoom_{fill}_{hz}_{wz}", layer.transform_images(image, t), height_zoom=hz, width_zoom=wz,
                 fill_mode=fill)
        for dx, dy in [(3.5, -2.25), (-5.0, 4.0)]:
            layer = layers.RandomTranslation(0.5, 0.5, fill_mode=fill)
            t = {"translations": tf.constant([[dx, dy]])}
            save(f"translate_{fill}_{dx}_{dy}", layer.transform_images(image, t), dx=dx, dy=dy, fill_mode=fill)
    for factor in [0.6, 1.7]:
        layer = layers.RandomContrast(0.5)
        save(f"contrast_{factor}", layer.transform_images(image, {"contrast_factor": tf.constant([[[[factor]]]])}),
             factor=factor)
    for delta in [40.0, -90.0]:
        layer = layers.RandomBrightness(0.5)
        save(f"brightness_{delta}", layer.transform_images(image, {"rgb_delta": tf.constant([[[[delta]]]])}),
             delta=delta)
    layer = layers.RandomCrop(8, 10)
    save("crop_8x10_2_3", layer.transform_images(image, (2, 3)), height=8, width=10, top=2, left=3)
    # Crop larger than the image: Keras centre-crops to the aspect ratio, slices, then resizes.
    layer = layers.RandomCrop(20, 12)
    transformation = layer.get_random_transformation(image, training=True)
    save("crop_20x12_fallback", layer.transform_images(image, transformation), height=20, width=12,
         top=int(transformation[0]), left=int(transformation[1]))
    # RandomContrast's factor range as Keras 3 sets it (a documented quirk: lower bound 1.0).
    ranges = {"contrast_0.2": list(map(float, layers.RandomContrast(0.2).factor)),
              "brightness_0.2": list(map(float, layers.RandomBrightness(0.2).factor)),
              "rotation_0.2": list(map(float, layers.RandomRotation(0.2).factor))}
    save_json({"cases": cases, "factor_ranges": ranges}, "augment", "index.json")


def make_fashion_mnist():
    import gzip
    directory = "/usr/share/datasets/fashion-mnist"
    if not os.path.isdir(directory):
        print("Fashion-MNIST not found; skipping its fixtures", file=sys.stderr)
        return
    with gzip.open(os.path.join(directory, "train-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(os.path.join(directory, "train-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    sneakers = np.nonzero(labels == 7)[0][:3]
    rgb = tf.image.grayscale_to_rgb(tf.constant(images[sneakers]))
    resized = tf.image.resize(rgb, (32, 32), method="bilinear").numpy().astype(np.float32)
    np.save(out("fashion_mnist", "sneakers_32.npy"), resized)
    save_json({"count": int(len(labels)), "first_labels": labels[:20].tolist(),
               "label_counts": np.bincount(labels, minlength=10).tolist(),
               "sneaker_indices": sneakers.tolist(), "pixel_sum": int(images.astype(np.int64).sum())},
              "fashion_mnist", "index.json")


if __name__ == "__main__":
    make_numpy_shuffles()
    make_splits()
    make_decode()
    make_resize()
    make_alpaca()
    make_augment()
    make_fashion_mnist()
    print("fixtures written to", OUT)
