import CriaCore
import CriaData
import CriaTestSupport
import Foundation
import XCTest

final class DatasetTests: XCTestCase {
    private var root: URL!

    /// Two classes of real fixture images plus broken files with image extensions.
    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-dataset-\(UUID().uuidString)")
        let fm = FileManager.default
        for folder in ["cats", "dogs"] { try fm.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true) }
        let sources = ["png_rgb8.png", "jpeg_420.jpg", "jpeg_gray.jpg", "png_palette.png", "bmp_24.bmp", "jpeg_progressive.jpg"]
        for (i, name) in sources.enumerated() {
            try fm.copyItem(at: Fixtures.url("data/decode/\(name)"),
                            to: root.appendingPathComponent("\(i % 2 == 0 ? "cats" : "dogs")/\(i)_\(name)"))
        }
        try Data().write(to: root.appendingPathComponent("dogs/empty.jpg"))
        try Data("not an image".utf8).write(to: root.appendingPathComponent("cats/text.png"))
        let jpeg = try Data(contentsOf: Fixtures.url("data/decode/jpeg_444.jpg"))
        try jpeg.prefix(jpeg.count / 2).write(to: root.appendingPathComponent("dogs/truncated.jpg"))
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    private func options(_ configure: (inout DirectoryDatasetOptions) -> Void = { _ in }) -> (DirectoryDatasetOptions, Messages) {
        let messages = Messages()
        var options = DirectoryDatasetOptions()
        options.imageSize = (16, 24)
        options.batchSize = 4
        options.seed = 42
        options.log = { messages.append($0) }
        configure(&options)
        return (options, messages)
    }

    func testBadImagesAreSkippedWithOneWarningEach() throws {
        let (options, messages) = options()
        let dataset = try DirectoryDataset.load(root, options: options)
        XCTAssertEqual(dataset.count, 6)
        XCTAssertEqual(Set(dataset.unreadable.map(\.file)), ["dogs/empty.jpg", "cats/text.png", "dogs/truncated.jpg"])
        let warnings = messages.lines.filter { $0.hasPrefix("warning:") }
        XCTAssertEqual(warnings.count, 3)
        XCTAssert(messages.lines.contains("Found 9 files belonging to 2 classes."), "\(messages.lines)")
        XCTAssert(messages.lines.contains { $0.hasPrefix("found 9 files, 3 unreadable: ") })
    }

    func testOnBadImageFailThrowsNamingTheFile() {
        let (options, _) = options { $0.onBadImage = .fail }
        assertThrows(try DirectoryDataset.load(root, options: options), contains: [".jpg"])
    }

    /// Stored images are Keras's float resize output for the same file.
    func testImagesEqualKerasLoadingPath() throws {
        let (options, _) = options { $0.shuffle = false }
        let dataset = try DirectoryDataset.load(root, options: options)
        let i = try XCTUnwrap(dataset.files.firstIndex(of: "cats/0_png_rgb8.png"))
        assertMatches(dataset.image(i), try Fixtures.npy("data/resize/keras_bilinear_16x24.npy"), relative: 1e-6, "dataset image")
        let (bytes, _) = self.options { $0.shuffle = false; $0.storage = .uint8 }
        let rounded = try DirectoryDataset.load(root, options: bytes)
        assertMatches(rounded.image(i), dataset.image(i), relative: 0.51 / 254, "uint8 storage")
    }

    func testBatchesLabelsPreprocessAndReshuffle() throws {
        let (base, _) = options { $0.labelMode = .categorical }
        var dataset = try DirectoryDataset.load(root, options: base)
        dataset.preprocess = .mobilenetV2
        XCTAssertEqual(dataset.batchCount, 2)
        let batches = dataset.batches(epoch: 0)
        XCTAssertEqual(batches.map(\.images.shape), [[4, 16, 24, 3], [2, 16, 24, 3]])
        XCTAssertEqual(batches[0].labels.shape, [4, 2])
        XCTAssertEqual(Set(batches.flatMap(\.indices)), Set(0..<6))
        let first = batches[0].indices[0]
        let expected = dataset.image(first).scalars.map { $0 / 127.5 - 1 }
        XCTAssertEqual(Array(batches[0].images.scalars[0..<expected.count]), expected)
        for (row, i) in batches[0].indices.enumerated() {
            XCTAssertEqual(batches[0].labels.scalars[row * 2 + dataset.labels[i]], 1)
        }
        XCTAssertEqual(dataset.order(epoch: 3), dataset.order(epoch: 3))
        XCTAssertNotEqual(dataset.order(epoch: 0), dataset.order(epoch: 1))
        dataset.shuffle = false
        XCTAssertEqual(dataset.order(epoch: 5), Array(0..<6))

        let (binary, _) = options { $0.labelMode = .binary }
        XCTAssertEqual(try DirectoryDataset.load(root, options: binary).batch(0, epoch: 0).labels.shape, [4, 1])
    }

    func testAugmentationIsDeterministic() throws {
        let (options, _) = options()
        var dataset = try DirectoryDataset.load(root, options: options)
        dataset.augmentation = AugmentationPipeline([.randomFlip(.horizontal), .randomRotation(0.2)], seed: 3)
        XCTAssertEqual(dataset.batch(0, epoch: 2).images, dataset.batch(0, epoch: 2).images)
        XCTAssertNotEqual(dataset.batch(0, epoch: 2).images, dataset.batch(0, epoch: 3).images)
    }

    func testOptionErrors() {
        let (noSeed, _) = options { $0.seed = nil; $0.validationSplit = 0.2; $0.subset = .training }
        assertThrows(try DirectoryDataset.load(root, options: noSeed), contains: ["seed"])
        let (noSubset, _) = options { $0.validationSplit = 0.2 }
        assertThrows(try DirectoryDataset.load(root, options: noSubset), contains: ["subset"])
        let (badSplit, _) = options { $0.validationSplit = 1.5; $0.subset = .training }
        assertThrows(try DirectoryDataset.load(root, options: badSplit), contains: ["between 0 and 1"])
    }

    /// The real alpaca folder: Keras's 210/52 split, decoded and resized to 160×160 like Keras.
    func testAlpacaSplitLoadsLikeKeras() throws {
        guard let directory = Fixtures.alpacaDirectory else {
            throw Skip.decision("alpaca data not found; set CRIA_ALPACA_DIR or place it at ../shared/data/alpaca")
        }
        let (base, messages) = options { $0.imageSize = (160, 160); $0.validationSplit = 0.2; $0.batchSize = 32 }
        let (training, validation) = try DirectoryDataset.loadSplit(directory, options: base)
        XCTAssertEqual(training.count, 210)
        XCTAssertEqual(validation.count, 52)
        XCTAssertEqual(training.batchCount, 7)
        XCTAssert(messages.lines.contains("Using 210 files for training."))
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("data/alpaca/index.json"))) as! [String: [String: Any]]
        for (key, entry) in index {
            let file = entry["file"] as! String
            let dataset = training.files.contains(file) ? training : validation
            let i = try XCTUnwrap(dataset.files.firstIndex(of: file))
            assertMatches(dataset.image(i), try Fixtures.npy("data/alpaca/\(key)_160.npy"), relative: 1e-6, "alpaca dataset \(file)")
        }
    }
}

final class Messages: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func append(_ line: String) { lock.lock(); stored.append(line); lock.unlock() }
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return stored }
    func clear() { lock.lock(); stored.removeAll(); lock.unlock() }
}
