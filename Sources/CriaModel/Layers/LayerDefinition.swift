import CriaCore
import CriaKerasIO
import CriaKernels

/// Everything Cria knows about one kind of layer, in one file of this folder: its
/// Keras class names and config, its variables in Keras's order, its output shape and
/// cost, its training passes (calling CriaKernels), and how it runs at inference.
///
/// `LayerKind` stays the parsed value that code matches on (the fusion rules look for
/// a ReLU after a BatchNorm, say); `LayerKind.definition` is the one table from a kind
/// to its definition, and `LayerKind.definitions` the one list that parsing reads.
/// Rules that span several layers live where the layers meet, not here: the inference
/// planner folds padding, BatchNorm and ReLU into a convolution and runs MobileNetV2's
/// blocks as one step, and the training engine runs fused units (`FusionPlan`).
public protocol LayerDefinition: Sendable {
    /// The Keras classes this kind is parsed from.
    static var kerasClassNames: [String] { get }
    /// The kind a Keras layer of one of those classes describes, validated.
    static func parse(_ layer: KerasLayerReader) throws -> LayerKind

    /// The output shape per image (no batch axis).
    func outputShape(_ shapes: LayerShapes) throws -> [Int]
    /// The variables this layer reads from a weights file, in Keras's order (`layer.weights`).
    func variables(inputChannels: Int) -> [(name: String, shape: [Int])]
    /// Whether an optimizer updates its variables when the layer is trainable.
    var trainsVariables: Bool { get }
    /// Whether a training step computes something else than inference does, so the
    /// frozen prefix (run on the inference path) must end before it. `batchStatistics`:
    /// whether a BatchNorm here would normalise with the batch's statistics.
    func changesInTraining(batchStatistics: Bool) -> Bool
    /// Forward multiply-adds per image (those of a GEMM or a filter; elementwise work counts none).
    func multiplyAdds(inputShape: [Int], outputShape: [Int]) -> Int

    /// The training forward pass: the layer's output over the batch, in a buffer from
    /// `pass.takeBuffer` (or an input, shared, for a layer that passes it through).
    /// What backward needs besides the input and output goes into `saved`.
    func forward(_ pass: LayerForwardPass, saved: inout LayerSaved?) -> [Float]
    /// Whether `backward` reads the layer's own output (an activation's derivative written
    /// in terms of it, or the position of a maximum).
    var backwardReadsOutput: Bool { get }
    /// The gradient of its input (nil where not needed), or of each of several, in buffers from the pass's pool;
    /// writes the gradients of trainable variables into `pass.gradient(name)`. `gradient`
    /// (dLoss/dOutput) may be masked in place or handed on as an input's gradient.
    func backward(_ pass: LayerBackwardPass, gradient: inout [Float]) -> InputGradients
}

extension LayerDefinition {
    public func outputShape(_ shapes: LayerShapes) throws -> [Int] { try shapes.input() }
    public func variables(inputChannels: Int) -> [(name: String, shape: [Int])] { [] }
    public var trainsVariables: Bool { false }
    public func changesInTraining(batchStatistics: Bool) -> Bool { false }
    public func multiplyAdds(inputShape: [Int], outputShape: [Int]) -> Int { 0 }
    public var backwardReadsOutput: Bool { false }
}

/// How a layer kind runs at inference when no fusion rule of the planner takes it:
/// the step it becomes. Internal, as the steps are the planner's own.
protocol InferenceLowering {
    /// The step computing `node`; nil for a layer that computes nothing (the input).
    func inferenceStep(_ node: GraphNode) -> InferenceStep?
}

/// One Keras layer's config as a layer definition parses it, with the error messages
/// that name the file, the layer and its class.
public struct KerasLayerReader {
    public let layer: KerasLayerConfig
    /// The file or model the layer comes from, for error messages.
    public let source: String

    public init(layer: KerasLayerConfig, source: String) {
        self.layer = layer
        self.source = source
    }

    public var config: JSONValue { layer.config }
    public var className: String { layer.className }

    public func fail(_ message: String) -> CriaError {
        CriaError("\(source): layer \(layer.name) (\(layer.className)): \(message)")
    }

    /// A Keras pair such as `kernel_size` or `strides`, given as one number or two.
    public func pair(_ key: String, default value: Int) throws -> (Int, Int) {
        guard let entry = config[key] else { return (value, value) }
        if let single = entry.int { return (single, single) }
        guard let first = entry[0]?.int, let second = entry[1]?.int else { throw fail("cannot read \(key)") }
        return (first, second)
    }

    public func checkChannelsLast() throws {
        if let format = config["data_format"]?.string, format != "channels_last" {
            throw fail("data_format \(format) is not supported; Cria computes in NHWC (channels_last)")
        }
    }

    /// The activation named by `key` (Keras's default: linear).
    public func activation(_ key: String = "activation") throws -> ActivationFunction {
        try ActivationFunction(keras: config[key]?.string, layer: layer.name, source: source)
    }

    /// The channel axis, checked: Cria computes in NHWC.
    public func checkChannelAxis() throws {
        if let axis = config["axis"]?.int, axis != -1, axis != 3 { throw fail("axis \(axis) is not the channel axis") }
        if let axes = config["axis"]?.array, axes.count != 1 || (axes[0].int != -1 && axes[0].int != 3) {
            throw fail("axis \(axes) is not the channel axis")
        }
    }
}

/// What a layer's output shape depends on: its inputs' shapes, and for an input layer
/// the image size asked for.
public struct LayerShapes {
    /// Per image (no batch axis), one per input.
    public let inputs: [[Int]]
    /// The image size given to the model (`--size`), for an input layer that leaves it open.
    public let imageSize: (height: Int?, width: Int?)
    /// Makes the error for a shape the layer cannot take.
    public let fail: (String) -> CriaError

    public init(inputs: [[Int]], imageSize: (height: Int?, width: Int?), fail: @escaping (String) -> CriaError) {
        self.inputs = inputs
        self.imageSize = imageSize
        self.fail = fail
    }

    /// The first input's shape.
    public func input() throws -> [Int] {
        guard let first = inputs.first else { throw fail("has no inputs") }
        return first
    }

    /// The first input as an image (H, W, C).
    public func image() throws -> (height: Int, width: Int, channels: Int) {
        let input = try input()
        guard input.count == 3 else { throw fail("expects an image (H, W, C), got \(describeShape(input))") }
        return (input[0], input[1], input[2])
    }
}

/// What a layer's forward pass keeps for its backward pass besides its input and output.
public enum LayerSaved {
    /// A BatchNorm's batch mean and biased variance (also what the moving averages take in).
    case batchStatistics(mean: [Float], variance: [Float])
    /// Dropout's mask, already scaled by 1/(1 − rate).
    case dropoutMask([Float])
}

/// Where a layer's training passes find its variables and their gradients, and take
/// buffers: the training engine's parameter store and buffer pool, for one layer.
public protocol LayerPassStorage {
    /// The values of a variable, or nil when the layer has none of that name.
    func parameter(_ name: String) -> UnsafeMutableBufferPointer<Float>?
    /// Where the variable's gradient goes, or nil when it does not train.
    func gradient(_ name: String) -> UnsafeMutableBufferPointer<Float>?
    /// A buffer of `count` scalars with any content (recycled or fresh).
    func takeBuffer(_ count: Int) -> [Float]
    /// Gives a buffer back to the pool.
    func recycle(_ buffer: inout [Float])
}

/// One layer's forward pass over a batch, as the training engine runs it.
public struct LayerForwardPass {
    public let batch: Int
    /// A training step (Dropout drops) rather than evaluation.
    public let training: Bool
    /// Whether a BatchNorm normalises with the batch's statistics (a training step in
    /// train mode on a trainable layer) rather than its moving ones.
    public let usesBatchStatistics: Bool
    /// The inputs' values over the batch, one per input.
    public let inputs: [[Float]]
    /// The inputs' shapes per image.
    public let inputShapes: [[Int]]
    public let outputShape: [Int]
    /// Seeds this layer's randomness (Dropout's mask) for the step.
    public let seed: UInt64
    public let storage: any LayerPassStorage

    public init(batch: Int, training: Bool, usesBatchStatistics: Bool, inputs: [[Float]], inputShapes: [[Int]],
                outputShape: [Int], seed: UInt64, storage: any LayerPassStorage) {
        self.batch = batch; self.training = training; self.usesBatchStatistics = usesBatchStatistics
        self.inputs = inputs; self.inputShapes = inputShapes; self.outputShape = outputShape
        self.seed = seed; self.storage = storage
    }

    public var input: [Float] { inputs.first ?? [] }
    public var inputShape: [Int] { inputShapes.first ?? [] }
    /// Scalars of the output over the batch.
    public var outputCount: Int { batch * outputShape.reduce(1, *) }

    /// A variable the layer must have.
    public func parameter(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        guard let values = storage.parameter(name) else { preconditionFailure("the layer has no variable \(name)") }
        return values
    }

    public func optionalParameter(_ name: String) -> UnsafeMutableBufferPointer<Float>? { storage.parameter(name) }
    public func takeBuffer(_ count: Int) -> [Float] { storage.takeBuffer(count) }
    public func recycle(_ buffer: inout [Float]) { storage.recycle(&buffer) }
}

/// One layer's backward pass over a batch, as the training engine runs it.
/// What a layer's backward pass gives its inputs. A value rather than an array of
/// gradients, so that a training step makes no array per layer.
public enum InputGradients {
    /// The gradient of a layer's only input (nil when it is not needed).
    case single([Float]?)
    /// The output's gradient itself, the same buffer, for every input that needs one (Add).
    case passThrough

    /// The gradient for input `position`, given the layer's output gradient and whether that input needs one.
    public func gradient(forInput position: Int, outputGradient: [Float], needed: Bool) -> [Float]? {
        guard needed else { return nil }
        switch self {
        case .single(let gradient): return position == 0 ? gradient : nil
        case .passThrough: return outputGradient
        }
    }
}

public struct LayerBackwardPass {
    public let batch: Int
    /// The first input's values (the tape's); empty for a layer without inputs.
    public let input: [Float]
    public let inputShape: [Int]
    public let outputShape: [Int]
    /// The layer's output, when the tape still holds it (`backwardReadsOutput`).
    public let output: [Float]
    /// Per input, whether its gradient is needed.
    public let needsInput: [Bool]
    public let saved: LayerSaved?
    public let storage: any LayerPassStorage

    public init(batch: Int, input: [Float], inputShape: [Int], outputShape: [Int], output: [Float], needsInput: [Bool],
                saved: LayerSaved?, storage: any LayerPassStorage) {
        self.batch = batch; self.input = input; self.inputShape = inputShape; self.outputShape = outputShape
        self.output = output; self.needsInput = needsInput; self.saved = saved; self.storage = storage
    }

    public func parameter(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        guard let values = storage.parameter(name) else { preconditionFailure("the layer has no variable \(name)") }
        return values
    }

    public func optionalParameter(_ name: String) -> UnsafeMutableBufferPointer<Float>? { storage.parameter(name) }
    /// Where the variable's gradient goes, or nil when it does not train.
    public func gradient(_ name: String) -> UnsafeMutableBufferPointer<Float>? { storage.gradient(name) }
    public func takeBuffer(_ count: Int) -> [Float] { storage.takeBuffer(count) }
}

extension ActivationFunction {
    /// The clamp a kernel epilogue applies for this activation (none for sigmoid and
    /// softmax, which run after it).
    public var kernelClamp: Clamp { clamp ?? .none }

    /// Applies the activation in place to a buffer of rows of `columns` values.
    public func apply(_ data: inout [Float], columns: Int) {
        data.withUnsafeMutableBufferPointer { apply($0.baseAddress!, rows: $0.count / columns, columns: columns) }
    }

    /// Multiplies a gradient by the activation's derivative, written in terms of its output.
    public func maskGradient(_ gradient: inout [Float], output: [Float]) {
        switch self {
        case .linear: break
        case .relu, .relu6:
            let count = gradient.count
            gradient.withUnsafeMutableBufferPointer { g in
                output.withUnsafeBufferPointer { y in
                    Elementwise.maskOutsideOpenRange(g.baseAddress!, output: y.baseAddress!, count: count, lower: 0,
                                                     upper: self == .relu6 ? 6 : nil)
                }
            }
        case .sigmoid: for i in gradient.indices { gradient[i] *= output[i] * (1 - output[i]) }
        case .softmax:
            // Rows are unknown here; softmax outputs are handled by the loss (from probabilities), so reaching this is a misuse.
            preconditionFailure("backward through a softmax layer: compute the loss from its probabilities instead")
        }
    }
}
