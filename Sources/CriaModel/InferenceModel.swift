import CriaCore
import CriaKerasIO
import CriaKernels
import Foundation

/// A model ready for inference: BatchNorm folded, padding and ReLU6 fused,
/// every layer computed over contiguous NHWC float32 buffers.
public final class InferenceModel {
    public let graph: ModelGraph
    private let steps: [(node: Int, step: InferenceStep)]
    private let requested: [Int]
    /// For each step, the node buffers that can be released after it runs.
    private let releases: [[Int]]

    /// - Parameter outputs: layer names to read (Keras's `Model(inputs, layer.output)`);
    ///   by default the model's own output.
    public init(graph: ModelGraph, outputs: [String]? = nil) throws {
        self.graph = graph
        let requested = try (outputs ?? [graph.nodes[graph.outputNode].name]).map { name -> Int in
            guard let index = graph.index(of: name) else {
                throw CriaError("model \(graph.name) has no layer named \(name)")
            }
            return index
        }
        self.requested = requested
        steps = try InferencePlanner(graph: graph, keep: Set(requested)).plan()
        var lastUse = [Int: Int]()
        for (position, entry) in steps.enumerated() { for input in entry.step.inputs { lastUse[input] = position } }
        var releases = [[Int]](repeating: [], count: steps.count)
        for (node, position) in lastUse where !requested.contains(node) { releases[position].append(node) }
        self.releases = releases
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
        var values = [[Float]?](repeating: nil, count: graph.nodes.count)
        values[graph.inputNode] = input.scalars
        for (position, entry) in steps.enumerated() {
            values[entry.node] = run(entry.step, node: entry.node, batch: batch, values: values)
            for node in releases[position] { values[node] = nil }
        }
        var result: [String: Tensor] = [:]
        for index in requested {
            let node = graph.nodes[index]
            result[node.name] = Tensor(shape: [batch] + node.outputShape, scalars: values[index] ?? input.scalars)
        }
        return result
    }

    /// The model output only.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try predict(input)[graph.nodes[requested[0]].name]!
    }

    private func run(_ step: InferenceStep, node: Int, batch: Int, values: [[Float]?]) -> [Float] {
        let shape = graph.nodes[node].outputShape
        let count = batch * shape.reduce(1, *)
        switch step {
        case .alias(let input):
            return values[input]!
        case .convolution(let conv):
            return convolve(conv, batch: batch, input: values[conv.input]!)
        case .batchNorm(let input, let scale, let shift), .affine(let input, let scale, let shift):
            var output = values[input]!
            let channels = scale.count
            output.withUnsafeMutableBufferPointer { buffer in
                for i in 0..<buffer.count { buffer[i] = buffer[i] * scale[i % channels] + shift[i % channels] }
            }
            return output
        case .relu(let input, let maxValue, let threshold, let slope):
            var output = values[input]!
            // Keras's ReLU: x >= threshold keeps x (capped at max_value), else slope·(x − threshold).
            for i in output.indices {
                let x = output[i]
                var y = x >= threshold ? x : slope * (x - threshold)
                if let maxValue { y = min(y, maxValue) }
                output[i] = y
            }
            return output
        case .activation(let input, let function):
            var output = values[input]!
            apply(function, to: &output, columns: shape.last ?? 1)
            return output
        case .pad(let input, let top, let bottom, let left, let right):
            let inputShape = graph.nodes[graph.nodes[node].inputs[0]].outputShape
            return pad(values[input]!, batch: batch, shape: inputShape, top: top, bottom: bottom, left: left, right: right)
        case .add(let inputs):
            var output = values[inputs[0]]!
            for other in inputs.dropFirst() {
                let addend = values[other]!
                for i in output.indices { output[i] += addend[i] }
            }
            return output
        case .averagePool(let input), .maxPool(let input):
            let inputShape = graph.nodes[graph.nodes[node].inputs[0]].outputShape
            var output = [Float](repeating: 0, count: count)
            let pixels = inputShape[0] * inputShape[1], channels = inputShape[2]
            values[input]!.withUnsafeBufferPointer { source in
                output.withUnsafeMutableBufferPointer { target in
                    if case .averagePool = step {
                        GlobalPooling.averageForward(input: source.baseAddress!, batch: batch, pixels: pixels, channels: channels, output: target.baseAddress!)
                    } else {
                        GlobalPooling.maxForward(input: source.baseAddress!, batch: batch, pixels: pixels, channels: channels, output: target.baseAddress!)
                    }
                }
            }
            return output
        case .dense(let input, let kernel, let bias, let units, let activation):
            let inputShape = graph.nodes[graph.nodes[node].inputs[0]].outputShape
            let features = inputShape.last!
            let rows = batch * inputShape.dropLast().reduce(1, *)
            var output = [Float](repeating: 0, count: rows * units)
            let clamp: Clamp = activation == .relu ? .relu : activation == .relu6 ? .relu6 : .none
            values[input]!.withUnsafeBufferPointer { source in
                output.withUnsafeMutableBufferPointer { target in
                    Pointwise.forward(input: source.baseAddress!, rows: rows, inputChannels: features, kernel: kernel,
                                      outputChannels: units, bias: bias, clamp: clamp, output: target.baseAddress!)
                }
            }
            if activation == .softmax || activation == .sigmoid { apply(activation, to: &output, columns: units) }
            return output
        }
    }

    private func apply(_ function: ActivationFunction, to data: inout [Float], columns: Int) {
        data.withUnsafeMutableBufferPointer { buffer in
            switch function {
            case .linear: break
            case .relu: for i in 0..<buffer.count { buffer[i] = max(buffer[i], 0) }
            case .relu6: for i in 0..<buffer.count { buffer[i] = min(max(buffer[i], 0), 6) }
            case .sigmoid: Activations.sigmoid(buffer.baseAddress!, count: buffer.count)
            case .softmax: Activations.softmax(buffer.baseAddress!, rows: buffer.count / columns, columns: columns)
            }
        }
    }

    private func convolve(_ conv: ConvolutionStep, batch: Int, input: [Float]) -> [Float] {
        let (h, w, cin) = (conv.inputShape[0], conv.inputShape[1], conv.inputShape[2])
        let (oh, ow, cout) = (conv.outputShape[0], conv.outputShape[1], conv.outputShape[2])
        var output = [Float](repeating: 0, count: batch * oh * ow * cout)
        input.withUnsafeBufferPointer { source in
            conv.kernel.withUnsafeBufferPointer { kernel in
                output.withUnsafeMutableBufferPointer { target in
                    withOptionalBuffer(conv.bias) { biasPointer in
                        switch conv.kernelKind {
                        case .pointwise:
                            Pointwise.forward(input: source.baseAddress!, rows: batch * h * w, inputChannels: cin,
                                              kernel: kernel.baseAddress!, outputChannels: cout, bias: biasPointer,
                                              clamp: conv.clamp, output: target.baseAddress!)
                        case .general:
                            Conv2D.forward(input: source.baseAddress!, batch: batch, height: h, width: w, inputChannels: cin,
                                           kernel: kernel.baseAddress!, kernelHeight: conv.kernelHeight, kernelWidth: conv.kernelWidth,
                                           outputChannels: cout, strideH: conv.strideH, strideW: conv.strideW,
                                           padTop: conv.padTop, padLeft: conv.padLeft, outputHeight: oh, outputWidth: ow,
                                           bias: biasPointer, clamp: conv.clamp, output: target.baseAddress!)
                        case .depthwise:
                            DepthwiseConv2D.forward(input: source.baseAddress!, batch: batch, height: h, width: w, channels: cin,
                                                    kernel: kernel.baseAddress!, kernelHeight: conv.kernelHeight,
                                                    kernelWidth: conv.kernelWidth, strideH: conv.strideH, strideW: conv.strideW,
                                                    padTop: conv.padTop, padLeft: conv.padLeft, outputHeight: oh,
                                                    outputWidth: ow, bias: biasPointer, clamp: conv.clamp,
                                                    output: target.baseAddress!)
                        }
                    }
                }
            }
        }
        if let activation = conv.postActivation { apply(activation, to: &output, columns: cout) }
        return output
    }

    private func pad(_ input: [Float], batch: Int, shape: [Int], top: Int, bottom: Int, left: Int, right: Int) -> [Float] {
        let (h, w, c) = (shape[0], shape[1], shape[2])
        let (oh, ow) = (h + top + bottom, w + left + right)
        var output = [Float](repeating: 0, count: batch * oh * ow * c)
        for n in 0..<batch {
            for y in 0..<h {
                let sourceStart = ((n * h + y) * w) * c
                let targetStart = ((n * oh + y + top) * ow + left) * c
                output.replaceSubrange(targetStart ..< targetStart + w * c, with: input[sourceStart ..< sourceStart + w * c])
            }
        }
        return output
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

/// Calls `body` with a pointer to the array's storage, or nil for a nil array.
func withOptionalBuffer<R>(_ array: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
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
        return "\(steps.count) steps: \(pointwise) pointwise GEMM, \(depthwise) depthwise, \(general) direct conv "
            + "(BatchNorm folded into \(folded)), \(other) other"
    }
}
