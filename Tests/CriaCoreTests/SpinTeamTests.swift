import CriaCore
import Dispatch
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
