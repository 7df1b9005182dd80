import Foundation

/// Keras's classification losses: mean over the batch, and the gradient of
/// that mean with respect to the model output.
public enum Loss: String, Sendable, CaseIterable {
    /// `BinaryCrossentropy(from_logits=True)`: one logit per image, labels 0/1.
    case binaryCrossentropyFromLogits = "binary_crossentropy"
    /// `SparseCategoricalCrossentropy(from_logits=True)`: N logits, integer labels.
    case sparseCategoricalCrossentropyFromLogits = "sparse_categorical_crossentropy"
    /// `SparseCategoricalCrossentropy()` on softmax probabilities (a Dense with softmax).
    case sparseCategoricalCrossentropy = "sparse_categorical_crossentropy_probabilities"

    /// Keras clips probabilities to [ε, 1 − ε] with ε = 1e-7 before taking logs.
    static let epsilon: Float = 1e-7

    /// Returns the mean loss and dLoss/dOutput for a batch of outputs (rows × columns).
    public func evaluate(outputs: [Float], labels: [Int], columns: Int) -> (loss: Double, gradient: [Float]) {
        var gradient: [Float] = []
        let loss = evaluate(outputs: outputs, labels: labels, columns: columns, gradient: &gradient)
        return (loss, gradient)
    }

    /// Returns the mean loss and writes dLoss/dOutput into `gradient`, which is reallocated
    /// only when its size differs from the outputs': a training loop passes the same buffer
    /// every step.
    public func evaluate(outputs: [Float], labels: [Int], columns: Int, gradient: inout [Float]) -> Double {
        let rows = labels.count
        if gradient.count == outputs.count {
            gradient.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        } else {
            gradient = [Float](repeating: 0, count: outputs.count)
        }
        var total = 0.0
        switch self {
        case .binaryCrossentropyFromLogits:
            for r in 0..<rows {
                let z = Double(outputs[r]), y = Double(labels[r])
                // max(z, 0) − z·y + log(1 + e^−|z|): stable for any |z| (TF's sigmoid_cross_entropy_with_logits).
                total += max(z, 0) - z * y + log1p(exp(-abs(z)))
                gradient[r] = Float((1 / (1 + exp(-z)) - y) / Double(rows))
            }
        case .sparseCategoricalCrossentropyFromLogits:
            for r in 0..<rows {
                let row = outputs[r * columns ..< (r + 1) * columns]
                let largest = Double(row.max() ?? 0)
                let logSum = log(row.reduce(0.0) { $0 + exp(Double($1) - largest) }) + largest
                total += logSum - Double(row[r * columns + labels[r]])
                for c in 0..<columns {
                    let p = exp(Double(row[r * columns + c]) - logSum)
                    gradient[r * columns + c] = Float((p - (c == labels[r] ? 1 : 0)) / Double(rows))
                }
            }
        case .sparseCategoricalCrossentropy:
            // Keras normalises the probabilities by their sum, clips to [ε, 1 − ε] and takes −log q_y;
            // d/dp_j of −log(p_y / S) is 1/S − δ_jy / p_y (zero where the clip is active).
            for r in 0..<rows {
                let row = outputs[r * columns ..< (r + 1) * columns]
                let sum = row.reduce(Float(0), +)
                let raw = row[r * columns + labels[r]] / sum
                let q = min(max(raw, Loss.epsilon), 1 - Loss.epsilon)
                total += -log(Double(q))
                guard raw == q else { continue }
                for c in 0..<columns { gradient[r * columns + c] = 1 / (sum * Float(rows)) }
                gradient[r * columns + labels[r]] -= 1 / (row[r * columns + labels[r]] * Float(rows))
            }
        }
        return total / Double(max(rows, 1))
    }

    /// The gradient of a softmax-probability loss taken through the softmax itself, (p − y)/N,
    /// into `gradient` (reallocated only when its size differs): training a Dense(softmax)
    /// head uses this instead of dividing by tiny probabilities.
    public static func softmaxCrossEntropyGradient(probabilities: [Float], labels: [Int], columns: Int, into gradient: inout [Float]) {
        if gradient.count == probabilities.count {
            gradient.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: probabilities) }
        } else {
            gradient = probabilities
        }
        let rows = labels.count
        for r in 0..<rows {
            gradient[r * columns + labels[r]] -= 1
            for c in 0..<columns { gradient[r * columns + c] /= Float(rows) }
        }
    }
}

/// Accuracy counted correctly, and Keras's own "accuracy" figure where it differs.
public enum Accuracy {
    /// Correct predictions: logit > 0 for one output, argmax otherwise.
    public static func correct(outputs: [Float], labels: [Int], columns: Int, outputsAreProbabilities: Bool) -> Int {
        var hits = 0
        for r in 0..<labels.count {
            if columns == 1 {
                let threshold: Float = outputsAreProbabilities ? 0.5 : 0
                hits += ((outputs[r] > threshold) == (labels[r] == 1)) ? 1 : 0
            } else {
                let row = outputs[r * columns ..< (r + 1) * columns]
                let best = row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }! - r * columns
                hits += best == labels[r] ? 1 : 0
            }
        }
        return hits
    }

    /// Keras's `metrics=["accuracy"]` on a one-unit output compiles `BinaryAccuracy(threshold=0.5)`
    /// and applies it to whatever the model outputs, logits included: a logit in (0, 0.5] counts
    /// as class 0. This reproduces that figure so a Keras user can compare.
    public static func kerasBinary(outputs: [Float], labels: [Int]) -> Int {
        var hits = 0
        for r in 0..<labels.count { hits += ((outputs[r] > 0.5) == (labels[r] == 1)) ? 1 : 0 }
        return hits
    }
}
