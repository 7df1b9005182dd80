import CLAPACKE
import CriaCore
import CriaModel
import Foundation

/// A closed-form ridge-regression probe on the pooled features: an instant
/// baseline beside trained heads. Targets are ±1 for a one-logit head and
/// one-hot (±1) per class otherwise; the solution is written into the Dense
/// head, so the model then predicts with it (sign of the logit, or argmax).
public enum LinearProbe {
    public struct Result: Sendable {
        public var trainAccuracy: Double
        public var validationAccuracy: Double?
        public var lambda: Double
        public var seconds: Double
    }

    /// Extracts pooled features with the frozen base (cached like training), solves
    /// (XᵀX + λI)·W = XᵀY with LAPACK's Cholesky solver, and installs W and the bias in `dense`.
    public static func fit(_ trainer: Trainer, train: ImageBatchSource, validation: ImageBatchSource?,
                           lambda: Double = 1.0, batchSize: Int = 32) throws -> Result {
        let started = Date()
        var graph = trainer.graph
        try graph.applyFreezing(.baseFrozen)
        guard let dense = graph.index(of: "dense") ?? graph.nodes.lastIndex(where: { if case .dense = $0.kind { return true }; return false }),
              case .dense(let units, _, _) = graph.nodes[dense].kind else {
            throw CriaError("linear_probe: the model has no Dense head")
        }
        let featureNode = graph.nodes[dense].inputs[0]
        let features = try extract(graph, node: featureNode, from: train, batchSize: batchSize)
        let dimension = graph.nodes[featureNode].outputShape.last!
        let n = train.count
        // Centre the features so the bias is the target mean and λ does not shrink it.
        var mean = [Double](repeating: 0, count: dimension)
        for r in 0..<n { for d in 0..<dimension { mean[d] += Double(features[r * dimension + d]) } }
        for d in 0..<dimension { mean[d] /= Double(max(n, 1)) }
        let columns = units
        var targets = [Double](repeating: -1, count: n * columns)
        for r in 0..<n {
            if units == 1 { targets[r] = train.labels[r] == 1 ? 1 : -1 } else { targets[r * columns + train.labels[r]] = 1 }
        }
        var targetMean = [Double](repeating: 0, count: columns)
        for r in 0..<n { for c in 0..<columns { targetMean[c] += targets[r * columns + c] / Double(max(n, 1)) } }
        // Normal equations in Double: A = XcᵀXc + λI (dimension²), B = XcᵀYc (dimension × columns).
        var a = [Double](repeating: 0, count: dimension * dimension)
        var b = [Double](repeating: 0, count: dimension * columns)
        var centred = [Double](repeating: 0, count: dimension)
        for r in 0..<n {
            for d in 0..<dimension { centred[d] = Double(features[r * dimension + d]) - mean[d] }
            for i in 0..<dimension where centred[i] != 0 {
                let xi = centred[i]
                for j in i..<dimension { a[i * dimension + j] += xi * centred[j] }
                for c in 0..<columns { b[i * columns + c] += xi * (targets[r * columns + c] - targetMean[c]) }
            }
        }
        for i in 0..<dimension {
            for j in 0..<i { a[i * dimension + j] = a[j * dimension + i] }
            a[i * dimension + i] += lambda
        }
        let info = LAPACKE_dposv(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "U")), Int32(dimension), Int32(columns),
                                 &a, Int32(dimension), &b, Int32(columns))
        guard info == 0 else { throw CriaError("linear_probe: the ridge system is not positive definite (LAPACKE_dposv info \(info)); raise lambda") }
        var kernel = [Float](repeating: 0, count: dimension * columns)
        var bias = [Float](repeating: 0, count: columns)
        for c in 0..<columns {
            var offset = targetMean[c]
            for d in 0..<dimension {
                kernel[d * columns + c] = Float(b[d * columns + c])
                offset -= b[d * columns + c] * mean[d]
            }
            bias[c] = Float(offset)
        }
        var weights = graph.nodes[dense].weights
        weights["kernel"] = Tensor(shape: [dimension, columns], scalars: kernel)
        weights["bias"] = Tensor(shape: [columns], scalars: bias)
        trainer.replaceWeights(weights, forLayer: graph.nodes[dense].name)
        let trainAccuracy = try trainer.evaluate(train, batchSize: batchSize).accuracy
        let validationAccuracy = try validation.map { try trainer.evaluate($0, batchSize: batchSize).accuracy }
        return Result(trainAccuracy: trainAccuracy, validationAccuracy: validationAccuracy, lambda: lambda,
                      seconds: Date().timeIntervalSince(started))
    }

    /// Pooled features of every image (no augmentation), batch by batch through the fused inference path.
    static func extract(_ graph: ModelGraph, node: Int, from source: ImageBatchSource, batchSize: Int) throws -> [Float] {
        let model = try InferenceModel(graph: graph.prefix(before: node + 1), outputs: [graph.nodes[node].name])
        var features: [Float] = []
        for start in stride(from: 0, to: source.count, by: batchSize) {
            let indices = Array(start ..< min(source.count, start + batchSize))
            features += try model(try source.images(indices, epoch: 0, augment: false, seed: 0)).scalars
        }
        return features
    }
}
