import CriaCore
import CriaKerasIO
import CriaKernels
import CriaModel

/// The per-layer forward and backward passes of the trainable suffix. Every
/// layer kind of MobileNetV2 and its transfer head is here; the arithmetic
/// lives in CriaKernels.
extension TrainingGraph {
    func forwardNode(_ index: Int, tape: inout Tape, seed: UInt64) -> [Float] {
        let node = graph.nodes[index]
        let batch = tape.batch
        let input = node.inputs.first.map { tape.values[$0]! } ?? []
        let inputShape = node.inputs.first.map { graph.nodes[$0].outputShape } ?? []
        let count = batch * node.outputShape.reduce(1, *)
        // Every case below overwrites all of `output` (a recycled buffer) or replaces it.
        var output = takeBuffer(count)
        switch node.kind {
        case .input, .identity:
            recycle(&output)
            return input
        case .conv2D(let spec), .depthwiseConv2D(let spec):
            let geometry = spec.shape(batch: batch, input: inputShape, output: node.outputShape)
            let kernel = parameter(index, "kernel")
            let bias = optionalParameter(index, "bias")
            let clamp = TrainingGraph.clamp(for: spec.activation)
            input.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { y in
                    geometry.forward(depthwise: isDepthwise(node.kind), input: x.baseAddress!, kernel: kernel.baseAddress!,
                                     bias: bias?.baseAddress, clamp: clamp, output: y.baseAddress!)
                }
            }
        case .batchNormalization(let epsilon, _, _):
            let channels = inputShape.last!
            let rows = count / channels
            let g = optionalParameter(index, "gamma")?.baseAddress, b = optionalParameter(index, "beta")?.baseAddress
            let useBatchStatistics = tape.training && bnMode == .train && node.trainable
            input.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { y in
                    if useBatchStatistics {
                        let statistics = BatchNorm.forwardTraining(input: x.baseAddress!, rows: rows, channels: channels, gamma: g, beta: b,
                                                                   epsilon: epsilon, output: y.baseAddress!)
                        tape.batchStatistics[index] = statistics
                    } else {
                        let mean = parameter(index, "moving_mean"), variance = parameter(index, "moving_variance")
                        BatchNorm.forwardInference(input: x.baseAddress!, rows: rows, channels: channels, gamma: g, beta: b,
                                                   mean: mean.baseAddress!, variance: variance.baseAddress!, epsilon: epsilon,
                                                   output: y.baseAddress!)
                    }
                }
            }
        case .relu(let maxValue, let threshold, let slope):
            input.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { y in
                    ReLU.forward(input: x.baseAddress!, count: count, maxValue: maxValue, threshold: threshold, negativeSlope: slope,
                                 output: y.baseAddress!)
                }
            }
        case .activation(let function):
            // Into the pooled buffer: activating a copy of `input` in place would allocate one.
            for i in 0..<count { output[i] = input[i] }
            TrainingGraph.activate(function, &output, columns: node.outputShape.last ?? 1)
        case .zeroPadding2D(let top, _, let left, _):
            input.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { y in
                    ZeroPadding.forward(input: x.baseAddress!, batch: batch, height: inputShape[0], width: inputShape[1], channels: inputShape[2],
                                        top: top, left: left, outputHeight: node.outputShape[0], outputWidth: node.outputShape[1],
                                        output: y.baseAddress!)
                }
            }
        case .add:
            output.withUnsafeMutableBufferPointer { y in
                input.withUnsafeBufferPointer { y.baseAddress!.update(from: $0.baseAddress!, count: count) }
                for other in node.inputs.dropFirst() {
                    tape.values[other]!.withUnsafeBufferPointer { Elementwise.add($0.baseAddress!, into: y.baseAddress!, count: count) }
                }
            }
        case .globalAveragePooling2D, .globalMaxPooling2D:
            let pixels = inputShape[0] * inputShape[1], channels = inputShape[2]
            input.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { y in
                    if case .globalAveragePooling2D = node.kind {
                        GlobalPooling.averageForward(input: x.baseAddress!, batch: batch, pixels: pixels, channels: channels, output: y.baseAddress!)
                    } else {
                        GlobalPooling.maxForward(input: x.baseAddress!, batch: batch, pixels: pixels, channels: channels, output: y.baseAddress!)
                    }
                }
            }
        case .dropout(let rate):
            guard tape.training, rate > 0 else { recycle(&output); return input }
            // Inverted dropout: kept units are scaled by 1/(1 − rate), so inference needs no rescaling.
            var generator = SplitMix64(seed: seed)
            let scale = 1 / (1 - rate)
            let mask = (0..<count).map { _ in generator.nextUnitFloat() >= rate ? scale : 0 }
            for i in output.indices { output[i] = input[i] * mask[i] }
            tape.dropoutMasks[index] = mask
        case .dense(let units, let activation, let useBias):
            let features = inputShape.last!
            let rows = count / units
            let kernel = parameter(index, "kernel")
            let bias = useBias ? parameter(index, "bias") : nil
            input.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { y in
                    Pointwise.forward(input: x.baseAddress!, rows: rows, inputChannels: features, kernel: kernel.baseAddress!, outputChannels: units,
                                      bias: bias?.baseAddress, clamp: TrainingGraph.clamp(for: activation), output: y.baseAddress!)
                }
            }
            if activation == .softmax || activation == .sigmoid { TrainingGraph.activate(activation, &output, columns: units) }
        case .rescaling(let scale, let offset):
            for i in 0..<count { output[i] = input[i] * scale + offset }
        case .normalization:
            // Normalization sits before the base in the frozen prefix; it is never trained here.
            recycle(&output)
            return input
        }
        return output
    }

    /// Returns the gradient for each input (or nil), and writes the gradients of this layer's
    /// trainable variables into their places in the parameter store (`gradientBuffer`).
    /// `gradient` may be masked in place (the activation's derivative) and recycled.
    func backwardNode(_ index: Int, gradient: inout [Float], tape: Tape, needsInput: [Bool]) -> [[Float]?] {
        let node = graph.nodes[index]
        let batch = tape.batch
        let input = node.inputs.first.map { tape.values[$0]! } ?? []
        let inputShape = node.inputs.first.map { graph.nodes[$0].outputShape } ?? []
        let output = tape.values[index] ?? []  // released already when this layer's backward does not read it
        switch node.kind {
        case .input, .identity, .normalization:
            return [gradient]
        case .conv2D(let spec), .depthwiseConv2D(let spec):
            let geometry = spec.shape(batch: batch, input: inputShape, output: node.outputShape)
            if spec.activation != .linear { TrainingGraph.maskByOutput(&gradient, output: output, activation: spec.activation) }
            let kernel = parameter(index, "kernel")
            var dx: [Float]? = needsInput[0] ? takeBuffer(input.count) : nil
            geometry.backward(depthwise: isDepthwise(node.kind), input: input, kernel: kernel.baseAddress!,
                              outputGradient: gradient, inputGradient: &dx, kernelGradient: gradientBuffer(index, "kernel")?.baseAddress,
                              biasGradient: gradientBuffer(index, "bias")?.baseAddress)
            return [dx]
        case .batchNormalization(let epsilon, _, _):
            let channels = inputShape.last!
            let rows = input.count / channels
            var dx: [Float]? = needsInput[0] ? takeBuffer(input.count) : nil  // overwritten
            let dg = gradientBuffer(index, "gamma")?.baseAddress, dbeta = gradientBuffer(index, "beta")?.baseAddress
            let g = optionalParameter(index, "gamma")?.baseAddress
            let statistics = tape.batchStatistics[index]
            gradient.withUnsafeBufferPointer { dy in
                input.withUnsafeBufferPointer { x in
                    withOptionalMutablePointer(&dx) { dxPointer in
                        if let statistics {
                            BatchNorm.backwardTraining(outputGradient: dy.baseAddress!, input: x.baseAddress!, rows: rows, channels: channels,
                                                       gamma: g, mean: statistics.mean, variance: statistics.variance, epsilon: epsilon,
                                                       inputGradient: dxPointer, gammaGradient: dg, betaGradient: dbeta)
                        } else {
                            BatchNorm.backwardInference(outputGradient: dy.baseAddress!, input: x.baseAddress!, rows: rows, channels: channels,
                                                        gamma: g, mean: parameter(index, "moving_mean").baseAddress!,
                                                        variance: parameter(index, "moving_variance").baseAddress!, epsilon: epsilon,
                                                        inputGradient: dxPointer, gammaGradient: dg, betaGradient: dbeta)
                        }
                    }
                }
            }
            return [dx]
        case .relu(let maxValue, let threshold, let slope):
            guard needsInput[0] else { return [nil] }
            var dx = takeBuffer(input.count)  // overwritten
            gradient.withUnsafeBufferPointer { dy in
                input.withUnsafeBufferPointer { x in
                    dx.withUnsafeMutableBufferPointer { d in
                        ReLU.backward(outputGradient: dy.baseAddress!, input: x.baseAddress!, count: input.count, maxValue: maxValue,
                                      threshold: threshold, negativeSlope: slope, inputGradient: d.baseAddress!)
                    }
                }
            }
            return [dx]
        case .activation(let function):
            TrainingGraph.maskByOutput(&gradient, output: output, activation: function)
            return [gradient]
        case .zeroPadding2D(let top, _, let left, _):
            guard needsInput[0] else { return [nil] }
            var dx = takeBuffer(input.count)  // overwritten
            gradient.withUnsafeBufferPointer { dy in
                dx.withUnsafeMutableBufferPointer { d in
                    ZeroPadding.backward(outputGradient: dy.baseAddress!, batch: batch, height: inputShape[0], width: inputShape[1],
                                         channels: inputShape[2], top: top, left: left, outputHeight: node.outputShape[0],
                                         outputWidth: node.outputShape[1], inputGradient: d.baseAddress!)
                }
            }
            return [dx]
        case .add:
            return node.inputs.indices.map { needsInput[$0] ? gradient : nil }
        case .globalAveragePooling2D:
            guard needsInput[0] else { return [nil] }
            var dx = takeBuffer(input.count)  // overwritten
            gradient.withUnsafeBufferPointer { dy in
                dx.withUnsafeMutableBufferPointer { d in
                    GlobalPooling.averageBackward(outputGradient: dy.baseAddress!, batch: batch, pixels: inputShape[0] * inputShape[1],
                                                  channels: inputShape[2], inputGradient: d.baseAddress!)
                }
            }
            return [dx]
        case .globalMaxPooling2D:
            guard needsInput[0] else { return [nil] }
            // The gradient goes to the first pixel holding each channel's maximum, as TF's argmax does.
            let pixels = inputShape[0] * inputShape[1], channels = inputShape[2]
            var dx = takeBuffer(input.count)
            dx.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            for n in 0..<batch {
                for c in 0..<channels {
                    let target = output[n * channels + c]
                    if let p = (0..<pixels).first(where: { input[(n * pixels + $0) * channels + c] == target }) {
                        dx[(n * pixels + p) * channels + c] = gradient[n * channels + c]
                    }
                }
            }
            return [dx]
        case .dropout:
            guard let mask = tape.dropoutMasks[index] else { return [gradient] }
            // From the pool, as every gradient that the pool takes back afterwards must be:
            // a fresh array recycled each step would grow the pool by one buffer per step.
            var dx = takeBuffer(gradient.count)  // overwritten
            for i in dx.indices { dx[i] = gradient[i] * mask[i] }
            return [dx]
        case .dense(let units, let activation, let useBias):
            if activation != .linear { TrainingGraph.maskByOutput(&gradient, output: output, activation: activation) }
            let dy = gradient
            let features = inputShape.last!
            let rows = input.count / features
            let kernel = parameter(index, "kernel")
            var dx: [Float]? = needsInput[0] ? takeBuffer(input.count) : nil  // overwritten (sgemm with beta 0)
            dy.withUnsafeBufferPointer { g in
                if dx != nil {
                    dx!.withUnsafeMutableBufferPointer { d in
                        Pointwise.backwardInput(outputGradient: g.baseAddress!, rows: rows, inputChannels: features, kernel: kernel.baseAddress!,
                                                outputChannels: units, inputGradient: d.baseAddress!)
                    }
                }
                if let dw = gradientBuffer(index, "kernel") {
                    input.withUnsafeBufferPointer { x in
                        Pointwise.backwardKernel(outputGradient: g.baseAddress!, input: x.baseAddress!, rows: rows, inputChannels: features,
                                                 outputChannels: units, accumulate: false, kernelGradient: dw.baseAddress!)
                    }
                    if useBias, let db = gradientBuffer(index, "bias") { TrainingGraph.columnSums(dy, rows: rows, columns: units, into: db) }
                }
            }
            return [dx]
        case .rescaling(let scale, _):
            var dx = takeBuffer(gradient.count)  // overwritten
            for i in dx.indices { dx[i] = gradient[i] * scale }
            return [dx]
        }
    }

    private func isDepthwise(_ kind: LayerKind) -> Bool {
        if case .depthwiseConv2D = kind { return true }
        return false
    }

    static func clamp(for activation: ActivationFunction) -> Clamp { activation.clamp ?? .none }

    static func activate(_ function: ActivationFunction, _ data: inout [Float], columns: Int) {
        data.withUnsafeMutableBufferPointer { function.apply($0.baseAddress!, rows: $0.count / columns, columns: columns) }
    }

    /// Multiplies a gradient by the activation's derivative, written in terms of its output.
    static func maskByOutput(_ gradient: inout [Float], output: [Float], activation: ActivationFunction) {
        switch activation {
        case .linear: break
        case .relu, .relu6:
            let count = gradient.count
            gradient.withUnsafeMutableBufferPointer { g in
                output.withUnsafeBufferPointer { y in
                    Elementwise.maskOutsideOpenRange(g.baseAddress!, output: y.baseAddress!, count: count, lower: 0,
                                                     upper: activation == .relu6 ? 6 : nil)
                }
            }
        case .sigmoid: for i in gradient.indices { gradient[i] *= output[i] * (1 - output[i]) }
        case .softmax:
            // Rows are unknown here; softmax outputs are handled by the loss (from probabilities), so reaching this is a misuse.
            preconditionFailure("backward through a softmax layer: compute the loss from its probabilities instead")
        }
    }

    /// Column sums in Double, rounded once, written into `sums`.
    static func columnSums(_ values: [Float], rows: Int, columns: Int, into sums: UnsafeMutableBufferPointer<Float>) {
        values.withUnsafeBufferPointer { Elementwise.columnSums($0.baseAddress!, rows: rows, columns: columns, into: sums.baseAddress!) }
    }
}
