import CriaCore
import CriaKerasIO
import CriaKernels
import CriaModel

/// Forward and backward passes through a model under one freezing setting.
///
/// The model is cut at a boundary: the first layer that has trainable
/// variables or behaves differently in training (Dropout, BatchNorm in train
/// mode). Everything before it is the frozen prefix, run through the fused
/// inference path (BatchNorm folded) with no activations kept and no
/// gradients computed; its outputs can be cached per image. Everything from
/// the boundary on is the trainable suffix, run layer by layer with its
/// activations kept for the backward pass, where runs of layers (padding →
/// convolution → BatchNorm → ReLU) execute as fused units (`FusionPlan`).
///
/// The weights live in a `ParameterStore`: the layer passes read them and write
/// the gradients of trainable variables there. `graph`'s `LayerWeights` are
/// those of the last `syncWeights()` (or of the graph given to `init`).
public final class TrainingGraph {
    public private(set) var graph: ModelGraph
    /// Every variable of the model in flat buffers, with the gradients and optimizer moments.
    public let store: ParameterStore
    /// Per node: whether the last backward pass wrote its variables' gradients.
    private var gradientWritten: [Bool]
    public let bnMode: BatchNormMode
    public let boundary: Int
    /// Prefix nodes whose outputs the suffix reads.
    public let prefixOutputs: [Int]
    private let prefixModel: InferenceModel?
    private let suffix: [Int]
    private let consumers: [[Int]]
    /// Runs of suffix layers executed as one pass (`FusedUnits.swift`).
    let fusion: FusionPlan
    /// Inverted-residual blocks of folded units that run as one pass, an image at a time
    /// (`InvertedResidualBlock.swift`), by their expand unit's last node, where the forward
    /// pass reaches them, and by their last node, where the backward pass does.
    let blocks: [Int: InvertedResidualUnits]
    private let blockEnds: [Int: InvertedResidualUnits]
    let onePassBlocks: OnePassBlocks
    /// The BatchNorms folded into their convolutions, computed once per forward pass.
    let folds: BatchNormFolds
    /// Each node's layer definition and whether it has variables an optimizer updates, looked
    /// up once: `LayerKind.definition` boxes a new existential on every call.
    let definitions: [any LayerDefinition]
    let trainsVariables: [Bool]
    /// Per node, the output shapes of its inputs, and a reusable list of its input values
    /// for the layer passes (filled and emptied each pass, so that it keeps its capacity).
    let inputShapes: [[[Int]]]
    var inputValues: [[[Float]]]
    /// Nodes run inside a fused unit that ends at another node: the tape never holds their outputs.
    public var innerNodesOfUnits: Set<Int> { fusion.absorbed }
    /// Finished buffers by size: `pools[poolSlots[size]]`. Not `[Int: [[Float]]]`, whose
    /// in-place element access (`dictionary[size]?.popLast()`) runs a coroutine that
    /// mallocs its frame, once per buffer taken or given back.
    private var poolSlots: [Int: Int] = [:]
    private var pools: [[[Float]]] = []
    /// Per slot, how many buffers of its size `takeBuffer` has made (each slot's capacity).
    private var buffersMade: [Int] = []
    /// The backward pass's table of gradients waiting for their layer, kept empty between passes.
    private var pendingGradients: [Int: [Float]] = [:]
    /// A layer's input gradients added into others, and the buffers it gave back: two
    /// or three at most, in lists that keep their capacity from layer to layer.
    private var spentGradients: [[Float]] = []
    private var recycledStorage: [UnsafeRawPointer?] = []
    /// The last `runPrefix` result, whose table and buffers the next call writes again.
    private var prefixResult: [Int: [Float]] = [:]
    /// The tables of the last forward pass's tape, for the next one (`reusableTapeStorage`).
    private var lastTapeStorage = Tape.Storage()
    /// Activation and gradient buffers allocated so far (not reused from an earlier pass):
    /// after the first step at a batch size, steady-state steps add none.
    public private(set) var freshBuffers = 0
    /// Buffers waiting in the pool between passes: constant from step to step once the
    /// pool is warm (a buffer recycled twice, or one the pool never handed out, would grow it).
    public var pooledBuffers: Int { pools.reduce(0) { $0 + $1.count } }

    /// Values of one forward pass, kept for backward. `backward` consumes them: it hands
    /// each layer's buffer to the next gradients once no layer needs it (copies share that).
    ///
    /// Its tables live in a `Storage` that the graph hands to the next forward pass once the
    /// caller has let go of the tape, emptied but with its capacity: a steady-state step
    /// allocates no tables.
    public struct Tape {
        /// A train-mode BatchNormalization layer's batch mean and variance, per channel.
        struct BatchStatistics {
            var mean: [Float]
            var variance: [Float]
        }
        final class Storage {
            var values: [Int: [Float]] = [:]
            var batchStatistics: [Int: BatchStatistics] = [:]
            var dropoutMasks: [Int: [Float]] = [:]
            /// Blocks run as one pass (by their expand unit's last node): whether each kept its
            /// expanded activations on the tape.
            var onePassBlocks: [Int: Bool] = [:]
        }
        let storage: Storage
        var values: [Int: [Float]] {
            _read { yield storage.values }
            nonmutating _modify { yield &storage.values }
        }
        var batchStatistics: [Int: BatchStatistics] {
            _read { yield storage.batchStatistics }
            nonmutating _modify { yield &storage.batchStatistics }
        }
        var dropoutMasks: [Int: [Float]] {
            _read { yield storage.dropoutMasks }
            nonmutating _modify { yield &storage.dropoutMasks }
        }
        var onePassBlocks: [Int: Bool] {
            _read { yield storage.onePassBlocks }
            nonmutating _modify { yield &storage.onePassBlocks }
        }
        public var batch: Int
        public var training: Bool

        /// The recorded output of a node, for tests and feature extraction.
        public func value(of node: Int) -> [Float]? { values[node] }
    }

    /// `fusesLayers: false` runs every layer as its own pass (no `FusionPlan`), to test the fused
    /// units against the layer-by-layer passes; `onePassBlocks` says which inverted-residual
    /// blocks run as one pass (`InvertedResidualBlock.swift`).
    public init(graph: ModelGraph, bnMode: BatchNormMode, fusesLayers: Bool = true, onePassBlocks: OnePassBlocks = .memoryBound) throws {
        Allocator.configureForTraining()
        self.graph = graph
        self.bnMode = bnMode
        store = ParameterStore(graph: graph)
        gradientWritten = [Bool](repeating: false, count: graph.nodes.count)
        var consumers = [[Int]](repeating: [], count: graph.nodes.count)
        for (index, node) in graph.nodes.enumerated() { for input in node.inputs { consumers[input].append(index) } }
        self.consumers = consumers
        var boundary = graph.nodes.count
        for index in graph.nodes.indices where TrainingGraph.startsSuffix(graph, index, bnMode: bnMode) {
            boundary = index
            break
        }
        boundary = min(boundary, graph.outputNode)
        self.boundary = boundary
        suffix = Array(boundary..<graph.nodes.count)
        fusion = fusesLayers ? FusionPlan(graph: graph, suffix: boundary..<graph.nodes.count, consumers: consumers, bnMode: bnMode)
                             : FusionPlan()
        self.onePassBlocks = onePassBlocks
        folds = BatchNormFolds(nodes: graph.nodes.count)
        definitions = graph.nodes.map { $0.kind.definition }
        trainsVariables = graph.nodes.indices.map { graph.hasTrainableVariables($0) }
        inputShapes = graph.nodes.map { node in node.inputs.map { graph.nodes[$0].outputShape } }
        inputValues = graph.nodes.map { [[Float]](repeating: [], count: $0.inputs.count) }
        blocks = fusesLayers && onePassBlocks != .none ? InvertedResidualUnits.plan(graph: graph, fusion: fusion, consumers: consumers) : [:]
        blockEnds = Dictionary(uniqueKeysWithValues: blocks.values.map { ($0.project.last, $0) })
        var outputs = Set<Int>()
        for index in suffix { for input in graph.nodes[index].inputs where input < boundary { outputs.insert(input) } }
        prefixOutputs = outputs.sorted()
        prefixModel = boundary > 0 && !prefixOutputs.isEmpty
            ? try InferenceModel(graph: graph.prefix(before: boundary), outputs: prefixOutputs.map { graph.nodes[$0].name })
            : nil
    }

    private static func startsSuffix(_ graph: ModelGraph, _ index: Int, bnMode: BatchNormMode) -> Bool {
        if graph.hasTrainableVariables(index) { return true }
        let node = graph.nodes[index]
        return node.kind.definition.changesInTraining(batchStatistics: bnMode == .train && node.trainable)
    }

    /// Runs the frozen prefix on raw inputs; the result may be cached per image.
    ///
    /// The table and its buffers are written again by the next call once the caller has let
    /// go of them (and `reclaim` has emptied the tape that held them): a steady-state step
    /// allocates nothing here. A result the caller still holds is copied on write instead.
    public func runPrefix(_ input: Tensor) throws -> [Int: [Float]] {
        var result = prefixResult
        prefixResult = [:]
        defer { prefixResult = result }
        guard let prefixModel else {
            result.removeAll(keepingCapacity: true)
            result[graph.inputNode] = input.scalars
            return result
        }
        let expected = prefixModel.graph.inputShape
        guard input.rank == expected.count + 1, input.shape.dropFirst().elementsEqual(expected), input.shape[0] > 0 else {
            // The model's own call names the mismatch (or returns empty outputs for no images).
            let outputs = try prefixModel.predict(input)
            result.removeAll(keepingCapacity: true)
            for index in prefixOutputs { result[index] = outputs[graph.nodes[index].name]!.scalars }
            return result
        }
        input.scalars.withUnsafeBufferPointer { pixels in
            prefixModel.predict(input: pixels.baseAddress!, batch: input.shape[0]) { position, values in
                let node = prefixOutputs[position]
                var buffer = result.removeValue(forKey: node) ?? []
                if buffer.count == values.count {
                    buffer.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: values) }
                } else {
                    buffer = Array(values)
                }
                result[node] = buffer
            }
        }
        return result
    }

    /// Lets go of the buffers `runPrefix` keeps between steps (the next call makes them again).
    /// `Trainer.fit` calls it at the end of each epoch, before the weights are copied out of
    /// the store: with the prefix's outputs freed, those copies reuse their memory instead of
    /// raising the peak (by one batch of images, 9.8 MB at batch 32 and 160×160, at
    /// `trainable: all`, where the prefix is the input's rescaling).
    public func releasePrefixBuffers() {
        prefixResult = [:]
    }

    public func prefixShape(_ node: Int) -> [Int] { graph.nodes[node].outputShape }

    /// Runs the suffix. `training` turns on Dropout and (in train mode) batch statistics;
    /// `dropoutSeed` makes the masks reproducible.
    public func forward(prefix: [Int: [Float]], batch: Int, training: Bool, dropoutSeed: UInt64) -> (output: [Float], tape: Tape) {
        folds.startPass()
        var tape = Tape(storage: reusableTapeStorage(), batch: batch, training: training)
        tape.values.reserveCapacity(prefix.count + suffix.count)  // once: a reused table has the capacity
        for (node, value) in prefix { tape.values[node] = value }
        // A block run as one pass covers the nodes up to its last.
        var ranUntil = -1
        for index in suffix where !fusion.absorbed.contains(index) && index > ranUntil {
            if let block = blocks[index], forwardBlock(block, tape: &tape) {
                ranUntil = block.project.last
                continue
            }
            if let unit = fusion.units[index] {
                forwardUnit(unit, tape: &tape)
                continue
            }
            let value = forwardNode(index, tape: &tape, seed: dropoutSeed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
            tape.values[index] = value
        }
        return (tape.values[graph.outputNode]!, tape)
    }

    /// Gradients of every trainable variable, given dLoss/dOutput, as copies out of the store
    /// (for tests and inspection; training reads them in place, see `backwardIntoStore`).
    public func backward(_ outputGradient: [Float], tape: Tape) -> [Int: LayerWeights] {
        backwardIntoStore(outputGradient, tape: tape)
        var variableGradients: [Int: LayerWeights] = [:]
        for index in store.trainableNodes where gradientWritten[index] { variableGradients[index] = store.gradientWeights(index) }
        return variableGradients
    }

    /// Writes the gradient of every trainable variable, given dLoss/dOutput, into the store's
    /// gradient buffer. Only suffix layers are visited; `updatedRuns` says which were written.
    public func backwardIntoStore(_ outputGradient: [Float], tape: Tape) {
        // The pending gradients keep their table's capacity from step to step.
        var gradients = pendingGradients
        pendingGradients = [:]
        defer {
            gradients.removeAll(keepingCapacity: true)
            pendingGradients = gradients
        }
        gradients[graph.outputNode] = outputGradient
        for index in store.trainableNodes { gradientWritten[index] = false }
        for index in suffix.reversed() {
            guard var gradient = gradients.removeValue(forKey: index) else { continue }
            if let block = blockEnds[index], ranAsOnePass(block, tape: tape) {
                backwardBlock(block, gradient: &gradient, tape: tape, gradients: &gradients)
                continue
            }
            if let unit = fusion.units[index] {
                backwardUnit(unit, gradient: &gradient, tape: tape, gradients: &gradients)
                continue
            }
            let node = graph.nodes[index]
            let needsInput = inputsNeedGradient[index]
            // Its consumers came before it in this loop; unless its own backward reads it, its
            // output is free now, and the input gradient (often of the same size) can reuse it.
            if !definitions[index].backwardReadsOutput { release(index, from: tape) }
            let inputGradients = backwardNode(index, gradient: &gradient, tape: tape, needsInput: needsInput)
            gradientWritten[index] = true
            var added = spentGradients
            spentGradients = []
            for (position, input) in node.inputs.enumerated() {
                guard let incoming = inputGradients.gradient(forInput: position, outputGradient: gradient,
                                                             needed: needsInput[position]) else { continue }
                if let spent = handOn(incoming, to: input, gradients: &gradients) { added.append(spent) }
            }
            // A buffer goes back to the pool once no pending gradient holds it: layers that pass
            // their gradient through (Add, Identity) may have handed it on, and an Add hands it to
            // both inputs. Input gradients added into another one are done with too. The
            // output's gradient belongs to the caller.
            let storage = TrainingGraph.storage(of: gradient)
            var recycled = recycledStorage
            recycledStorage = []
            if index != graph.outputNode && !TrainingGraph.isPending(storage, in: gradients) {
                recycle(&gradient)
                recycled.append(storage)
            }
            while var spent = added.popLast() {
                let spentStorage = TrainingGraph.storage(of: spent)
                guard spentStorage != storage, !recycled.contains(spentStorage), !TrainingGraph.isPending(spentStorage, in: gradients) else { continue }
                recycled.append(spentStorage)
                recycle(&spent)
            }
            // Both lists are empty again and keep their capacity for the next layer.
            recycled.removeAll(keepingCapacity: true)
            (spentGradients, recycledStorage) = (added, recycled)
            // Its consumers came before it in this loop, so no layer reads its output again.
            release(index, from: tape)
        }
        reclaim(tape)
    }

    /// Hands an input gradient to `input`: kept there when it arrives first, else added into
    /// the gradient waiting there and returned, its content spent.
    private func handOn(_ incoming: [Float], to input: Int, gradients: inout [Int: [Float]]) -> [Float]? {
        guard gradients[input] != nil else {
            gradients[input] = incoming
            return nil
        }
        incoming.withUnsafeBufferPointer { addend in
            gradients[input]!.withUnsafeMutableBufferPointer { Elementwise.add(addend.baseAddress!, into: $0.baseAddress!, count: $0.count) }
        }
        return incoming
    }

    /// Runs a unit's backward pass and hands its input gradient on, as the loop in `backward` does for a layer.
    private func backwardUnit(_ unit: FusedUnit, gradient: inout [Float], tape: Tape, gradients: inout [Int: [Float]]) {
        let input = graph.nodes[unit.first].inputs[0]
        let needsInput = input >= boundary && gradientNeeded[input]
        let inputGradient = unitGradients(unit, gradient: &gradient, tape: tape, needsInput: needsInput)
        for node in [unit.conv ?? -1, unit.batchNorm ?? -1] where node >= 0 && trainsVariables[node] { gradientWritten[node] = true }
        // A unit's input gradient is its own buffer: once added into another, it is spent.
        if let incoming = inputGradient, var spent = handOn(incoming, to: input, gradients: &gradients) { recycle(&spent) }
        let storage = TrainingGraph.storage(of: gradient)
        if unit.last != graph.outputNode && storage != inputGradient.map(TrainingGraph.storage) ?? nil
            && !TrainingGraph.isPending(storage, in: gradients) {
            recycle(&gradient)
        }
        if let conv = unit.conv { release(conv, from: tape) }
        release(unit.last, from: tape)
    }

    /// Runs an inverted-residual block's backward as one pass and hands its input gradient on,
    /// as `backwardUnit` does for one unit.
    private func backwardBlock(_ block: InvertedResidualUnits, gradient: inout [Float], tape: Tape, gradients: inout [Int: [Float]]) {
        let input = graph.nodes[block.expand.first].inputs[0]
        let needsInput = input >= boundary && gradientNeeded[input]
        let inputGradient = blockGradients(block, gradient: gradient, tape: tape, needsInput: needsInput)
        for unit in block.units { for node in [unit.conv!, unit.batchNorm!] { gradientWritten[node] = true } }
        // The output gradient is done with before the input gradient is handed on: a residual Add
        // gave the same buffer to the block's input, and adding into it while this reference is
        // held would copy it.
        if block.project.last != graph.outputNode && !TrainingGraph.isPending(TrainingGraph.storage(of: gradient), in: gradients) {
            recycle(&gradient)
        } else {
            gradient = []
        }
        if let incoming = inputGradient, var spent = handOn(incoming, to: input, gradients: &gradients) { recycle(&spent) }
        for unit in block.units { for node in [unit.conv!, unit.last] { release(node, from: tape) } }
    }

    /// The ranges of the store that the last backward pass wrote gradients for: its
    /// trainable runs, unless some trainable layer got no gradient (it is not connected
    /// to the output), which an optimizer skips as Keras skips a variable without one.
    public var updatedRuns: [Range<Int>] {
        if store.trainableNodes.allSatisfy({ gradientWritten[$0] }) { return store.trainableRuns }
        var runs: [Range<Int>] = []
        for index in store.trainableNodes where gradientWritten[index] {
            for name in ["kernel", "bias", "gamma", "beta"] {
                guard let view = store.view(index, name) else { continue }
                if let last = runs.last, last.upperBound == view.offset {
                    runs[runs.count - 1] = last.lowerBound ..< view.offset + view.count
                } else {
                    runs.append(view.offset ..< view.offset + view.count)
                }
            }
        }
        return runs
    }

    /// The values of a node's variable in the store; the layer must have it.
    func parameter(_ node: Int, _ variable: String) -> UnsafeMutableBufferPointer<Float> {
        guard let values = store.parameter(node, variable) else {
            preconditionFailure("layer \(graph.nodes[node].name) has no variable \(variable)")
        }
        return values
    }

    /// The values of a variable the layer may lack (bias, gamma, beta).
    func optionalParameter(_ node: Int, _ variable: String) -> UnsafeMutableBufferPointer<Float>? {
        store.parameter(node, variable)
    }

    /// Where the backward pass writes a variable's gradient, or nil when it does not train.
    func gradientBuffer(_ node: Int, _ variable: String) -> UnsafeMutableBufferPointer<Float>? {
        store.gradient(node, variable)
    }

    /// Takes back a tape's buffers for the next forward pass (`backward` does it; call it
    /// after a forward pass with no backward, such as validation). The tape no longer holds
    /// values, not even the prefix's: those buffers are the prefix's to write again
    /// (`runPrefix`). A value the caller took from the tape stays readable: a buffer is
    /// copied on write if the caller still holds it.
    public func reclaim(_ tape: Tape) {
        for index in suffix.reversed() { release(index, from: tape) }
        tape.values.removeAll(keepingCapacity: true)
    }

    /// Removes a suffix layer's output from the tape and recycles its buffer, unless the
    /// layer returned its input (Identity, Dropout at rate 0): that buffer goes back with
    /// the input, or stays with the caller for a prefix value.
    private func release(_ index: Int, from tape: Tape) {
        guard var value = tape.values.removeValue(forKey: index) else { return }
        if let input = graph.nodes[index].inputs.first, let inputValue = tape.values[input],
           TrainingGraph.storage(of: inputValue) == TrainingGraph.storage(of: value) {
            return
        }
        recycle(&value)
    }

    /// Buffers of finished passes, by size, for the next ones: a training step at a
    /// fixed batch then reuses the same memory instead of page-faulting fresh
    /// allocations (large ones are mapped and zero-filled by the kernel on each use).
    func takeBuffer(_ count: Int) -> [Float] {
        let slot = poolSlot(count)
        if let buffer = pools[slot].popLast() { return buffer }
        freshBuffers += 1
        // Room in the pool for every buffer of this size that exists, so that recycling never
        // grows it: otherwise the step after the first, which recycles buffers the first never
        // gave back (the tape's batch statistics), would allocate while taking them in.
        buffersMade[slot] += 1
        pools[slot].reserveCapacity(buffersMade[slot])
        return [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    /// The pool slot for buffers of `count` floats, made on first use.
    private func poolSlot(_ count: Int) -> Int {
        if let existing = poolSlots[count] { return existing }
        poolSlots[count] = pools.count
        pools.append([])
        buffersMade.append(0)
        return pools.count - 1
    }

    /// The last pass's tape storage, emptied, when nobody else holds it (the caller has let go
    /// of that tape): its batch statistics and Dropout masks go back to the pool. Otherwise
    /// a new one, which the next pass may reuse in turn.
    private func reusableTapeStorage() -> Tape.Storage {
        guard isKnownUniquelyReferenced(&lastTapeStorage) else {
            lastTapeStorage = Tape.Storage()
            return lastTapeStorage
        }
        let storage = lastTapeStorage
        // The pool's references become the only ones once the tables are emptied.
        for (_, statistics) in storage.batchStatistics {
            var mean = statistics.mean, variance = statistics.variance
            recycle(&mean)
            recycle(&variance)
        }
        for (_, mask) in storage.dropoutMasks {
            var mask = mask
            recycle(&mask)
        }
        storage.batchStatistics.removeAll(keepingCapacity: true)
        storage.dropoutMasks.removeAll(keepingCapacity: true)
        storage.values.removeAll(keepingCapacity: true)
        storage.onePassBlocks.removeAll(keepingCapacity: true)
        return storage
    }

    /// Whether another layer still waits on this gradient's storage: an Add hands the same
    /// buffer to both of its inputs, so the first of them to finish must not recycle it (the
    /// pool would hand it out while the other still reads it, and a copy-on-write copy would
    /// replace it in every step: one residual tensor allocated per Add per step).
    static func isPending(_ storage: UnsafeRawPointer?, in gradients: [Int: [Float]]) -> Bool {
        gradients.values.contains { TrainingGraph.storage(of: $0) == storage }
    }

    static func storage(of buffer: [Float]) -> UnsafeRawPointer? {
        buffer.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) }
    }

    func recycle(_ buffer: inout [Float]) {
        guard buffer.count > 0 else { return }
        pools[poolSlot(buffer.count)].append(buffer)
        buffer = []
    }

    /// Whether anything at or before `node` in the suffix has trainable variables.
    private lazy var gradientNeeded: [Bool] = {
        var needed = [Bool](repeating: false, count: graph.nodes.count)
        for index in graph.nodes.indices {
            needed[index] = trainsVariables[index] || graph.nodes[index].inputs.contains { needed[$0] }
        }
        return needed
    }()

    /// Per node, which of its inputs need a gradient: inputs from the frozen prefix (or frozen
    /// suffix layers with nothing trainable before them) do not.
    private lazy var inputsNeedGradient: [[Bool]] = graph.nodes.map { node in
        node.inputs.map { $0 >= boundary && gradientNeeded[$0] }
    }

    /// Sets a layer's variables (a restored checkpoint): in the graph and in the store.
    public func setWeights(_ weights: LayerWeights, forNode index: Int) {
        graph.setWeights(weights, forNode: index)
        store.read(weights, forNode: index)
    }

    /// Writes the store's values into `graph`'s `LayerWeights`, for whatever reads the graph
    /// (callbacks, checkpoints, evaluation through a new session, the caller).
    public func syncWeights() {
        store.write(into: &graph)
    }

    /// Applies the moving-average updates of train-mode BatchNorm layers recorded on a tape,
    /// in place in the store's region of moving statistics.
    public func updateMovingStatistics(from tape: Tape) {
        for (index, statistics) in tape.batchStatistics {
            BatchNorm.updateMovingAverage(parameter(index, "moving_mean"), batch: statistics.mean, momentum: 0.999)
            BatchNorm.updateMovingAverage(parameter(index, "moving_variance"), batch: statistics.variance, momentum: 0.999)
        }
    }
}
