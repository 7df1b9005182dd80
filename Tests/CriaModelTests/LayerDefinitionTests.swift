import CriaCore
import CriaKerasIO
import CriaModel
import XCTest

/// The table of layer definitions (`CriaModel/Layers/`): every Keras class Cria supports
/// parses into a kind whose definition is the one that lists the class, and each
/// definition's shapes, variables and cost are the Keras ones for small hand-checked cases.
/// MobileNetV2StructureTests checks the same against Keras's own layer lists.
final class LayerDefinitionTests: XCTestCase {
    /// The smallest config each class accepts.
    private static let minimalConfigs: [String: JSONValue] = [
        "InputLayer": .object(["batch_shape": .array([.null, .number(8), .number(8), .number(3)])]),
        "Conv2D": .object(["filters": .number(4), "kernel_size": .array([.number(3), .number(3)])]),
        "DepthwiseConv2D": .object(["kernel_size": .number(3)]),
        "Dense": .object(["units": .number(5)]),
        "Rescaling": .object(["scale": .number(0.5)]),
        "ZeroPadding2D": .object(["padding": .number(1)]),
    ]

    private func layer(_ className: String, _ config: JSONValue? = nil) -> KerasLayerReader {
        KerasLayerReader(layer: KerasLayerConfig(className: className, name: "probe", config: config ?? Self.minimalConfigs[className] ?? .object([:]),
                                                 inputs: []),
                         source: "test")
    }

    private func shapes(_ inputs: [[Int]]) -> LayerShapes {
        LayerShapes(inputs: inputs, imageSize: (nil, nil), fail: { CriaError("bad shape: \($0)") })
    }

    func testEveryClassParsesIntoTheKindOfItsDefinition() throws {
        for definition in LayerKind.definitions {
            for className in definition.kerasClassNames {
                let kind = try definition.parse(layer(className))
                XCTAssertTrue(type(of: kind.definition) == definition, "\(className) parsed into \(kind), defined by \(type(of: kind.definition))")
            }
        }
    }

    func testSupportedClassesAreTheDefinitionsClassesWithoutRepeats() {
        let classes = LayerKind.supportedClasses
        XCTAssertEqual(Set(classes).count, classes.count, "a Keras class listed by two definitions")
        XCTAssertEqual(Array(classes.prefix(14)), ["InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Activation",
                                                   "ZeroPadding2D", "Add", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Dropout",
                                                   "Dense", "Rescaling", "Normalization"])
        XCTAssertTrue(classes.contains("RandomFlip"))
    }

    /// The Keras writer (CriaKerasIO, below the layer model) keeps its own list of each class's
    /// variables; it must name the ones the definitions read, in the same order, or a model Cria
    /// trains would be written without them.
    func testTheKerasWriterNamesEveryDefinitionsVariablesInItsOrder() throws {
        let variants: [String: [JSONValue]] = [
            "Conv2D": [.object(["filters": .number(4), "use_bias": .bool(false)])],
            "DepthwiseConv2D": [.object(["use_bias": .bool(false)])],
            "Dense": [.object(["units": .number(2), "use_bias": .bool(false)])],
            "BatchNormalization": [.object(["center": .bool(false)]), .object(["scale": .bool(false)]),
                                   .object(["center": .bool(false), "scale": .bool(false)])],
        ]
        for definition in LayerKind.definitions {
            // An adapted Normalization's mean and variance are state read from the file, not variables Cria checks or trains.
            guard definition != NormalizationLayer.self else { continue }
            for className in definition.kerasClassNames {
                for config in [Self.minimalConfigs[className] ?? .object([:])] + (variants[className] ?? []) {
                    let reader = layer(className, config)
                    let kind = try definition.parse(reader)
                    XCTAssertEqual(kind.definition.variables(inputChannels: 3).map(\.name), KerasVariables.names(for: reader.layer),
                                   "\(className) \(config)")
                }
            }
        }
    }

    func testConvolutionShapesVariablesAndCost() throws {
        let same = JSONValue.object(["filters": .number(8), "kernel_size": .number(3), "strides": .number(2), "padding": .string("same"),
                                     "use_bias": .bool(false)])
        let conv = try Conv2DLayer.parse(layer("Conv2D", same)).definition
        XCTAssertEqual(try conv.outputShape(shapes([[9, 10, 3]])), [5, 5, 8])
        XCTAssertEqual(conv.variables(inputChannels: 3).map(\.name), ["kernel"])
        XCTAssertEqual(conv.variables(inputChannels: 3).map(\.shape), [[3, 3, 3, 8]])
        XCTAssertEqual(conv.multiplyAdds(inputShape: [9, 10, 3], outputShape: [5, 5, 8]), 25 * 8 * 9 * 3)
        XCTAssertTrue(conv.trainsVariables)

        let depthwise = try DepthwiseConv2DLayer.parse(layer("DepthwiseConv2D")).definition
        XCTAssertEqual(try depthwise.outputShape(shapes([[6, 6, 16]])), [4, 4, 16])
        XCTAssertEqual(depthwise.variables(inputChannels: 16).map(\.shape), [[3, 3, 16, 1], [16]])
        XCTAssertEqual(depthwise.multiplyAdds(inputShape: [6, 6, 16], outputShape: [4, 4, 16]), 16 * 16 * 9)
        XCTAssertThrowsError(try depthwise.outputShape(shapes([[2, 6, 16]])), "a valid 3×3 window does not fit 2 rows")
        XCTAssertThrowsError(try depthwise.outputShape(shapes([[16]])), "a convolution needs an image")
    }

    func testBatchNormVariablesInKerasOrder() throws {
        let scaleOnly = try BatchNormalizationLayer.parse(layer("BatchNormalization", .object(["center": .bool(false)]))).definition
        XCTAssertEqual(scaleOnly.variables(inputChannels: 4).map(\.name), ["gamma", "moving_mean", "moving_variance"])
        XCTAssertTrue(scaleOnly.trainsVariables)
        let neither = try BatchNormalizationLayer.parse(layer("BatchNormalization", .object(["center": .bool(false), "scale": .bool(false)])))
        XCTAssertFalse(neither.definition.trainsVariables, "only moving statistics: nothing for an optimizer")
        XCTAssertTrue(neither.definition.changesInTraining(batchStatistics: true))
        XCTAssertFalse(neither.definition.changesInTraining(batchStatistics: false))
        XCTAssertThrowsError(try BatchNormalizationLayer.parse(layer("BatchNormalization", .object(["axis": .number(1)]))))
    }

    func testDenseAddPoolingAndPassThroughShapes() throws {
        let dense = try DenseLayer.parse(layer("Dense")).definition
        XCTAssertEqual(try dense.outputShape(shapes([[7]])), [5])
        XCTAssertEqual(dense.variables(inputChannels: 7).map(\.shape), [[7, 5], [5]])
        XCTAssertEqual(dense.multiplyAdds(inputShape: [7], outputShape: [5]), 35)
        XCTAssertTrue(dense.backwardReadsOutput == false, "a linear Dense does not read its output in backward")

        XCTAssertEqual(try LayerKind.add.definition.outputShape(shapes([[2, 2, 3], [2, 2, 3]])), [2, 2, 3])
        XCTAssertThrowsError(try LayerKind.add.definition.outputShape(shapes([[2, 2, 3], [2, 2, 4]])))
        XCTAssertEqual(try LayerKind.globalAveragePooling2D(keepDims: true).definition.outputShape(shapes([[4, 4, 6]])), [1, 1, 6])
        XCTAssertEqual(try LayerKind.globalMaxPooling2D(keepDims: false).definition.outputShape(shapes([[4, 4, 6]])), [6])
        XCTAssertEqual(try LayerKind.zeroPadding2D(top: 0, bottom: 1, left: 2, right: 1).definition.outputShape(shapes([[4, 4, 6]])), [5, 7, 6])
        XCTAssertEqual(try LayerKind.identity.definition.outputShape(shapes([[3]])), [3])
        XCTAssertThrowsError(try LayerKind.relu(maxValue: 6, threshold: 0, negativeSlope: 0).definition.outputShape(shapes([])), "no input")
        XCTAssertTrue(LayerKind.dropout(rate: 0.2).definition.changesInTraining(batchStatistics: false))
        XCTAssertFalse(LayerKind.dropout(rate: 0).definition.changesInTraining(batchStatistics: false))
    }

    func testInputTakesTheAskedSizeWhenTheModelLeavesItOpen() throws {
        let open = try InputLayerDefinition.parse(layer("InputLayer", .object([:]))).definition
        XCTAssertEqual(try open.outputShape(LayerShapes(inputs: [], imageSize: (96, 128), fail: { CriaError($0) })), [96, 128, 3])
        XCTAssertThrowsError(try open.outputShape(shapes([])), "no size from the model or the caller")
        XCTAssertEqual(try InputLayerDefinition.parse(layer("InputLayer")).definition.outputShape(shapes([])), [8, 8, 3])
    }

    func testBadConfigsFailWithTheLayerNamed() {
        XCTAssertThrowsError(try Conv2DLayer.parse(layer("Conv2D", .object(["dilation_rate": .number(2)])))) { error in
            XCTAssertTrue("\(error)".contains("layer probe (Conv2D)"), "\(error)")
            XCTAssertTrue("\(error)".contains("dilation_rate"), "\(error)")
        }
        XCTAssertThrowsError(try DenseLayer.parse(layer("Dense", .object([:])))) { XCTAssertTrue("\($0)".contains("has no units"), "\($0)") }
        XCTAssertThrowsError(try ActivationLayer.parse(layer("Activation", .object(["activation": .string("gelu")]))))
    }
}
