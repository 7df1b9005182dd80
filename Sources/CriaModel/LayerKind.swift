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

    /// Keras's random augmentation layers are no-ops when `training` is false.
    static let inferenceNoOps: Set<String> = [
        "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
        "RandomBrightness", "GaussianNoise", "GaussianDropout", "AlphaDropout", "SpatialDropout2D",
        "ActivityRegularization",
    ]

    public static let supportedClasses: [String] = [
        "InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Activation", "ZeroPadding2D", "Add",
        "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Dropout", "Dense", "Rescaling", "Normalization",
    ] + inferenceNoOps.sorted()

    static func parse(_ layer: KerasLayerConfig, source: String) throws -> LayerKind {
        let config = layer.config
        let name = layer.name
        func fail(_ message: String) -> CriaError { CriaError("\(source): layer \(name) (\(layer.className)): \(message)") }
        func pair(_ key: String, default value: Int) throws -> (Int, Int) {
            guard let entry = config[key] else { return (value, value) }
            if let single = entry.int { return (single, single) }
            guard let first = entry[0]?.int, let second = entry[1]?.int else { throw fail("cannot read \(key)") }
            return (first, second)
        }
        func checkChannelsLast() throws {
            if let format = config["data_format"]?.string, format != "channels_last" {
                throw fail("data_format \(format) is not supported; Cria computes in NHWC (channels_last)")
            }
        }
        switch layer.className {
        case "InputLayer":
            let shape = (config["batch_shape"] ?? config["batch_input_shape"])?.array ?? []
            guard shape.count == 4 || shape.isEmpty else {
                throw fail("input shape \(shape.map { $0.int.map(String.init) ?? "None" }) is not an image batch (N, H, W, C)")
            }
            return .input(height: shape.count == 4 ? shape[1].int : nil, width: shape.count == 4 ? shape[2].int : nil,
                          channels: shape.count == 4 ? shape[3].int : nil)
        case "Conv2D", "DepthwiseConv2D":
            try checkChannelsLast()
            let (kh, kw) = try pair("kernel_size", default: 1)
            let (sh, sw) = try pair("strides", default: 1)
            let (dh, dw) = try pair("dilation_rate", default: 1)
            guard dh == 1, dw == 1 else { throw fail("dilation_rate (\(dh), \(dw)) is not supported") }
            if let groups = config["groups"]?.int, groups != 1 { throw fail("groups=\(groups) is not supported") }
            if layer.className == "DepthwiseConv2D", let multiplier = config["depth_multiplier"]?.int, multiplier != 1 {
                throw fail("depth_multiplier=\(multiplier) is not supported")
            }
            guard let padding = ConvPadding(rawValue: config["padding"]?.string ?? "valid") else {
                throw fail("padding \(config["padding"]?.string ?? "?") is not supported")
            }
            let filters = layer.className == "Conv2D" ? (config["filters"]?.int ?? 0) : 0
            let spec = ConvSpec(filters: filters, kernelHeight: kh, kernelWidth: kw, strideH: sh, strideW: sw, padding: padding,
                                useBias: config["use_bias"]?.bool ?? true,
                                activation: try ActivationFunction(keras: config["activation"]?.string, layer: name, source: source))
            return layer.className == "Conv2D" ? .conv2D(spec) : .depthwiseConv2D(spec)
        case "BatchNormalization":
            if let axis = config["axis"]?.int, axis != -1, axis != 3 { throw fail("axis \(axis) is not the channel axis") }
            if let axes = config["axis"]?.array, axes.count != 1 || (axes[0].int != -1 && axes[0].int != 3) {
                throw fail("axis \(axes) is not the channel axis")
            }
            return .batchNormalization(epsilon: Float(config["epsilon"]?.double ?? 1e-3),
                                       center: config["center"]?.bool ?? true, scale: config["scale"]?.bool ?? true)
        case "ReLU":
            return .relu(maxValue: config["max_value"]?.double.map(Float.init),
                         threshold: Float(config["threshold"]?.double ?? 0),
                         negativeSlope: Float(config["negative_slope"]?.double ?? 0))
        case "Activation":
            return .activation(try ActivationFunction(keras: config["activation"]?.string, layer: name, source: source))
        case "ZeroPadding2D":
            try checkChannelsLast()
            let padding = config["padding"]
            if let all = padding?.int { return .zeroPadding2D(top: all, bottom: all, left: all, right: all) }
            guard let rows = padding?[0], let columns = padding?[1] else { throw fail("cannot read padding") }
            if let height = rows.int, let width = columns.int {
                return .zeroPadding2D(top: height, bottom: height, left: width, right: width)
            }
            guard let top = rows[0]?.int, let bottom = rows[1]?.int, let left = columns[0]?.int, let right = columns[1]?.int else {
                throw fail("cannot read padding")
            }
            return .zeroPadding2D(top: top, bottom: bottom, left: left, right: right)
        case "Add":
            return .add
        case "GlobalAveragePooling2D", "GlobalMaxPooling2D":
            try checkChannelsLast()
            let keepDims = config["keepdims"]?.bool ?? false
            return layer.className == "GlobalAveragePooling2D" ? .globalAveragePooling2D(keepDims: keepDims) : .globalMaxPooling2D(keepDims: keepDims)
        case "Dropout":
            return .dropout(rate: Float(config["rate"]?.double ?? 0))
        case "Dense":
            guard let units = config["units"]?.int else { throw fail("has no units") }
            return .dense(units: units, activation: try ActivationFunction(keras: config["activation"]?.string, layer: name, source: source),
                          useBias: config["use_bias"]?.bool ?? true)
        case "Rescaling":
            guard let scale = config["scale"]?.double else { throw fail("only a scalar scale is supported") }
            return .rescaling(scale: Float(scale), offset: Float(config["offset"]?.double ?? 0))
        case "Normalization":
            if let axis = config["axis"]?.int, axis != -1, axis != 3 { throw fail("axis \(axis) is not the channel axis") }
            if config["invert"]?.bool == true { throw fail("invert=True is not supported") }
            func floats(_ key: String) -> [Float]? {
                if let value = config[key]?.double { return [Float(value)] }
                return config[key]?.array?.compactMap { $0.double.map(Float.init) }
            }
            return .normalization(mean: floats("mean"), variance: floats("variance"))
        default:
            if inferenceNoOps.contains(layer.className) { return .identity }
            throw CriaError("\(source): layer \(name) has class \(layer.className), which Cria does not support (supported: \(supportedClasses.joined(separator: ", ")))")
        }
    }

    /// The variables this layer reads from a weights file, with their expected shapes.
    public func expectedWeights(inputChannels: Int) -> [(name: String, shape: [Int])] {
        switch self {
        case .conv2D(let spec):
            return [("kernel", [spec.kernelHeight, spec.kernelWidth, inputChannels, spec.filters])] + (spec.useBias ? [("bias", [spec.filters])] : [])
        case .depthwiseConv2D(let spec):
            return [("kernel", [spec.kernelHeight, spec.kernelWidth, inputChannels, 1])] + (spec.useBias ? [("bias", [inputChannels])] : [])
        case .batchNormalization(_, let center, let scale):
            return (scale ? [("gamma", [inputChannels])] : []) + (center ? [("beta", [inputChannels])] : [])
                + [("moving_mean", [inputChannels]), ("moving_variance", [inputChannels])]
        case .dense(let units, _, let useBias):
            return [("kernel", [inputChannels, units])] + (useBias ? [("bias", [units])] : [])
        default:
            return []
        }
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
