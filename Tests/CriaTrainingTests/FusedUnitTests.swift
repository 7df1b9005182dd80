import CriaCore
import CriaKerasIO
import CriaModel
import CriaTraining
import XCTest

/// The fused units of a training graph (`FusionPlan`) against the same graph run
/// layer by layer: which layers fuse, that train-mode BatchNorm → ReLU6 keeps every
/// bit, and that the folded inference-mode units stay within rounding of the
/// unfused passes.
final class FusedUnitTests: XCTestCase {
    private func images(_ graph: ModelGraph, batch: Int) -> Tensor {
        var generator = SplitMix64(seed: 29)
        let shape = graph.inputShape
        return Tensor(shape: [batch] + shape, scalars: (0..<(batch * shape.reduce(1, *))).map { _ in generator.nextUnitFloat() * 255 })
    }

    private func step(_ session: TrainingGraph, _ images: Tensor) throws -> (loss: [Float], gradients: [Int: LayerWeights], tape: TrainingGraph.Tape) {
        let prefix = try session.runPrefix(images)
        let (output, tape) = session.forward(prefix: prefix, batch: images.shape[0], training: true, dropoutSeed: 3)
        let gradient = Loss.binaryCrossentropyFromLogits.evaluate(outputs: output, labels: [0, 1, 1, 0], columns: 1).gradient
        return (output, session.backward(gradient, tape: tape), tape)
    }

    func testEveryPaddingAndBatchNormOfMobileNetV2RunsInsideAUnit() throws {
        var graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        try graph.applyFreezing(.all)
        for bnMode in BatchNormMode.allCases {
            // The units themselves: whole blocks run as one pass otherwise (InvertedResidualBlockTests).
            let session = try TrainingGraph(graph: graph, bnMode: bnMode, onePassBlocks: .none)
            let batch = images(graph, batch: 4)
            let (_, tape) = session.forward(prefix: try session.runPrefix(batch), batch: 4, training: true, dropoutSeed: 3)
            defer { session.reclaim(tape) }
            var paddings = 0, batchNorms = 0
            for (index, node) in graph.nodes.enumerated() where index >= session.boundary {
                let next = graph.nodes.firstIndex { $0.inputs == [index] }
                switch node.kind {
                case .zeroPadding2D:
                    paddings += 1
                    XCTAssertTrue(session.innerNodesOfUnits.contains(index), "\(node.name) runs inside its depthwise convolution")
                    XCTAssertNil(tape.value(of: index), "\(node.name): the padded tensor is never written")
                case .batchNormalization:
                    batchNorms += 1
                    let convolution = node.inputs[0]
                    let feedsReLU = next.map { if case .relu = graph.nodes[$0].kind { return true } else { return false } } ?? false
                    if bnMode == .inference {
                        // Folded: neither the raw convolution output nor the normalised value is kept.
                        XCTAssertNil(tape.value(of: convolution), "\(graph.nodes[convolution].name) is folded with \(node.name)")
                        if feedsReLU { XCTAssertNil(tape.value(of: index), "\(node.name) runs inside its unit") }
                    } else {
                        // Batch statistics need the convolution's output; the ReLU runs in the BatchNorm's pass.
                        XCTAssertNotNil(tape.value(of: convolution), "\(graph.nodes[convolution].name) is kept in train mode")
                        XCTAssertEqual(tape.value(of: index) == nil, feedsReLU, "\(node.name): only its clamped output is kept")
                    }
                    if feedsReLU { XCTAssertNotNil(tape.value(of: next!), "the unit's output is kept") }
                default: break
                }
            }
            XCTAssertEqual(paddings, 4, "MobileNetV2 pads before its four stride-2 depthwise convolutions")
            XCTAssertEqual(batchNorms, 52)
        }
    }

    /// Train-mode BatchNorm → ReLU6 as one pass computes the same values in the same order
    /// as the two passes, and padding folded into the depthwise kernels reads the same zeros:
    /// the loss and every gradient keep their bits.
    func testTrainModeUnitsKeepEveryBit() throws {
        var graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        try graph.applyFreezing(.all)
        let batch = images(graph, batch: 4)
        let fused = try step(TrainingGraph(graph: graph, bnMode: .train), batch)
        let separate = try step(TrainingGraph(graph: graph, bnMode: .train, fusesLayers: false), batch)
        XCTAssertEqual(fused.loss.map(\.bitPattern), separate.loss.map(\.bitPattern))
        XCTAssertEqual(Set(fused.gradients.keys), Set(separate.gradients.keys))
        for (node, variables) in separate.gradients {
            XCTAssertEqual(Set(fused.gradients[node]?.keys ?? [:].keys), Set(variables.keys), graph.nodes[node].name)
            for (name, tensor) in variables {
                XCTAssertEqual(fused.gradients[node]?[name]?.scalars.map(\.bitPattern), tensor.scalars.map(\.bitPattern),
                               "\(graph.nodes[node].name)/\(name)")
            }
        }
    }

    /// A γ of 0 cannot be recovered from a folded unit's output: that step runs the unit unfolded,
    /// and its gradients are those of the separate passes, bit for bit (the same kernels in the same order).
    func testZeroGammaRunsTheUnitUnfolded() throws {
        var graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        try graph.applyFreezing(.all)
        for (index, node) in graph.nodes.enumerated() {
            guard case .batchNormalization = node.kind, var gamma = node.weights["gamma"] else { continue }
            gamma.scalars[0] = 0
            var weights = node.weights
            weights["gamma"] = gamma
            graph.setWeights(weights, forNode: index)
        }
        let batch = images(graph, batch: 4)
        let fused = try step(TrainingGraph(graph: graph, bnMode: .inference), batch)
        let separate = try step(TrainingGraph(graph: graph, bnMode: .inference, fusesLayers: false), batch)
        for (node, variables) in separate.gradients {
            for (name, tensor) in variables {
                XCTAssertEqual(fused.gradients[node]?[name]?.scalars.map(\.bitPattern), tensor.scalars.map(\.bitPattern),
                               "\(graph.nodes[node].name)/\(name)")
            }
        }
    }
}
