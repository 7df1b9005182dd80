import CriaCore
import CriaKernels

/// One step of an inference plan: a layer, or a fused chain of layers
/// (ZeroPadding2D → conv → BatchNormalization → ReLU) computed in one kernel call.
enum InferenceStep {
    /// A Conv2D or DepthwiseConv2D with folded BatchNorm, fused padding and clamp.
    case convolution(ConvolutionStep)
    case batchNorm(input: Int, scale: [Float], shift: [Float])
    case relu(input: Int, maxValue: Float?, threshold: Float, negativeSlope: Float)
    case activation(input: Int, ActivationFunction)
    case pad(input: Int, top: Int, bottom: Int, left: Int, right: Int)
    case add(inputs: [Int])
    case averagePool(input: Int)
    case maxPool(input: Int)
    case dense(input: Int, kernel: [Float], bias: [Float]?, units: Int, activation: ActivationFunction)
    case affine(input: Int, scale: [Float], shift: [Float])
    /// Passes its input through unchanged (shares the buffer).
    case alias(input: Int)

    var inputs: [Int] {
        switch self {
        case .convolution(let step): return [step.input]
        case .batchNorm(let input, _, _), .relu(let input, _, _, _), .activation(let input, _), .pad(let input, _, _, _, _),
             .averagePool(let input), .maxPool(let input), .dense(let input, _, _, _, _), .affine(let input, _, _), .alias(let input):
            return [input]
        case .add(let inputs): return inputs
        }
    }
}

struct ConvolutionStep {
    enum Kernel { case pointwise, general, depthwise }
    var kernelKind: Kernel
    var input: Int
    /// One image's geometry (batch 1), with a fused padding's rows and columns in its pads.
    var shape: ConvShape
    var kernel: [Float]
    var bias: [Float]?
    var clamp: Clamp
    var postActivation: ActivationFunction?
    /// Names of the Keras layers this step computes, for profiling and error messages.
    var layers: [String]
}

/// Plans which layers fuse, given which layer outputs the caller wants to read.
///
/// A layer's output can only be read if it is not fused into a later kernel,
/// so requested layers end their chain: asking for `block_1_depthwise` gives
/// the raw convolution output, before BatchNorm, exactly as Keras's
/// `Model(inputs, layer.output)` does.
struct InferencePlanner {
    let graph: ModelGraph
    let keep: Set<Int>
    private(set) var consumers: [[Int]]

    init(graph: ModelGraph, keep: Set<Int>) {
        self.graph = graph
        self.keep = keep
        var consumers = [[Int]](repeating: [], count: graph.nodes.count)
        for (index, node) in graph.nodes.enumerated() { for input in node.inputs { consumers[input].append(index) } }
        self.consumers = consumers
    }

    /// The single consumer of `node` when it may be fused into it.
    private func soleConsumer(_ node: Int) -> Int? {
        guard !keep.contains(node), consumers[node].count == 1 else { return nil }
        return consumers[node][0]
    }

    /// Returns, for each node index, the step that produces it (nil when fused away).
    func plan() throws -> [(node: Int, step: InferenceStep)] {
        var steps: [(node: Int, step: InferenceStep)] = []
        var fusedAway = Set<Int>()
        for (index, node) in graph.nodes.enumerated() where !fusedAway.contains(index) {
            switch node.kind {
            case .zeroPadding2D:
                // A padding feeding only a convolution becomes that convolution's pads.
                if let next = soleConsumer(index), isConvolution(graph.nodes[next].kind) {
                    fusedAway.insert(index)
                    continue
                }
            case .conv2D(let spec), .depthwiseConv2D(let spec):
                let (step, last, absorbed) = try convolution(index, spec: spec)
                absorbed.forEach { fusedAway.insert($0) }
                steps.append((last, .convolution(step)))
                continue
            default:
                break
            }
            // Every other layer is one step of its own, as its definition lowers it.
            guard let lowering = node.kind.definition as? InferenceLowering else {
                preconditionFailure("layer kind \(node.kind) has no inference lowering")
            }
            if let step = lowering.inferenceStep(node) { steps.append((index, step)) }
        }
        return steps
    }

    private func isConvolution(_ kind: LayerKind) -> Bool {
        switch kind {
        case .conv2D, .depthwiseConv2D: return true
        default: return false
        }
    }

    private func foldBatchNorm(_ node: GraphNode) -> (scale: [Float], shift: [Float]) {
        guard case .batchNormalization(let epsilon, let center, let scale) = node.kind else { preconditionFailure("not a BatchNorm") }
        return BatchNormalizationLayer(epsilon: epsilon, center: center, scale: scale).scaleAndShift(node.weights)
    }

    private func convolution(_ index: Int, spec: ConvSpec) throws -> (ConvolutionStep, Int, [Int]) {
        let node = graph.nodes[index]
        var input = node.inputs[0]
        var inputShape = graph.nodes[input].outputShape
        var extraTop = 0, extraLeft = 0
        var layers = [node.name]
        // A ZeroPadding2D feeding only this convolution becomes implicit zeros in the kernel.
        if case .zeroPadding2D(let top, _, let left, _) = graph.nodes[input].kind, soleConsumer(input) == index {
            layers.insert(graph.nodes[input].name, at: 0)
            extraTop = top
            extraLeft = left
            input = graph.nodes[input].inputs[0]
            inputShape = graph.nodes[input].outputShape
        }
        let paddedShape = graph.nodes[node.inputs[0]].outputShape
        let rows = spec.padding.amounts(input: paddedShape[0], kernel: spec.kernelHeight, stride: spec.strideH)
        let columns = spec.padding.amounts(input: paddedShape[1], kernel: spec.kernelWidth, stride: spec.strideW)
        var kernel = node.weights["kernel"]!.scalars
        var bias = spec.useBias ? node.weights["bias"]!.scalars : nil
        var clamp = Clamp.none
        var postActivation: ActivationFunction?
        var last = index
        var absorbed: [Int] = []
        switch spec.activation {
        case .linear: break
        case .relu: clamp = .relu
        case .relu6: clamp = .relu6
        case .sigmoid, .softmax: postActivation = spec.activation
        }
        if spec.activation == .linear, let next = soleConsumer(last),
           case .batchNormalization = graph.nodes[next].kind {
            let (scale, shift) = foldBatchNorm(graph.nodes[next])
            kernel = BatchNormFolding.foldedKernel(kernel, scale: scale)
            bias = BatchNormFolding.foldedBias(bias, scale: scale, shift: shift)
            absorbed.append(next)
            layers.append(graph.nodes[next].name)
            last = next
        }
        if spec.activation == .linear, let next = soleConsumer(last),
           case .relu(let maxValue, let threshold, let slope) = graph.nodes[next].kind, threshold == 0, slope == 0 {
            clamp = Clamp(lower: 0, upper: maxValue ?? .infinity)
            absorbed.append(next)
            layers.append(graph.nodes[next].name)
            last = next
        }
        let isPointwise = spec.kernelHeight == 1 && spec.kernelWidth == 1 && spec.strideH == 1 && spec.strideW == 1
            && extraTop == 0 && extraLeft == 0 && rows.before == 0 && columns.before == 0
        let kind: ConvolutionStep.Kernel
        if case .depthwiseConv2D = node.kind { kind = .depthwise } else { kind = isPointwise ? .pointwise : .general }
        let shape = ConvShape(batch: 1, height: inputShape[0], width: inputShape[1], inputChannels: inputShape[2],
                              kernelHeight: spec.kernelHeight, kernelWidth: spec.kernelWidth, strideH: spec.strideH, strideW: spec.strideW,
                              padTop: rows.before + extraTop, padLeft: columns.before + extraLeft,
                              outputHeight: node.outputShape[0], outputWidth: node.outputShape[1], outputChannels: node.outputShape[2])
        let step = ConvolutionStep(kernelKind: kind, input: input, shape: shape, kernel: kernel,
                                   bias: bias, clamp: clamp, postActivation: postActivation, layers: layers)
        return (step, last, absorbed)
    }
}
