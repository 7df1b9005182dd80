import CriaCore
@testable import CriaKerasIO
import CriaTestSupport
import Foundation
import XCTest

/// `KerasWriter` alone: exact round trips through `KerasFile.open`, Keras's
/// HDF5 layout details, and atomic replacement. (Keras loading these files is
/// checked by Tests/Fixtures/generate/check_cria_saves.py and SavedModelRoundTripTests.)
final class KerasWriterTests: XCTestCase {
    // MARK: A small model with every weighted layer class and a nested, partly frozen model

    private func layer(_ className: String, _ name: String, _ fields: [String: JSONValue] = [:], from inputs: [String],
                       trainable: Bool = true) -> KerasLayerConfig {
        var config = fields
        config["name"] = .string(name)
        config["trainable"] = .bool(trainable)
        config["dtype"] = "float32"
        return KerasLayerConfig(className: className, name: name, config: .object(config),
                                inputs: inputs.map { TensorReference(layer: $0) })
    }

    private func input(_ name: String, _ shape: [Int]) -> KerasLayerConfig {
        KerasLayerConfig(className: "InputLayer", name: name,
                         config: ["batch_shape": .array([nil] + shape.map { .number(Double($0)) }), "dtype": "float32"], inputs: [])
    }

    /// inner: Input → conv (frozen) → bn (frozen) → dw → bn2 (center=false) → relu → pad → add(bn2-path)
    private func innerModel(trainable: Bool = true) -> KerasModelConfig {
        let conv: [String: JSONValue] = ["filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "use_bias": false]
        return KerasModelConfig(className: "Functional", name: "inner", layers: [
            input("inner_input", [8, 8, 3]),
            layer("Conv2D", "conv", conv, from: ["inner_input"], trainable: false),
            layer("BatchNormalization", "bn", ["epsilon": 0.001], from: ["conv"], trainable: false),
            layer("DepthwiseConv2D", "dw", ["kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "use_bias": true], from: ["bn"]),
            layer("BatchNormalization", "bn2", ["center": false], from: ["dw"]),
            layer("ReLU", "relu", ["max_value": 6.0], from: ["bn2"]),
            layer("Add", "add", from: ["relu", "bn"]),
            layer("ZeroPadding2D", "pad", ["padding": [[0, 1], [0, 1]]], from: ["add"]),
        ], inputs: [TensorReference(layer: "inner_input")], outputs: [TensorReference(layer: "pad")])
    }

    private func outerModel(innerTrainable: Bool = true) -> KerasModelConfig {
        let inner = innerModel()
        return KerasModelConfig(className: "Functional", name: "outer", layers: [
            input("input_layer", [8, 8, 3]),
            layer("Rescaling", "rescaling", ["scale": .number(1 / 127.5), "offset": -1.0], from: ["input_layer"]),
            KerasLayerConfig(className: "Functional", name: "inner", config: ["name": "inner", "trainable": .bool(innerTrainable)],
                             inputs: [TensorReference(layer: "rescaling")], trainingArgument: false, nested: inner),
            layer("Conv2D", "head_conv", ["filters": 2, "kernel_size": 1, "use_bias": true], from: ["inner"]),
            layer("GlobalAveragePooling2D", "gap", from: ["head_conv"]),
            layer("Dropout", "dropout", ["rate": 0.2], from: ["gap"]),
            layer("Dense", "dense", ["units": 3, "activation": "linear"], from: ["dropout"]),
        ], inputs: [TensorReference(layer: "input_layer")], outputs: [TensorReference(layer: "dense")])
    }

    /// Deterministic values with awkward bits (negative zero, subnormals, large) for exactness checks.
    private func tensor(_ shape: [Int], seed: UInt64) -> Tensor {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        let scalars = (0..<shape.reduce(1, *)).map { index -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let bits = UInt32(truncatingIfNeeded: state >> 33)
            switch index {
            case 0: return -0.0
            case 1: return Float.leastNonzeroMagnitude
            case 2: return 3.0e38
            default: return Float(bitPattern: (bits & 0x3FFF_FFFF) | 0x3800_0000) * (bits & 1 == 0 ? 1 : -1)
            }
        }
        return Tensor(shape: shape, scalars: scalars)
    }

    private func weights() -> [String: LayerWeights] {
        [
            "conv": ["kernel": tensor([3, 3, 3, 4], seed: 1)],
            "bn": ["gamma": tensor([4], seed: 2), "beta": tensor([4], seed: 3), "moving_mean": tensor([4], seed: 4),
                   "moving_variance": tensor([4], seed: 5)],
            "dw": ["kernel": tensor([3, 3, 4, 1], seed: 6), "bias": tensor([4], seed: 7)],
            "bn2": ["gamma": tensor([4], seed: 8), "moving_mean": tensor([4], seed: 9), "moving_variance": tensor([4], seed: 10)],
            "head_conv": ["kernel": tensor([1, 1, 4, 2], seed: 11), "bias": tensor([2], seed: 12)],
            "dense": ["kernel": tensor([2, 3], seed: 13), "bias": tensor([3], seed: 14)],
        ]
    }

    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cria-writer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private func assertBitIdentical(_ actual: [String: LayerWeights], _ expected: [String: LayerWeights],
                                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(actual.keys), Set(expected.keys), file: file, line: line)
        for (layerName, variables) in expected {
            XCTAssertEqual(actual[layerName].map { Set($0.keys) }, Set(variables.keys), layerName, file: file, line: line)
            for (variable, tensor) in variables {
                guard let read = actual[layerName]?[variable] else { continue }
                XCTAssertEqual(read.shape, tensor.shape, "\(layerName)/\(variable)", file: file, line: line)
                XCTAssertEqual(read.scalars.map(\.bitPattern), tensor.scalars.map(\.bitPattern), "\(layerName)/\(variable)", file: file, line: line)
            }
        }
    }

    // MARK: Legacy full model

    func testFullModelRoundTripsExactly() throws {
        let url = try temporaryDirectory().appendingPathComponent("model.h5")
        let metadata: JSONValue = ["class_names": ["alpaca", "not alpaca", "llama ñ"], "cria_version": "test"]
        try KerasWriter.writeFullModel(outerModel(), weights: weights(), metadata: metadata, to: url)

        let file = try KerasFile.open(url)
        XCTAssertEqual(file.format, .keras3LegacyFullModel)
        XCTAssertEqual(file.kerasVersion, KerasWriter.kerasVersion)
        XCTAssertEqual(file.backend, "tensorflow")
        XCTAssertEqual(file.criaMetadata, metadata)
        assertBitIdentical(file.weights, weights())

        // The config comes back with the same layers, connections, flags and training arguments.
        let config = try XCTUnwrap(file.modelConfig)
        let original = outerModel()
        XCTAssertEqual(config.name, original.name)
        XCTAssertEqual(config.layers.map(\.name), original.layers.map(\.name))
        XCTAssertEqual(config.layers.map(\.inputs), original.layers.map(\.inputs))
        XCTAssertEqual(config.outputs, original.outputs)
        let nested = try XCTUnwrap(config.layers[2].nested)
        XCTAssertEqual(config.layers[2].trainingArgument, false)
        XCTAssertEqual(nested.layers.map(\.name), innerModel().layers.map(\.name))
        XCTAssertEqual(nested.layers.map(\.trainable), [true, false, false, true, true, true, true, true])
        XCTAssertEqual(nested.layers[6].inputs, [TensorReference(layer: "relu"), TensorReference(layer: "bn")])
        XCTAssertEqual(nested.layers[4].config["center"]?.bool, false)
    }

    func testFullModelLayoutIsKeras3s() throws {
        let url = try temporaryDirectory().appendingPathComponent("model.h5")
        try KerasWriter.writeFullModel(outerModel(), weights: weights(), metadata: nil, to: url)
        let root = try HDF5File(reading: url).root
        XCTAssertFalse(root.hasAttribute("cria_metadata"))
        XCTAssertFalse(root.hasAttribute("training_config"))
        let container = try root.group("model_weights")
        XCTAssertEqual(try container.stringArrayAttribute("layer_names"),
                       ["input_layer", "rescaling", "inner", "head_conv", "gap", "dropout", "dense"])
        XCTAssertEqual(try container.stringAttribute("keras_version"), KerasWriter.kerasVersion)
        // Nested model: one group, trainable weights first (layer order), then the non-trainable ones.
        XCTAssertEqual(try container.group("inner").stringArrayAttribute("weight_names"), [
            "dw/kernel", "dw/bias", "bn2/gamma",
            "conv/kernel", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance",
            "bn2/moving_mean", "bn2/moving_variance",
        ])
        XCTAssertTrue(container.isDataset("inner/conv/kernel"))
        XCTAssertTrue(container.isDataset("dense/dense/kernel"))
        XCTAssertEqual(try container.group("dense").stringArrayAttribute("weight_names"), ["dense/kernel", "dense/bias"])
        // Weightless layers and the model's own weights: an empty float64 array, as h5py writes [].
        for name in ["input_layer", "gap", "dropout", "top_level_model_weights"] {
            XCTAssertEqual(try container.group(name).stringArrayAttribute("weight_names"), [], name)
        }
        XCTAssertEqual(try container.group("gap").childNames(), [])

        // A frozen nested model: every weight is non-trainable, in layer order.
        let frozenURL = url.deletingLastPathComponent().appendingPathComponent("frozen.h5")
        try KerasWriter.writeFullModel(outerModel(innerTrainable: false), weights: weights(), metadata: nil, to: frozenURL)
        let frozen = try HDF5File(reading: frozenURL).root.group("model_weights/inner")
        XCTAssertEqual(try frozen.stringArrayAttribute("weight_names"), [
            "conv/kernel", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance", "dw/kernel", "dw/bias",
            "bn2/gamma", "bn2/moving_mean", "bn2/moving_variance",
        ])
        let reread = try XCTUnwrap(KerasFile.open(frozenURL).modelConfig)
        XCTAssertEqual(reread.layers[2].trainable, false)
    }

    /// The model_config is Keras 3's legacy dialect: no module keys on layers,
    /// DTypePolicy objects, `__keras_tensor__` arguments with real shapes.
    func testModelConfigJSON() throws {
        let json = outerModel().kerasJSON()
        XCTAssertEqual(json["class_name"]?.string, "Functional")
        XCTAssertNil(json["module"])
        let layers = try XCTUnwrap(json["config"]?["layers"]?.array)
        XCTAssertNil(layers[1]["module"])
        XCTAssertEqual(layers[0]["config"]?.object?.keys.sorted(), ["batch_shape", "dtype", "name", "optional", "ragged", "sparse"])
        XCTAssertEqual(layers[1]["config"]?["dtype"]?["class_name"]?.string, "DTypePolicy")
        let nestedNode = try XCTUnwrap(layers[2]["inbound_nodes"]?[0])
        XCTAssertEqual(nestedNode["kwargs"]?["training"]?.bool, false)
        XCTAssertEqual(nestedNode["args"]?[0]?["config"]?["shape"], [nil, 8, 8, 3])
        let innerLayers = try XCTUnwrap(layers[2]["config"]?["layers"]?.array)
        // Add takes one list argument; the padded output feeds head_conv as 9×9×4.
        XCTAssertEqual(innerLayers[6]["inbound_nodes"]?[0]?["args"]?[0]?.array?.count, 2)
        XCTAssertEqual(layers[3]["inbound_nodes"]?[0]?["args"]?[0]?["config"]?["shape"], [nil, 9, 9, 4])
        XCTAssertEqual(layers[5]["inbound_nodes"]?[0]?["args"]?[0]?["config"]?["shape"], [nil, 2])
        XCTAssertEqual(json["config"]?["input_layers"], ["input_layer", 0, 0])
        // Non-ASCII text is escaped, as Python's json.dumps does, so the attribute can be tagged ASCII.
        var unicode = outerModel()
        unicode.layers[1].config = ["name": "rescaling", "scale": 1.0, "note": "ñ"]
        XCTAssertTrue(KerasConfigWriter.asciiJSON(unicode.kerasJSON()).contains("\\u00f1"))
        XCTAssertTrue(KerasConfigWriter.asciiJSON(unicode.kerasJSON()).unicodeScalars.allSatisfy(\.isASCII))
    }

    // MARK: Keras 3 .weights.h5

    func testWeightsFileRoundTripsIntoTheSameArchitecture() throws {
        var plainWeights = weights()
        // KerasFile names .weights.h5 variables by index without the layer config; keep BN's full set here.
        var model = outerModel()
        var inner = innerModel()
        inner.layers[4].config = ["name": "bn2", "trainable": true, "dtype": "float32"]
        model.layers[2].nested = inner
        plainWeights["bn2"]?["beta"] = tensor([4], seed: 15)
        let url = try temporaryDirectory().appendingPathComponent("model.weights.h5")
        try KerasWriter.writeWeights(model, weights: plainWeights, to: url)

        let file = try KerasFile.open(url)
        XCTAssertEqual(file.format, .keras3Weights)
        XCTAssertTrue(file.unnamedWeights.isEmpty)
        assertBitIdentical(file.weights, plainWeights)

        let root = try HDF5File(reading: url).root
        XCTAssertEqual(root.attributeNames(), [])
        XCTAssertEqual(try root.group("vars").stringAttribute("name"), "outer")
        XCTAssertEqual(try root.group("layers").childNames(),
                       ["conv2d", "dense", "dropout", "functional", "global_average_pooling2d", "input_layer", "rescaling"])
        XCTAssertEqual(try root.group("layers/conv2d/vars").stringAttribute("name"), "head_conv")
        XCTAssertEqual(try root.group("layers/functional/vars").stringAttribute("name"), "inner")
        XCTAssertEqual(try root.group("layers/functional/layers/batch_normalization_1/vars").stringAttribute("name"), "bn2")
        XCTAssertEqual(try root.group("layers/functional/layers/depthwise_conv2d/vars").childNames(), ["0", "1"])
        XCTAssertEqual(try root.dataset("layers/functional/layers/batch_normalization/vars/2").read(), plainWeights["bn"]?["moving_mean"])
        XCTAssertEqual(try root.group("layers/dropout/vars").childNames(), [])
    }

    /// Configs read from real Keras files (Keras 2 and 3 dialects, Sequential, `.keras`
    /// with module keys and shared dtype objects, a nested augmentation Sequential)
    /// are written back and read again unchanged. With `CRIA_WRITE_ROUNDTRIP=DIR` the
    /// files are kept as `DIR/resave_<name>.h5|.weights.h5` for check_cria_saves.py,
    /// which checks that Keras 3 loads them and predicts what the original predicted.
    func testResavesRealKerasFiles() throws {
        let keep = ProcessInfo.processInfo.environment["CRIA_WRITE_ROUNDTRIP"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
        let directory = try keep ?? temporaryDirectory()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let sources = ["keras/m035_96/k3_legacy_full.h5", "keras/m035_96/k2_full.h5", "keras/m035_96/k2_full_flat_top.h5",
                       "keras/m035_96/k3.keras", "keras/m050_75x90_top/model.h5"]
        for source in sources {
            let original = try KerasFile.open(Fixtures.url(source))
            let config = try XCTUnwrap(original.modelConfig, source)
            let stem = "resave_" + source.split(separator: "/").dropFirst().joined(separator: "_")
                .replacingOccurrences(of: ".h5", with: "").replacingOccurrences(of: ".keras", with: "")
            let full = directory.appendingPathComponent(stem + ".h5")
            let weightsOnly = directory.appendingPathComponent(stem + ".weights.h5")
            try KerasWriter.writeFullModel(config, weights: original.weights, metadata: ["source": .string(source)], to: full)
            try KerasWriter.writeWeights(config, weights: original.weights, to: weightsOnly)

            let reread = try KerasFile.open(full)
            let rereadConfig = try XCTUnwrap(reread.modelConfig)
            // Only weights some layer owns are written (Keras files may carry e.g. optimizer-free extras).
            assertBitIdentical(reread.weights, original.weights)
            XCTAssertEqual(rereadConfig.layers.map(\.name), config.layers.map(\.name), source)
            XCTAssertEqual(rereadConfig.layers.map(\.className), config.layers.map { $0.nested.map { KerasConfigWriter.containerClass($0.className) } ?? $0.className }, source)
            XCTAssertEqual(rereadConfig.layers.map(\.inputs), config.layers.map(\.inputs), source)
            XCTAssertEqual(rereadConfig.layers.map(\.trainingArgument), config.layers.map(\.trainingArgument), source)
            for (before, after) in zip(config.layers, rereadConfig.layers) {
                XCTAssertEqual(after.trainable, before.trainable, "\(source): \(before.name)")
                XCTAssertEqual(after.nested?.layers.map(\.name), before.nested?.layers.map(\.name), "\(source): \(before.name)")
                XCTAssertEqual(after.nested?.layers.filter { $0.className != "InputLayer" }.map(\.trainable),
                               before.nested?.layers.filter { $0.className != "InputLayer" }.map(\.trainable), "\(source): \(before.name)")
            }
            if config.className == "Sequential" {
                // Keras 3 scopes a Sequential's own layers' variables under the model's name.
                let dense = try HDF5File(reading: full).root.group("model_weights/dense")
                XCTAssertEqual(try dense.stringArrayAttribute("weight_names"), ["\(config.name)/dense/kernel", "\(config.name)/dense/bias"], source)
                XCTAssertTrue(dense.isDataset("\(config.name)/dense/kernel"), source)
            }
            let weightsFile = try KerasFile.open(weightsOnly)
            XCTAssertTrue(weightsFile.unnamedWeights.isEmpty, source)
            XCTAssertEqual(Set(weightsFile.weights.keys), Set(original.weights.keys), source)
            for (layerName, variables) in original.weights {
                for (variable, tensor) in variables where layerName != "normalization" {
                    XCTAssertEqual(weightsFile.weights[layerName]?[variable]?.scalars.map(\.bitPattern), tensor.scalars.map(\.bitPattern),
                                   "\(source): \(layerName)/\(variable)")
                }
            }
        }
    }

    func testSnakeCaseMatchesKeras() {
        XCTAssertEqual(KerasNaming.snakeCase("GlobalAveragePooling2D"), "global_average_pooling2d")
        XCTAssertEqual(KerasNaming.snakeCase("ReLU"), "re_lu")
        XCTAssertEqual(KerasNaming.snakeCase("DepthwiseConv2D"), "depthwise_conv2d")
        XCTAssertEqual(KerasNaming.snakeCase("BatchNormalization"), "batch_normalization")
        XCTAssertEqual(KerasNaming.snakeCase("Functional"), "functional")
    }

    // MARK: Failures leave existing files alone

    func testFailedWriteLeavesTheExistingFileUntouched() throws {
        let directory = try temporaryDirectory()
        let url = directory.appendingPathComponent("model.h5")
        try KerasWriter.writeFullModel(outerModel(), weights: weights(), metadata: ["class_names": ["a"]], to: url)
        let before = try Data(contentsOf: url)

        var diverged = weights()
        diverged["dense"]?["bias"] = Tensor(shape: [3], scalars: [0, .nan, 1])
        XCTAssertThrowsError(try KerasWriter.writeFullModel(outerModel(), weights: diverged, metadata: nil, to: url)) { error in
            XCTAssertTrue("\(error)".contains("dense/bias"), "\(error)")
            XCTAssertTrue("\(error)".contains(url.path), "\(error)")
        }
        var missing = weights()
        missing["bn"]?["moving_variance"] = nil
        XCTAssertThrowsError(try KerasWriter.writeWeights(outerModel(), weights: missing, to: url)) { error in
            XCTAssertTrue("\(error)".contains("bn") && "\(error)".contains("moving_variance"), "\(error)")
        }
        var unknown = weights()
        unknown["gap"] = ["kernel": tensor([1], seed: 16)]
        XCTAssertThrowsError(try KerasWriter.writeFullModel(outerModel(), weights: unknown, metadata: nil, to: url)) { error in
            XCTAssertTrue("\(error)".contains("gap") && "\(error)".contains("kernel"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: url), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["model.h5"], "temporary files left behind")
        XCTAssertEqual(try KerasFile.open(url).criaMetadata, ["class_names": ["a"]])

        // A destination that cannot be created (its parent is a file) fails with one clear line.
        let blocked = url.appendingPathComponent("x.h5")
        XCTAssertThrowsError(try KerasWriter.writeWeights(outerModel(), weights: weights(), to: blocked)) { error in
            XCTAssertTrue("\(error)".contains(blocked.path), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: url), before)
    }

    func testOverwritesAnExistingFileAtomically() throws {
        let url = try temporaryDirectory().appendingPathComponent("model.h5")
        try KerasWriter.writeFullModel(outerModel(), weights: weights(), metadata: ["v": 1], to: url)
        var changed = weights()
        changed["dense"]?["bias"] = Tensor(shape: [3], scalars: [1, 2, 3])
        try KerasWriter.writeFullModel(outerModel(), weights: changed, metadata: ["v": 2], to: url)
        let file = try KerasFile.open(url)
        XCTAssertEqual(file.criaMetadata, ["v": 2])
        XCTAssertEqual(file.weights["dense"]?["bias"]?.scalars, [1, 2, 3])
    }
}
