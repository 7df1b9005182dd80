import CriaCore
import Foundation
import XCTest

final class ScratchSpaceTests: XCTestCase {
    /// Nested regions on one thread never overlap, are 64-byte aligned, and each keeps
    /// what was written into it while inner regions come and go, across block boundaries
    /// (regions larger than the first block force the stack onto further blocks).
    func testNestedRegionsAreDisjointAlignedAndKeepTheirContents() {
        let sizes = [1, 300, 20_000, 5, 70_000, 3, 1 << 18]
        func nest(_ depth: Int, _ outer: [(UnsafeMutableBufferPointer<Float>, Float)]) {
            guard depth < sizes.count else {
                // Every open region still holds its own fill value.
                for (buffer, value) in outer { XCTAssertTrue(buffer.allSatisfy { $0 == value }, "region of \(buffer.count)") }
                return
            }
            ScratchSpace.with(Float.self, count: sizes[depth]) { buffer in
                XCTAssertEqual(Int(bitPattern: buffer.baseAddress!) % 64, 0)
                for (other, _) in outer {
                    let (a, b) = (buffer.baseAddress!, other.baseAddress!)
                    XCTAssertTrue(a + buffer.count <= b || b + other.count <= a, "regions overlap")
                }
                let value = Float(depth + 1)
                buffer.initialize(repeating: value)
                nest(depth + 1, outer + [(buffer, value)])
                // Inner regions (and their blocks) came and went; this one is intact.
                XCTAssertTrue(buffer.allSatisfy { $0 == value })
            }
        }
        nest(0, [])
    }

    /// The same sequence of requests reserves nothing more the second time (what makes a
    /// steady-state training step allocation-free), and a region is handed the same
    /// memory as the same region was before.
    func testRepeatedRequestsReuseTheSameMemory() {
        func pass() -> [UnsafeMutableRawPointer] {
            var addresses: [UnsafeMutableRawPointer] = []
            ScratchSpace.with(Double.self, count: 1_280) { a in
                addresses.append(UnsafeMutableRawPointer(a.baseAddress!))
                ScratchSpace.with(Float.self, count: 4_096 * 27) { b in
                    addresses.append(UnsafeMutableRawPointer(b.baseAddress!))
                }
                ScratchSpace.with(Int.self, count: 10) { c in addresses.append(UnsafeMutableRawPointer(c.baseAddress!)) }
            }
            return addresses
        }
        let first = pass()
        let reserved = ScratchSpace.reservedBytesOnThisThread
        XCTAssertGreaterThanOrEqual(reserved, 1_280 * 8 + 4_096 * 27 * 4)
        for _ in 0..<3 {
            XCTAssertEqual(pass(), first)
            XCTAssertEqual(ScratchSpace.reservedBytesOnThisThread, reserved)
        }
    }

    /// `withZeroed` zero-fills memory a previous region left dirty; threads have their own
    /// stacks, so parallel workers' regions never meet.
    func testZeroedRegionsAndPerThreadStacks() {
        ScratchSpace.with(Double.self, count: 512) { $0.initialize(repeating: 7) }
        ScratchSpace.withZeroed(Double.self, count: 512) { XCTAssertTrue($0.allSatisfy { $0 == 0 }) }

        let threads = 4
        let addresses = UnsafeMutableBufferPointer<Int>.allocate(capacity: threads)
        defer { addresses.deallocate() }
        let group = DispatchGroup()
        for index in 0..<threads {
            let slots = SendableBuffer(addresses)
            let thread = Thread {
                ScratchSpace.with(Float.self, count: 1_000) { buffer in
                    slots.buffer[index] = Int(bitPattern: buffer.baseAddress!)
                    buffer.initialize(repeating: Float(index))
                    usleep(20_000)  // the others take theirs meanwhile
                    if !buffer.allSatisfy({ $0 == Float(index) }) { slots.buffer[index] = 0 }
                }
                group.leave()
            }
            group.enter()
            thread.start()
        }
        group.wait()
        XCTAssertFalse(addresses.contains(0), "a thread's region was written by another")
        XCTAssertEqual(Set(addresses).count, threads)
    }
}
