import CriaCore
import CriaKernels
import CriaModel

/// The three folded units of one inverted-residual block, whose backward pass runs as one
/// pass an image at a time: expand (1×1 conv → BatchNorm → ReLU6), depthwise (padding →
/// 3×3 depthwise → BatchNorm → ReLU6) and project (1×1 conv → BatchNorm), each BatchNorm on
/// its moving statistics and folded (`FusedUnit.foldsBatchNorm`).
///
/// Run unit by unit, the backward writes and reads back five tensors of the expanded width
/// (the project's input gradient, its masked form, the depthwise input gradient and its
/// masked form, plus the reads of both kept activations), each as large as the whole batch:
/// 79 MB apiece for `block_1` at batch 32 and 160×160. The GEMMs of the expanded layers have
/// K = 16–32 (expand backward) or run over the batch's every pixel (weight gradients), so
/// they are bound by that traffic. One image's worth of those tensors (at most 2.5 MB) stays
/// in cache, so the block backward takes one image at a time through all three units,
/// each worker thread its own slice of the batch with single-threaded GEMMs, and reads only
/// the kept activations and the block's input and output gradient from memory.
struct InvertedResidualUnits: Equatable {
    let expand: FusedUnit
    let depthwise: FusedUnit
    let project: FusedUnit

    /// Blocks found among the units of a fusion plan, by their project unit's last node.
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
        for (last, project) in fusion.units where foldedConv(project, depthwise: false, relu: false) {
            let projectInput = graph.nodes[project.conv!].inputs[0]
            guard let depthwise = fusion.units[projectInput], foldedConv(depthwise, depthwise: true, relu: true),
                  consumers[projectInput] == [project.conv!] else { continue }
            let depthwiseInput = graph.nodes[depthwise.first].inputs[0]
            guard let expand = fusion.units[depthwiseInput], foldedConv(expand, depthwise: false, relu: true),
                  consumers[depthwiseInput] == [depthwise.first] else { continue }
            blocks[last] = InvertedResidualUnits(expand: expand, depthwise: depthwise, project: project)
        }
        return blocks
    }

    var units: [FusedUnit] { [expand, depthwise, project] }
}

extension TrainingGraph {
    /// Whether this step runs the block as one pass: every unit folded its BatchNorm in the
    /// forward pass (a unit that could not kept its raw convolution output on the tape).
    func runsAsOnePass(_ block: InvertedResidualUnits, tape: Tape) -> Bool {
        block.units.allSatisfy { tape.values[$0.conv!] == nil }
    }

    /// The block's backward pass, given the gradient of its project unit's output: writes the
    /// gradients of its six layers' variables into the store and returns the gradient of the
    /// block's input (when `needsInput`), a buffer of its own.
    ///
    /// Each worker takes a contiguous slice of the images and, for each image: the project
    /// BatchNorm's backward (dz₃ = dy·s₃), its weight gradient a₂ᵀ·dz₃ and input gradient
    /// dz₃·W₃ᵀ; the depthwise unit's mask and BatchNorm, its kernel gradient and input
    /// gradient; the expand unit's mask and BatchNorm, its weight gradient xᵀ·dz₁ and the
    /// block's input gradient dz₁·W₁ᵀ. Kernel gradients add up image by image in the
    /// worker's own buffer (worker 0's is the store), BatchNorm sums in Double, and the
    /// workers' totals are added in worker order: the bits depend on the thread count, as
    /// the whole-batch GEMMs' do, and not on the run.
    func invertedResidualGradients(_ block: InvertedResidualUnits, gradient: [Float], tape: Tape, needsInput: Bool) -> [Float]? {
        let (expandConv, depthwiseConv, projectConv) = (block.expand.conv!, block.depthwise.conv!, block.project.conv!)
        guard let foldE = foldedBatchNorm(block.expand.batchNorm!, conv: expandConv),
              let foldD = foldedBatchNorm(block.depthwise.batchNorm!, conv: depthwiseConv),
              let foldP = foldedBatchNorm(block.project.batchNorm!, conv: projectConv)
        else { preconditionFailure("a block that folded in forward must fold in backward") }
        let inputNode = graph.nodes[expandConv].inputs[0]
        let x = tape.values[inputNode]!, a1 = tape.values[block.expand.last]!
        let a2 = tape.values[block.depthwise.last]!, y3 = tape.values[block.project.last]!
        let batch = tape.batch
        let (depthwiseGeometry, _, _) = unitConvolution(block.depthwise, tape: tape)
        let inChannels = graph.nodes[inputNode].outputShape.last!
        let expanded = graph.nodes[block.expand.last].outputShape.last!
        let outChannels = graph.nodes[block.project.last].outputShape.last!
        let pixels = x.count / (batch * inChannels)          // of the block's input and the expanded a₁
        let outputPixels = y3.count / (batch * outChannels)  // of the depthwise and project outputs
        let taps = depthwiseGeometry.spec.kernelHeight * depthwiseGeometry.spec.kernelWidth

        let workers = max(1, min(Threads.count, batch))
        // Per worker: dz₃, da₂ (then dz₂ in place), da₁ (then dz₁ in place), one image's depthwise
        // kernel gradient; and, for workers after the first, their kernel-gradient totals.
        let ownScratch = outputPixels * outChannels + outputPixels * expanded + pixels * expanded + taps * expanded
        let totals = inChannels * expanded + taps * expanded + expanded * outChannels
        let perWorker = ownScratch + totals
        var scratch = takeBuffer(workers * perWorker)
        let sumCount = 2 * (expanded + expanded + outChannels)
        var sums = [Double](repeating: 0, count: workers * sumCount)
        var dx: [Float]? = needsInput ? takeBuffer(x.count) : nil

        let dW1 = gradientBuffer(expandConv, "kernel")!.baseAddress!
        let dK2 = gradientBuffer(depthwiseConv, "kernel")!.baseAddress!
        let dW3 = gradientBuffer(projectConv, "kernel")!.baseAddress!
        let w1 = weight(expandConv, "kernel")!, k2 = weight(depthwiseConv, "kernel")!, w3 = weight(projectConv, "kernel")!
        let reluE = FusedReLU(cap: reluCap(block.expand.relu!)), reluD = FusedReLU(cap: reluCap(block.depthwise.relu!))
        func pass(_ unit: FusedUnit, _ scale: UnsafePointer<Float>, relu: FusedReLU?) -> FoldedBatchNormBackward {
            FoldedBatchNormBackward(channels: graph.nodes[unit.last].outputShape.last!, gamma: weight(unit.batchNorm!, "gamma"),
                                    beta: weight(unit.batchNorm!, "beta"), scale: scale, relu: relu)
        }

        foldE.scale.withUnsafeBufferPointer { sE in
        foldD.scale.withUnsafeBufferPointer { sD in
        foldP.scale.withUnsafeBufferPointer { sP in
            let (passE, passD, passP) = (pass(block.expand, sE.baseAddress!, relu: reluE),
                                         pass(block.depthwise, sD.baseAddress!, relu: reluD),
                                         pass(block.project, sP.baseAddress!, relu: nil))
            x.withUnsafeBufferPointer { xBuffer in
            a1.withUnsafeBufferPointer { a1Buffer in
            a2.withUnsafeBufferPointer { a2Buffer in
            y3.withUnsafeBufferPointer { y3Buffer in
            gradient.withUnsafeBufferPointer { dyBuffer in
            scratch.withUnsafeMutableBufferPointer { scratchBuffer in
            sums.withUnsafeMutableBufferPointer { sumsBuffer in
            withOptionalMutablePointer(&dx) { dxPointer in
                let space = SendableBuffer(scratchBuffer), sumSpace = SendableBuffer(sumsBuffer)
                let dxSpace = dxPointer.map { SendableBuffer(UnsafeMutableBufferPointer(start: $0, count: x.count)) }
                Threads.perWorker(batch, workers: workers) { worker, images in
                    let base = space.buffer.baseAddress! + worker * perWorker
                    let dz3 = base, da2 = dz3 + outputPixels * outChannels, da1 = da2 + outputPixels * expanded
                    let imageKernel = da1 + pixels * expanded
                    let ownTotals = imageKernel + taps * expanded
                    let (totalW1, totalK2, totalW3) = worker == 0
                        ? (dW1, dK2, dW3)
                        : (ownTotals, ownTotals + inChannels * expanded, ownTotals + inChannels * expanded + taps * expanded)
                    let sumsE = sumSpace.buffer.baseAddress! + worker * sumCount
                    let sumsD = sumsE + 2 * expanded, sumsP = sumsD + 2 * expanded
                    for n in images {
                        let first = n == images.lowerBound
                        let xn = xBuffer.baseAddress! + n * pixels * inChannels
                        let a1n = a1Buffer.baseAddress! + n * pixels * expanded
                        let a2n = a2Buffer.baseAddress! + n * outputPixels * expanded
                        let offset = n * outputPixels * outChannels
                        // Project: dz₃ = dy·s₃; dW₃ += a₂ᵀ·dz₃; da₂ = dz₃·W₃ᵀ.
                        passP.accumulate(outputGradient: dyBuffer.baseAddress! + offset, output: y3Buffer.baseAddress! + offset,
                                         rows: outputPixels, inputGradient: dz3, sums: sumsP)
                        Pointwise.backwardKernel(outputGradient: dz3, input: a2n, rows: outputPixels, inputChannels: expanded,
                                                 outputChannels: outChannels, accumulate: !first, kernelGradient: totalW3)
                        Pointwise.backwardInput(outputGradient: dz3, rows: outputPixels, inputChannels: expanded, kernel: w3,
                                                outputChannels: outChannels, inputGradient: da2)
                        // Depthwise: dz₂ = da₂·mask·s₂ in place; its kernel and input gradients.
                        passD.accumulate(outputGradient: da2, output: a2n, rows: outputPixels, inputGradient: da2, sums: sumsD)
                        depthwiseGeometry.depthwiseKernelGradient(outputGradient: da2, input: a1n, into: first ? totalK2 : imageKernel)
                        if !first { Elementwise.add(imageKernel, into: totalK2, count: taps * expanded) }
                        depthwiseGeometry.depthwiseInputGradient(outputGradient: da2, kernel: k2, into: da1)
                        // Expand: dz₁ = da₁·mask·s₁ in place; dW₁ += xᵀ·dz₁; dx = dz₁·W₁ᵀ.
                        passE.accumulate(outputGradient: da1, output: a1n, rows: pixels, inputGradient: da1, sums: sumsE)
                        Pointwise.backwardKernel(outputGradient: da1, input: xn, rows: pixels, inputChannels: inChannels,
                                                 outputChannels: expanded, accumulate: !first, kernelGradient: totalW1)
                        if let dxSpace {
                            Pointwise.backwardInput(outputGradient: da1, rows: pixels, inputChannels: inChannels, kernel: w1,
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
        recycle(&scratch)
        return dx
    }
}

extension ConvGeometryInfo {
    /// One image's depthwise kernel gradient (no bias), overwriting `kernelGradient`.
    func depthwiseKernelGradient(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                 into kernelGradient: UnsafeMutablePointer<Float>) {
        DepthwiseConv2D.backwardKernel(outputGradient: outputGradient, input: input, batch: 1, height: height, width: width,
                                       channels: inputChannels, kernelHeight: spec.kernelHeight, kernelWidth: spec.kernelWidth,
                                       strideH: spec.strideH, strideW: spec.strideW, padTop: padTop, padLeft: padLeft,
                                       outputHeight: outputHeight, outputWidth: outputWidth, kernelGradient: kernelGradient,
                                       biasGradient: nil)
    }

    /// One image's depthwise input gradient, overwriting `inputGradient`.
    func depthwiseInputGradient(outputGradient: UnsafePointer<Float>, kernel: UnsafePointer<Float>,
                                into inputGradient: UnsafeMutablePointer<Float>) {
        DepthwiseConv2D.backwardInput(outputGradient: outputGradient, batch: 1, height: height, width: width, channels: inputChannels,
                                      kernel: kernel, kernelHeight: spec.kernelHeight, kernelWidth: spec.kernelWidth,
                                      strideH: spec.strideH, strideW: spec.strideW, padTop: padTop, padLeft: padLeft,
                                      outputHeight: outputHeight, outputWidth: outputWidth, inputGradient: inputGradient)
    }
}

extension TrainingGraph {
    /// The expand layers of the blocks whose backward runs as one pass (when their units
    /// fold in a step), in graph order: for tests and reports.
    public var onePassBlocks: [String] {
        blocks.values.map(\.expand.conv!).sorted().map { graph.nodes[$0].name }
    }
}
