import CriaCore
import CriaKerasIO
import CriaKernels
import Foundation

/// Keras's "same" and "valid" convolution padding.
public enum ConvPadding: String, Sendable {
    case same, valid

    /// TensorFlow's rule: "same" pads `total / 2` before and the rest after.
    public func amounts(input: Int, kernel: Int, stride: Int) -> (before: Int, after: Int, output: Int) {
        switch self {
        case .valid:
            return (0, 0, input >= kernel ? (input - kernel) / stride + 1 : 0)
        case .same:
            let output = (input + stride - 1) / stride
            let total = max((output - 1) * stride + kernel - input, 0)
            return (total / 2, total - total / 2, output)
        }
    }
}

/// Element-wise activations as Keras names them.
public enum ActivationFunction: String, Sendable {
    case linear, relu, relu6, sigmoid, softmax

    /// The clamp a kernel epilogue can fuse, or nil when the activation is not a clamp.
    public var clamp: Clamp? {
        switch self {
        case .linear: return Clamp.none
        case .relu: return .relu
        case .relu6: return .relu6
        case .sigmoid, .softmax: return nil
        }
    }

    /// Applies the activation in place to `rows` rows of `columns` values (softmax is per row).
    public func apply(_ data: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        switch self {
        case .linear: break
        case .relu: for i in 0 ..< rows * columns { data[i] = max(data[i], 0) }
        case .relu6: for i in 0 ..< rows * columns { data[i] = min(max(data[i], 0), 6) }
        case .sigmoid: Activations.sigmoid(data, count: rows * columns)
        case .softmax: Activations.softmax(data, rows: rows, columns: columns)
        }
    }

    init(keras name: String?, layer: String, source: String) throws {
        guard let function = ActivationFunction(rawValue: name ?? "linear") else {
            throw CriaError("\(source): layer \(layer): activation \"\(name ?? "")\" is not supported (linear, relu, relu6, sigmoid, softmax)")
        }
        self = function
    }
}

public struct ConvSpec: Equatable, Sendable {
    public var filters: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideH: Int
    public var strideW: Int
    public var padding: ConvPadding
    public var useBias: Bool
    public var activation: ActivationFunction
}

/// What a layer computes, parsed and validated from its Keras config.
public enum LayerKind: Equatable, Sendable {
    case input(height: Int?, width: Int?, channels: Int?)
    case conv2D(ConvSpec)
    case depthwiseConv2D(ConvSpec)
    case batchNormalization(epsilon: Float, center: Bool, scale: Bool)
    case relu(maxValue: Float?, threshold: Float, negativeSlope: Float)
    case activation(ActivationFunction)
    case zeroPadding2D(top: Int, bottom: Int, left: Int, right: Int)
    case add
    case globalAveragePooling2D(keepDims: Bool)
    case globalMaxPooling2D(keepDims: Bool)
    case dropout(rate: Float)
    case dense(units: Int, activation: ActivationFunction, useBias: Bool)
    case rescaling(scale: Float, offset: Float)
    case normalization(mean: [Float]?, variance: [Float]?)
    /// A layer that passes its input through at inference: augmentation layers,
    /// and the InputLayer of a nested model.
    case identity

    /// Every layer kind's definition, in the order error messages list them: parsing finds
    /// a Keras class here. A new kind adds its case above, its row here and in `definition`.
    public static let definitions: [any LayerDefinition.Type] = [
        InputLayerDefinition.self, Conv2DLayer.self, DepthwiseConv2DLayer.self, BatchNormalizationLayer.self, ReLULayer.self,
        ActivationLayer.self, ZeroPadding2DLayer.self, AddLayer.self, GlobalAveragePooling2DLayer.self,
        GlobalMaxPooling2DLayer.self, DropoutLayer.self, DenseLayer.self, RescalingLayer.self, NormalizationLayer.self,
        IdentityLayer.self,
    ]

    /// What this kind computes and knows about itself (`Layers/`).
    public var definition: any LayerDefinition {
        switch self {
        case .input(let height, let width, let channels): return InputLayerDefinition(height: height, width: width, channels: channels)
        case .conv2D(let spec): return Conv2DLayer(spec: spec)
        case .depthwiseConv2D(let spec): return DepthwiseConv2DLayer(spec: spec)
        case .batchNormalization(let epsilon, let center, let scale): return BatchNormalizationLayer(epsilon: epsilon, center: center, scale: scale)
        case .relu(let maxValue, let threshold, let slope): return ReLULayer(maxValue: maxValue, threshold: threshold, negativeSlope: slope)
        case .activation(let function): return ActivationLayer(function: function)
        case .zeroPadding2D(let top, let bottom, let left, let right): return ZeroPadding2DLayer(top: top, bottom: bottom, left: left, right: right)
        case .add: return AddLayer()
        case .globalAveragePooling2D(let keepDims): return GlobalAveragePooling2DLayer(keepDims: keepDims)
        case .globalMaxPooling2D(let keepDims): return GlobalMaxPooling2DLayer(keepDims: keepDims)
        case .dropout(let rate): return DropoutLayer(rate: rate)
        case .dense(let units, let activation, let useBias): return DenseLayer(units: units, activation: activation, useBias: useBias)
        case .rescaling(let scale, let offset): return RescalingLayer(scale: scale, offset: offset)
        case .normalization(let mean, let variance): return NormalizationLayer(mean: mean, variance: variance)
        case .identity: return IdentityLayer()
        }
    }

    public static let supportedClasses: [String] = definitions.flatMap { $0.kerasClassNames }

    private static let definitionsByClass: [String: any LayerDefinition.Type] = Dictionary(
        definitions.flatMap { definition in definition.kerasClassNames.map { ($0, definition) } }, uniquingKeysWith: { first, _ in first })

    static func parse(_ layer: KerasLayerConfig, source: String) throws -> LayerKind {
        guard let definition = definitionsByClass[layer.className] else {
            throw CriaError("\(source): layer \(layer.name) has class \(layer.className), which Cria does not support (supported: \(supportedClasses.joined(separator: ", ")))")
        }
        return try definition.parse(KerasLayerReader(layer: layer, source: source))
    }

    /// The variables this layer reads from a weights file, with their expected shapes, in Keras's order.
    public func expectedWeights(inputChannels: Int) -> [(name: String, shape: [Int])] {
        definition.variables(inputChannels: inputChannels)
    }

    /// The variables and shapes this layer owns, for initialising or checking weights.
    public func expectedWeightShapes(inputChannels: Int) -> [(name: String, shape: [Int])] {
        expectedWeights(inputChannels: inputChannels)
    }

    /// Parameters as Keras's `count_params` reports them for this layer.
    public func expectedParameterCount(inputChannels: Int) -> Int {
        expectedWeights(inputChannels: inputChannels).reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    /// Keras 3's snake-case class name, the stem of its `.weights.h5` object paths.
    static func snakeCase(_ className: String) -> String { KerasNaming.snakeCase(className) }
}
