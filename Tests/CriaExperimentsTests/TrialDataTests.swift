import CriaCore
@testable import CriaExperiments
import CriaTestSupport
import XCTest

/// The data sources a config can name, and `data.limit`.
final class TrialDataTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-data-\(UUID().uuidString)")
        try SyntheticImages.write(to: root.appendingPathComponent("images"), perClass: 12)
    }

    override func tearDownWithError() throws {
        if let root { try? FileManager.default.removeItem(at: root) }
    }

    func spec(_ yaml: String) throws -> DataSpec {
        let text = "data: {\(yaml)}\nphases: [{epochs: 1}]\n"
        return try ExperimentConfig.decode(try ConfigNode.parse(text, source: "t"), source: "t", defaultName: "t").data
    }

    func testDirectoryLimitTakesTheFrontOfKerasShuffledListThenSplits() throws {
        let full = try TrialData.load(try spec("directory: \(root.appendingPathComponent("images").path), image_size: 32"), seed: 42, verbose: false)
        XCTAssertEqual([full.trainCount, full.validationCount], [20, 4])
        let limited = try TrialData.load(try spec("directory: \(root.appendingPathComponent("images").path), image_size: 32, limit: 10"),
                                         seed: 42, verbose: false)
        XCTAssertEqual([limited.trainCount, limited.validationCount], [8, 2])
        // The first 8 of Keras's order for the whole set are the limited training set.
        XCTAssertEqual(limited.trainLabels, Array(full.trainLabels.prefix(8)))
        XCTAssertEqual(limited.classNames, ["bright", "dark"])
        XCTAssertEqual(limited.classCounts(limited.trainLabels).values.reduce(0, +), 8)
    }

    func testCSVSource() throws {
        var lines = ["path,label"]
        for name in ["bright", "dark"] {
            for i in 0..<12 { lines.append("images/\(name)/" + String(format: "img_%03d.bmp", i) + ",\(name)") }
        }
        let csv = root.appendingPathComponent("labels.csv")
        try lines.joined(separator: "\n").write(to: csv, atomically: true, encoding: .utf8)
        let data = try TrialData.load(try spec("source: csv, csv: \(csv.path), image_size: 32, validation_split: 0.25"), seed: 7, verbose: false)
        XCTAssertEqual([data.trainCount, data.validationCount], [18, 6])
        XCTAssertEqual(data.classNames, ["bright", "dark"])
        XCTAssertEqual(try data.trainSource(augmentation: nil).images([0], epoch: 0, augment: false, seed: 0).shape, [1, 32, 32, 3])
    }

    func testFashionMNISTOneVersusRest() throws {
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") else {
            throw Skip.missing("Debian's dataset-fashion-mnist is not installed")
        }
        let data = try TrialData.load(try spec("source: fashion_mnist, limit: 50, image_size: 32, fashion_mnist: {classes: [Sandal, Sneaker], positive_class: Sneaker, test: true, test_limit: 20}"),
                                      seed: 42, verbose: false)
        XCTAssertEqual([data.trainCount, data.validationCount, data.testCount], [40, 10, 20])
        XCTAssertEqual(data.classNames, ["not Sneaker", "Sneaker"])
        XCTAssertEqual(Set(data.trainLabels), [0, 1])
    }

    func testMissingDirectoryNamesTheKey() {
        guard ProcessInfo.processInfo.environment["CRIA_ALPACA_DIR"] == nil else { return }
        XCTAssertThrowsError(try TrialData.load(try spec("image_size: 32"), seed: 1, verbose: false)) { error in
            XCTAssertTrue("\(error)".hasPrefix("data.directory: not set"), "\(error)")
        }
    }
}
