import CriaCore
import CriaData
import CriaTestSupport
import Foundation
import XCTest

final class SplitTests: XCTestCase {
    func testNumpyShuffleMatchesNumpy() throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("data/numpy_shuffle.json"))) as! [String: Any]
        for case let entry as [String: Any] in json["cases"] as! [Any] {
            let seed = UInt32(entry["seed"] as! Int), n = entry["n"] as! Int
            var items = Array(0..<n)
            var state = NumpyRandomState(seed: seed)
            state.shuffle(&items)
            XCTAssertEqual(items, entry["permutation"] as! [Int], "seed \(seed), n \(n)")
        }
        var state = NumpyRandomState(seed: 42)
        // Stored as repr strings: Foundation's JSON number parsing is not correctly rounded.
        for expected in json["seed42_random_sample"] as! [String] {
            XCTAssertEqual(state.nextDouble(), Double(expected)!)
        }
    }

    /// Builds each synthetic tree Keras listed and checks Cria lists it identically.
    func testSplitsMatchKerasFilePaths() throws {
        for name in ["one", "two", "ten", "many"] {
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("data/splits/\(name).json"))) as! [String: Any]
            let directory = try makeTree(json["files"] as! [String])
            defer { try? FileManager.default.removeItem(at: directory) }
            let unlabeled = name == "one"
            let unshuffled = try DirectoryIndex.index(directory: directory, unlabeled: unlabeled, shuffle: false)
            XCTAssertEqual(unshuffled.files, json["unshuffled"] as! [String], "\(name) unshuffled")
            for case let entry as [String: Any] in json["cases"] as! [Any] {
                let seed = UInt32(entry["seed"] as! Int)
                let all = try DirectoryIndex.index(directory: directory, unlabeled: unlabeled, seed: seed)
                XCTAssertEqual(all.files, entry["all"] as! [String], "\(name) seed \(seed)")
                if !unlabeled {
                    // Labels travel with their paths although Keras shuffles them separately.
                    for (file, label) in zip(all.files, all.labels) {
                        XCTAssertEqual(all.classNames[label], String(file.split(separator: "/")[0]))
                    }
                }
                if let split = entry["validation_split"] as? Double {
                    let parts = try DirectoryIndex.split(all, validationSplit: split)
                    XCTAssertEqual(parts.training.files, entry["training"] as! [String], "\(name) seed \(seed) training")
                    XCTAssertEqual(parts.validation.files, entry["validation"] as! [String], "\(name) seed \(seed) validation")
                }
            }
        }
    }

    func testAlpacaSeed42SplitMatchesKeras() throws {
        guard let directory = Fixtures.alpacaDirectory else {
            throw Skip.decision("alpaca data not found; set CRIA_ALPACA_DIR or place it at ../shared/data/alpaca")
        }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("data/splits/alpaca.json"))) as! [String: Any]
        let index = try DirectoryIndex.index(directory: directory, seed: 42)
        XCTAssertEqual(index.classNames, ["alpaca", "not alpaca"])
        XCTAssertEqual(index.classCounts, [114, 148])
        let parts = try DirectoryIndex.split(index, validationSplit: 0.2)
        XCTAssertEqual(parts.training.count, 210)
        XCTAssertEqual(parts.validation.count, 52)
        XCTAssertEqual(parts.training.files, json["training"] as! [String])
        XCTAssertEqual(parts.validation.files, json["validation"] as! [String])
    }

    func testDirectoryErrors() throws {
        let missing = URL(fileURLWithPath: "/nonexistent/cria-data")
        assertThrows(try DirectoryIndex.index(directory: missing), contains: ["/nonexistent/cria-data", "does not exist"])
        let one = try makeTree(["only/a.png"])
        defer { try? FileManager.default.removeItem(at: one) }
        assertThrows(try DirectoryIndex.index(directory: one), contains: ["at least 2"])
        let empty = try makeTree(["cat/a.png", "dog/readme.txt"])
        defer { try? FileManager.default.removeItem(at: empty) }
        assertThrows(try DirectoryIndex.index(directory: empty), contains: ["dog", "no images"])
        let two = try makeTree(["cat/a.png", "dog/b.png"])
        defer { try? FileManager.default.removeItem(at: two) }
        assertThrows(try DirectoryIndex.index(directory: two, classNames: ["cat", "horse"]), contains: ["horse", "class_names"])
        let reordered = try DirectoryIndex.index(directory: two, classNames: ["dog", "cat"], shuffle: false)
        XCTAssertEqual(reordered.files, ["dog/b.png", "cat/a.png"])
        XCTAssertEqual(reordered.labels, [0, 1])
        // Python's samples[:-0] is empty: Keras would have no training files; Cria says so.
        let index = try DirectoryIndex.index(directory: two, seed: 1)
        assertThrows(try DirectoryIndex.split(index, validationSplit: 0.2), contains: ["0 validation files"])
    }
}

/// A temporary directory holding the given relative paths as small placeholder files.
func makeTree(_ files: [String]) throws -> URL {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-data-\(UUID().uuidString)")
    for file in files {
        let url = root.appendingPathComponent(file)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("placeholder".utf8).write(to: url)
    }
    return root
}
