import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import CriaTraining
import XCTest

/// A training session reuses its activation and gradient buffers from step to
/// step (`TrainingGraph.takeBuffer`): steady-state steps allocate none, and a
/// reused buffer gives the same bits as a fresh one.
final class BufferReuseTests: XCTestCase {
    private func session(_ freezing: Freezing, bnMode: BatchNormMode) throws -> (TrainingGraph, Tensor) {
        var graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        try graph.applyFreezing(freezing)
        var generator = SplitMix64(seed: 17)
        let batch = 4
        let shape = graph.inputShape
        let images = Tensor(shape: [batch] + shape, scalars: (0..<(batch * shape.reduce(1, *))).map { _ in generator.nextUnitFloat() * 255 })
        return (try TrainingGraph(graph: graph, bnMode: bnMode), images)
    }

    /// One step without a weight update, so every step sees the same weights.
    private func step(_ session: TrainingGraph, _ images: Tensor, seed: UInt64) throws -> [Int: LayerWeights] {
        let prefix = try session.runPrefix(images)
        let (output, tape) = session.forward(prefix: prefix, batch: images.shape[0], training: true, dropoutSeed: seed)
        let gradient = Loss.binaryCrossentropyFromLogits.evaluate(outputs: output, labels: [0, 1, 1, 0], columns: 1).gradient
        return session.backward(gradient, tape: tape)
    }

    func testSteadyStateStepsAllocateNoBuffers() throws {
        for (freezing, bnMode) in [(Freezing.all, BatchNormMode.inference), (.fineTuneAt(100), .train), (.baseFrozen, .inference)] {
            let (session, images) = try self.session(freezing, bnMode: bnMode)
            _ = try step(session, images, seed: 1)
            let afterFirst = session.freshBuffers
            _ = try step(session, images, seed: 2)
            let pooled = session.pooledBuffers
            for seed in 3...6 { _ = try step(session, images, seed: UInt64(seed)) }
            XCTAssertEqual(session.freshBuffers, afterFirst, "\(freezing) \(bnMode): steps after the first allocated buffers")
            // The residual Adds hand one gradient buffer to two layers; recycling it twice grew the pool by one buffer per Add per step.
            XCTAssertEqual(session.pooledBuffers, pooled, "\(freezing) \(bnMode): the pool grew between steady-state steps")
            // At least each one-pass block's project output and its gradient (16 blocks), and the rest of the tape.
            if freezing == .all { XCTAssertGreaterThan(afterFirst, 50, "the first step should allocate the tape") }
        }
    }

    /// Full steps as `Trainer.fit` takes them (gradients into the parameter store, one
    /// optimizer loop over its trainable range, moving statistics in place): after the
    /// first, no activation, gradient, parameter or moment buffer is allocated, and the
    /// weights stay where they are (no per-step copies).
    func testSteadyStateTrainingStepsAllocateNoBuffersAndMoveNoWeights() throws {
        for (freezing, bnMode) in [(Freezing.all, BatchNormMode.train), (.fineTuneAt(100), .inference)] {
            let (session, images) = try self.session(freezing, bnMode: bnMode)
            let optimizer = Optimizer(.adam(1e-3))
            let values = session.store.values.baseAddress, gradients = session.store.gradients.baseAddress
            func trainingStep(_ seed: UInt64) throws {
                let (output, tape) = session.forward(prefix: try session.runPrefix(images), batch: 4, training: true, dropoutSeed: seed)
                let gradient = Loss.binaryCrossentropyFromLogits.evaluate(outputs: output, labels: [0, 1, 1, 0], columns: 1).gradient
                session.backwardIntoStore(gradient, tape: tape)
                optimizer.step(session.store, runs: session.updatedRuns, learningRate: 1e-3)
                session.updateMovingStatistics(from: tape)
                optimizer.finishStep()
            }
            try trainingStep(1)
            let afterFirst = session.freshBuffers + session.store.allocations
            let weightsAfterFirst = Array(session.store.values)
            for seed in 2...5 { try trainingStep(UInt64(seed)) }
            XCTAssertEqual(session.freshBuffers + session.store.allocations, afterFirst, "\(freezing) \(bnMode): steps after the first allocated buffers")
            XCTAssertEqual(session.updatedRuns, session.store.trainableRuns, "every trainable layer got its gradient")
            XCTAssertEqual(session.store.values.baseAddress, values)
            XCTAssertEqual(session.store.gradients.baseAddress, gradients)
            XCTAssertNotEqual(Array(session.store.values), weightsAfterFirst, "the steps updated the weights in place")
        }
    }

    /// Recycled buffers are overwritten, not added to: the fifth step's gradients equal a fresh session's, bit for bit.
    func testReusedBuffersGiveTheSameGradients() throws {
        for bnMode in BatchNormMode.allCases {
            let (reused, images) = try session(.all, bnMode: bnMode)
            for _ in 0..<4 { _ = try step(reused, images, seed: 7) }
            let recycled = try step(reused, images, seed: 7)
            let (fresh, _) = try session(.all, bnMode: bnMode)
            let expected = try step(fresh, images, seed: 7)
            XCTAssertEqual(Set(recycled.keys), Set(expected.keys))
            for (node, variables) in expected {
                for (name, tensor) in variables {
                    XCTAssertEqual(recycled[node]?[name]?.scalars, tensor.scalars, "\(bnMode): node \(node) \(name)")
                }
            }
        }
    }
}
