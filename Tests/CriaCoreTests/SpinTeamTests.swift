import CriaCore
import Dispatch
import Foundation
import XCTest

final class SpinTeamTests: XCTestCase {
    /// Every member runs once per region, and what one member writes before a
    /// barrier every other member reads after it.
    func testMembersRunTogetherAndBarriersOrderTheirWrites() {
        let team = SpinTeam.shared
        for size in [1, 2, 3, 4] {
            let phases = 200
            let slots = UnsafeMutableBufferPointer<Int>.allocate(capacity: size)
            let failures = UnsafeMutableBufferPointer<Int>.allocate(capacity: size)
            slots.initialize(repeating: -1)
            failures.initialize(repeating: 0)
            defer { slots.deallocate(); failures.deallocate() }
            team.run(size: size) { member in
                for phase in 0..<phases {
                    slots[member] = phase
                    team.barrier()
                    // Everyone has written this phase; nobody may write the next until the second barrier.
                    for other in 0..<size where slots[other] != phase { failures[member] += 1 }
                    team.barrier()
                }
            }
            XCTAssertEqual(Array(failures), [Int](repeating: 0, count: size), "team of \(size)")
            XCTAssertEqual(Array(slots), [Int](repeating: phases - 1, count: size))
        }
    }

    /// Many short regions back to back (one batch-1 prediction after another):
    /// workers that stayed awake and workers that slept both join each one.
    func testBackToBackRegions() {
        let team = SpinTeam.shared
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: 3)
        counts.initialize(repeating: 0)
        defer { counts.deallocate() }
        for region in 0..<2_000 {
            let size = region % 7 == 0 ? 3 : 2
            team.run(size: size) { member in counts[member] += 1 }
            if region % 500 == 0 { usleep(2_000) }  // long enough for the workers to go to sleep
        }
        XCTAssertEqual(counts[0], 2_000)
        XCTAssertEqual(counts[1], 2_000)
        XCTAssertEqual(counts[2], (0..<2_000).filter { $0 % 7 == 0 }.count)
    }

    /// Regions from several callers at once run one after the other, each complete.
    func testConcurrentCallersQueue() {
        let team = SpinTeam.shared
        let totals = UnsafeMutableBufferPointer<Int>.allocate(capacity: 4 * 2)
        totals.initialize(repeating: 0)
        defer { totals.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            team.run(size: 2) { member in
                for _ in 0..<50 {
                    totals[caller * 2 + member] += 1
                    team.barrier()
                }
            }
        }
        XCTAssertEqual(Array(totals), [Int](repeating: 50, count: 8))
    }
}
