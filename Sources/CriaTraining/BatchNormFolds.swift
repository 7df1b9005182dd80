import CriaKernels
import CriaModel

/// A BatchNorm on its moving statistics folded into the convolution before it, for one
/// forward pass and the backward pass of the same step: the per-channel scale
/// s = γ/√(var + ε), the folded bias (b − μ)·s + β and the folded kernel W·s.
final class BatchNormFold {
    /// The forward pass these values were computed for (`BatchNormFolds.pass`).
    fileprivate(set) var pass = -1
    /// Whether the step's weights allow folding (`FoldedBatchNorm.canFold`); when false
    /// the other values are stale.
    fileprivate(set) var folds = false
    fileprivate(set) var scale: [Float]
    fileprivate(set) var shift: [Float]
    fileprivate(set) var bias: [Float]
    fileprivate(set) var kernel: [Float]
    /// The forward pass `kernel` was computed for: a unit's backward needs only the scale.
    fileprivate var kernelPass = -1

    fileprivate init(channels: Int, kernelCount: Int) {
        scale = [Float](repeating: 0, count: channels)
        shift = [Float](repeating: 0, count: channels)
        bias = [Float](repeating: 0, count: channels)
        kernel = [Float](repeating: 0, count: kernelCount)
    }
}

/// The folds of a training graph's BatchNorms, computed once per forward pass into buffers
/// made once per layer. Both passes of a step read the same weights, so the backward pass
/// reuses the forward's folds instead of computing them again; and a step allocates
/// nothing for them (before, each fold made seven arrays per pass, over 700 malloc calls
/// per `trainable: all` step). The arithmetic is `BatchNormFolding`'s, so the values
/// are the same bits as a fold computed afresh.
final class BatchNormFolds {
    private var folds: [BatchNormFold?]
    /// Counts forward passes; a fold computed for an earlier one is computed again.
    private(set) var pass = 0

    init(nodes: Int) { folds = [BatchNormFold?](repeating: nil, count: nodes) }

    /// Called at the start of every forward pass: the weights may have changed since the last.
    func startPass() { pass += 1 }

    /// The fold of the BatchNorm `index` after `conv`, or nil when this step's weights do not
    /// allow folding. `kernel` reads the convolution's kernel in the store.
    func fold(batchNorm index: Int, conv: Int, graph: TrainingGraph) -> BatchNormFold? {
        guard case .batchNormalization(let epsilon, _, _) = graph.graph.nodes[index].kind else { return nil }
        let mean = graph.weight(index, "moving_mean")!, variance = graph.weight(index, "moving_variance")!
        let channels = graph.graph.nodes[index].outputShape.last!
        let fold: BatchNormFold
        if let existing = folds[index] {
            fold = existing
        } else {
            fold = BatchNormFold(channels: channels, kernelCount: graph.parameter(conv, "kernel").count)
            folds[index] = fold
        }
        if fold.pass != pass {
            fold.pass = pass
            let gamma = graph.weight(index, "gamma"), beta = graph.weight(index, "beta")
            fold.folds = FoldedBatchNorm.canFold(gamma: gamma, beta: beta, mean: mean, variance: variance, count: channels, epsilon: epsilon)
            if fold.folds {
                fold.scale.withUnsafeMutableBufferPointer { scale in
                    fold.shift.withUnsafeMutableBufferPointer { shift in
                        BatchNormFolding.scaleAndShift(gamma: gamma, beta: beta, mean: mean, variance: variance, count: channels,
                                                       epsilon: epsilon, scale: scale.baseAddress!, shift: shift.baseAddress!)
                        fold.bias.withUnsafeMutableBufferPointer { bias in
                            BatchNormFolding.foldedBias(graph.weight(conv, "bias"), scale: scale.baseAddress!, shift: shift.baseAddress!,
                                                        count: channels, output: bias.baseAddress!)
                        }
                    }
                }
            }
        }
        return fold.folds ? fold : nil
    }

    /// The fold with its folded kernel W·s computed for this pass as well.
    func foldWithKernel(batchNorm index: Int, conv: Int, graph: TrainingGraph) -> BatchNormFold? {
        guard let fold = fold(batchNorm: index, conv: conv, graph: graph) else { return nil }
        if fold.kernelPass != pass {
            fold.kernelPass = pass
            let kernel = graph.parameter(conv, "kernel")
            fold.kernel.withUnsafeMutableBufferPointer { output in
                FoldedBatchNorm.foldKernel(kernel.baseAddress!, count: kernel.count, scale: fold.scale, output: output.baseAddress!)
            }
        }
        return fold
    }
}
