import CriaCore
import CriaKerasIO
import CriaKernels
import CriaModel

/// The forward and backward passes of fused units (`FusionPlan`). A unit's
/// output is kept on the tape under its last node; its inner values are not,
/// except the raw convolution output of a foldable unit in a step that could
/// not fold (then the BatchNorm runs on it, as in train mode).
extension TrainingGraph {
    /// The one place the unit passes read a layer's variables (moving statistics included):
    /// their values in the parameter store.
    func weight(_ node: Int, _ name: String) -> UnsafePointer<Float>? { optionalParameter(node, name).map { UnsafePointer($0.baseAddress!) } }

    /// Runs a unit and records its output (and a raw convolution output it must keep) on the tape.
    func forwardUnit(_ unit: FusedUnit, tape: inout Tape) {
        let batch = tape.batch
        if let conv = unit.conv {
            let (geometry, spec, input) = unitConvolution(unit, tape: tape)
            let depthwise = isDepthwiseNode(conv)
            if unit.foldsBatchNorm, let batchNorm = unit.batchNorm,
               let fold = folds.foldWithKernel(batchNorm: batchNorm, conv: conv, graph: self) {
                var output = takeBuffer(batch * graph.nodes[unit.last].outputShape.reduce(1, *))
                let clamp = unit.relu.map { Clamp(lower: 0, upper: reluCap($0) ?? .infinity) } ?? .none
                input.withUnsafeBufferPointer { x in
                    fold.kernel.withUnsafeBufferPointer { w in
                        fold.bias.withUnsafeBufferPointer { b in
                            output.withUnsafeMutableBufferPointer { y in
                                geometry.forward(depthwise: depthwise, input: x.baseAddress!, kernel: w.baseAddress!,
                                                 bias: b.baseAddress!, clamp: clamp, output: y.baseAddress!)
                            }
                        }
                    }
                }
                tape.values[unit.last] = output
                return
            }
            var output = takeBuffer(batch * graph.nodes[conv].outputShape.reduce(1, *))
            let kernel = weight(conv, "kernel")!, bias = weight(conv, "bias")
            input.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { y in
                    geometry.forward(depthwise: depthwise, input: x.baseAddress!, kernel: kernel,
                                     bias: bias, clamp: TrainingGraph.clamp(for: spec.activation), output: y.baseAddress!)
                }
            }
            tape.values[conv] = output
        }
        guard let batchNorm = unit.batchNorm else { return }
        tape.values[unit.last] = forwardBatchNorm(batchNorm, relu: unit.relu, tape: &tape)
    }

    /// BatchNorm with batch or moving statistics, as `forwardNode` runs it, and the ReLU after it in the same pass.
    private func forwardBatchNorm(_ index: Int, relu: Int?, tape: inout Tape) -> [Float] {
        let node = graph.nodes[index]
        guard case .batchNormalization(let epsilon, _, _) = node.kind else { preconditionFailure("not a BatchNorm") }
        let input = tape.values[node.inputs[0]]!
        let channels = node.outputShape.last!
        var output = takeBuffer(input.count)
        let rows = input.count / channels
        let fusedReLU = relu.map { FusedReLU(cap: reluCap($0)) }
        let gamma = weight(index, "gamma"), beta = weight(index, "beta")
        let useBatchStatistics = tape.training && bnMode == .train && node.trainable
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                if useBatchStatistics {
                    // From the pool: `reusableTapeStorage` takes them back with the tape's tables.
                    var mean = takeBuffer(channels), variance = takeBuffer(channels)
                    BatchNorm.forwardTraining(input: x.baseAddress!, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                              epsilon: epsilon, relu: fusedReLU, output: y.baseAddress!, mean: &mean, variance: &variance)
                    tape.batchStatistics[index] = Tape.BatchStatistics(mean: mean, variance: variance)
                } else {
                    BatchNorm.forwardInference(input: x.baseAddress!, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                               mean: weight(index, "moving_mean")!, variance: weight(index, "moving_variance")!,
                                               epsilon: epsilon, relu: fusedReLU, output: y.baseAddress!)
                }
            }
        }
        return output
    }

    /// Gradients of a unit: for the input of its first node (when `needsInput`) and of each of its trainable layers.
    /// The variables' gradients go into the parameter store (`gradientBuffer`).
    func unitGradients(_ unit: FusedUnit, gradient: inout [Float], tape: Tape, needsInput: Bool) -> [Float]? {
        let convTrains = unit.conv.map { trainsVariables[$0] } ?? false
        // The gradient of the BatchNorm's input (the raw convolution output), or the unit's gradient itself.
        var inner: [Float]?
        var ownsInner = false
        if let batchNorm = unit.batchNorm {
            let wantsInner = unit.conv != nil ? (convTrains || needsInput) : needsInput
            inner = wantsInner ? takeBuffer(gradient.count) : nil
            ownsInner = wantsInner
            let output = tape.values[unit.last]!
            if let conv = unit.conv, tape.values[conv] == nil {
                backwardFoldedBatchNorm(batchNorm, conv: conv, relu: unit.relu, gradient: gradient, output: output, into: &inner)
            } else {
                backwardBatchNorm(batchNorm, relu: unit.relu, gradient: gradient, output: output, tape: tape, into: &inner)
            }
        } else {
            let spec = convSpec(unit.conv!)
            if spec.activation != .linear { TrainingGraph.maskByOutput(&gradient, output: tape.values[unit.conv!]!, activation: spec.activation) }
            inner = gradient
        }
        guard let conv = unit.conv else { return inner }
        var dx: [Float]? = needsInput ? takeBuffer(tape.values[graph.nodes[unit.first].inputs[0]]!.count) : nil
        if let dz = inner, convTrains || needsInput {
            let (geometry, _, input) = unitConvolution(unit, tape: tape)
            geometry.backward(depthwise: isDepthwiseNode(conv), input: input, kernel: weight(conv, "kernel")!,
                              outputGradient: dz, inputGradient: &dx, kernelGradient: gradientBuffer(conv, "kernel")?.baseAddress,
                              biasGradient: gradientBuffer(conv, "bias")?.baseAddress)
        }
        if ownsInner, var buffer = inner { recycle(&buffer) }
        return dx
    }

    /// Backward of a BatchNorm run on a kept input (batch or moving statistics), with the ReLU mask applied as dy is read.
    private func backwardBatchNorm(_ index: Int, relu: Int?, gradient: [Float], output: [Float], tape: Tape,
                                   into dx: inout [Float]?) {
        let node = graph.nodes[index]
        guard case .batchNormalization(let epsilon, _, _) = node.kind else { preconditionFailure("not a BatchNorm") }
        let input = tape.values[node.inputs[0]]!
        let channels = node.outputShape.last!
        let rows = input.count / channels
        let dg = gradientBuffer(index, "gamma")?.baseAddress, dbeta = gradientBuffer(index, "beta")?.baseAddress
        let gamma = weight(index, "gamma")
        let statistics = tape.batchStatistics[index]
        let fusedReLU = relu.map { FusedReLU(cap: reluCap($0)) }
        gradient.withUnsafeBufferPointer { dy in
            input.withUnsafeBufferPointer { x in
                output.withUnsafeBufferPointer { y in
                    withOptionalMutablePointer(&dx) { dxPointer in
                        let mask = fusedReLU.map { ($0, output: y.baseAddress!) }
                        if let statistics {
                            BatchNorm.backwardTraining(outputGradient: dy.baseAddress!, input: x.baseAddress!, rows: rows, channels: channels,
                                                       gamma: gamma, mean: statistics.mean, variance: statistics.variance, epsilon: epsilon,
                                                       relu: mask, inputGradient: dxPointer, gammaGradient: dg, betaGradient: dbeta)
                        } else {
                            BatchNorm.backwardInference(outputGradient: dy.baseAddress!, input: x.baseAddress!, rows: rows, channels: channels,
                                                        gamma: gamma, mean: weight(index, "moving_mean")!,
                                                        variance: weight(index, "moving_variance")!, epsilon: epsilon, relu: mask,
                                                        inputGradient: dxPointer, gammaGradient: dg, betaGradient: dbeta)
                        }
                    }
                }
            }
        }
    }

    /// Backward of a BatchNorm folded into its convolution, from the unit's output alone.
    private func backwardFoldedBatchNorm(_ index: Int, conv: Int, relu: Int?, gradient: [Float], output: [Float],
                                         into dz: inout [Float]?) {
        guard case .batchNormalization = graph.nodes[index].kind,
              let fold = foldedBatchNorm(index, conv: conv) else { preconditionFailure("a folded BatchNorm must still fold in backward") }
        let channels = graph.nodes[index].outputShape.last!
        let gamma = weight(index, "gamma"), beta = weight(index, "beta")
        let dg = gradientBuffer(index, "gamma")?.baseAddress, dbeta = gradientBuffer(index, "beta")?.baseAddress
        gradient.withUnsafeBufferPointer { dy in
            output.withUnsafeBufferPointer { y in
                fold.scale.withUnsafeBufferPointer { s in
                    withOptionalMutablePointer(&dz) { dzPointer in
                        FoldedBatchNorm.backward(outputGradient: dy.baseAddress!, output: y.baseAddress!, rows: dy.count / channels,
                                                 channels: channels, gamma: gamma, beta: beta, scale: s.baseAddress!,
                                                 relu: relu.map { FusedReLU(cap: reluCap($0)) }, inputGradient: dzPointer,
                                                 gammaGradient: dg, betaGradient: dbeta)
                    }
                }
            }
        }
    }

    /// The fold of a BatchNorm on its moving statistics after `conv` (`BatchNormFolds`), from this
    /// step's weights; nil when they do not allow folding (`FoldedBatchNorm.canFold`).
    func foldedBatchNorm(_ index: Int, conv: Int) -> BatchNormFold? {
        folds.fold(batchNorm: index, conv: conv, graph: self)
    }

    /// The convolution of a unit with a folded padding layer's zeros as its own, and the input it reads.
    func unitConvolution(_ unit: FusedUnit, tape: Tape) -> (ConvShape, ConvSpec, [Float]) {
        let (geometry, spec) = unitGeometry(unit, batch: tape.batch)
        return (geometry, spec, tape.values[graph.nodes[unit.first].inputs[0]]!)
    }

    /// The shape of a unit's convolution over `batch` images, with a folded padding layer's zeros as its own.
    func unitGeometry(_ unit: FusedUnit, batch: Int) -> (ConvShape, ConvSpec) {
        let conv = unit.conv!
        let spec = convSpec(conv)
        let source = graph.nodes[unit.first].inputs[0]
        let convInput = graph.nodes[conv].inputs[0]
        var geometry = spec.shape(batch: batch, input: graph.nodes[convInput].outputShape, output: graph.nodes[conv].outputShape)
        if let padding = unit.padding, case .zeroPadding2D(let top, _, let left, _) = graph.nodes[padding].kind {
            geometry = geometry.foldingPadding(top: top, left: left, input: graph.nodes[source].outputShape)
        }
        return (geometry, spec)
    }

    private func convSpec(_ node: Int) -> ConvSpec {
        switch graph.nodes[node].kind {
        case .conv2D(let spec), .depthwiseConv2D(let spec): return spec
        default: preconditionFailure("not a convolution")
        }
    }

    private func isDepthwiseNode(_ node: Int) -> Bool {
        if case .depthwiseConv2D = graph.nodes[node].kind { return true }
        return false
    }

    func reluCap(_ node: Int) -> Float? {
        guard case .relu(let maxValue, _, _) = graph.nodes[node].kind else { preconditionFailure("not a ReLU") }
        return maxValue
    }
}
