import CriaCore
import CriaModel
import CriaTraining
import Foundation
import XCTest

/// A plain float64 interpreter of a `ModelGraph`, for gradient checks.
///
/// A central difference quotient of a float32 loss divides float32 rounding noise
/// (about 1e-7 of the loss, and not smooth in the step) by the step: with a step of
/// 2e-4 that is an error of order 1e-4 in the quotient, as large as the small gradients
/// being checked. Evaluating the loss here, in float64 from the same float32 weights,
/// leaves only the quotient's truncation error (h²/6·f‴) and float64 rounding
/// (2⁻⁵³·|f|/h), both far below the float32 error of the analytic gradient. A failed
/// check then means a wrong gradient, not rounding.
///
/// Every layer is written out as its definition (loops, no kernels), independent of
/// Cria's kernels. Dropout must have rate 0 (or run with `training: false`).
struct Float64Graph {
    let graph: ModelGraph
    let bnMode: BatchNormMode
    /// Weights in float64, by node index and variable name; checks perturb these.
    var weights: [Int: [String: [Double]]]
    /// Where evaluation starts: the outputs of the frozen prefix, given (Cria's float32
    /// values, widened), so that a check measures the trainable part alone.
    let boundary: Int
    let prefix: [Int: [Double]]

    init(graph: ModelGraph, bnMode: BatchNormMode, boundary: Int = 0, prefix: [Int: [Float]] = [:]) {
        self.graph = graph
        self.bnMode = bnMode
        self.boundary = boundary
        self.prefix = prefix.mapValues { $0.map(Double.init) }
        var weights: [Int: [String: [Double]]] = [:]
        for (index, node) in graph.nodes.enumerated() where !node.weights.isEmpty {
            weights[index] = node.weights.mapValues { $0.scalars.map(Double.init) }
        }
        self.weights = weights
    }

    /// The model's outputs for `batch` images (NHWC, float32 input widened exactly).
    func outputs(_ input: Tensor, training: Bool) -> [Double] {
        let batch = input.shape[0]
        var values: [Int: [Double]] = [:]
        var shapes: [Int: [Int]] = [:]  // per image: [H, W, C] or [C]
        for (index, node) in graph.nodes.enumerated() {
            if index < boundary {
                if let given = prefix[index] { values[index] = given; shapes[index] = node.outputShape }
                continue
            }
            let inputShape = node.inputs.first.map { shapes[$0]! } ?? []
            let x = node.inputs.first.map { values[$0]! } ?? []
            var out: [Double]
            var shape = inputShape
            let w = weights[index] ?? [:]
            switch node.kind {
            case .input:
                out = input.scalars.map(Double.init)
                shape = Array(input.shape.dropFirst())
            case .identity, .dropout:
                out = x
            case .zeroPadding2D(let top, let bottom, let left, let right):
                let (h, wd, c) = (inputShape[0], inputShape[1], inputShape[2])
                shape = [h + top + bottom, wd + left + right, c]
                out = [Double](repeating: 0, count: batch * shape[0] * shape[1] * c)
                for n in 0..<batch { for y in 0..<h { for xx in 0..<wd { for ch in 0..<c {
                    out[((n * shape[0] + y + top) * shape[1] + xx + left) * c + ch] = x[((n * h + y) * wd + xx) * c + ch]
                } } } }
            case .conv2D(let spec), .depthwiseConv2D(let spec):
                var depthwise = false
                if case .depthwiseConv2D = node.kind { depthwise = true }
                (out, shape) = Float64Graph.convolve(x, inputShape, batch: batch, spec: spec, depthwise: depthwise,
                                                     kernel: w["kernel"]!, bias: w["bias"])
                out = out.map { Float64Graph.activate($0, spec.activation) }
            case .batchNormalization(let epsilon, _, _):
                let c = inputShape.last!
                let rows = x.count / c
                var mean = w["moving_mean"]!, variance = w["moving_variance"]!
                if training && bnMode == .train && node.trainable {
                    mean = [Double](repeating: 0, count: c)
                    variance = [Double](repeating: 0, count: c)
                    for r in 0..<rows { for ch in 0..<c { mean[ch] += x[r * c + ch] } }
                    for ch in 0..<c { mean[ch] /= Double(rows) }
                    for r in 0..<rows { for ch in 0..<c { let d = x[r * c + ch] - mean[ch]; variance[ch] += d * d } }
                    for ch in 0..<c { variance[ch] /= Double(rows) }  // biased, as Keras
                }
                let gamma = w["gamma"], beta = w["beta"]
                out = x
                for r in 0..<rows { for ch in 0..<c {
                    let normal = (x[r * c + ch] - mean[ch]) / (variance[ch] + Double(epsilon)).squareRoot()
                    out[r * c + ch] = normal * (gamma?[ch] ?? 1) + (beta?[ch] ?? 0)
                } }
            case .relu(let maxValue, let threshold, let negativeSlope):
                precondition(threshold == 0 && negativeSlope == 0, "Float64Graph: plain ReLU only")
                out = x.map { value in min(max(value, 0), maxValue.map(Double.init) ?? .infinity) }
            case .activation(let function):
                out = x.map { Float64Graph.activate($0, function) }
            case .add:
                out = x
                for other in node.inputs.dropFirst() { for (i, v) in values[other]!.enumerated() { out[i] += v } }
            case .globalAveragePooling2D:
                let (h, wd, c) = (inputShape[0], inputShape[1], inputShape[2])
                shape = [c]
                out = [Double](repeating: 0, count: batch * c)
                for n in 0..<batch { for p in 0..<(h * wd) { for ch in 0..<c { out[n * c + ch] += x[(n * h * wd + p) * c + ch] } } }
                out = out.map { $0 / Double(h * wd) }
            case .dense(let units, let activation, _):
                let inputs = inputShape.last!
                let kernel = w["kernel"]!, bias = w["bias"]
                shape = [units]
                out = [Double](repeating: 0, count: batch * units)
                for n in 0..<batch { for u in 0..<units {
                    var sum = bias?[u] ?? 0
                    for i in 0..<inputs { sum += x[n * inputs + i] * kernel[i * units + u] }
                    out[n * units + u] = sum
                } }
                if activation == .softmax {
                    for n in 0..<batch {
                        let row = out[(n * units)..<((n + 1) * units)]
                        let top = row.max()!
                        let total = row.reduce(0) { $0 + exp($1 - top) }
                        for u in 0..<units { out[n * units + u] = exp(out[n * units + u] - top) / total }
                    }
                } else {
                    out = out.map { Float64Graph.activate($0, activation) }
                }
            default:
                preconditionFailure("Float64Graph: \(node.className) is not interpreted")
            }
            if case .dropout(let rate) = node.kind { precondition(rate == 0 || !training, "Float64Graph: dropout must be off") }
            values[index] = out
            shapes[index] = shape
        }
        return values[graph.outputNode]!
    }

    private static func activate(_ value: Double, _ function: ActivationFunction) -> Double {
        switch function {
        case .linear, .softmax: return value
        case .relu: return max(value, 0)
        case .relu6: return min(max(value, 0), 6)
        case .sigmoid: return 1 / (1 + exp(-value))
        }
    }

    private static func convolve(_ x: [Double], _ inputShape: [Int], batch: Int, spec: ConvSpec, depthwise: Bool,
                                 kernel: [Double], bias: [Double]?) -> ([Double], [Int]) {
        let (h, w, c) = (inputShape[0], inputShape[1], inputShape[2])
        let rows = spec.padding.amounts(input: h, kernel: spec.kernelHeight, stride: spec.strideH)
        let cols = spec.padding.amounts(input: w, kernel: spec.kernelWidth, stride: spec.strideW)
        let filters = depthwise ? c : spec.filters
        var out = [Double](repeating: 0, count: batch * rows.output * cols.output * filters)
        for n in 0..<batch { for oy in 0..<rows.output { for ox in 0..<cols.output { for f in 0..<filters {
            var sum = bias?[f] ?? 0
            for ky in 0..<spec.kernelHeight { for kx in 0..<spec.kernelWidth {
                let y = oy * spec.strideH + ky - rows.before, xx = ox * spec.strideW + kx - cols.before
                guard y >= 0, y < h, xx >= 0, xx < w else { continue }
                let base = ((n * h + y) * w + xx) * c
                if depthwise {
                    sum += x[base + f] * kernel[(ky * spec.kernelWidth + kx) * c + f]
                } else {
                    for i in 0..<c { sum += x[base + i] * kernel[((ky * spec.kernelWidth + kx) * c + i) * filters + f] }
                }
            } }
            out[((n * rows.output + oy) * cols.output + ox) * filters + f] = sum
        } } } }
        return (out, [rows.output, cols.output, filters])
    }
}

/// The float32 error model that gradient-check tolerances follow.
///
/// A float32 sum of K products has an error of at most K·u times the sum of the
/// magnitudes of its terms (u = 2⁻²⁴, Higham's γ_K); a gradient passes through a few
/// such sums (forward and backward), so `depth` of them compound. The bound is taken
/// relative to `scale`, the largest magnitude in the gradient tensor, which bounds the
/// terms' sum only up to cancellation: a factor of 4 covers that here. A wrong gradient
/// (a missing term, a sign, a factor) is off by a large fraction of `scale`, far above it.
enum Float32ErrorModel {
    static let unitRoundoff = Double(Float.ulpOfOne) / 2

    static func tolerance(terms: Int, depth: Int, scale: Double) -> Double {
        4 * Double(depth) * Double(terms) * unitRoundoff * scale
    }

    /// The longest float32 sum among `nodes`: a weight gradient over batch × output
    /// positions, or a forward/backward reduction over kernel taps × input channels.
    static func longestSum(_ graph: ModelGraph, nodes: Range<Int>, batch: Int) -> Int {
        nodes.map { index -> Int in
            let node = graph.nodes[index]
            let positions = node.outputShape.count == 3 ? node.outputShape[0] * node.outputShape[1] : 1
            let inputs = node.inputs.first.map { graph.nodes[$0].outputShape.last ?? 1 } ?? 1
            let reduction: Int
            switch node.kind {
            case .conv2D(let spec): reduction = spec.kernelHeight * spec.kernelWidth * inputs
            case .depthwiseConv2D(let spec): reduction = spec.kernelHeight * spec.kernelWidth
            case .dense: reduction = inputs
            case .globalAveragePooling2D, .batchNormalization:
                let shape = graph.nodes[node.inputs[0]].outputShape
                reduction = shape.count == 3 ? shape[0] * shape[1] : 1
            default: reduction = 1
            }
            return max(batch * positions, reduction)
        }.max() ?? 1
    }
}

extension Float64Graph {
    /// Checks analytic float32 gradients against central difference quotients of a float64 loss.
    ///
    /// `loss` maps the float64 model outputs to the loss. Each checked entry is perturbed by
    /// ±h in float64 (h = 1e-4: truncation h²/6·f‴ and rounding 2⁻⁵³·|f|/h are both below
    /// 1e-8 of the scale here). Where the two one-sided slopes disagree, the step crossed a
    /// ReLU6 kink and the quotient means nothing: the step shrinks, and after four tries the
    /// entry is skipped (and counted, so a check of nothing fails).
    /// `terms` and `depth` feed `Float32ErrorModel` for the tolerance.
    func checkGradients(_ gradients: [Int: [String: Tensor]], input: Tensor, training: Bool,
                        loss: ([Double]) -> Double, positions: (Tensor) -> [Int], terms: Int, depth: Int,
                        context: String, file: StaticString = #filePath, line: UInt = #line) -> (checked: Int, skipped: Int) {
        var checked = 0, skipped = 0
        var model = self
        for (index, variables) in gradients.sorted(by: { $0.key < $1.key }) {
            for (variable, gradient) in variables.sorted(by: { $0.key < $1.key }) {
                let scale = Double(gradient.maxMagnitude)
                let tolerance = Float32ErrorModel.tolerance(terms: terms, depth: depth, scale: scale)
                let original = model.weights[index]![variable]!
                for position in positions(gradient) {
                    func lossAt(_ delta: Double) -> Double {
                        model.weights[index]![variable]![position] = original[position] + delta
                        defer { model.weights[index]![variable]![position] = original[position] }
                        return loss(model.outputs(input, training: training))
                    }
                    let center = lossAt(0)
                    var step = 1e-4
                    var numeric: Double?
                    for _ in 0..<4 {
                        let plus = lossAt(step), minus = lossAt(-step)
                        let right = (plus - center) / step, left = (center - minus) / step
                        if abs(right - left) <= 1e-3 * max(abs(right), abs(left)) + 1e-6 * scale {
                            numeric = (plus - minus) / (2 * step)
                            break
                        }
                        step /= 16
                    }
                    guard let numeric else { skipped += 1; continue }
                    checked += 1
                    let analytic = Double(gradient.scalars[position])
                    let name = "\(graph.nodes[index].name)/\(variable)[\(position)]"
                    print("gradcheck \(context) \(name): analytic \(analytic) numeric(float64) \(numeric) tolerance \(tolerance)")
                    if !(abs(analytic - numeric) <= tolerance) {
                        XCTFail("\(context) \(name): analytic \(analytic) vs float64 difference quotient \(numeric): "
                                + "|diff| \(abs(analytic - numeric)) > \(tolerance) (float32 model: \(terms) terms, depth \(depth), scale \(scale))",
                                file: file, line: line)
                    }
                }
            }
        }
        return (checked, skipped)
    }
}

/// Losses in float64, as `Loss` defines them in float32 (means over the batch).
enum Float64Loss {
    static func evaluate(_ kind: Loss, outputs: [Double], labels: [Int], columns: Int) -> Double {
        var total = 0.0
        for (n, label) in labels.enumerated() {
            switch kind {
            case .binaryCrossentropyFromLogits:
                let z = outputs[n], y = Double(label)
                total += max(z, 0) - z * y + log1p(exp(-abs(z)))
            case .sparseCategoricalCrossentropyFromLogits:
                let row = outputs[(n * columns)..<((n + 1) * columns)]
                let top = row.max()!
                total += top + log(row.reduce(0) { $0 + exp($1 - top) }) - outputs[n * columns + label]
            case .sparseCategoricalCrossentropy:
                total += -log(max(outputs[n * columns + label], 1e-300))
            }
        }
        return total / Double(labels.count)
    }
}
