import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import Foundation
import XCTest

/// A model saved by Cria, loaded by Keras 3, and back: the committed fixture in
/// Tests/Fixtures/roundtrip holds Cria's legacy `.h5` of the tutorial's transfer
/// model and what Keras 3 predicted after `load_model` / `load_weights` on Cria's
/// files (Tests/Fixtures/generate/check_cria_saves.py), so this runs without TensorFlow.
///
/// To regenerate: `make check-keras-roundtrip ROUNDTRIP_DIR=Tests/Fixtures/roundtrip`
/// (sets `CRIA_WRITE_ROUNDTRIP=DIR`, so this test writes Cria's files there, then
/// runs the Python checker on them).
final class SavedModelRoundTripTests: XCTestCase {
    static let classNames = ["alpaca", "not alpaca"]
    static let baseName = "mobilenetv2_0.35_96"
    static let fineTuneAt = 120
    private let fixtures = "roundtrip/"

    /// Input → Rescaling(1/127.5, -1) → MobileNetV2(0.35, 96, no top)(training=False), layers
    /// before 120 frozen → GlobalAveragePooling2D → Dropout(0.2) → Dense(1) logits.
    static func transferConfig() throws -> KerasModelConfig {
        var base = try MobileNetV2.config(alpha: 0.35, inputHeight: 96, inputWidth: 96, includeTop: false)
        XCTAssertEqual(base.name, baseName)
        XCTAssertEqual(base.layers[fineTuneAt].name, "block_13_depthwise")
        for index in 0..<fineTuneAt {
            guard case .object(var fields) = base.layers[index].config else { continue }
            fields["trainable"] = false
            base.layers[index].config = .object(fields)
        }
        func layer(_ className: String, _ name: String, _ fields: [String: JSONValue], from input: String) -> KerasLayerConfig {
            var config = fields
            config["name"] = .string(name)
            config["trainable"] = true
            config["dtype"] = "float32"
            return KerasLayerConfig(className: className, name: name, config: .object(config), inputs: [TensorReference(layer: input)])
        }
        // Keras names the outer input `input_layer_1` because the base's InputLayer took `input_layer` first.
        let input = KerasLayerConfig(className: "InputLayer", name: "input_layer_1",
                                     config: ["batch_shape": [nil, 96, 96, 3], "dtype": "float32"], inputs: [])
        let nested = KerasLayerConfig(className: "Functional", name: base.name, config: ["name": .string(base.name), "trainable": true],
                                      inputs: [TensorReference(layer: "rescaling")], trainingArgument: false, nested: base)
        return KerasModelConfig(className: "Functional", name: "functional", layers: [
            input,
            layer("Rescaling", "rescaling", ["scale": .number(1 / 127.5), "offset": -1.0], from: "input_layer_1"),
            nested,
            layer("GlobalAveragePooling2D", "global_average_pooling2d", ["data_format": "channels_last", "keepdims": false], from: base.name),
            layer("Dropout", "dropout", ["rate": 0.2], from: "global_average_pooling2d"),
            layer("Dense", "dense", ["units": 1, "activation": "linear", "use_bias": true], from: "dropout"),
        ], inputs: [TensorReference(layer: "input_layer_1")], outputs: [TensorReference(layer: "dense")])
    }

    /// The base's weights of `keras/m035_96/k2_weights.h5` and a seeded Dense head. Only used
    /// when regenerating: that Keras fixture may itself be regenerated with other values, so the
    /// tests otherwise take the weights from the committed Cria file Keras predicted on.
    static func weightsForRegenerating() throws -> [String: LayerWeights] {
        var weights = try KerasFile.open(Fixtures.url("keras/m035_96/k2_weights.h5")).weights
        weights["dense"] = seededDense()
        return weights
    }

    static func seededDense() -> LayerWeights {
        var state: UInt64 = 20261127
        func uniform() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24) * 0.1 - 0.05
        }
        return ["kernel": Tensor(shape: [1280, 1], scalars: (0..<1280).map { _ in uniform() }),
                "bias": Tensor(shape: [1], scalars: [0.1])]
    }

    private func transferWeights() throws -> [String: LayerWeights] {
        if writing { return try Self.weightsForRegenerating() }
        let weights = try KerasFile.open(Fixtures.url(fixtures + "cria_transfer.h5")).weights
        XCTAssertEqual(weights["dense"], Self.seededDense(), "the committed head is the seeded one")
        return weights
    }

    static func float32Rounded(_ value: JSONValue) -> JSONValue {
        switch value {
        case .number(let number): return .number(Double(Float(number)))
        case .array(let items): return .array(items.map(float32Rounded))
        case .object(let fields): return .object(fields.mapValues(float32Rounded))
        default: return value
        }
    }

    static var metadata: JSONValue {
        ["class_names": .array(classNames.map(JSONValue.string)), "cria_version": "roundtrip-fixture",
         "fine_tune_at": .number(Double(fineTuneAt))]
    }

    /// CRIA_WRITE_ROUNDTRIP=DIR keeps the written files there (to feed the Python checker).
    private func outputDirectory() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["CRIA_WRITE_ROUNDTRIP"], !path.isEmpty {
            let url = URL(fileURLWithPath: path, isDirectory: true)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            return url
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cria-roundtrip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private var writing: Bool { !(ProcessInfo.processInfo.environment["CRIA_WRITE_ROUNDTRIP"] ?? "").isEmpty }

    /// Keras's predictions on Cria's files, or nil while they are being regenerated.
    private func kerasOutput(_ name: String) throws -> Tensor? {
        let url = Fixtures.url(fixtures + name)
        if !FileManager.default.fileExists(atPath: url.path) {
            if writing { return nil }
            XCTFail("\(url.path) is missing; run make check-keras-roundtrip ROUNDTRIP_DIR=Tests/Fixtures/roundtrip")
            return nil
        }
        return try NPY.read(url)
    }

    private func input() throws -> Tensor? {
        let url = Fixtures.url(fixtures + "input.npy")
        guard FileManager.default.fileExists(atPath: url.path) else {
            if !writing { XCTFail("\(url.path) is missing") }
            return nil
        }
        return try NPY.read(url)
    }

    private func assertWeightsBitIdentical(_ actual: [String: LayerWeights], _ expected: [String: LayerWeights], _ label: String) {
        var compared = 0
        for (layer, variables) in expected {
            for (variable, tensor) in variables {
                guard let read = actual[layer]?[variable] else {
                    XCTFail("\(label): \(layer)/\(variable) missing after reload")
                    continue
                }
                XCTAssertEqual(read.shape, tensor.shape, "\(label): \(layer)/\(variable)")
                XCTAssertTrue(read.scalars.map(\.bitPattern) == tensor.scalars.map(\.bitPattern), "\(label): \(layer)/\(variable) differs")
                compared += 1
            }
        }
        XCTAssertEqual(compared, 262, "\(label): the base's 260 variables and the Dense kernel and bias")
    }

    private func assertTrainableFlags(_ graph: ModelGraph, _ label: String) {
        var checked = 0
        for node in graph.nodes {
            if node.owner == Self.baseName {
                XCTAssertTrue(node.forcedInference, "\(label): \(node.name) runs with training=False")
                // Keras does not serialise an InputLayer's flag; the flags that matter are on weighted layers.
                guard !node.weights.isEmpty else { continue }
                XCTAssertEqual(node.trainable, node.indexInOwner >= Self.fineTuneAt, "\(label): \(node.name)")
                checked += 1
            } else {
                XCTAssertTrue(node.trainable, "\(label): \(node.name)")
            }
        }
        XCTAssertEqual(checked, 104, "\(label): weighted base layers")
    }

    func testCriaReloadsItsOwnFilesAndMatchesKerasPredictions() throws {
        let config = try Self.transferConfig()
        let weights = try transferWeights()
        let directory = try outputDirectory()
        let fullURL = directory.appendingPathComponent("cria_transfer.h5")
        let weightsURL = directory.appendingPathComponent("cria_transfer.weights.h5")
        try KerasWriter.writeFullModel(config, weights: weights, metadata: Self.metadata, to: fullURL)
        try KerasWriter.writeWeights(config, weights: weights, to: weightsURL)

        // Cria's own reload: exact weights, class names, trainable flags and training=False.
        let file = try KerasFile.open(fullURL)
        XCTAssertEqual(file.format, .keras3LegacyFullModel)
        XCTAssertEqual(file.criaMetadata?["class_names"], Self.metadata["class_names"])
        XCTAssertEqual(file.criaMetadata?["class_names"]?.array?.compactMap(\.string), Self.classNames)
        assertWeightsBitIdentical(file.weights, weights, "full model")
        let weightsFile = try KerasFile.open(weightsURL)
        XCTAssertEqual(weightsFile.format, .keras3Weights)
        assertWeightsBitIdentical(weightsFile.weights, weights, ".weights.h5")

        let fullModel = try InferenceModel.load(fullURL)
        assertTrainableFlags(fullModel.graph, "full model")
        let weightsModel = try InferenceModel.load(weightsURL, architecture: config)

        guard let x = try input() else { return }
        let criaFull = try fullModel(x)
        let criaWeights = try weightsModel(x)
        XCTAssertEqual(criaFull.scalars, criaWeights.scalars, "the two files hold the same model")
        if let keras = try kerasOutput("keras_full_output.npy") {
            assertMatches(criaFull, keras, relative: 1e-4, "Cria on its .h5 vs Keras load_model on it")
        }
        if let keras = try kerasOutput("keras_weights_output.npy") {
            assertMatches(criaWeights, keras, relative: 1e-4, "Cria on its .weights.h5 vs Keras load_weights of it")
        }
    }

    /// The committed file itself: what Keras loaded is what the test builds today, and
    /// Cria still reads it (flags, class names) and predicts what Keras predicted.
    func testCommittedCriaFile() throws {
        let url = Fixtures.url(fixtures + "cria_transfer.h5")
        guard FileManager.default.fileExists(atPath: url.path) else {
            if writing { throw Skip.decision("regenerating the round-trip fixture") }
            XCTFail("\(url.path) is missing"); return
        }
        let file = try KerasFile.open(url)
        XCTAssertEqual(file.criaMetadata?["class_names"]?.array?.compactMap(\.string), Self.classNames)
        XCTAssertEqual(file.weights.values.reduce(0) { $0 + $1.count }, 262, "the base's 260 variables and the Dense kernel and bias")
        let config = try XCTUnwrap(file.modelConfig)
        // Compared at float32 precision: Foundation's JSON parser on Linux can land one double ULP
        // off the shortest representation the file holds (1/127.5 reads back as 0.007843137254901959).
        XCTAssertTrue(Self.float32Rounded(config.kerasJSON()) == Self.float32Rounded(try Self.transferConfig().kerasJSON()),
                      "the committed config is not what the writer produces today")
        let model = try InferenceModel.load(url)
        assertTrainableFlags(model.graph, "committed file")
        guard let x = try input(), let keras = try kerasOutput("keras_full_output.npy") else { return }
        assertMatches(try model(x), keras, relative: 1e-4, "Cria on the committed .h5 vs Keras's predictions")
    }
}
