import CriaCore
import CriaKernels

/// A convolution with its weights behind raw pointers and its geometry resolved.
struct ConvOp {
    var kernel: UnsafePointer<Float>
    var bias: UnsafePointer<Float>?
    var clamp: Clamp
    /// One image's geometry (batch 1).
    var shape: ConvShape
    var postActivation: ActivationFunction?

    init(_ step: ConvolutionStep, weights: WeightStore) {
        kernel = weights.copy(step.kernel)
        bias = weights.copy(step.bias)
        clamp = step.clamp
        shape = step.shape
        postActivation = step.postActivation
    }

    /// Multiply-adds per image.
    var multiplyAdds: Int { shape.multiplyAdds(depthwise: isDepthwise) }

    var isDepthwise = false
}

/// MobileNetV2's inverted-residual block run as one step: expand (1×1 GEMM) →
/// depthwise 3×3 → project (1×1 GEMM) [+ residual], over bands of output rows
/// so that the expanded tensor of a band stays in L2 between the three kernels.
struct BlockOp {
    /// The expand 1×1 convolution, without its clamp: the expanded rows are
    /// stored before ReLU6, which the depthwise kernel applies as it reads
    /// them (`depthwiseInputClamp`), sparing a pass over every expanded band.
    var expand: ConvOp?
    /// The expand layer's clamp (identity without an expand layer).
    var depthwiseInputClamp: Clamp
    var depthwise: ConvOp
    var project: ConvOp
    /// The node added to the projection (Keras's `block_i_add`), if any.
    var residual: Int?
    /// Output rows per band; the whole image when tiling is off.
    var bandRows: Int

    /// Expanded rows that one band needs (the window of `bandRows` output rows).
    var expandedRowsPerBand: Int { (bandRows - 1) * depthwise.shape.strideH + depthwise.shape.kernelHeight }
}

/// The kernels of the spatial phase: each computes output rows `rows` of one image.
enum SpatialOp {
    case pointwise(ConvOp)
    /// A general convolution through im2col lines and one sgemm per band of rows.
    case convolution(ConvOp, bandRows: Int)
    /// A general convolution small enough for the direct kernel (see `InferenceProgram.direct`).
    case directConvolution(ConvOp)
    case depthwise(ConvOp)
    case block(BlockOp)
    case scaleShift(scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, channels: Int)
    case relu(maxValue: Float?, threshold: Float, negativeSlope: Float)
    case activation(ActivationFunction, channels: Int)
    case pad(top: Int, left: Int, inputHeight: Int, inputWidth: Int, channels: Int)
    case add
    case averagePool(pixels: Int, channels: Int)
    case maxPool(pixels: Int, channels: Int)
    case alias

    /// Per-thread scratch this op needs, in scalars.
    var scratchCount: Int {
        switch self {
        case .block(let block):
            let dw = block.depthwise
            let expanded = block.expand == nil ? 0
                : ArenaPlan.aligned(block.expandedRowsPerBand * dw.shape.width * dw.shape.inputChannels)
            return expanded + ArenaPlan.aligned(block.bandRows * dw.shape.outputWidth * dw.shape.inputChannels)
        case .convolution(let conv, let bandRows):
            return bandRows * conv.shape.outputWidth * conv.shape.kernelHeight * conv.shape.kernelWidth * conv.shape.inputChannels
        case .averagePool(_, let channels):
            return 2 * channels  // Double sums
        default:
            return 0
        }
    }

    /// Multiply-adds per image by kernel category (none for elementwise steps).
    var multiplyAdds: [(category: KernelCategory, count: Int)] {
        switch self {
        case .pointwise(let conv): return [(.pointwise, conv.multiplyAdds)]
        case .depthwise(let conv): return [(.depthwise, conv.multiplyAdds)]
        case .convolution(let conv, _), .directConvolution(let conv): return [(.firstConvolution, conv.multiplyAdds)]
        case .block(let block):
            return [(.pointwise, (block.expand?.multiplyAdds ?? 0) + block.project.multiplyAdds),
                    (.depthwise, block.depthwise.multiplyAdds)]
        default: return []
        }
    }

    /// Per-image scratch in the group phase, where a block runs on whole images.
    var groupScratchPerImage: Int {
        guard case .block(let block) = self else { return 0 }
        let dw = block.depthwise
        let expanded = block.expand == nil ? 0 : ArenaPlan.aligned(dw.shape.height * dw.shape.width * dw.shape.inputChannels)
        return expanded + ArenaPlan.aligned(dw.shape.outputHeight * dw.shape.outputWidth * dw.shape.inputChannels)
    }

    /// Whether consecutive images' rows may be stacked into one call: the
    /// image's rows are independent (row-wise GEMMs, elementwise steps).
    var stacksImages: Bool {
        switch self {
        case .pointwise, .scaleShift, .relu, .activation, .add: return true
        default: return false
        }
    }

    /// Whether threads may split one image's output rows (a reduction may not).
    var splitsRows: Bool {
        switch self {
        case .averagePool, .maxPool, .alias: return false
        default: return true
        }
    }
}

struct SpatialStep {
    var node: Int
    var inputs: [Int]
    var op: SpatialOp
    /// Output rows per image and scalars per output row.
    var rows: Int
    var rowScalars: Int
    /// Keras layer names, for profiles.
    var layers: [String]
    /// Height × width of the first input (1 for a vector).
    var inputPixels = 1
}

/// Tuning knobs of the executor; the defaults are what measured fastest on a
/// 2-core Zen 2 with 1 MiB of L2 per core (see docs/inference-speed.md).
public struct InferenceOptions: Sendable, Equatable {
    /// Bytes of expanded activations one band of an inverted-residual block may
    /// hold; 0 runs every block on whole images (no tiling).
    public var blockBandBytes: Int
    /// Fuse expand → depthwise → project (+ add) into one banded step.
    public var fuseBlocks: Bool

    /// Images per GEMM in the late layers (see `groupPixels`); 1 turns grouping off.
    public var groupImages: Int
    /// Layers whose input has at most this many pixels, up to the end of the
    /// spatial phase, run on groups of images rather than one image at a time.
    public var groupPixels: Int
    /// Within a group, each step's GEMMs take about this many rows: as many of
    /// the group's images as fit (at least one). A 10×10 step runs 4 images
    /// per call, a 5×5 one 16. sgemm's blocking pays from a few hundred rows,
    /// and fewer images keep a 10×10 block's expanded tensor (230 KB per image
    /// at 576 channels) nearer L2. `.max` runs every step on the whole group.
    public var groupRows: Int
    /// With fewer images than threads (batch 1), blocks and 1×1 convolutions
    /// whose input has at most this many pixels split by channels across the
    /// threads; larger ones split by rows. 0 splits every layer by rows.
    public var channelSplitPixels: Int

    public init(blockBandBytes: Int = 256 * 1024, fuseBlocks: Bool = true, groupImages: Int = 16, groupPixels: Int = 100,
                groupRows: Int = 400, channelSplitPixels: Int = 100) {
        self.blockBandBytes = blockBandBytes
        self.fuseBlocks = fuseBlocks
        self.groupImages = max(1, groupImages)
        self.groupPixels = groupPixels
        self.groupRows = max(1, groupRows)
        self.channelSplitPixels = channelSplitPixels
    }

    public static let `default` = InferenceOptions()
}

/// The plan of `InferencePlanner` split into a spatial phase (one image at a
/// time, per-thread buffers) and a vector tail (whole batch: Dense, softmax),
/// with inverted-residual blocks fused and weights behind raw pointers.
struct InferenceProgram {
    var spatialSteps: [SpatialStep] = []
    var vectorSteps: [(node: Int, step: InferenceStep)] = []
    /// The node whose buffer each node shares (itself unless an alias, e.g. Dropout).
    var root: [Int]
    let weights = WeightStore()
    /// The first spatial step of the group phase: from here on every step's
    /// input is small (`InferenceOptions.groupPixels`), and with several images
    /// per thread the executor runs `groupImages` images through each step at
    /// once. A GEMM on a 5×5 image has 25 rows, too few for sgemm's blocking
    /// to pay; 16 images make 400. With 10×10 layers included (the default),
    /// 16 images measured ~15 % less CPU per image than one at a time on MobileNetV2/160,
    /// although a group's expanded tensor (up to 3.7 MB) no longer fits in L2.
    var groupStart = 0
    var groupImages = 1
    var groupRows = Int.max
    var channelSplitPixels = 0

    init(graph: ModelGraph, steps: [(node: Int, step: InferenceStep)], keep: Set<Int>, options: InferenceOptions) {
        root = Array(0..<graph.nodes.count)
        var readers = [Int](repeating: 0, count: graph.nodes.count)
        for entry in steps { for input in entry.step.inputs { readers[input] += 1 } }
        // A node fuses into the next step only if that step is its only reader and nobody asked for it.
        func private_(_ node: Int) -> Bool { readers[node] == 1 && !keep.contains(node) }

        var position = 0
        while position < steps.count {
            let (node, step) = steps[position]
            let inputShape = step.inputs.first.map { graph.nodes[$0].outputShape } ?? []
            let shape = graph.nodes[node].outputShape
            if inputShape.count != 3 {
                if case .alias(let input) = step { root[node] = root[input] }
                vectorSteps.append((node, step))
                position += 1
                continue
            }
            if options.fuseBlocks, let (block, consumed) = fuseBlock(at: position, steps: steps, graph: graph,
                                                                    isPrivate: private_, options: options) {
                let last = steps[position + consumed - 1]
                var inputs = [steps[position].step.inputs[0]]
                if let residual = block.residual { inputs.append(residual) }
                let names = steps[position ..< position + consumed].flatMap { entry -> [String] in
                    if case .convolution(let conv) = entry.step { return conv.layers }
                    return [graph.nodes[entry.node].name]
                }
                spatialSteps.append(SpatialStep(node: last.node, inputs: inputs, op: .block(block), rows: shape.count == 3 ? graph.nodes[last.node].outputShape[0] : 1,
                                                rowScalars: graph.nodes[last.node].outputShape.dropFirst().reduce(1, *), layers: names))
                position += consumed
                continue
            }
            let op: SpatialOp
            var names = [graph.nodes[node].name]
            switch step {
            case .convolution(let conv):
                names = conv.layers
                var compiled = ConvOp(conv, weights: weights)
                switch conv.kernelKind {
                case .pointwise: op = .pointwise(compiled)
                case .depthwise: compiled.isDepthwise = true; op = .depthwise(compiled)
                case .general where Self.direct(compiled):
                    op = .directConvolution(compiled)
                case .general:
                    // im2col lines for ~128 KiB of output rows at a time.
                    let lineBytes = compiled.shape.outputWidth * compiled.shape.kernelHeight * compiled.shape.kernelWidth * compiled.shape.inputChannels * 4
                    op = .convolution(compiled, bandRows: max(1, min(compiled.shape.outputHeight, 131_072 / max(1, lineBytes))))
                }
            case .batchNorm(_, let scale, let shift), .affine(_, let scale, let shift):
                op = .scaleShift(scale: weights.copy(scale), shift: weights.copy(shift), channels: scale.count)
            case .relu(_, let maxValue, let threshold, let slope):
                op = .relu(maxValue: maxValue, threshold: threshold, negativeSlope: slope)
            case .activation(_, let function):
                op = .activation(function, channels: shape.last ?? 1)
            case .pad(_, let top, _, let left, _):
                op = .pad(top: top, left: left, inputHeight: inputShape[0], inputWidth: inputShape[1], channels: inputShape[2])
            case .add:
                op = .add
            case .averagePool:
                op = .averagePool(pixels: inputShape[0] * inputShape[1], channels: inputShape[2])
            case .maxPool:
                op = .maxPool(pixels: inputShape[0] * inputShape[1], channels: inputShape[2])
            case .alias(let input):
                root[node] = root[input]
                op = .alias
            case .dense(_, let kernel, let bias, _, let activation):
                // Keras's Dense on an image acts on the last axis: a 1×1 convolution.
                let clamp: Clamp = activation == .relu ? .relu : activation == .relu6 ? .relu6 : .none
                let post: ActivationFunction? = activation == .softmax || activation == .sigmoid ? activation : nil
                let geometry = ConvShape(batch: 1, height: inputShape[0], width: inputShape[1], inputChannels: inputShape[2],
                                         kernelHeight: 1, kernelWidth: 1, outputHeight: shape[0], outputWidth: shape[1],
                                         outputChannels: shape[2])
                let conv = ConvolutionStep(kernelKind: .pointwise, input: step.inputs[0], shape: geometry, kernel: kernel,
                                           bias: bias, clamp: clamp, postActivation: post, layers: names)
                op = .pointwise(ConvOp(conv, weights: weights))
            }
            let rows = shape.count == 3 ? shape[0] : 1
            spatialSteps.append(SpatialStep(node: node, inputs: step.inputs, op: op, rows: rows,
                                            rowScalars: shape.reduce(1, *) / rows, layers: names))
            position += 1
        }
        for index in spatialSteps.indices {
            let shape = graph.nodes[spatialSteps[index].inputs[0]].outputShape
            spatialSteps[index].inputPixels = shape.count == 3 ? shape[0] * shape[1] : 1
        }
        groupImages = options.groupImages
        groupRows = options.groupRows
        channelSplitPixels = options.channelSplitPixels
        groupStart = spatialSteps.count
        while groupStart > 0 {
            let shape = graph.nodes[spatialSteps[groupStart - 1].inputs[0]].outputShape
            guard shape.count == 3, shape[0] * shape[1] <= options.groupPixels else { break }
            groupStart -= 1
        }
    }

    /// Whether a general convolution runs on the direct kernel rather than im2col + sgemm.
    ///
    /// The direct kernel keeps the whole kernel in L1 and each window's values
    /// in registers; that pays while the kernel is small. For Conv1 (3.4 KB)
    /// it measured about 2× the im2col GEMM's speed, whose K = 27 leaves the
    /// GEMM packing and streaming columns. Larger kernels (many input
    /// channels) are what sgemm is for.
    static func direct(_ conv: ConvOp) -> Bool {
        conv.shape.kernelHeight * conv.shape.kernelWidth * conv.shape.inputChannels * conv.shape.outputChannels * 4 <= 16 * 1024
    }

    /// Matches [expand 1×1] → depthwise → project 1×1 [→ add] at `position`.
    private func fuseBlock(at position: Int, steps: [(node: Int, step: InferenceStep)], graph: ModelGraph,
                           isPrivate: (Int) -> Bool, options: InferenceOptions) -> (BlockOp, Int)? {
        func conv(_ offset: Int) -> ConvolutionStep? {
            guard position + offset < steps.count, case .convolution(let c) = steps[position + offset].step else { return nil }
            return c
        }
        guard let first = conv(0) else { return nil }
        var expand: ConvolutionStep?
        var index = 0
        if first.kernelKind == .pointwise {
            guard let next = conv(1), next.kernelKind == .depthwise, next.input == steps[position].node,
                  isPrivate(steps[position].node), first.postActivation == nil else { return nil }
            expand = first
            index = 1
        }
        guard let dw = conv(index), dw.kernelKind == .depthwise, dw.postActivation == nil,
              let project = conv(index + 1), project.kernelKind == .pointwise, project.postActivation == nil,
              project.input == steps[position + index].node, isPrivate(steps[position + index].node) else { return nil }
        var consumed = index + 2
        var residual: Int?
        let projected = steps[position + index + 1].node
        if position + consumed < steps.count, case .add(let inputs) = steps[position + consumed].step,
           inputs.count == 2, isPrivate(projected), inputs.contains(projected) {
            let other = inputs[0] == projected ? inputs[1] : inputs[0]
            if other != projected && graph.nodes[other].outputShape == [project.shape.outputHeight, project.shape.outputWidth, project.shape.outputChannels] {
                residual = other
                consumed += 1
            }
        }
        var expandOp = expand.map { ConvOp($0, weights: weights) }
        expandOp?.postActivation = nil
        let depthwiseInputClamp = expandOp?.clamp ?? .none
        expandOp?.clamp = .none
        var dwOp = ConvOp(dw, weights: weights)
        dwOp.isDepthwise = true
        let projectOp = ConvOp(project, weights: weights)
        let rowBytes = dwOp.shape.width * dwOp.shape.inputChannels * 4 * dwOp.shape.strideH
        let bandRows = options.blockBandBytes <= 0 ? dwOp.shape.outputHeight
            : max(1, min(dwOp.shape.outputHeight, options.blockBandBytes / max(1, rowBytes)))
        return (BlockOp(expand: expandOp, depthwiseInputClamp: depthwiseInputClamp, depthwise: dwOp, project: projectOp,
                        residual: residual, bandRows: bandRows), consumed)
    }
}
