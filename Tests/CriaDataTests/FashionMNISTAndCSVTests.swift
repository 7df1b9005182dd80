import CriaCore
import CriaData
import CriaTestSupport
import Foundation
import XCTest

final class FashionMNISTTests: XCTestCase {
    private func facts() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("data/fashion_mnist/index.json"))) as! [String: Any]
    }

    private func requireData() throws {
        guard FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory.appendingPathComponent("train-labels-idx1-ubyte.gz").path) else {
            throw Skip.missing("Fashion-MNIST IDX files not installed (apt install dataset-fashion-mnist)")
        }
    }

    func testIDXReaderMatchesNumpy() throws {
        try requireData()
        let facts = try facts()
        let labels = try FashionMNIST.readIDX(FashionMNIST.defaultDirectory.appendingPathComponent("train-labels-idx1-ubyte.gz"))
        XCTAssertEqual(labels.shape, [facts["count"] as! Int])
        XCTAssertEqual(Array(labels.bytes.prefix(20)).map(Int.init), facts["first_labels"] as! [Int])
        var counts = [Int](repeating: 0, count: 10)
        for label in labels.bytes { counts[Int(label)] += 1 }
        XCTAssertEqual(counts, facts["label_counts"] as! [Int])
        let images = try FashionMNIST.readIDX(FashionMNIST.defaultDirectory.appendingPathComponent("train-images-idx3-ubyte.gz"))
        XCTAssertEqual(images.shape, [60000, 28, 28])
        XCTAssertEqual(images.bytes.reduce(0) { $0 + Int($1) }, facts["pixel_sum"] as! Int)
    }

    /// "Sneaker vs not", resized to 32×32 RGB: the sneakers equal TF's grayscale_to_rgb + resize.
    func testBinarySubsetResizedLikeTensorFlow() throws {
        try requireData()
        var options = FashionMNIST.Options()
        options.positiveClass = 7
        options.limit = 500
        options.imageSize = (32, 32)
        options.labelMode = .binary
        let dataset = try FashionMNIST.load(split: .train, options: options)
        XCTAssertEqual(dataset.count, 500)
        XCTAssertEqual(dataset.classNames, ["not Sneaker", "Sneaker"])
        let sneakers = (try facts()["sneaker_indices"] as! [Int])
        let expected = try Fixtures.npy("data/fashion_mnist/sneakers_32.npy")
        for (j, index) in sneakers.enumerated() {
            let i = try XCTUnwrap(dataset.files.firstIndex(of: "train/\(index)"))
            XCTAssertEqual(dataset.labels[i], 1)
            assertMatches(dataset.image(i), expected.slice(j), relative: 1e-6, "fashion-mnist sneaker \(index)")
        }
        XCTAssertEqual(Set(dataset.labels), [0, 1])

        var subset = FashionMNIST.Options()
        subset.classes = [7, 9]
        subset.limit = 100
        let two = try FashionMNIST.load(split: .test, options: subset)
        XCTAssertEqual(two.classNames, ["Sneaker", "Ankle boot"])
        XCTAssertEqual(Set(two.labels), [0, 1])
    }

    func testCorruptGzipIsAnError() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cria-\(UUID().uuidString).gz")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4]).write(to: url)
        assertThrows(try FashionMNIST.readIDX(url), contains: [url.path, "decompress"])
    }
}

final class CSVDatasetTests: XCTestCase {
    func testCSVListLoadsWithLabelsAndQuotes() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-csv-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("imgs"), withIntermediateDirectories: true)
        for name in ["png_rgb8.png", "jpeg_420.jpg", "bmp_24.bmp", "png_gray8.png"] {
            try FileManager.default.copyItem(at: Fixtures.url("data/decode/\(name)"), to: root.appendingPathComponent("imgs/\(name)"))
        }
        try FileManager.default.moveItem(at: root.appendingPathComponent("imgs/bmp_24.bmp"), to: root.appendingPathComponent("imgs/a, b.bmp"))
        let csv = root.appendingPathComponent("list.csv")
        try """
        path,label
        imgs/png_rgb8.png,llama
        imgs/jpeg_420.jpg,alpaca
        "imgs/a, b.bmp",llama
        \(root.path)/imgs/png_gray8.png,alpaca

        """.write(to: csv, atomically: true, encoding: .utf8)
        let index = try CSVDataset.index(csv, shuffle: false)
        XCTAssertEqual(index.classNames, ["alpaca", "llama"])
        XCTAssertEqual(index.labels, [1, 0, 1, 0])
        XCTAssertEqual(index.files[2], "imgs/a, b.bmp")
        var options = DirectoryDatasetOptions()
        options.imageSize = (8, 8)
        options.verbose = false
        options.shuffle = false
        let dataset = try CSVDataset.load(csv, options: options)
        XCTAssertEqual(dataset.count, 4)
        XCTAssertTrue(dataset.unreadable.isEmpty)

        try "path,label\nimgs/png_rgb8.png\n".write(to: csv, atomically: true, encoding: .utf8)
        assertThrows(try CSVDataset.index(csv), contains: ["list.csv:2", "2 fields"])
    }
}
