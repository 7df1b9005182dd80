import CriaCore
import Foundation
import XCTest

final class ProgressBarTests: XCTestCase {
    func testKerasStyleLine() {
        let bar = ProgressBar(total: 262, width: 10, interactive: false, output: { _ in })
        bar.advance(by: 12)
        XCTAssertEqual(bar.line(elapsed: 0.5), " 12/262 [..........] - ETA: 10s")
        bar.advance(by: 119)
        XCTAssertEqual(bar.line(elapsed: 5), "131/262 [====>.....] - ETA: 5s")
        bar.advance(by: 1000)
        XCTAssertEqual(bar.line(elapsed: 61), "262/262 [==========] - 1:01")
    }

    /// Without a terminal only the final line is written, once, whatever the thread count.
    func testPlainOutputWritesOneFinalLine() {
        let lock = NSLock()
        var written: [String] = []
        let bar = ProgressBar(total: 100, label: "decoding", interactive: false, output: { text in
            lock.lock(); written.append(text); lock.unlock()
        })
        DispatchQueue.concurrentPerform(iterations: 100) { _ in bar.advance() }
        bar.finish()
        bar.finish()
        XCTAssertEqual(written.count, 1)
        XCTAssert(written[0].hasPrefix("decoding 100/100 ["), written[0])
        XCTAssert(written[0].hasSuffix("\n"))
    }
}
