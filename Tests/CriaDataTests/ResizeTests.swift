import CriaCore
import CriaData
import CriaTestSupport
import Foundation
import XCTest

final class ResizeTests: XCTestCase {
    func testResizeMatchesTensorFlow() throws {
        let source = try Fixtures.npy("data/resize/source_13x17.npy")
        for method in Interpolation.allCases {
            for (h, w) in [(7, 9), (31, 40), (13, 17), (5, 30)] {
                let name = "\(method.rawValue)_\(h)x\(w)"
                let actual = Resize.resize(source, height: h, width: w, method: method)
                // 1e-3 absolute on values up to 255.
                assertMatches(actual, try Fixtures.npy("data/resize/\(name).npy"), relative: 1e-3 / 255, name)
            }
        }
    }

    /// The whole Keras loading path: decode, optional crop_to_aspect_ratio, resize.
    func testKerasLoadingPathWithCropToAspectRatio() throws {
        let image = try ImageDecoder.decode(contentsOf: Fixtures.url("data/decode/png_rgb8.png"))
        for crop in [false, true] {
            for method in Interpolation.allCases {
                for (h, w) in [(16, 24), (20, 10)] {
                    let name = "keras_\(crop ? "crop_" : "")\(method.rawValue)_\(h)x\(w)"
                    let actual = Resize.resize(image, height: h, width: w, method: method, cropToAspectRatio: crop)
                    assertMatches(actual, try Fixtures.npy("data/resize/\(name).npy"), relative: 1e-3 / 255, name)
                }
            }
        }
    }

    func testAspectCropBox() {
        // Keras's docstring example: (340, 500) to (200, 200) takes a centred 340×340 crop.
        let box = Resize.aspectCropBox(height: 340, width: 500, targetHeight: 200, targetWidth: 200)
        XCTAssertEqual(box.height, 340); XCTAssertEqual(box.width, 340)
        XCTAssertEqual(box.top, 0); XCTAssertEqual(box.left, 80)
    }
}
