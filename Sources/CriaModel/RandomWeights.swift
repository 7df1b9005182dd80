import CriaCore
import CriaKerasIO
import CriaModel

extension ModelGraph {
    /// `keras.applications.MobileNetV2(weights=None, ...)` with seeded random
    /// weights of the right shapes: what benchmarks and tests run when no file is given.
    /// Speed does not depend on the values, only on the shapes.
    public static func randomMobileNetV2(alpha: Double = 1.0, inputHeight: Int = 160, inputWidth: Int = 160,
                                         includeTop: Bool = false, classes: Int = 1000,
                                         pooling: MobileNetV2.Pooling? = .avg, seed: UInt64 = 42) throws -> ModelGraph {
        let config = try MobileNetV2.config(alpha: alpha, inputHeight: inputHeight, inputWidth: inputWidth,
                                            includeTop: includeTop, classes: classes, pooling: pooling)
        var graph = try ModelGraph(config: config, inputHeight: inputHeight, inputWidth: inputWidth,
                                   source: "random MobileNetV2 \(alpha)/\(inputHeight)")
        graph.fillRandomWeights(seed: seed)
        return graph
    }

    /// Fills every layer's weights: He-uniform kernels (activations keep their
    /// scale through 50 layers, so ReLU6 clamps a realistic share), BatchNorm
    /// statistics near identity, zero biases.
    public mutating func fillRandomWeights(seed: UInt64) {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func uniform(_ low: Float, _ high: Float) -> Float {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return low + (high - low) * Float(state >> 40) / Float(1 << 24)
        }
        for index in nodes.indices {
            let node = nodes[index]
            let inputChannels = node.inputs.first.map { nodes[$0].outputShape.last ?? 0 } ?? 0
            var weights: LayerWeights = [:]
            for (name, shape) in node.kind.expectedWeights(inputChannels: inputChannels) {
                let count = shape.reduce(1, *)
                var values: [Float]
                switch name {
                case "kernel":
                    // Conv (kh, kw, cin, cout), depthwise (kh, kw, c, 1), Dense (in, out): fan-in is all but the last axis,
                    // except depthwise, whose fan-in is its window.
                    let depthwise: Bool = { if case .depthwiseConv2D = node.kind { return true }; return false }()
                    let fanIn = depthwise ? shape[0] * shape[1] : shape.dropLast().reduce(1, *)
                    let limit = (6 / Float(max(1, fanIn))).squareRoot()
                    values = (0..<count).map { _ in uniform(-limit, limit) }
                case "gamma", "moving_variance": values = (0..<count).map { _ in uniform(0.5, 1.5) }
                case "beta", "moving_mean": values = (0..<count).map { _ in uniform(-0.1, 0.1) }
                default: values = [Float](repeating: 0, count: count)
                }
                weights[name] = Tensor(shape: shape, scalars: values)
            }
            if !weights.isEmpty { setWeights(weights, forNode: index) }
        }
    }
}
