#!/usr/bin/env python3
"""Keras and PyTorch training steps at each fine-tune depth, for `make bench-compare`.

  training_engines.py keras --size 160 --threads T [--reps R]
  training_engines.py torch --size 160 --threads T [--reps R]

Each prints one JSON line {"engine", "record": "train", "train_<depth>_b32_img_s",
"train_<depth>_b32_peak_rss_mb", ...} for the depths `cria bench` measures:
frozen (base.trainable = False), finetune140/120/100/50 (base.layers[:k] frozen)
and all (base.trainable = True), with the key names `cria bench --json` uses.

The model is the recipe's (Notebooks-export/keras_reference.py) without the
augmentation layers, as `cria bench` times it: inputs in [0, 255] ->
preprocess_input -> MobileNetV2(1.0, size, include_top=False, random weights)
(x, training=False) -> GlobalAveragePooling2D -> Dropout(0.2) -> Dense(1),
BinaryCrossentropy(from_logits=True), Adam(1e-3) for the frozen base and
Adam(1e-4) when fine-tuning, batch 32. A step is Keras's `train_on_batch`
(compiled once per depth, three warm-up steps), or in PyTorch forward, loss,
backward and `Adam.step()`.

PyTorch: torchvision's MobileNetV2 layout (features[0..18]: ConvBNReLU6 stem,
17 inverted-residual blocks, 1x1 ConvBNReLU6 to 1280), written out below
because torchvision's compiled extension does not load against the CPU-only
torch wheel here; the layers and their shapes are torchvision's
(`torchvision.models.mobilenet_v2`), apart from its symmetric padding of the
stride-2 3x3 convolutions (Keras pads right/bottom only; the cost is the same).
Tensors and weights are channels_last; every BatchNorm runs in eval mode (moving
statistics), as Keras's `training=False` freezes it, while gamma and beta of
unfrozen layers train. `fine_tune_at: k` freezes exactly the convolutions and
BatchNorms that are Keras's base.layers[:k]: every PyTorch parameter module
carries the index of its Keras layer (`keras_layer_names`).

Peak RSS per depth is the process's VmHWM after resetting it through
/proc/self/clear_refs, as `cria bench` does.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

DEPTHS = [("frozen", None), ("finetune140", 140), ("finetune120", 120), ("finetune100", 100),
          ("finetune50", 50), ("all", 0)]

# (expansion t, output channels c, repeats n, first stride s): MobileNetV2's table.
BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def reset_peak():
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def keras_layer_names():
    """Keras's MobileNetV2(include_top=False) layer names in base.layers order (154 at alpha 1.0)."""
    names = ["input_layer", "Conv1", "bn_Conv1", "Conv1_relu",
             "expanded_conv_depthwise", "expanded_conv_depthwise_BN", "expanded_conv_depthwise_relu",
             "expanded_conv_project", "expanded_conv_project_BN"]
    block, channels = 0, 16
    for t, c, n, s in BLOCKS[1:]:
        for i in range(n):
            block += 1
            stride = s if i == 0 else 1
            p = f"block_{block}_"
            names += [p + "expand", p + "expand_BN", p + "expand_relu"]
            if stride == 2:
                names.append(p + "pad")
            names += [p + "depthwise", p + "depthwise_BN", p + "depthwise_relu", p + "project", p + "project_BN"]
            if stride == 1 and channels == c:
                names.append(p + "add")
            channels = c
    names += ["Conv_1", "Conv_1_bn", "out_relu"]
    return names


def measure(step, reps, warmup=3):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 32 / statistics.median(times)


def keras_engine(args):
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    shape = (args.size, args.size, 3)

    def build(fine_tune_at):
        # A fresh model per depth. Re-freezing one model does not work in
        # Keras 3: once base.layers[:140] were set trainable = False one by one,
        # base.trainable = True leaves them frozen, so every later depth timed
        # fine_tune_at 140 (17 trainable variables at "all" instead of 158; flat
        # figures from 140 to trainable: all). The checks after timing catch
        # that class of mistake.
        keras.backend.clear_session()
        keras.utils.set_random_seed(1)
        base = keras.applications.MobileNetV2(input_shape=shape, include_top=False, weights=None)
        assert [layer.name for layer in base.layers][1:] == keras_layer_names()[1:], "unexpected MobileNetV2 layer order"
        base.trainable = fine_tune_at is not None
        for layer in base.layers[:fine_tune_at or 0]:
            layer.trainable = False
        inputs = keras.Input(shape=shape)
        x = keras.applications.mobilenet_v2.preprocess_input(inputs)
        x = base(x, training=False)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dropout(0.2)(x)
        model = keras.Model(inputs, keras.layers.Dense(1)(x))
        model.compile(optimizer=keras.optimizers.Adam(1e-3 if fine_tune_at is None else 1e-4),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
        return model

    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, size=(32,) + shape).astype(np.float32)
    # 11 positives of 32: with balanced labels and a random-weight base whose
    # outputs barely differ between images, the Dense bias's gradient can be
    # exactly zero, which the moved-variables check below would misread.
    labels = (np.arange(32) % 3 == 0).astype(np.float32).reshape(-1, 1)
    result = {"engine": "keras", "record": "train", "keras": keras.__version__, "tensorflow": tf.__version__}
    for key, fine_tune_at in DEPTHS:
        model = build(fine_tune_at)
        expected = expected_trainable_variables(fine_tune_at)
        if len(model.trainable_variables) != expected:
            sys.exit(f"keras {key}: {len(model.trainable_variables)} trainable variables, {expected} expected")
        before = [v.numpy().copy() for v in model.trainable_variables]
        reset_peak()
        result[f"train_{key}_b32_img_s"] = measure(lambda: model.train_on_batch(images, labels), args.reps)
        result[f"train_{key}_b32_peak_rss_mb"] = peak_mb()
        result[f"train_{key}_trainable_variables"] = len(before)
        # The trainable variables must also have moved, or the timed step
        # trained something else than the model now says. A few may have an
        # exactly zero gradient in a random-weight network (a channel ReLU6
        # never passes), hence 90 % rather than all.
        unchanged = [v.path for b, v in zip(before, model.trainable_variables) if np.array_equal(b, v.numpy())]
        if len(unchanged) > 0.1 * len(before):
            sys.exit(f"keras {key}: {len(unchanged)} of {len(before)} trainable variables unchanged by training "
                     f"({', '.join(unchanged[:5])}, ...); the timed step is not this depth's")
        print(f"keras {key}: {result[f'train_{key}_b32_img_s']:.1f} img/s, {len(before)} trainable variables",
              file=sys.stderr, flush=True)
    result["train_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)


def expected_trainable_variables(fine_tune_at):
    """Keras's trainable variables at a depth, counted from the layer names:
    a convolution has a kernel (no bias), a BatchNorm gamma and beta, the Dense
    head a kernel and a bias."""
    if fine_tune_at is None:
        return 2
    names = keras_layer_names()[fine_tune_at:]
    convs = sum(n == "Conv1" or n == "Conv_1" or n.endswith(("expand", "depthwise", "project")) for n in names)
    norms = sum(n in ("bn_Conv1", "Conv_1_bn") or n.endswith("_BN") for n in names)
    return convs + 2 * norms + 2


def torch_model(size):
    """torchvision's MobileNetV2 features + the recipe's head; returns (model, {module: Keras layer index})."""
    import torch
    from torch import nn
    index = {name: i for i, name in enumerate(keras_layer_names())}
    keras_index = {}

    def conv_bn(cin, cout, kernel, stride, groups, conv_name, bn_name, relu):
        conv = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.001)
        keras_index[conv], keras_index[bn] = index[conv_name], index[bn_name]
        return [conv, bn] + ([nn.ReLU6(inplace=True)] if relu else [])

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, t, prefix):
            super().__init__()
            hidden = cin * t
            layers = []
            if t != 1:
                layers += conv_bn(cin, hidden, 1, 1, 1, prefix + "expand", prefix + "expand_BN", True)
            layers += conv_bn(hidden, hidden, 3, stride, hidden, prefix + "depthwise", prefix + "depthwise_BN", True)
            layers += conv_bn(hidden, cout, 1, 1, 1, prefix + "project", prefix + "project_BN", False)
            self.conv = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)

    features = [nn.Sequential(*conv_bn(3, 32, 3, 2, 1, "Conv1", "bn_Conv1", True))]
    cin, block = 32, 0
    for t, c, n, s in BLOCKS:
        for i in range(n):
            prefix = "expanded_conv_" if block == 0 else f"block_{block}_"
            features.append(InvertedResidual(cin, c, s if i == 0 else 1, t, prefix))
            cin, block = c, block + 1
    features.append(nn.Sequential(*conv_bn(320, 1280, 1, 1, 1, "Conv_1", "Conv_1_bn", True)))

    class Transfer(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*features)
            self.dropout = nn.Dropout(0.2)
            self.dense = nn.Linear(1280, 1)

        def forward(self, x):
            x = x / 127.5 - 1  # preprocess_input
            x = self.features(x)
            return self.dense(self.dropout(x.mean((2, 3))))

    return Transfer(), keras_index


def torch_engine(args):
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model, keras_index = torch_model(args.size)
    model = model.to(memory_format=torch.channels_last)
    rng = np.random.default_rng(2)
    images = torch.from_numpy(rng.uniform(0, 255, size=(32, 3, args.size, args.size)).astype(np.float32))
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.from_numpy((np.arange(32) % 3 == 0).astype(np.float32).reshape(-1, 1))  # as Keras's
    loss_fn = torch.nn.BCEWithLogitsLoss()
    result = {"engine": "torch", "record": "train", "torch": torch.__version__,
              "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for key, fine_tune_at in DEPTHS:
        start = 10**9 if fine_tune_at is None else fine_tune_at
        for module, layer in keras_index.items():
            for p in module.parameters():
                p.requires_grad_(layer >= start)
        model.train()
        model.features.eval()  # BatchNorm on moving statistics, as Keras's training=False
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=1e-3 if fine_tune_at is None else 1e-4, eps=1e-7)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()

        reset_peak()
        result[f"train_{key}_b32_img_s"] = measure(step, args.reps)
        result[f"train_{key}_b32_peak_rss_mb"] = peak_mb()
        # Autograd is rebuilt every step, so this only guards the freezing
        # itself: every parameter the depth trains got a gradient.
        with_grad = sum(p.grad is not None for p in trainable)
        result[f"train_{key}_trainable_tensors"] = len(trainable)
        if with_grad != len(trainable):
            sys.exit(f"torch {key}: {with_grad} of {len(trainable)} trainable tensors got a gradient")
        print(f"torch {key}: {result[f'train_{key}_b32_img_s']:.1f} img/s", file=sys.stderr, flush=True)
    result["train_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engine", choices=["keras", "torch", "layers"])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    if args.engine == "keras":
        keras_engine(args)
    elif args.engine == "torch":
        torch_engine(args)
    else:
        names = keras_layer_names()
        print(len(names), names[120])


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
