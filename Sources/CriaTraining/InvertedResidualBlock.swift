import CriaCore
import CriaKernels
import CriaModel

/// How the inverted-residual blocks run in training (see `InvertedResidualUnits`).
///
/// A block runs as one pass when its three units fold: expand (1×1 conv → BatchNorm →
/// ReLU6), depthwise (padding → 3×3 depthwise → BatchNorm → ReLU6) and project (1×1 conv →
/// BatchNorm), each BatchNorm on its moving statistics (`FusedUnit.foldsBatchNorm`), every
/// layer trainable. Run unit by unit over the whole batch, a block writes its two expanded
/// activations to the tape, and its backward writes and reads back four more tensors of the
/// expanded width (the project's input gradient and its masked form, the depthwise input
/// gradient and its masked form): 79 MB apiece for `block_1` at batch 32 and 160×160, so
/// that traffic bounds its GEMMs (K = 16–32, or every pixel of the batch). One image's
/// worth of those tensors (at most 2.5 MB) stays in cache: as one pass, each worker thread
/// takes its own slice of the batch with single-threaded GEMMs (`Threads.perWorker`), an
/// image at a time, or in groups in the late blocks so that their GEMMs keep enough rows
/// (`BlockShape.group`). A block either keeps its expanded activations on the tape or keeps
/// only its input and project output and computes them again in backward, with the same
/// calls and so the same bits, at about two thirds of its forward multiply-adds.
public enum OnePassBlocks: Sendable {
    /// Every block runs unit by unit.
    case none
    /// Blocks whose expanded activation over the batch is at least `minimumBytes` (at batch 32
    /// and 160×160, `block_1` to `block_3`) run as one pass and compute their expanded
    /// activations again in backward: those are the blocks whose unit-by-unit passes are
    /// bound by memory traffic. The later blocks run as one pass keeping their expanded
    /// activations on the tape (no recomputation, which would cost them two thirds of their
    /// forward work), where each worker's share of the batch still gives its GEMMs at least
    /// `BlockShape.onePassRows` rows (`block_4` to `block_16` at batch 32 on two threads);
    /// smaller shares (the 5×5 blocks at batch 16) run unit by unit, on whole-batch GEMMs.
    case memoryBound
    /// Every block that can, computing its expanded activations again (for tests).
    case recomputingAll
    /// Every block that can, keeping its expanded activations (for tests).
    case keepingAll

    public static let minimumBytes = 16 << 20
}

/// The three folded units of one inverted-residual block, run forward and backward as one pass.
struct InvertedResidualUnits: Equatable {
    let expand: FusedUnit
    let depthwise: FusedUnit
    let project: FusedUnit

    var units: [FusedUnit] { [expand, depthwise, project] }

    /// Blocks found among the units of a fusion plan, by their expand unit's last node (where
    /// the forward pass reaches them). A block's nodes must be exactly the consecutive
    /// nodes from its first to its last, so that running it at once skips nothing else.
    static func plan(graph: ModelGraph, fusion: FusionPlan, consumers: [[Int]]) -> [Int: InvertedResidualUnits] {
        func foldedConv(_ unit: FusedUnit, depthwise: Bool, relu: Bool) -> Bool {
            guard unit.foldsBatchNorm, let conv = unit.conv, let batchNorm = unit.batchNorm, (unit.relu != nil) == relu,
                  graph.hasTrainableVariables(conv), graph.hasTrainableVariables(batchNorm) else { return false }
            switch graph.nodes[conv].kind {
            case .depthwiseConv2D(let spec):
                return depthwise && !spec.useBias && spec.activation == .linear
            case .conv2D(let spec):
                return !depthwise && unit.padding == nil && !spec.useBias && spec.activation == .linear
                    && spec.kernelHeight == 1 && spec.kernelWidth == 1 && spec.strideH == 1 && spec.strideW == 1
            default:
                return false
            }
        }
        var blocks: [Int: InvertedResidualUnits] = [:]
        for project in fusion.units.values where foldedConv(project, depthwise: false, relu: false) {
            let projectInput = graph.nodes[project.conv!].inputs[0]
            guard let depthwise = fusion.units[projectInput], foldedConv(depthwise, depthwise: true, relu: true),
                  consumers[projectInput] == [project.conv!] else { continue }
            let depthwiseInput = graph.nodes[depthwise.first].inputs[0]
            guard let expand = fusion.units[depthwiseInput], foldedConv(expand, depthwise: false, relu: true),
                  consumers[depthwiseInput] == [depthwise.first] else { continue }
            let block = InvertedResidualUnits(expand: expand, depthwise: depthwise, project: project)
            let nodes = block.units.flatMap { $0.inner + [$0.last] }.sorted()
            guard nodes == Array(expand.first...project.last) else { continue }
            blocks[expand.last] = block
        }
        return blocks
    }
}

/// A block's kernels and biases with its BatchNorms folded in, from this step's weights.
struct FoldedBlock {
    let expand, depthwise, project: BatchNormFold
}

/// A block's shapes, per image.
struct BlockShape {
    let inChannels, expanded, outChannels: Int
    /// Pixels of the block's input and of the expanded a₁.
    let pixels: Int
    /// Pixels of the depthwise output a₂ and of the project output.
    let outputPixels: Int
    let taps: Int
    /// The depthwise convolution over one image.
    let depthwise: ConvShape

    /// Output rows a GEMM of the block should have at least: per-image GEMMs of the late
    /// blocks (10×10 and 5×5 pixels, K up to 960) run far below the GEMM rate, so images go
    /// in groups there, as inference's late layers do.
    static let groupRows = 512

    /// Output rows a worker's share of the batch must give a block's GEMMs for the block to
    /// run as one pass keeping its activations. Single-threaded sgemm reaches its plateau
    /// rate at about 100 rows for these shapes, but in alternating runs on two threads the
    /// 5×5 blocks trained faster as one pass at 400 rows per worker (batch 32) and not at
    /// 200 (batch 16), so the line sits between (docs/training-engine.md).
    static let onePassRows = 384

    /// Images per group for a worker holding `images` images: enough for `groupRows`
    /// output rows, one image where an image alone has them (the 80×80 to 20×20 blocks).
    func group(images: Int) -> Int {
        max(1, min(images, (BlockShape.groupRows + outputPixels - 1) / outputPixels))
    }
}

extension TrainingGraph {
    func blockShape(_ block: InvertedResidualUnits) -> BlockShape {
        let inputShape = graph.nodes[graph.nodes[block.expand.conv!].inputs[0]].outputShape
        let outputShape = graph.nodes[block.project.last].outputShape
        let depthwise = unitGeometry(block.depthwise, batch: 1).0
        return BlockShape(inChannels: inputShape[2], expanded: graph.nodes[block.expand.last].outputShape[2], outChannels: outputShape[2],
                          pixels: inputShape[0] * inputShape[1], outputPixels: outputShape[0] * outputShape[1],
                          taps: depthwise.kernelHeight * depthwise.kernelWidth, depthwise: depthwise)
    }

    /// The block's folds with their folded kernels (`BatchNormFolds`, computed once per step), or
    /// nil when some BatchNorm cannot fold with this step's weights (`FoldedBatchNorm.canFold`).
    func foldedBlock(_ block: InvertedResidualUnits) -> FoldedBlock? {
        func fold(_ unit: FusedUnit) -> BatchNormFold? { folds.foldWithKernel(batchNorm: unit.batchNorm!, conv: unit.conv!, graph: self) }
        guard let expand = fold(block.expand), let depthwise = fold(block.depthwise), let project = fold(block.project) else { return nil }
        return FoldedBlock(expand: expand, depthwise: depthwise, project: project)
    }

    /// Whether the forward pass ran the block as one pass.
    func ranAsOnePass(_ block: InvertedResidualUnits, tape: Tape) -> Bool {
        tape.onePassBlocks[block.expand.last] != nil
    }

    /// Runs the block forward as one pass and records its project output on the tape; false
    /// (and nothing done) when this step's weights do not fold, so that the units run instead.
    func forwardBlock(_ block: InvertedResidualUnits, tape: inout Tape) -> Bool {
        let shape = blockShape(block)
        let batch = tape.batch
        guard let keeps = onePassKeeps(block, batch: batch), let folded = foldedBlock(block) else { return false }
        let x = tape.values[graph.nodes[block.expand.conv!].inputs[0]]!
        var output = takeBuffer(batch * shape.outputPixels * shape.outChannels)
        let workers = Threads.workers(for: batch)
        let group = shape.group(images: (batch + workers - 1) / workers)
        let perWorker = keeps ? 0 : group * (shape.pixels + shape.outputPixels) * shape.expanded
        var scratch = keeps ? [] : takeBuffer(workers * perWorker)
        // A block that keeps its expanded activations writes them to the tape instead of scratch.
        var kept1 = keeps ? takeBuffer(batch * shape.pixels * shape.expanded) : []
        var kept2 = keeps ? takeBuffer(batch * shape.outputPixels * shape.expanded) : []
        let clamps = (expand: clamp(block.expand), depthwise: clamp(block.depthwise))
        withFoldedPointers(folded) { kernels in
            x.withUnsafeBufferPointer { xBuffer in
                scratch.withUnsafeMutableBufferPointer { scratchBuffer in
                kept1.withUnsafeMutableBufferPointer { kept1Buffer in
                kept2.withUnsafeMutableBufferPointer { kept2Buffer in
                    output.withUnsafeMutableBufferPointer { outputBuffer in
                        let space = SendableBuffer(scratchBuffer), out = SendableBuffer(outputBuffer)
                        let keptSpace = (SendableBuffer(kept1Buffer), SendableBuffer(kept2Buffer))
                        Threads.perWorker(batch, workers: workers) { worker, images in
                            for n in stride(from: images.lowerBound, to: images.upperBound, by: group) {
                                let count = min(group, images.upperBound - n)
                                let a1 = keeps ? keptSpace.0.buffer.baseAddress! + n * shape.pixels * shape.expanded
                                               : space.buffer.baseAddress! + worker * perWorker
                                let a2 = keeps ? keptSpace.1.buffer.baseAddress! + n * shape.outputPixels * shape.expanded
                                               : a1 + group * shape.pixels * shape.expanded
                                expandedActivations(shape, kernels, clamps: clamps, images: count,
                                                    input: xBuffer.baseAddress! + n * shape.pixels * shape.inChannels, a1: a1, a2: a2)
                                BandKernels.gemm(input: a2, rows: count * shape.outputPixels, inputChannels: shape.expanded,
                                                 kernel: kernels.project, outputChannels: shape.outChannels, bias: kernels.projectBias,
                                                 clamp: .none, residual: nil,
                                                 output: out.buffer.baseAddress! + n * shape.outputPixels * shape.outChannels)
                            }
                        }
                    }
                }
                }
                }
            }
        }
        recycle(&scratch)
        tape.values[block.project.last] = output
        if keeps {
            tape.values[block.expand.last] = kept1
            tape.values[block.depthwise.last] = kept2
        }
        tape.onePassBlocks[block.expand.last] = keeps
        return true
    }

    /// The folded kernels and biases as pointers, for the per-image passes.
    struct FoldedPointers {
        let expand, depthwise, project: UnsafePointer<Float>
        let expandBias, depthwiseBias, projectBias: UnsafePointer<Float>
        let expandScale, depthwiseScale, projectScale: UnsafePointer<Float>
    }

    private func withFoldedPointers<R>(_ folded: FoldedBlock, _ body: (FoldedPointers) -> R) -> R {
        folded.expand.kernel.withUnsafeBufferPointer { w1 in
        folded.depthwise.kernel.withUnsafeBufferPointer { k2 in
        folded.project.kernel.withUnsafeBufferPointer { w3 in
        folded.expand.bias.withUnsafeBufferPointer { b1 in
        folded.depthwise.bias.withUnsafeBufferPointer { b2 in
        folded.project.bias.withUnsafeBufferPointer { b3 in
        folded.expand.scale.withUnsafeBufferPointer { s1 in
        folded.depthwise.scale.withUnsafeBufferPointer { s2 in
        folded.project.scale.withUnsafeBufferPointer { s3 in
            body(FoldedPointers(expand: w1.baseAddress!, depthwise: k2.baseAddress!, project: w3.baseAddress!,
                                expandBias: b1.baseAddress!, depthwiseBias: b2.baseAddress!, projectBias: b3.baseAddress!,
                                expandScale: s1.baseAddress!, depthwiseScale: s2.baseAddress!, projectScale: s3.baseAddress!))
        } } } } } } } } }
    }

    private func clamp(_ unit: FusedUnit) -> Clamp {
        Clamp(lower: 0, upper: reluCap(unit.relu!) ?? .infinity)
    }

    /// A group of images' a₁ = clamp(x·W₁s₁ + b₁′) and a₂ = clamp(depthwise(a₁, K₂s₂) + b₂′),
    /// single-threaded inside a worker, with inference's kernels (`BandKernels`): the forward
    /// pass and the backward's recomputation make the same calls on the same groups.
    private func expandedActivations(_ shape: BlockShape, _ kernels: FoldedPointers, clamps: (expand: Clamp, depthwise: Clamp), images: Int,
                                     input: UnsafePointer<Float>, a1: UnsafeMutablePointer<Float>, a2: UnsafeMutablePointer<Float>) {
        BandKernels.gemm(input: input, rows: images * shape.pixels, inputChannels: shape.inChannels, kernel: kernels.expand,
                         outputChannels: shape.expanded, bias: kernels.expandBias, clamp: clamps.expand, residual: nil, output: a1)
        let g = shape.depthwise
        for image in 0..<images {
            BandKernels.depthwiseRows(band: a1 + image * shape.pixels * shape.expanded, bandStart: 0, bandRows: g.height, shape: g,
                                      kernel: kernels.depthwise, rows: 0..<g.outputHeight, bias: kernels.depthwiseBias,
                                      clamp: clamps.depthwise, output: a2 + image * shape.outputPixels * shape.expanded)
        }
    }

    /// The block's backward pass, given the gradient of its project output: writes the
    /// gradients of its six layers' variables into the store and returns the gradient of the
    /// block's input (when `needsInput`), a buffer of its own.
    ///
    /// Each worker takes a contiguous slice of the images and, for each image: computes a₁
    /// and a₂ again; the project BatchNorm's backward (dz₃ = dy·s₃), its weight gradient
    /// a₂ᵀ·dz₃ and input gradient dz₃·W₃ᵀ; the depthwise unit's mask and BatchNorm, its
    /// kernel gradient and input gradient; the expand unit's mask and BatchNorm, its weight
    /// gradient xᵀ·dz₁ and the block's input gradient dz₁·W₁ᵀ. Kernel gradients add up image
    /// by image in the worker's own buffer (worker 0's is the store), BatchNorm sums in
    /// Double, and the workers' totals are added in worker order: the bits depend on the
    /// thread count, as the whole-batch GEMMs' do, and not on the run.
    func blockGradients(_ block: InvertedResidualUnits, gradient: [Float], tape: Tape, needsInput: Bool) -> [Float]? {
        guard let folded = foldedBlock(block) else { preconditionFailure("a block that folded in forward must fold in backward") }
        let (expandConv, depthwiseConv, projectConv) = (block.expand.conv!, block.depthwise.conv!, block.project.conv!)
        let shape = blockShape(block)
        let (inChannels, expanded, outChannels) = (shape.inChannels, shape.expanded, shape.outChannels)
        let (pixels, outputPixels, taps) = (shape.pixels, shape.outputPixels, shape.taps)
        let x = tape.values[graph.nodes[expandConv].inputs[0]]!, y3 = tape.values[block.project.last]!
        let batch = tape.batch
        // Kept expanded activations, or none (then each group's are computed again).
        let keeps = tape.onePassBlocks[block.expand.last] ?? false
        let kept1 = keeps ? tape.values[block.expand.last]! : [], kept2 = keeps ? tape.values[block.depthwise.last]! : []

        let workers = Threads.workers(for: batch)
        let group = shape.group(images: (batch + workers - 1) / workers)
        // Per worker, for a group of images: da₁ (then dz₁ in place), da₂ (then dz₂ in place), dz₃,
        // the group's depthwise kernel gradient, a₁ and a₂ when they are computed again; and, for
        // workers after the first, their totals.
        let activations = keeps ? 0 : group * (pixels + outputPixels) * expanded
        let ownScratch = group * (pixels * expanded + outputPixels * expanded + outputPixels * outChannels) + taps * expanded + activations
        let totals = inChannels * expanded + taps * expanded + expanded * outChannels
        let perWorker = ownScratch + totals
        var scratch = takeBuffer(workers * perWorker)
        let sumCount = 2 * (expanded + expanded + outChannels)
        var dx: [Float]? = needsInput ? takeBuffer(x.count) : nil

        let dW1 = gradientBuffer(expandConv, "kernel")!.baseAddress!
        let dK2 = gradientBuffer(depthwiseConv, "kernel")!.baseAddress!
        let dW3 = gradientBuffer(projectConv, "kernel")!.baseAddress!
        let w1 = weight(expandConv, "kernel")!, k2 = weight(depthwiseConv, "kernel")!, w3 = weight(projectConv, "kernel")!
        let clamps = (expand: clamp(block.expand), depthwise: clamp(block.depthwise))
        func withPass<R>(_ unit: FusedUnit, _ scale: UnsafePointer<Float>, relu: Bool, _ body: (FoldedBatchNormBackward) -> R) -> R {
            FoldedBatchNormBackward.with(channels: graph.nodes[unit.last].outputShape.last!, gamma: weight(unit.batchNorm!, "gamma"),
                                         beta: weight(unit.batchNorm!, "beta"), scale: scale,
                                         relu: relu ? FusedReLU(cap: reluCap(unit.relu!)) : nil, body)
        }

        // The BatchNorm sums, per worker: Double, in this thread's scratch.
        ScratchSpace.withZeroed(Double.self, count: workers * sumCount) { sums in
        withFoldedPointers(folded) { kernels in
            withPass(block.expand, kernels.expandScale, relu: true) { passE in
            withPass(block.depthwise, kernels.depthwiseScale, relu: true) { passD in
            withPass(block.project, kernels.projectScale, relu: false) { passP in
            x.withUnsafeBufferPointer { xBuffer in
            y3.withUnsafeBufferPointer { y3Buffer in
            gradient.withUnsafeBufferPointer { dyBuffer in
            kept1.withUnsafeBufferPointer { kept1Buffer in
            kept2.withUnsafeBufferPointer { kept2Buffer in
            scratch.withUnsafeMutableBufferPointer { scratchBuffer in
            withOptionalMutablePointer(&dx) { dxPointer in
                let space = SendableBuffer(scratchBuffer), sumSpace = SendableBuffer(sums)
                let dxSpace = dxPointer.map { SendableBuffer(UnsafeMutableBufferPointer(start: $0, count: x.count)) }
                Threads.perWorker(batch, workers: workers) { worker, images in
                    let da1 = space.buffer.baseAddress! + worker * perWorker
                    let da2 = da1 + group * pixels * expanded
                    let dz3 = da2 + group * outputPixels * expanded, imageKernel = dz3 + group * outputPixels * outChannels
                    let scratchA1 = imageKernel + taps * expanded, scratchA2 = scratchA1 + group * pixels * expanded
                    let ownTotals = scratchA1 + activations
                    let (totalW1, totalK2, totalW3) = worker == 0
                        ? (dW1, dK2, dW3)
                        : (ownTotals, ownTotals + inChannels * expanded, ownTotals + inChannels * expanded + taps * expanded)
                    let sumsE = sumSpace.buffer.baseAddress! + worker * sumCount
                    let sumsD = sumsE + 2 * expanded, sumsP = sumsD + 2 * expanded
                    for n in stride(from: images.lowerBound, to: images.upperBound, by: group) {
                        let count = min(group, images.upperBound - n)
                        let (rows, outputRows) = (count * pixels, count * outputPixels)
                        let first = n == images.lowerBound
                        let xn = xBuffer.baseAddress! + n * pixels * inChannels
                        let a1 = keeps ? kept1Buffer.baseAddress! + n * pixels * expanded : UnsafePointer(scratchA1)
                        let a2 = keeps ? kept2Buffer.baseAddress! + n * outputPixels * expanded : UnsafePointer(scratchA2)
                        if !keeps { expandedActivations(shape, kernels, clamps: clamps, images: count, input: xn, a1: scratchA1, a2: scratchA2) }
                        let offset = n * outputPixels * outChannels
                        // Project: dz₃ = dy·s₃; dW₃ += a₂ᵀ·dz₃; da₂ = dz₃·W₃ᵀ.
                        passP.accumulate(outputGradient: dyBuffer.baseAddress! + offset, output: y3Buffer.baseAddress! + offset,
                                         rows: outputRows, inputGradient: dz3, sums: sumsP)
                        Pointwise.backwardKernel(outputGradient: dz3, input: a2, rows: outputRows, inputChannels: expanded,
                                                 outputChannels: outChannels, accumulate: !first, kernelGradient: totalW3)
                        Pointwise.backwardInput(outputGradient: dz3, rows: outputRows, inputChannels: expanded, kernel: w3,
                                                outputChannels: outChannels, inputGradient: da2)
                        // Depthwise: dz₂ = da₂·mask·s₂ in place; its kernel and input gradients.
                        passD.accumulate(outputGradient: da2, output: a2, rows: outputRows, inputGradient: da2, sums: sumsD)
                        shape.depthwise.depthwiseKernelGradient(images: count, outputGradient: da2, input: a1,
                                                                into: first ? totalK2 : imageKernel)
                        if !first { Elementwise.add(imageKernel, into: totalK2, count: taps * expanded) }
                        shape.depthwise.depthwiseInputGradient(images: count, outputGradient: da2, kernel: k2, into: da1)
                        // Expand: dz₁ = da₁·mask·s₁ in place; dW₁ += xᵀ·dz₁; dx = dz₁·W₁ᵀ.
                        passE.accumulate(outputGradient: da1, output: a1, rows: rows, inputGradient: da1, sums: sumsE)
                        Pointwise.backwardKernel(outputGradient: da1, input: xn, rows: rows, inputChannels: inChannels,
                                                 outputChannels: expanded, accumulate: !first, kernelGradient: totalW1)
                        if let dxSpace {
                            Pointwise.backwardInput(outputGradient: da1, rows: rows, inputChannels: inChannels, kernel: w1,
                                                    outputChannels: expanded,
                                                    inputGradient: dxSpace.buffer.baseAddress! + n * pixels * inChannels)
                        }
                    }
                }
                // The workers' totals, added in worker order.
                for worker in 1..<workers {
                    let totals = space.buffer.baseAddress! + worker * perWorker + ownScratch
                    Elementwise.add(totals, into: dW1, count: inChannels * expanded)
                    Elementwise.add(totals + inChannels * expanded, into: dK2, count: taps * expanded)
                    Elementwise.add(totals + inChannels * expanded + taps * expanded, into: dW3, count: expanded * outChannels)
                }
            }
            }
            }
            }
            }
            }
            }
            }
            }
            }
        }
        // BatchNorm sums: per channel, the workers' Double totals in worker order, rounded once.
        var offset = 0
        for unit in block.units {
            let channels = graph.nodes[unit.last].outputShape.last!
            let dGamma = gradientBuffer(unit.batchNorm!, "gamma"), dBeta = gradientBuffer(unit.batchNorm!, "beta")
            for c in 0..<channels {
                var gammaSum = 0.0, betaSum = 0.0
                for worker in 0..<workers {
                    gammaSum += sums[worker * sumCount + offset + c]
                    betaSum += sums[worker * sumCount + offset + channels + c]
                }
                dGamma?[c] = Float(gammaSum)
                dBeta?[c] = Float(betaSum)
            }
            offset += 2 * channels
        }
        }
        recycle(&scratch)
        return dx
    }
}

extension TrainingGraph {
    /// Whether a block runs as one pass at this batch size (`OnePassBlocks`), when its units fold.
    func runsAsOnePass(_ block: InvertedResidualUnits, batch: Int) -> Bool {
        onePassKeeps(block, batch: batch) != nil
    }

    /// How a block runs at this batch size: nil unit by unit, false as one pass computing its
    /// expanded activations again in backward, true as one pass keeping them on the tape.
    func onePassKeeps(_ block: InvertedResidualUnits, batch: Int) -> Bool? {
        let shape = blockShape(block)
        let large = batch * shape.pixels * shape.expanded * MemoryLayout<Float>.size >= OnePassBlocks.minimumBytes
        switch onePassBlocks {
        case .none: return nil
        case .recomputingAll: return false
        case .keepingAll: return true
        case .memoryBound:
            if large { return false }
            // Each worker's GEMMs must keep their rows: its share of the batch, in groups.
            return (batch / Threads.workers(for: batch)) * shape.outputPixels >= BlockShape.onePassRows ? true : nil
        }
    }

    /// The expand layers of the blocks that run as one pass at `batch` (when their units fold
    /// in a step), in graph order: for tests and reports.
    public func onePassBlocks(batch: Int) -> [String] {
        blocks.values.filter { runsAsOnePass($0, batch: batch) }.map(\.expand.conv!).sorted().map { graph.nodes[$0].name }
    }

    /// Those of `onePassBlocks(batch:)` that compute their expanded activations again in
    /// backward instead of keeping them.
    public func recomputingBlocks(batch: Int) -> [String] {
        blocks.values.filter { onePassKeeps($0, batch: batch) == false }.map(\.expand.conv!).sorted().map { graph.nodes[$0].name }
    }
}

extension ConvShape {
    /// The depthwise kernel gradient (no bias) of a group of images, overwriting `kernelGradient`.
    func depthwiseKernelGradient(images: Int, outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                 into kernelGradient: UnsafeMutablePointer<Float>) {
        DepthwiseConv2D.backwardKernel(outputGradient: outputGradient, input: input, shape: with(batch: images),
                                       kernelGradient: kernelGradient, biasGradient: nil)
    }

    /// The depthwise input gradient of a group of images, overwriting `inputGradient`.
    func depthwiseInputGradient(images: Int, outputGradient: UnsafePointer<Float>, kernel: UnsafePointer<Float>,
                                into inputGradient: UnsafeMutablePointer<Float>) {
        DepthwiseConv2D.backwardInput(outputGradient: outputGradient, shape: with(batch: images), kernel: kernel,
                                      inputGradient: inputGradient)
    }
}
