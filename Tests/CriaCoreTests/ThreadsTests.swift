import CriaCore
import XCTest

final class ThreadsTests: XCTestCase {
    /// Every item runs exactly once, whatever the worker count, and each worker's state is its own.
    func testForEachItemRunsEveryItemOnce() {
        let saved = Threads.count
        defer { Threads.set(saved) }
        for threads in [1, 2, 3] {
            Threads.set(threads)
            for total in [0, 1, 2, 7, 100] {
                let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(total, 1))
                counts.initialize(repeating: 0)
                defer { counts.deallocate() }
                Threads.forEachItem(total, makeState: { [Int]() }) { seen, item in
                    seen.append(item)
                    // Items of a worker come in increasing order: each takes the next unclaimed one.
                    XCTAssertTrue(seen.count < 2 || seen[seen.count - 2] < item)
                    counts[item] += 1
                }
                XCTAssertEqual(Array(counts.prefix(total)), [Int](repeating: 1, count: total), "threads \(threads), total \(total)")
            }
        }
    }
}
