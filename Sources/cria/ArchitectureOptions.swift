import ArgumentParser
import Cria

/// Keras's `MobileNetV2(...)` arguments, for weights-only files that carry no architecture.
struct ArchitectureOptions: ParsableArguments {
    @Option(help: "Width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4) for weights-only files.")
    var alpha: Double = 1.0

    @Option(help: "Input size H or HxW for weights-only files (default 224, or the file's own for full models).")
    var size: String?

    @Flag(name: .customLong("include-top"), help: "The weights-only file has the 1000-class ImageNet top.")
    var includeTop = false

    @Option(help: "Classes of the top (with --include-top).")
    var classes: Int = 1000

    @Option(help: "Pooling after out_relu without a top: avg or max.")
    var pooling: String?

    /// The requested input size, if any.
    func inputSize() throws -> (height: Int, width: Int)? {
        guard let size else { return nil }
        let parts = size.lowercased().split(separator: "x").map { Int($0) }
        switch parts.count {
        case 1: if let side = parts[0] { return (side, side) }
        case 2: if let height = parts[0], let width = parts[1] { return (height, width) }
        default: break
        }
        throw ValidationError("--size must be H or HxW, got \(size)")
    }

    /// The architecture a weights-only file is loaded into: `keras.applications.MobileNetV2` with these arguments.
    func architecture() throws -> KerasModelConfig {
        let (height, width) = try inputSize() ?? (224, 224)
        var poolingMode: MobileNetV2.Pooling?
        if let pooling {
            guard let mode = MobileNetV2.Pooling(rawValue: pooling) else { throw ValidationError("--pooling must be avg or max") }
            poolingMode = mode
        }
        return try MobileNetV2.config(alpha: alpha, inputHeight: height, inputWidth: width, includeTop: includeTop,
                                      classes: classes, pooling: poolingMode)
    }

    /// Opens a Keras file and builds its graph, using these options only when the file has no architecture.
    func loadGraph(_ path: String) throws -> (KerasFile, ModelGraph) {
        let url = URL(fileURLWithPath: path)
        let file = try KerasFile.open(url)
        let size = try inputSize()
        let graph = try ModelGraph.build(file: file, architecture: file.modelConfig == nil ? try architecture() : nil,
                                         inputHeight: size?.height, inputWidth: size?.width)
        return (file, graph)
    }
}

import Foundation
