import CriaCore
import CriaKerasIO
import CriaModel

/// Every variable of a model's layers in flat buffers, in the manner of llm.c:
/// the values, their gradients and the optimizer's moments each in one
/// contiguous allocation, with a view (offset, count, shape) per layer and
/// variable.
///
/// Layout: the variables an optimizer may update (kernel, bias, gamma, beta)
/// come first, node by node in graph order and, within a node, in Keras's
/// variable order; BatchNormalization's moving statistics, which never train,
/// follow in a second region. Freezing is by layer index, so the trainable
/// variables are a suffix of the first region: `trainableRuns` is that range
/// (one run, unless a graph freezes layers out of order). Gradients and moments
/// cover only `trainableSpan`, the smallest range holding the runs, and are
/// indexed by a view's offset minus the span's start.
///
/// A training step reads the weights through `values` and writes each
/// trainable variable's gradient into its place in `gradients`; no per-step
/// dictionaries or tensor copies. The graph's `LayerWeights` are written from
/// the store only when asked (`write(into:)`), and read back with `read(from:)`.
public final class ParameterStore {
    /// Where one variable lives.
    public struct View: Sendable, Equatable {
        public let offset: Int
        public let count: Int
        public let shape: [Int]
    }

    struct Variable {
        let name: String
        let view: View
        let trainable: Bool
    }

    /// Per node, its variables in Keras's order (empty for layers without weights).
    private let variables: [[Variable]]
    /// Values of the first region (variables that may train) and of everything.
    public let parameterCount: Int
    public let count: Int
    /// The trainable variables, as ranges of `values` offsets, in order.
    public let trainableRuns: [Range<Int>]
    /// From the first trainable offset to the end of the last run; gradients and moments cover it.
    public let trainableSpan: Range<Int>
    /// Nodes that hold trainable variables.
    public let trainableNodes: [Int]

    public let values: UnsafeMutableBufferPointer<Float>
    public let gradients: UnsafeMutableBufferPointer<Float>
    /// The optimizer's first and second moments over `trainableSpan`, allocated on first use.
    public private(set) var firstMoments: UnsafeMutableBufferPointer<Float>?
    public private(set) var secondMoments: UnsafeMutableBufferPointer<Float>?
    /// The optimizer whose moments these are: a new optimizer starts from zero moments.
    /// Weak, so that a later optimizer at a freed one's address is still seen as new.
    private weak var momentsOwner: Optimizer?
    /// Buffers this store has allocated (values, gradients, moments); constant after the first step.
    public private(set) var allocations = 0

    public init(graph: ModelGraph) {
        var perNode: [[Variable]] = []
        var offset = 0
        var statistics: [(node: Int, name: String, shape: [Int])] = []
        var trainableNodes: [Int] = []
        var runs: [Range<Int>] = []
        for index in graph.nodes.indices {
            let node = graph.nodes[index]
            let trainable = graph.hasTrainableVariables(index)
            var own: [Variable] = []
            for name in ParameterStore.variableOrder(node) where !ParameterStore.isStatistic(name) {
                guard let tensor = node.weights[name] else { continue }
                own.append(Variable(name: name, view: View(offset: offset, count: tensor.count, shape: tensor.shape), trainable: trainable))
                if trainable {
                    if let last = runs.last, last.upperBound == offset {
                        runs[runs.count - 1] = last.lowerBound ..< offset + tensor.count
                    } else {
                        runs.append(offset ..< offset + tensor.count)
                    }
                }
                offset += tensor.count
            }
            if trainable && !own.isEmpty { trainableNodes.append(index) }
            for name in ParameterStore.variableOrder(node) where ParameterStore.isStatistic(name) && node.weights[name] != nil {
                statistics.append((index, name, node.weights[name]!.shape))
            }
            perNode.append(own)
        }
        parameterCount = offset
        for (index, name, shape) in statistics {
            let size = shape.reduce(1, *)
            perNode[index].append(Variable(name: name, view: View(offset: offset, count: size, shape: shape), trainable: false))
            offset += size
        }
        count = offset
        variables = perNode
        trainableRuns = runs
        trainableSpan = (runs.first?.lowerBound ?? 0) ..< (runs.last?.upperBound ?? 0)
        self.trainableNodes = trainableNodes
        values = .allocate(capacity: count)
        gradients = .allocate(capacity: trainableSpan.count)
        allocations = 2
        // Gradients are written by the backward pass before any read; zeros keep a
        // variable that got no gradient from holding garbage.
        gradients.initialize(repeating: 0)
        read(from: graph)
    }

    deinit {
        values.deallocate()
        gradients.deallocate()
        firstMoments?.deallocate()
        secondMoments?.deallocate()
    }

    /// Keras's variable order for a layer (`layer.weights`), trainable ones first.
    static func variableOrder(_ node: GraphNode) -> [String] {
        node.kind.definition.variables(inputChannels: 0).map(\.name)
    }

    static func isStatistic(_ name: String) -> Bool { name == "moving_mean" || name == "moving_variance" }

    /// Where a node's variable lives, or nil when the node has no such variable.
    public func view(_ node: Int, _ name: String) -> View? {
        guard node < variables.count else { return nil }
        for variable in variables[node] where variable.name == name { return variable.view }
        return nil
    }

    /// The values of a node's variable (a pointer into `values`).
    public func parameter(_ node: Int, _ name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard let view = view(node, name) else { return nil }
        return UnsafeMutableBufferPointer(rebasing: values[view.offset ..< view.offset + view.count])
    }

    /// The gradient of a node's variable, or nil when the variable does not train.
    public func gradient(_ node: Int, _ name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard node < variables.count else { return nil }
        for variable in variables[node] where variable.name == name && variable.trainable {
            let start = variable.view.offset - trainableSpan.lowerBound
            return UnsafeMutableBufferPointer(rebasing: gradients[start ..< start + variable.view.count])
        }
        return nil
    }

    /// The moments over `trainableSpan` for `owner`, each allocated on first use and zeroed
    /// when it was another optimizer's: a new optimizer starts from zero moments, as in Keras.
    func moments(for owner: Optimizer, first wantFirst: Bool, second wantSecond: Bool)
        -> (first: UnsafeMutableBufferPointer<Float>?, second: UnsafeMutableBufferPointer<Float>?) {
        let fresh = momentsOwner !== owner
        momentsOwner = owner
        func prepare(_ buffer: inout UnsafeMutableBufferPointer<Float>?, _ wanted: Bool) -> UnsafeMutableBufferPointer<Float>? {
            guard wanted else { return nil }
            if let buffer {
                if fresh { buffer.update(repeating: 0) }
                return buffer
            }
            let allocated = UnsafeMutableBufferPointer<Float>.allocate(capacity: trainableSpan.count)
            allocated.initialize(repeating: 0)
            allocations += 1
            buffer = allocated
            return allocated
        }
        return (prepare(&firstMoments, wantFirst), prepare(&secondMoments, wantSecond))
    }

    /// A node's variables as a graph holds them (new tensors, copied from the store).
    public func weights(_ node: Int) -> LayerWeights {
        var weights: LayerWeights = [:]
        for variable in variables[node] {
            let view = variable.view
            weights[variable.name] = Tensor(shape: view.shape, scalars: Array(values[view.offset ..< view.offset + view.count]))
        }
        return weights
    }

    /// The gradients of a node's trainable variables, copied (for tests and inspection).
    public func gradientWeights(_ node: Int) -> LayerWeights {
        var weights: LayerWeights = [:]
        for variable in variables[node] where variable.trainable {
            weights[variable.name] = Tensor(shape: variable.view.shape, scalars: Array(gradient(node, variable.name)!))
        }
        return weights
    }

    /// Copies the store's values into the graph's `LayerWeights` (other weights are kept).
    public func write(into graph: inout ModelGraph) {
        for index in variables.indices where !variables[index].isEmpty {
            var weights = graph.nodes[index].weights
            for (name, tensor) in self.weights(index) { weights[name] = tensor }
            graph.setWeights(weights, forNode: index)
        }
    }

    /// Copies the graph's weights into the store (a restored checkpoint, replaced weights).
    /// Shapes must match the layout the store was built with.
    public func read(from graph: ModelGraph) {
        for index in variables.indices { read(graph.nodes[index].weights, forNode: index) }
    }

    /// Copies one node's weights into the store.
    public func read(_ weights: LayerWeights, forNode index: Int) {
        for variable in variables[index] {
            guard let tensor = weights[variable.name] else { continue }
            precondition(tensor.count == variable.view.count, "\(variable.name) of node \(index): \(tensor.count) values, the store holds \(variable.view.count)")
            tensor.scalars.withUnsafeBufferPointer {
                UnsafeMutableBufferPointer(rebasing: values[variable.view.offset ..< variable.view.offset + variable.view.count])
                    .baseAddress!.update(from: $0.baseAddress!, count: variable.view.count)
            }
        }
    }
}
