import CriaCore
@testable import CriaData
import CriaTestSupport
import Foundation
import XCTest

/// The memory-mapped pixel cache and streaming: the same pixels as the in-memory path,
/// reuse across loads, re-decoding of edited images, and damaged files rebuilt with one notice.
final class PixelCacheTests: XCTestCase {
    private var root: URL!
    private var images: URL { root.appendingPathComponent("images") }
    private var cache: URL { root.appendingPathComponent("cache") }

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-pixelcache-\(UUID().uuidString)")
        let fm = FileManager.default
        for folder in ["cats", "dogs"] { try fm.createDirectory(at: images.appendingPathComponent(folder), withIntermediateDirectories: true) }
        let sources = ["png_rgb8.png", "jpeg_420.jpg", "jpeg_gray.jpg", "png_palette.png", "bmp_24.bmp", "jpeg_progressive.jpg"]
        for (i, name) in sources.enumerated() {
            try fm.copyItem(at: Fixtures.url("data/decode/\(name)"),
                            to: images.appendingPathComponent("\(i % 2 == 0 ? "cats" : "dogs")/\(i)_\(name)"))
        }
        try Data("not an image".utf8).write(to: images.appendingPathComponent("cats/text.png"))
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    private func options(_ configure: (inout DirectoryDatasetOptions) -> Void = { _ in }) -> (DirectoryDatasetOptions, Messages) {
        let messages = Messages()
        var options = DirectoryDatasetOptions()
        options.imageSize = (16, 24)
        options.batchSize = 4
        options.seed = 42
        options.validationSplit = 0.3
        options.showProgress = false
        options.log = { messages.append($0) }
        configure(&options)
        return (options, messages)
    }

    private func pixels(_ dataset: ImageDataset) -> [[Float]] { (0..<dataset.count).map { dataset.image($0).scalars } }

    private var settings: PixelCacheSettings { PixelCacheSettings(height: 16, width: 24, interpolation: .bilinear, cropToAspectRatio: false) }

    private func paths() throws -> [String] {
        try FileManager.default.subpathsOfDirectory(atPath: images.path).filter { $0.contains(".") }.map { images.appendingPathComponent($0).path }
    }

    func testCachedAndStreamedSplitsGiveTheInMemoryPixelsFilesAndWarnings() throws {
        let (memoryOptions, memoryMessages) = options()
        let memory = try DirectoryDataset.loadSplit(images, options: memoryOptions)
        XCTAssertFalse(memory.training.isStreamed)
        for configure in [{ (o: inout DirectoryDatasetOptions) in o.cacheDirectory = self.cache },
                          { (o: inout DirectoryDatasetOptions) in o.memoryLimit = 1 }] {
            let (options, messages) = options(configure)
            let other = try DirectoryDataset.loadSplit(images, options: options)
            for (a, b) in [(memory.training, other.training), (memory.validation, other.validation)] {
                XCTAssertTrue(b.isStreamed)
                XCTAssertEqual(a.files, b.files)
                XCTAssertEqual(a.labels, b.labels)
                XCTAssertEqual(a.unreadable.map(\.file), b.unreadable.map(\.file))
                XCTAssertEqual(pixels(a), pixels(b))  // bit-identical floats
                XCTAssertEqual(a.batch(0, epoch: 1).images.scalars, b.batch(0, epoch: 1).images.scalars)
            }
            XCTAssertEqual(memoryMessages.lines.filter { $0.hasPrefix("warning:") }, messages.lines.filter { $0.hasPrefix("warning:") })
        }
        // uint8 storage rounds the same way whether pixels are in memory or mapped.
        let (byteOptions, _) = options { $0.storage = .uint8 }
        let (mappedByteOptions, _) = options { $0.storage = .uint8; $0.cacheDirectory = self.cache }
        XCTAssertEqual(pixels(try DirectoryDataset.loadSplit(images, options: byteOptions).training),
                       pixels(try DirectoryDataset.loadSplit(images, options: mappedByteOptions).training))
    }

    func testASecondOpenDecodesNothingAndAnEditedImageIsDecodedAgain() throws {
        let messages = Messages()
        let paths = try self.paths()
        let first = try PixelCache.open(paths: paths, directory: cache, settings: settings, showProgress: false, verbose: true, log: { messages.append($0) })
        XCTAssertEqual(first.decoded, 7)
        XCTAssertEqual(first.failures.count, 1)
        let second = try PixelCache.open(paths: paths.reversed(), directory: cache, settings: settings, showProgress: false, verbose: true, log: { messages.append($0) })
        XCTAssertEqual(second.decoded, 0, "a second run reuses every image")
        XCTAssertEqual(second.url, first.url, "the order of the list does not matter")
        XCTAssertEqual(second.failures.keys.sorted(), first.failures.keys.sorted())

        // Replace one image's content (new size and mtime): only it is decoded again, and its new pixels are served.
        let edited = images.appendingPathComponent("cats/0_png_rgb8.png")
        try FileManager.default.removeItem(at: edited)
        try FileManager.default.copyItem(at: Fixtures.url("data/decode/jpeg_444.jpg"), to: edited)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: edited.path)
        let third = try PixelCache.open(paths: paths, directory: cache, settings: settings, showProgress: false, verbose: true, log: { messages.append($0) })
        XCTAssertEqual(third.decoded, 1 + third.failures.count, "the edited image, and the unreadable one tried again")
        let (options, _) = options { $0.validationSplit = nil; $0.subset = nil; $0.shuffle = false }
        let reference = try DirectoryDataset.load(images, options: options)
        let mapped = try DirectoryDataset.load(images, options: { var o = options; o.cacheDirectory = cache; return o }())
        XCTAssertEqual(pixels(reference), pixels(mapped))
        let row = try XCTUnwrap(reference.files.firstIndex(of: "cats/0_png_rgb8.png"))
        XCTAssertNotEqual(render(first, first.slot(edited.path)!), pixels(mapped)[row], "the edited image's old pixels are not served")
    }

    func testTruncatedCacheFileIsRebuiltWithOneNotice() throws {
        let paths = try self.paths()
        let built = try PixelCache.open(paths: paths, directory: cache, settings: settings, showProgress: false, verbose: false, log: { _ in })
        let url = try XCTUnwrap(built.url)
        let reference = (0..<built.count).map { slot in render(built, slot) }
        let handle = try FileHandle(forWritingTo: url)
        let size = try handle.seekToEnd()
        try handle.truncate(atOffset: size / 2)  // a writer killed half-way, or a disk that filled up
        try handle.close()
        let messages = Messages()
        let rebuilt = try PixelCache.open(paths: paths, directory: cache, settings: settings, showProgress: false, verbose: false, log: { messages.append($0) })
        XCTAssertEqual(messages.lines.count, 1, "\(messages.lines)")
        XCTAssertTrue(messages.lines[0].contains(url.path) && messages.lines[0].contains("truncated") && messages.lines[0].contains("rebuilding"))
        XCTAssertEqual(rebuilt.decoded, paths.count)
        XCTAssertEqual((0..<rebuilt.count).map { render(rebuilt, $0) }, reference)
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        XCTAssertEqual(attributes[.size] as? Int, Int(size))
    }

    func testCorruptedPixelsAndHeadersAreNeverUsed() throws {
        let paths = try self.paths()
        let built = try PixelCache.open(paths: paths, directory: cache, settings: settings, showProgress: false, verbose: false, log: { _ in })
        let url = try XCTUnwrap(built.url)
        let reference = (0..<built.count).map { slot in render(built, slot) }
        let slot = (0..<paths.count).first { built.failures[paths.sorted()[$0]] == nil }!
        // Flip one byte inside that image's pixels: its checksum no longer matches.
        var bytes = try Data(contentsOf: url)
        let offset = (PixelCache.headerBytes + PixelCache.entryBytes * paths.count + 4095) / 4096 * 4096 + slot * 16 * 24 * 3 * 4 + 101
        bytes[offset] ^= 0x40
        try bytes.write(to: url)
        let messages = Messages()
        let repaired = try PixelCache.open(paths: paths, directory: cache, settings: settings, showProgress: false, verbose: false, log: { messages.append($0) })
        XCTAssertEqual(messages.lines, ["cache: \(url.path): 1 image fails its checksum; decoding it again"])
        XCTAssertEqual(repaired.decoded, 1 + repaired.failures.count)
        XCTAssertEqual((0..<repaired.count).map { render(repaired, $0) }, reference)

        // A damaged header (zeros where a writer had not yet got to) rebuilds the whole file.
        bytes = try Data(contentsOf: url)
        bytes.replaceSubrange(0..<8, with: [UInt8](repeating: 0, count: 8))
        try bytes.write(to: url)
        messages.clear()
        let rebuilt = try PixelCache.open(paths: paths, directory: cache, settings: settings, showProgress: false, verbose: false, log: { messages.append($0) })
        XCTAssertEqual(messages.lines.count, 1)
        XCTAssertTrue(messages.lines[0].hasSuffix("not a Cria pixel cache (bad magic); rebuilding it"), messages.lines[0])
        XCTAssertEqual((0..<rebuilt.count).map { render(rebuilt, $0) }, reference)
    }

    private func render(_ file: PixelCacheFile, _ slot: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: 16 * 24 * 3) { buffer, count in
            file.render(slot, into: buffer.baseAddress!)
            count = 16 * 24 * 3
        }
    }

    func testFashionMNISTStreamedAboveTheMemoryLimitRendersTheSamePixels() throws {
        // A tiny IDX pair (uncompressed: readIDX accepts both).
        let directory = root.appendingPathComponent("idx")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var state: UInt64 = 7
        let count = 12
        let bytes = (0..<(count * 28 * 28)).map { _ -> UInt8 in state = state &* 6364136223846793005 &+ 1; return UInt8(state >> 56) }
        func header(_ dims: [Int], magic: UInt8) -> [UInt8] { [0, 0, 8, magic] + dims.flatMap { d in (0..<4).reversed().map { UInt8(d >> (8 * $0) & 0xff) } } }
        try Data(header([count, 28, 28], magic: 3) + bytes).write(to: directory.appendingPathComponent("train-images-idx3-ubyte.gz"))
        try Data(header([count], magic: 1) + (0..<count).map { UInt8($0 % 10) }).write(to: directory.appendingPathComponent("train-labels-idx1-ubyte.gz"))
        var options = FashionMNIST.Options()
        options.imageSize = (40, 40)
        let memory = try FashionMNIST.load(split: .train, directory: directory, options: options)
        options.memoryLimit = 1
        let streamed = try FashionMNIST.load(split: .train, directory: directory, options: options)
        XCTAssertFalse(memory.isStreamed)
        XCTAssertTrue(streamed.isStreamed)
        XCTAssertEqual(pixels(memory), pixels(streamed))
    }

    func testMemoryLimitParsing() {
        XCTAssertEqual(MemoryBudget.parse("4GB"), 4_000_000_000)
        XCTAssertEqual(MemoryBudget.parse("512 MiB"), 512 << 20)
        XCTAssertEqual(MemoryBudget.parse("1000"), 1000)
        XCTAssertNil(MemoryBudget.parse("lots"))
        XCTAssertNil(MemoryBudget.parse("-1GB"))
    }
}
