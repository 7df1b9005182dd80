#!/usr/bin/env python3
"""Keras/TF and ONNX Runtime sides of `make bench-compare`.

  engines.py prepare --out DIR [--model FILE.h5] [--alpha A --size S]
      Loads the Keras model (or builds MobileNetV2(weights=None, include_top=False,
      pooling="avg") and saves it as DIR/model.h5 for Cria), exports DIR/model.onnx,
      writes DIR/input.npy and each engine's output on it, and prints how far
      ONNX Runtime's output is from Keras's.
  engines.py time --engine keras|ort --out DIR --batch 32,1 --threads T [--reps R]
      Prints one JSON line per batch size: {"engine", "batch", "median_s", "img_s"}
      (median of R timed calls after 3 warm-up calls; 3R calls at batch 1).
  engines.py train --out DIR --threads T [--reps R]
      Keras training steps at batch 32 on the tutorial's model (MobileNetV2 base
      with random weights and the prepared input size, GAP, Dropout(0.2), Dense(1);
      BCE from logits): frozen base (Adam 1e-3), fine-tune from layer 120 and
      trainable=all (Adam 1e-4), each timed with train_on_batch after warm-up;
      plus one frozen-phase `fit` epoch on 210 images (the alpaca training split's
      size). Prints one JSON line with img/s per mode, the epoch's seconds and peak RSS.
  engines.py data --data DIR [--size 160]
      Keras's image_dataset_from_directory(DIR, image_size, batch_size=32,
      shuffle=False) iterated once, timed after the imports: {"data_seconds", ...}.

ONNX export: tf2onnx is not used. Its last release predates Keras 3 and pins
old onnx/protobuf versions next to TF 2.21, so the graph is written here with
the `onnx` package's helper API, layer by layer from the Keras weights: Conv,
BatchNormalization, Clip, Add, GlobalAveragePool, Gemm, Softmax. The input
stays NHWC (one Transpose), so all three engines get the same tensor.
ONNX Runtime folds the BatchNorms and clips into its convolutions itself.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from training_engines import expected_trainable_variables


def load_keras(args):
    import keras
    if args.model:
        model = keras.models.load_model(args.model, compile=False)
        path = os.path.abspath(args.model)
    else:
        keras.utils.set_random_seed(42)
        model = keras.applications.MobileNetV2(input_shape=(args.size, args.size, 3), alpha=args.alpha,
                                               include_top=False, weights=None, pooling="avg")
        path = os.path.join(args.out, "model.h5")
        model.save(path)
    return model, path


def same_pads(size, kernel, stride):
    """TF's "same" padding: (before, after) on one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def export_onnx(model, path):
    """Writes a MobileNetV2-family Keras model (nested base allowed) as ONNX."""
    import keras
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(prefix, array):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), n))
        return n

    h, w = model.input_shape[1], model.input_shape[2]
    state = {"x": "nchw", "h": h, "w": w, "pad": None, "block_input": {}}
    nodes.append(helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]))

    def emit(layer):
        cls = layer.__class__.__name__
        x = state["x"]
        if isinstance(layer, keras.Model):
            for inner in layer.layers:
                emit(inner)
            return
        if cls == "InputLayer" or cls == "Dropout":
            return
        if layer.name.endswith("_expand"):
            state["block_input"][layer.name[:-len("_expand")]] = x
        out = name(layer.name)
        if cls == "ZeroPadding2D":
            (top, bottom), (left, right) = layer.padding
            state["pad"] = (top, bottom, left, right)
            state["h"] += top + bottom
            state["w"] += left + right
            return
        if cls in ("Conv2D", "DepthwiseConv2D"):
            weights = layer.get_weights()
            kh, kw = layer.kernel_size
            sh, sw = layer.strides
            if cls == "Conv2D":
                kernel = weights[0].transpose(3, 2, 0, 1)
                group = 1
            else:
                kernel = weights[0].transpose(2, 3, 0, 1)
                group = kernel.shape[0]
            if layer.padding == "same":
                t, b = same_pads(state["h"], kh, sh)
                l, r = same_pads(state["w"], kw, sw)
            else:
                t = b = l = r = 0
            if state["pad"]:
                pt, pb, pl, pr = state["pad"]
                t, b, l, r = t + pt, b + pb, l + pl, r + pr
                state["h"] -= pt + pb
                state["w"] -= pl + pr
                state["pad"] = None
            inputs = [x, const(layer.name + "_W", kernel)]
            if layer.use_bias:
                inputs.append(const(layer.name + "_b", weights[1]))
            nodes.append(helper.make_node("Conv", inputs, [out], kernel_shape=[kh, kw], strides=[sh, sw],
                                          pads=[t, l, b, r], group=group))
            state["h"] = (state["h"] + t + b - kh) // sh + 1
            state["w"] = (state["w"] + l + r - kw) // sw + 1
            if layer.activation.__name__ not in ("linear",):
                raise SystemExit(f"export: activation {layer.activation.__name__} on {layer.name} not supported")
        elif cls == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            nodes.append(helper.make_node("BatchNormalization",
                                          [x, const("g", gamma), const("b", beta), const("m", mean), const("v", var)],
                                          [out], epsilon=layer.epsilon))
        elif cls == "ReLU":
            if layer.max_value is None:
                nodes.append(helper.make_node("Relu", [x], [out]))
            else:
                nodes.append(helper.make_node("Clip", [x, const("lo", np.array(0.0)),
                                                       const("hi", np.array(float(layer.max_value)))], [out]))
        elif cls == "Add":
            block = layer.name[:-len("_add")]
            nodes.append(helper.make_node("Add", [state["block_input"][block], x], [out]))
        elif cls == "GlobalAveragePooling2D":
            pooled = name("pooled")
            nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
            nodes.append(helper.make_node("Flatten", [pooled], [out], axis=1))
        elif cls == "Dense":
            kernel, bias = layer.get_weights()
            linear = name("logits")
            nodes.append(helper.make_node("Gemm", [x, const("W", kernel), const("b", bias)], [linear]))
            activation = layer.activation.__name__
            if activation == "softmax":
                nodes.append(helper.make_node("Softmax", [linear], [out], axis=-1))
            elif activation == "linear":
                out = linear
            else:
                raise SystemExit(f"export: Dense activation {activation} not supported")
        else:
            raise SystemExit(f"export: layer {layer.name} ({cls}) not supported")
        state["x"] = out

    emit(model)
    if len(model.output_shape) == 4:  # no pooling: back to NHWC
        nodes.append(helper.make_node("Transpose", [state["x"]], ["nhwc"], perm=[0, 2, 3, 1]))
        state["x"] = "nhwc"
    nodes.append(helper.make_node("Identity", [state["x"]], ["output"]))
    graph = helper.make_graph(
        nodes, "cria_bench",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", h, w, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N"] + list(model.output_shape[1:]))],
        initializer=inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                   producer_name="cria Benchmarks/engines.py")
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, path)


def ort_session(path, threads):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def prepare(args):
    os.makedirs(args.out, exist_ok=True)
    model, path = load_keras(args)
    with open(os.path.join(args.out, "keras_model.txt"), "w") as f:
        f.write(path + "\n")
    export_onnx(model, os.path.join(args.out, "model.onnx"))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(4,) + tuple(model.input_shape[1:])).astype(np.float32)
    np.save(os.path.join(args.out, "input.npy"), x)
    keras_out = np.asarray(model(x, training=False))
    ort_out = ort_session(os.path.join(args.out, "model.onnx"), 2).run(None, {"input": x})[0]
    np.save(os.path.join(args.out, "keras.npy"), keras_out)
    scale = float(np.abs(keras_out).max())
    diff = float(np.abs(ort_out - keras_out).max())
    print(json.dumps({"keras_model": path, "input_shape": list(model.input_shape[1:]),
                      "output_shape": list(keras_out.shape), "ort_vs_keras_max_abs": diff,
                      "output_scale": scale}))
    if diff > 1e-3 * max(scale, 1e-6):
        raise SystemExit(f"ONNX export does not match Keras: max |diff| {diff} (scale {scale})")


def time_engine(args):
    x_shape = np.load(os.path.join(args.out, "input.npy")).shape[1:]
    batches = [int(b) for b in str(args.batch).split(",")]
    if args.engine == "keras":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        import keras
        with open(os.path.join(args.out, "keras_model.txt")) as f:
            model = keras.models.load_model(f.read().strip(), compile=False)
        run = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
        make_call = lambda x: (lambda tensor: lambda: run(tensor).numpy())(tf.constant(x))
    else:
        session = ort_session(os.path.join(args.out, "model.onnx"), args.threads)
        make_call = lambda x: lambda: session.run(None, {"input": x})
    for batch in batches:
        x = np.random.default_rng(1).uniform(-1, 1, size=(batch,) + x_shape).astype(np.float32)
        call = make_call(x)
        reps = args.reps if batch > 1 else 3 * args.reps
        for _ in range(3):
            call()
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(json.dumps({"engine": args.engine, "batch": batch, "median_s": median, "img_s": batch / median}), flush=True)


def train_engine(args):
    import resource
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    size = tuple(np.load(os.path.join(args.out, "input.npy")).shape[1:])
    keras.utils.set_random_seed(1)
    base = keras.applications.MobileNetV2(input_shape=size, include_top=False, weights=None)
    inputs = keras.Input(shape=size)
    x = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    rng = np.random.default_rng(2)
    x32 = rng.uniform(-1, 1, size=(32,) + size).astype(np.float32)
    y32 = (np.arange(32) % 2).astype(np.float32).reshape(-1, 1)

    def compile_for(mode):
        # Every layer set one by one: Keras 3's base.trainable = True leaves
        # layers frozen one by one frozen, so "all" after "finetune120" used to
        # train finetune120's 38 variables.
        base.trainable = mode != "frozen"
        for index, layer in enumerate(base.layers):
            layer.trainable = mode == "all" or (mode == "finetune120" and index >= 120)
        expected = expected_trainable_variables({"frozen": None, "finetune120": 120, "all": 0}[mode])
        if len(model.trainable_variables) != expected:
            sys.exit(f"keras {mode}: {len(model.trainable_variables)} trainable variables, {expected} expected")
        rate = 1e-3 if mode == "frozen" else 1e-4
        model.compile(optimizer=keras.optimizers.Adam(rate),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])

    result = {"engine": "keras", "record": "train"}
    for mode in ("frozen", "finetune120", "all"):
        compile_for(mode)
        for _ in range(3):
            model.train_on_batch(x32, y32)
        times = []
        for _ in range(args.reps):
            start = time.perf_counter()
            model.train_on_batch(x32, y32)
            times.append(time.perf_counter() - start)
        result[f"train_{mode}_b32_img_s"] = 32 / statistics.median(times)
    compile_for("frozen")
    x210 = rng.uniform(-1, 1, size=(210,) + size).astype(np.float32)
    y210 = (np.arange(210) % 2).astype(np.float32).reshape(-1, 1)
    model.fit(x210, y210, batch_size=32, epochs=1, verbose=0)  # traces the train function
    epochs = []
    for _ in range(2):
        start = time.perf_counter()
        model.fit(x210, y210, batch_size=32, epochs=1, verbose=0)
        epochs.append(time.perf_counter() - start)
    result["train_frozen_epoch_s"] = min(epochs)
    result["train_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)


def data_engine(args):
    import tensorflow as tf  # imports are not timed: Cria's side is timed in-process too
    import keras
    start = time.perf_counter()
    dataset = keras.utils.image_dataset_from_directory(args.data, image_size=(args.size, args.size), batch_size=32,
                                                       shuffle=False, verbose=False)
    count = sum(int(images.shape[0]) for images, _ in dataset)
    seconds = time.perf_counter() - start
    print(json.dumps({"engine": "keras", "data_images": count, "data_seconds": seconds, "data_img_s": count / seconds}),
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", required=True)
    p.add_argument("--model")
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--size", type=int, default=160)
    t = sub.add_parser("time")
    t.add_argument("--engine", choices=["keras", "ort"], required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--batch", default="32,1", help="comma-separated batch sizes")
    t.add_argument("--threads", type=int, default=os.cpu_count())
    t.add_argument("--reps", type=int, default=10)
    tr = sub.add_parser("train")
    tr.add_argument("--out", required=True)
    tr.add_argument("--threads", type=int, default=os.cpu_count())
    tr.add_argument("--reps", type=int, default=5)
    d = sub.add_parser("data")
    d.add_argument("--data", required=True)
    d.add_argument("--size", type=int, default=160)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args)
    elif args.command == "train":
        train_engine(args)
    elif args.command == "data":
        data_engine(args)
    else:
        time_engine(args)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
