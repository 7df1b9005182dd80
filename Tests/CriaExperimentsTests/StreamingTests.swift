import CriaCore
@testable import CriaExperiments
import CriaReports
import CriaTestSupport
import CriaTraining
import XCTest

/// Streamed runs (pixels in a mapped file, batches prefetched on worker threads) give the
/// histories of in-memory runs bit for bit: same pixels, same augmentation draws.
final class StreamingTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-stream-\(UUID().uuidString)")
        try SyntheticImages.write(to: root.appendingPathComponent("images"), perClass: 12)
    }

    override func tearDownWithError() throws {
        if let root { try? FileManager.default.removeItem(at: root) }
    }

    func history(data extra: String, augment: String) throws -> [EpochRecord] {
        let text = """
        experiment: {name: stream, runs_dir: \(root.appendingPathComponent("runs").path)}
        data: {directory: \(root.appendingPathComponent("images").path), image_size: [32, 32], batch_size: 8, validation_split: 0.25, seed: 42\(extra)}
        model:
          weights: \(Fixtures.url("keras/m035_96/k2_weights.h5").path)
          alpha: 0.35
          head: {dropout: 0.2, classes: 1}
        augment: \(augment)
        threads: 1
        phases:
          - {name: frozen, epochs: 2, trainable: none, lr: 1e-3}
          - {name: fine_tune, epochs: 1, fine_tune_at: 140, lr: 1e-4}
        """
        let tree = try ConfigNode.parse(text, source: "stream.yaml")
        let config = try ExperimentConfig.decode(tree, source: "stream.yaml", defaultName: "stream")
        var options = ExperimentRunner.Options()
        options.verbose = false
        options.criaVersion = "test"
        options.fresh = true
        let runner = try ExperimentRunner(config: config, tree: tree, source: "stream.yaml", useSweep: false, options: options)
        runner.write = { _ in }
        let experiment = try runner.run()
        return try MetricsLog.read(directory: experiment.appendingPathComponent("seed=42")).map { var r = $0; r.seconds = 0; return r }
    }

    func testStreamedCachedAndInMemoryRunsGiveIdenticalHistories() throws {
        let cache = root.appendingPathComponent("cache").path
        // With augmentation (draws keyed by seed, epoch, position) and without (epochs served from the frozen-prefix cache).
        for augment in ["{flip: horizontal, rotation: 0.1}", "none"] {
            let memory = try history(data: "", augment: augment)
            XCTAssertEqual(memory.count, 3)
            XCTAssertEqual(try history(data: ", memory_limit: 1", augment: augment), memory, "streamed from a temporary file, augment \(augment)")
            XCTAssertEqual(try history(data: ", cache: \(cache)", augment: augment), memory, "cache built, augment \(augment)")
            XCTAssertEqual(try history(data: ", cache: \(cache)", augment: augment), memory, "cache reused, augment \(augment)")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: cache)
        XCTAssertEqual(files.filter { $0.hasSuffix(".bin") }.count, 1, "training and validation share one cache file: \(files)")
    }

    func testPrefetcherServesPlannedSkippedAndUnplannedBatchesExactly() throws {
        let images = Tensor(shape: [10, 2, 2, 3], scalars: (0..<120).map(Float.init))
        let base = TensorBatchSource(images: images, labels: Array(0..<10))
        let source = PrefetchingBatchSource(base, depth: 2)
        let plan = [[3, 1], [0, 2], [9, 8], [4, 5], [6, 7]]
        source.plan(plan, epoch: 1, augment: false, seed: 5)
        // Batch 1 is skipped, as when the trainer serves it from its prefix cache.
        for batch in [plan[0], plan[2], plan[3], plan[4], [1, 1]] {
            XCTAssertEqual(try source.images(batch, epoch: 1, augment: false, seed: 5).scalars,
                           try base.images(batch, epoch: 1, augment: false, seed: 5).scalars)
        }
        XCTAssertEqual(source.labels, Array(0..<10))
    }

    func testCacheAndMemoryLimitKeysParseAndLeaveTheConfigHashAlone() throws {
        let base = "experiment: {name: t}\ndata:\n  directory: /tmp/none\nphases:\n  - {name: frozen, epochs: 1}\n"
        func tree(_ extra: String) throws -> ConfigNode {
            try ConfigNode.parse(base.replacingOccurrences(of: "  directory: /tmp/none\n", with: "  directory: /tmp/none\n" + extra), source: "t.yaml")
        }
        let config = try ExperimentConfig.decode(try tree("  cache: .cache/pixels\n  memory_limit: 2GiB\n"), source: "t.yaml", defaultName: "t")
        XCTAssertEqual(config.data.cache, ".cache/pixels")
        XCTAssertEqual(config.data.memoryLimit, 2 << 30)
        XCTAssertEqual(ConfigEmitter.hash(try tree("  cache: /somewhere\n  memory_limit: 1\n")), ConfigEmitter.hash(try tree("")))
        XCTAssertThrowsError(try ExperimentConfig.decode(try tree("  memory_limit: lots\n"), source: "t.yaml", defaultName: "t")) { error in
            XCTAssertTrue("\(error)".contains("data.memory_limit: line 4: must be a size such as 4GB"), "\(error)")
        }
    }
}
