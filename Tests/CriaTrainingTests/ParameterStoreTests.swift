import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import CriaTraining
import XCTest

/// The flat parameter store: its layout (the trainable variables one contiguous
/// range, moving statistics outside it), its round trip to the graph, and the
/// optimizers' one loop over it giving the bits of per-variable updates.
final class ParameterStoreTests: XCTestCase {
    private func graph(_ freezing: Freezing) throws -> ModelGraph {
        var graph = try TransferModel.randomGraph(alpha: 0.35, inputHeight: 32, inputWidth: 32)
        try graph.applyFreezing(freezing)
        return graph
    }

    func testTrainableVariablesAreOneRangeAndStatisticsSitOutsideIt() throws {
        for freezing in [Freezing.all, .fineTuneAt(100), .baseFrozen] {
            let graph = try graph(freezing)
            let store = ParameterStore(graph: graph)
            XCTAssertEqual(store.trainableRuns.count, 1, "\(freezing): freezing by layer index makes one run")
            let run = try XCTUnwrap(store.trainableRuns.first)
            XCTAssertEqual(run, store.trainableSpan)
            XCTAssertEqual(run.upperBound, store.parameterCount, "\(freezing): the trainable variables are the first region's suffix")
            XCTAssertEqual(run.count, graph.parameterCounts.trainable, "\(freezing)")
            XCTAssertEqual(store.count, graph.parameterCount, "every variable of the graph has a place")
            var covered = [Bool](repeating: false, count: store.count)
            for index in graph.nodes.indices {
                for name in graph.nodes[index].weights.keys {
                    let view = try XCTUnwrap(store.view(index, name), "\(graph.nodes[index].name)/\(name)")
                    XCTAssertEqual(view.shape, graph.nodes[index].weights[name]!.shape)
                    let isStatistic = name == "moving_mean" || name == "moving_variance"
                    XCTAssertEqual(view.offset >= store.parameterCount, isStatistic, "\(graph.nodes[index].name)/\(name) is in the wrong region")
                    XCTAssertEqual(run.contains(view.offset), graph.hasTrainableVariables(index) && !isStatistic,
                                   "\(graph.nodes[index].name)/\(name)")
                    XCTAssertEqual(store.gradient(index, name) != nil, graph.hasTrainableVariables(index) && !isStatistic)
                    for offset in view.offset ..< view.offset + view.count {
                        XCTAssertFalse(covered[offset], "views overlap at \(offset)")
                        covered[offset] = true
                    }
                }
            }
            XCTAssertTrue(covered.allSatisfy { $0 }, "views leave holes")
        }
    }

    func testKerasVariableOrderWithinALayer() throws {
        let graph = try graph(.all)
        let store = ParameterStore(graph: graph)
        let bn = try XCTUnwrap(graph.nodes.indices.first { if case .batchNormalization = graph.nodes[$0].kind { return true }; return false })
        let gamma = try XCTUnwrap(store.view(bn, "gamma")), beta = try XCTUnwrap(store.view(bn, "beta"))
        XCTAssertEqual(beta.offset, gamma.offset + gamma.count, "beta follows gamma")
        let mean = try XCTUnwrap(store.view(bn, "moving_mean")), variance = try XCTUnwrap(store.view(bn, "moving_variance"))
        XCTAssertEqual(variance.offset, mean.offset + mean.count, "moving_variance follows moving_mean")
        let dense = try XCTUnwrap(graph.nodes.lastIndex { if case .dense = $0.kind { return true }; return false })
        let kernel = try XCTUnwrap(store.view(dense, "kernel")), bias = try XCTUnwrap(store.view(dense, "bias"))
        XCTAssertEqual(bias.offset, kernel.offset + kernel.count, "bias follows kernel")
    }

    func testWritingAndReadingTheGraphRoundTrips() throws {
        var graph = try graph(.all)
        let store = ParameterStore(graph: graph)
        for i in store.values.indices { store.values[i] = Float(i % 1000) * 0.001 }
        store.write(into: &graph)
        let other = ParameterStore(graph: graph)
        XCTAssertEqual(Array(other.values), Array(store.values))
        let dense = try XCTUnwrap(graph.nodes.lastIndex { if case .dense = $0.kind { return true }; return false })
        let view = try XCTUnwrap(store.view(dense, "kernel"))
        XCTAssertEqual(graph.nodes[dense].weights["kernel"]!.scalars, Array(store.values[view.offset ..< view.offset + view.count]))
    }

    /// Every optimizer, stepping the whole trainable range in one loop, gives each
    /// variable the bits `Optimizer.update` gives it alone (the fixture-tested path).
    func testOneLoopOverTheStoreMatchesPerVariableUpdates() throws {
        let graph = try graph(.fineTuneAt(100))
        var configurations: [OptimizerConfig] = [.adam(1e-3), OptimizerConfig(kind: .sgd, learningRate: 1e-2),
                                                 OptimizerConfig(kind: .rmsprop, learningRate: 1e-3)]
        var adamw = OptimizerConfig(kind: .adamw, learningRate: 1e-3)
        adamw.weightDecay = 0.004
        var momentum = OptimizerConfig(kind: .sgd, learningRate: 1e-2)
        momentum.momentum = 0.9
        var nesterov = momentum
        nesterov.nesterov = true
        var rmspropMomentum = OptimizerConfig(kind: .rmsprop, learningRate: 1e-3)
        rmspropMomentum.momentum = 0.9
        configurations += [adamw, momentum, nesterov, rmspropMomentum]
        for config in configurations {
            let store = ParameterStore(graph: graph)
            let flat = Optimizer(config), named = Optimizer(config)
            var loose: [String: [Float]] = [:]
            for index in store.trainableNodes {
                for name in graph.nodes[index].weights.keys where store.gradient(index, name) != nil {
                    loose["\(index)/\(name)"] = Array(store.parameter(index, name)!)
                }
            }
            var generator = SplitMix64(seed: 5)
            for step in 0..<3 {
                for i in store.gradients.indices { store.gradients[i] = generator.nextUnitFloat() * 2 - 1 }
                let rate = 1e-3 * Double(step + 1)
                flat.step(store, runs: store.trainableRuns, learningRate: rate)
                for key in loose.keys.sorted() {
                    let parts = key.split(separator: "/")
                    let gradient = Array(store.gradient(Int(parts[0])!, String(parts[1]))!)
                    named.update(key, values: &loose[key]!, gradient: gradient, learningRate: rate)
                }
                flat.finishStep()
                named.finishStep()
            }
            for (key, values) in loose {
                let parts = key.split(separator: "/")
                XCTAssertEqual(Array(store.parameter(Int(parts[0])!, String(parts[1]))!), values, "\(config.kind) \(key)")
            }
        }
    }

    /// A new optimizer on the same store starts from zero moments, as a new Keras optimizer does.
    func testANewOptimizerStartsFromZeroMoments() throws {
        let graph = try graph(.baseFrozen)
        let store = ParameterStore(graph: graph), reference = ParameterStore(graph: graph)
        for target in [store, reference] { for i in target.gradients.indices { target.gradients[i] = 0.5 } }
        Optimizer(.adam()).step(store, runs: store.trainableRuns, learningRate: 1e-3)
        let before = Array(store.values)
        reference.values.baseAddress!.update(from: store.values.baseAddress!, count: store.count)
        Optimizer(.adam()).step(store, runs: store.trainableRuns, learningRate: 1e-3)
        Optimizer(.adam()).step(reference, runs: reference.trainableRuns, learningRate: 1e-3)
        XCTAssertNotEqual(Array(store.values), before)
        XCTAssertEqual(Array(store.values), Array(reference.values))
    }

    /// Adam runs eight lanes at a time, with a scalar loop for the last few weights: every
    /// element must get the bits of the scalar formula (Keras's, with its float32 constants),
    /// wherever it falls relative to the lanes.
    func testAdamsEightLaneLoopGivesTheScalarFormulasBits() {
        for count in [1, 7, 8, 9, 15, 16, 17, 1_003] {
            var generator = SplitMix64(seed: UInt64(count))
            var values = (0..<count).map { _ in generator.nextUnitFloat() * 2 - 1 }
            var expected = values
            var m = [Float](repeating: 0, count: count), v = m
            let optimizer = Optimizer(.adam(1e-3))
            for step in 1...3 {
                let gradient = (0..<count).map { _ in generator.nextUnitFloat() * 2 - 1 }
                optimizer.update("w", values: &values, gradient: gradient, learningRate: 1e-3)
                optimizer.finishStep()
                let lr = Float(1e-3), beta1Power = pow(Float(0.9), Float(step)), beta2Power = pow(Float(0.999), Float(step))
                let alpha = lr * (1 - beta2Power).squareRoot() / (1 - beta1Power)
                let rate1 = Float(1 - 0.9), rate2 = Float(1 - 0.999), epsilon = Float(1e-7)
                for i in 0..<count {
                    let g = gradient[i]
                    m[i] += (g - m[i]) * rate1
                    v[i] += (g * g - v[i]) * rate2
                    expected[i] -= (m[i] * alpha) / (v[i].squareRoot() + epsilon)
                }
            }
            XCTAssertEqual(values.map(\.bitPattern), expected.map(\.bitPattern), "\(count) weights")
        }
    }

    /// The store's update is cut into one piece per thread; each weight is updated on its own,
    /// so any thread count gives the same weights and moments, bit for bit.
    func testTheStoreUpdateGivesTheSameBitsAtEveryThreadCount() throws {
        let graph = try graph(.all)
        let threads = Threads.count
        defer { Threads.set(threads) }
        var results: [[Float]] = []
        for count in [1, 2, 3] {
            Threads.set(count)
            let store = ParameterStore(graph: graph)
            XCTAssertGreaterThan(store.trainableSpan.count, 3 * 32_768, "enough weights for every thread to take a piece")
            let optimizer = Optimizer(.adam(1e-3))
            var generator = SplitMix64(seed: 8)
            for _ in 0..<2 {
                for i in store.gradients.indices { store.gradients[i] = generator.nextUnitFloat() * 2 - 1 }
                optimizer.step(store, runs: store.trainableRuns, learningRate: 1e-3)
                optimizer.finishStep()
            }
            results.append(Array(store.values) + Array(store.firstMoments!) + Array(store.secondMoments!))
        }
        XCTAssertEqual(results[1].map(\.bitPattern), results[0].map(\.bitPattern), "2 threads against 1")
        XCTAssertEqual(results[2].map(\.bitPattern), results[0].map(\.bitPattern), "3 threads against 1")
    }

}
