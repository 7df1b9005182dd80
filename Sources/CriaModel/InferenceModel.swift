import CriaCore
import CriaKerasIO
import CriaKernels
import Foundation

/// A model ready for inference: BatchNorm folded, padding and ReLU6 fused,
/// inverted-residual blocks tiled over bands of rows, every layer computed
/// over contiguous NHWC float32 buffers.
///
/// Activations live in arenas planned once per model (`ArenaPlan`) and sized
/// on the first batch of a given size: steady-state inference allocates no
/// activation memory. A model runs one batch at a time (calls from several
/// threads take turns on a lock, since they share the arenas).
public final class InferenceModel {
    public let graph: ModelGraph
    public let options: InferenceOptions
    private let steps: [(node: Int, step: InferenceStep)]
    private let requested: [Int]
    let executor: InferenceExecutor
    private let lock = NSLock()

    /// - Parameter outputs: layer names to read (Keras's `Model(inputs, layer.output)`);
    ///   by default the model's own output.
    public convenience init(graph: ModelGraph, outputs: [String]? = nil) throws {
        try self.init(graph: graph, outputs: outputs, options: .default)
    }

    /// As `init(graph:outputs:)`, with executor options (tiling, fusion) for benchmarks and tests.
    public init(graph: ModelGraph, outputs: [String]?, options: InferenceOptions) throws {
        self.graph = graph
        self.options = options
        let requested = try (outputs ?? [graph.nodes[graph.outputNode].name]).map { name -> Int in
            guard let index = graph.index(of: name) else {
                throw CriaError("model \(graph.name) has no layer named \(name)")
            }
            return index
        }
        self.requested = requested
        steps = try InferencePlanner(graph: graph, keep: Set(requested)).plan()
        let program = InferenceProgram(graph: graph, steps: steps, keep: Set(requested), options: options)
        executor = InferenceExecutor(program: program, plan: ArenaPlan.plan(graph: graph, program: program, requested: requested))
    }

    /// Loads a Keras file: full models build their own graph; weights-only files
    /// need the architecture (`architecture`, usually `MobileNetV2.config(...)`).
    public static func load(_ url: URL, architecture: KerasModelConfig? = nil, inputHeight: Int? = nil,
                            inputWidth: Int? = nil, outputs: [String]? = nil) throws -> InferenceModel {
        let file = try KerasFile.open(url)
        let graph = try ModelGraph.build(file: file, architecture: architecture, inputHeight: inputHeight, inputWidth: inputWidth)
        return try InferenceModel(graph: graph, outputs: outputs)
    }

    /// Runs a batch (N, H, W, C) and returns the requested layer outputs, batch axis first.
    public func predict(_ input: Tensor) throws -> [String: Tensor] {
        let expected = graph.inputShape
        guard input.rank == 4, Array(input.shape.dropFirst()) == expected else {
            throw CriaError("input shape \(describeShape(input.shape)) does not match the model's (N, \(expected.map(String.init).joined(separator: ", ")))")
        }
        let batch = input.shape[0]
        guard batch > 0, let _ = input.scalars.first else {
            return Dictionary(uniqueKeysWithValues: requested.map { (graph.nodes[$0].name, Tensor(zeros: [0] + graph.nodes[$0].outputShape)) })
        }
        return input.scalars.withUnsafeBufferPointer { buffer -> [String: Tensor] in
            var result: [String: Tensor] = [:]
            predict(input: buffer.baseAddress!, batch: batch) { position, values in
                let node = graph.nodes[requested[position]]
                result[node.name] = Tensor(shape: [batch] + node.outputShape, scalars: Array(values))
            }
            return result
        }
    }

    /// Runs `batch` images from `input` (N·H·W·C scalars) and hands each requested output
    /// (batch axis first), by its position in `outputs`, to `body`, which copies what it
    /// keeps: the buffers are the model's and the next call overwrites them. Once a batch
    /// of this size has run, a call allocates no buffer, and at one thread calls malloc not
    /// at all (a training graph's frozen prefix; `BenchMallocCountTests`).
    public func predict(input: UnsafePointer<Float>, batch: Int,
                        eachOutput body: (_ position: Int, _ values: UnsafeBufferPointer<Float>) throws -> Void) rethrows {
        guard batch > 0 else { return }
        lock.lock(); defer { lock.unlock() }
        executor.run(input: input, batch: batch, hook: NoExecutionHook())
        for (position, index) in requested.enumerated() {
            let count = batch * graph.nodes[index].outputShape.reduce(1, *)
            try body(position, UnsafeBufferPointer(start: executor.address(of: index, input: input, batch: batch), count: count))
        }
    }

    /// The model output only.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try predict(input)[graph.nodes[requested[0]].name]!
    }

    /// Scalars per image of the first requested output.
    public var outputCountPerImage: Int { graph.nodes[requested[0]].outputShape.reduce(1, *) }

    /// Runs `batch` images from `input` (N·H·W·C scalars) and writes the first
    /// requested output to `output` (N · `outputCountPerImage` scalars).
    /// Allocates nothing once a batch of this size has run: the path that
    /// serving loops and `cria bench` use.
    public func predict(input: UnsafePointer<Float>, batch: Int, output: UnsafeMutablePointer<Float>) {
        predict(input: input, batch: batch, output: output, hook: NoExecutionHook())
    }

    /// As `predict(input:batch:output:)`, with `hook` called around every
    /// spatial step and kernel call: how a profiler (CriaBench) times the run
    /// from outside. With a hook that runs every body, the outputs are the same bits.
    public func predict<Hook: ExecutionHook>(input: UnsafePointer<Float>, batch: Int, output: UnsafeMutablePointer<Float>,
                                             hook: Hook) {
        guard batch > 0 else { return }
        lock.lock(); defer { lock.unlock() }
        executor.run(input: input, batch: batch, hook: hook)
        output.update(from: executor.address(of: requested[0], input: input, batch: batch), count: batch * outputCountPerImage)
    }

    /// Arena (re)allocations so far: it stops growing once every batch size in use has run.
    public var arenaAllocations: Int { executor.arenaAllocations }

    /// Bytes held by the activation, scratch and batch arenas.
    public var arenaBytes: Int { executor.arenaBytes }

    /// One spatial step of the executor (a fused block counts as one), as an `ExecutionHook` sees it.
    public struct StepDescription: Sendable {
        /// Keras layers the step runs, in order.
        public var layers: [String]
        /// Input height × width.
        public var inputPixels: Int
        public var multiplyAddsPerImage: Int
    }

    /// The spatial steps, indexed as `ExecutionHook.step` numbers them.
    public var stepDescriptions: [StepDescription] {
        executor.program.spatialSteps.map { step in
            StepDescription(layers: step.layers, inputPixels: step.inputPixels,
                            multiplyAddsPerImage: step.op.multiplyAdds.reduce(0) { $0 + $1.count })
        }
    }

    /// Multiply-adds per image by kernel category (what GFLOP/s figures divide by).
    public var multiplyAddsPerImage: [KernelCategory: Int] {
        var result: [KernelCategory: Int] = [:]
        for step in executor.program.spatialSteps {
            for (category, count) in step.op.multiplyAdds { result[category, default: 0] += count }
        }
        for (_, step) in executor.program.vectorSteps {
            if case .dense(let input, _, _, let units, _) = step {
                result[.other, default: 0] += graph.nodes[input].outputShape.reduce(1, *) * units
            }
        }
        return result
    }
}

extension ModelGraph {
    /// The graph of a Keras file: from its own config when it has one, otherwise
    /// from `architecture` (a weights-only file carries none).
    public static func build(file: KerasFile, architecture: KerasModelConfig?, inputHeight: Int? = nil,
                             inputWidth: Int? = nil) throws -> ModelGraph {
        guard let config = file.modelConfig ?? architecture else {
            throw CriaError("\(file.displayName): \(file.format.rawValue) carries no architecture; pass --alpha, --size, --include-top, --classes and --pooling as for keras.applications.MobileNetV2")
        }
        var graph = try ModelGraph(config: config, inputHeight: inputHeight, inputWidth: inputWidth, source: file.displayName)
        try graph.attachWeights(from: file)
        return graph
    }
}

extension InferenceModel {
    /// One line describing the kernels Cria runs, for `cria inspect`.
    public var planSummary: String {
        var pointwise = 0, depthwise = 0, general = 0, folded = 0, other = 0
        for entry in steps {
            if case .convolution(let conv) = entry.step {
                switch conv.kernelKind {
                case .pointwise: pointwise += 1
                case .depthwise: depthwise += 1
                case .general: general += 1
                }
                if conv.layers.contains(where: { name in graph.nodes.first { $0.name == name }.map { if case .batchNormalization = $0.kind { return true }; return false } ?? false }) {
                    folded += 1
                }
            } else {
                other += 1
            }
        }
        let blocks = executor.program.spatialSteps.filter { if case .block = $0.op { return true }; return false }.count
        return "\(steps.count) steps: \(pointwise) pointwise GEMM, \(depthwise) depthwise, \(general) direct conv "
            + "(BatchNorm folded into \(folded)), \(other) other; \(blocks) inverted-residual blocks run in row bands"
    }
}
