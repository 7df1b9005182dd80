import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import CriaTraining
import XCTest

/// Whole inverted-residual blocks run as one pass (`InvertedResidualBlock.swift`):
/// which blocks take it, its gradients against float64 difference quotients and against the
/// unit-by-unit passes, and its determinism.
final class InvertedResidualBlockTests: XCTestCase {
    private func images(_ shape: [Int], batch: Int, seed: UInt64 = 29) -> Tensor {
        var generator = SplitMix64(seed: seed)
        return Tensor(shape: [batch] + shape, scalars: (0..<(batch * shape.reduce(1, *))).map { _ in generator.nextUnitFloat() * 255 })
    }

    private func step(_ session: TrainingGraph, _ images: Tensor, labels: [Int]) throws -> [Int: LayerWeights] {
        let prefix = try session.runPrefix(images)
        let (output, tape) = session.forward(prefix: prefix, batch: images.shape[0], training: true, dropoutSeed: 3)
        let gradient = Loss.binaryCrossentropyFromLogits.evaluate(outputs: output, labels: labels, columns: 1).gradient
        return session.backward(gradient, tape: tape)
    }

    func testWholeTrainableBlocksOnMovingStatisticsRunAsOnePass() throws {
        var graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        try graph.applyFreezing(.all)
        XCTAssertEqual(try TrainingGraph(graph: graph, bnMode: .inference, onePassBlocks: .recomputingAll).onePassBlocks(batch: 4), (1...16).map { "block_\($0)_expand" },
                       "every block with an expansion layer (expanded_conv has none)")
        XCTAssertEqual(try TrainingGraph(graph: graph, bnMode: .train, onePassBlocks: .recomputingAll).onePassBlocks(batch: 4), [],
                       "batch statistics need whole-batch sums between the units")
        XCTAssertEqual(try TrainingGraph(graph: graph, bnMode: .inference, onePassBlocks: .none).onePassBlocks(batch: 4), [])
        // A block that recomputes keeps its project output and no expanded activation.
        let session = try TrainingGraph(graph: graph, bnMode: .inference, onePassBlocks: .recomputingAll)
        let (_, tape) = session.forward(prefix: try session.runPrefix(images(graph.inputShape, batch: 2)), batch: 2, training: true, dropoutSeed: 3)
        for block in 1...16 {
            for (suffix, kept) in [("expand_relu", false), ("depthwise_relu", false), ("project_BN", true)] {
                let node = try XCTUnwrap(graph.index(of: "block_\(block)_\(suffix)"))
                XCTAssertEqual(tape.value(of: node) != nil, kept, "block_\(block)_\(suffix)")
            }
        }
        session.reclaim(tape)
        try graph.applyFreezing(.fineTuneFrom("block_13_depthwise"))
        XCTAssertEqual(try TrainingGraph(graph: graph, bnMode: .inference, onePassBlocks: .recomputingAll).onePassBlocks(batch: 4), ["block_14_expand", "block_15_expand", "block_16_expand"],
                       "block_13's expand layer is frozen, so its units run one by one")
    }

    /// By default a block whose expanded activation over the batch is at least 16 MB runs as
    /// one pass computing it again in backward (at 160×160 and batch 32, `block_1` to
    /// `block_3`), and a smaller one runs as one pass keeping it where each worker's half of
    /// the batch gives its GEMMs 384 rows (`block_4` to `block_16` at batch 32; at batch 16
    /// the 5×5 blocks' 200 rows run unit by unit).
    func testByDefaultLargeBlocksRecomputeAndBlocksWithFullGroupsKeep() throws {
        var graph = try TransferModel.randomGraph(alpha: 1.0, inputHeight: 160, inputWidth: 160)
        try graph.applyFreezing(.all)
        let previous = Threads.count
        Threads.set(2)
        defer { Threads.set(previous) }
        let session = try TrainingGraph(graph: graph, bnMode: .inference)
        XCTAssertEqual(session.onePassBlocks(batch: 32), (1...16).map { "block_\($0)_expand" }, "16 images a worker: outputs of 24 pixels or more")
        XCTAssertEqual(session.recomputingBlocks(batch: 32), ["block_1_expand", "block_2_expand", "block_3_expand"])
        XCTAssertEqual(session.onePassBlocks(batch: 16), (1...12).map { "block_\($0)_expand" }, "8 images a worker: outputs of 48 pixels or more")
        XCTAssertEqual(session.onePassBlocks(batch: 8), (1...12).map { "block_\($0)_expand" }, "4 images a worker: outputs of 96 pixels or more")
        XCTAssertEqual(session.recomputingBlocks(batch: 8), ["block_1_expand"], "block_1: 20 MB at batch 8, block_2: 7 MB")
        XCTAssertEqual(session.recomputingBlocks(batch: 4), [])
    }

    /// The block's six layers against central difference quotients of the float64 graph,
    /// within the float32 error model the other gradient checks use.
    func testGradientsOfWholeBlocksMatchFloat64() throws {
        let file = try KerasFile.open(Fixtures.url("keras/m035_96/k2_weights.h5"))
        var graph = try TransferModel.graph(file: file, alpha: 0.35, inputHeight: 32, inputWidth: 32,
                                            head: .init(dropout: 0, units: 1), seed: 7)
        try graph.applyFreezing(.fineTuneFrom("block_14_expand"))
        for mode in [OnePassBlocks.recomputingAll, .keepingAll] {
        let session = try TrainingGraph(graph: graph, bnMode: .inference, onePassBlocks: mode)
        XCTAssertEqual(session.onePassBlocks(batch: 4), ["block_14_expand", "block_15_expand", "block_16_expand"])
        let labels = [0, 1, 1, 0]
        let input = images(graph.inputShape, batch: 4, seed: 42)
        let prefix = try session.runPrefix(input)
        let gradients = try step(session, input, labels: labels)
        var selected: [Int: [String: Tensor]] = [:]
        for layer in ["block_14_expand", "block_14_expand_BN", "block_14_depthwise", "block_14_depthwise_BN",
                      "block_14_project", "block_14_project_BN", "block_15_depthwise"] {
            let index = try XCTUnwrap(graph.index(of: layer), layer)
            selected[index] = try XCTUnwrap(gradients[index], "\(layer) has no gradient")
        }
        let trainable = session.boundary..<graph.nodes.count
        let reference = Float64Graph(graph: session.graph, bnMode: .inference, boundary: session.boundary, prefix: prefix)
        let (checked, skipped) = reference.checkGradients(
            selected, input: input, training: true,
            loss: { Float64Loss.evaluate(.binaryCrossentropyFromLogits, outputs: $0, labels: labels, columns: 1) },
            positions: { gradient in
                let ranked = gradient.scalars.indices.sorted { abs(gradient.scalars[$0]) > abs(gradient.scalars[$1]) }
                return Array(ranked.prefix(3)) + [gradient.count / 2, gradient.count - 1]
            },
            terms: Float32ErrorModel.longestSum(graph, nodes: trainable, batch: 4), depth: trainable.count,
            context: "one-pass blocks, \(mode)")
        XCTAssertGreaterThan(checked, 20, "every entry sat on a kink (\(skipped) skipped)")
        }
    }

    /// Against the units run one after another over the whole batch: the same sums grouped
    /// differently (an image at a time, then the workers' totals), so each entry agrees within
    /// twice the float32 error model's bound, and the loss itself is the same forward pass.
    func testOnePassAgreesWithTheUnitsWithinRounding() throws {
        var graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        try graph.applyFreezing(.all)
        let batch = images(graph.inputShape, batch: 6)
        let labels = [0, 1, 1, 0, 1, 0]
        for mode in [OnePassBlocks.recomputingAll, .keepingAll] {
        let onePass = try step(TrainingGraph(graph: graph, bnMode: .inference, onePassBlocks: mode), batch, labels: labels)
        let units = try step(TrainingGraph(graph: graph, bnMode: .inference, onePassBlocks: .none), batch, labels: labels)
        XCTAssertEqual(Set(onePass.keys), Set(units.keys))
        let nodes = 0..<graph.nodes.count
        let terms = Float32ErrorModel.longestSum(graph, nodes: nodes, batch: 6)
        var compared = 0, differing = 0
        for (node, variables) in units {
            for (name, expected) in variables {
                let actual = try XCTUnwrap(onePass[node]?[name], "\(graph.nodes[node].name)/\(name)")
                let tolerance = 2 * Float32ErrorModel.tolerance(terms: terms, depth: graph.nodes.count, scale: Double(expected.maxMagnitude))
                for i in expected.scalars.indices {
                    compared += 1
                    if actual.scalars[i] != expected.scalars[i] { differing += 1 }
                    if !(abs(Double(actual.scalars[i]) - Double(expected.scalars[i])) <= tolerance) {
                        XCTFail("\(graph.nodes[node].name)/\(name)[\(i)]: \(actual.scalars[i]) vs \(expected.scalars[i]) (tolerance \(tolerance))")
                        return
                    }
                }
            }
        }
        print("one-pass (\(mode)) vs units: \(compared) gradient entries, \(differing) differ in their bits")
        }
    }

    /// The same step twice at the same thread count gives the same bits.
    func testOnePassIsDeterministicAtAThreadCount() throws {
        var graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        try graph.applyFreezing(.all)
        let batch = images(graph.inputShape, batch: 5)
        let session = try TrainingGraph(graph: graph, bnMode: .inference, onePassBlocks: .recomputingAll)
        let first = try step(session, batch, labels: [0, 1, 1, 0, 1])
        let second = try step(session, batch, labels: [0, 1, 1, 0, 1])
        for (node, variables) in first {
            for (name, tensor) in variables {
                XCTAssertEqual(second[node]?[name]?.scalars.map(\.bitPattern), tensor.scalars.map(\.bitPattern), "\(graph.nodes[node].name)/\(name)")
            }
        }
    }

    /// One-pass blocks take their scratch and kept activations from the session's pool:
    /// steady-state steps allocate no buffer and the pool does not grow, in both modes.
    func testOnePassStepsAllocateNoBuffersInTheSteadyState() throws {
        var graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        try graph.applyFreezing(.all)
        let batch = images(graph.inputShape, batch: 4)
        for mode in [OnePassBlocks.recomputingAll, .keepingAll] {
            let session = try TrainingGraph(graph: graph, bnMode: .inference, onePassBlocks: mode)
            _ = try step(session, batch, labels: [0, 1, 1, 0])
            let (fresh, pooled) = (session.freshBuffers, session.pooledBuffers)
            for _ in 0..<3 { _ = try step(session, batch, labels: [0, 1, 1, 0]) }
            XCTAssertEqual(session.freshBuffers, fresh, "\(mode): steps after the first allocated buffers")
            XCTAssertEqual(session.pooledBuffers, pooled, "\(mode): the pool grew")
        }
    }
}
