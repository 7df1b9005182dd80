import CriaKernels
import CriaModel

/// A run of suffix layers that training executes as one unit, so the values
/// between them are never written to memory or kept on the tape:
///
/// - `ZeroPadding2D → DepthwiseConv2D`: the padding becomes the convolution's
///   implicit zeros (its padTop/padLeft), forward and backward.
/// - `Conv2D/DepthwiseConv2D → BatchNormalization → ReLU` with the BatchNorm on
///   its moving statistics in every step (bn_mode inference, or a frozen
///   BatchNorm): the BatchNorm folds into the kernel and bias (recomputed each
///   step from the current weights) and the ReLU into the kernel's clamp; only
///   the unit's output is kept (`FoldedBatchNorm`). When a step's weights make
///   x̂ unrecoverable from that output (`FoldedBatchNorm.canFold`), the step runs
///   the convolution on its own and the BatchNorm with the ReLU as below.
/// - `BatchNormalization → ReLU` otherwise (batch statistics in train mode): one
///   pass writes the clamped output, and the BatchNorm backward applies the ReLU
///   mask as it reads the gradient, with the same values in the same order as the
///   separate passes, so the results keep their bits.
///
/// Each inner value of a unit has exactly one consumer, the next layer of the unit.
struct FusedUnit: Equatable {
    var padding: Int?
    var conv: Int?
    var batchNorm: Int?
    /// The BatchNorm uses moving statistics in every step, so it may fold into `conv`.
    var foldsBatchNorm = false
    var relu: Int?

    var first: Int { padding ?? conv ?? batchNorm! }
    var last: Int { relu ?? batchNorm ?? conv! }
    /// Nodes of the unit other than `last`: run by the unit, never on their own.
    var inner: [Int] { [padding, conv, batchNorm, relu].compactMap { $0 }.filter { $0 != last } }
}

/// The units of one training graph, planned once from its structure and the BatchNorm mode.
struct FusionPlan {
    /// Units by their last node, where the passes run them.
    let units: [Int: FusedUnit]
    /// Nodes run inside a unit that ends at another node.
    let absorbed: Set<Int>

    /// No units: every layer runs on its own.
    init() {
        units = [:]
        absorbed = []
    }

    init(graph: ModelGraph, suffix: Range<Int>, consumers: [[Int]], bnMode: BatchNormMode) {
        func sole(_ node: Int) -> Int? {
            guard node != graph.outputNode, consumers[node].count == 1, suffix.contains(consumers[node][0]) else { return nil }
            return consumers[node][0]
        }
        func plainReLU(after node: Int) -> Int? {
            guard let next = sole(node), case .relu(_, let threshold, let slope) = graph.nodes[next].kind,
                  threshold == 0, slope == 0 else { return nil }
            return next
        }
        var units: [Int: FusedUnit] = [:]
        var absorbed = Set<Int>()
        for index in suffix where !absorbed.contains(index) {
            var unit = FusedUnit()
            switch graph.nodes[index].kind {
            case .conv2D(let spec), .depthwiseConv2D(let spec):
                unit.conv = index
                let input = graph.nodes[index].inputs[0]
                if case .depthwiseConv2D = graph.nodes[index].kind, suffix.contains(input), sole(input) == index,
                   case .zeroPadding2D = graph.nodes[input].kind, spec.padding == .valid {
                    unit.padding = input
                }
                if spec.activation == .linear, let next = sole(index), case .batchNormalization = graph.nodes[next].kind,
                   bnMode == .inference || !graph.nodes[next].trainable {
                    unit.batchNorm = next
                    unit.foldsBatchNorm = true
                    unit.relu = plainReLU(after: next)
                }
                guard unit.padding != nil || unit.batchNorm != nil else { continue }
            case .batchNormalization:
                guard let relu = plainReLU(after: index) else { continue }
                unit.batchNorm = index
                unit.relu = relu
            default:
                continue
            }
            units[unit.last] = unit
            absorbed.formUnion(unit.inner)
        }
        self.units = units
        self.absorbed = absorbed
    }
}
