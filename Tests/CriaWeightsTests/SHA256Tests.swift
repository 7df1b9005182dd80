import CriaWeights
import Foundation
import XCTest

final class SHA256Tests: XCTestCase {
    // FIPS 180-4 / NIST CAVS known answers.
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hexDigest(of: ""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hexDigest(of: "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hexDigest(of: "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hexDigest(of: String(repeating: "a", count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Feeding the same bytes in odd-sized pieces must not change the digest
    /// (exercises the partial-block buffer across update calls).
    func testIncrementalUpdatesMatchOneShot() {
        let bytes = (0 ..< 1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let oneShot = SHA256.hexDigest(of: Data(bytes))
        for step in [1, 3, 63, 64, 65, 127] {
            var hasher = SHA256()
            var offset = 0
            while offset < bytes.count {
                hasher.update(Array(bytes[offset ..< min(offset + step, bytes.count)]))
                offset += step
            }
            XCTAssertEqual(hasher.finalizeHex(), oneShot, "step \(step)")
        }
    }

    /// Lengths around the 55/56/64-byte padding boundaries, checked against Python's hashlib.
    func testPaddingBoundaries() {
        let expected = [
            55: "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
            56: "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
            64: "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
        ]
        for (count, digest) in expected {
            XCTAssertEqual(SHA256.hexDigest(of: String(repeating: "a", count: count)), digest, "\(count) × 'a'")
        }
    }

    func testFileDigestMatchesInMemoryDigest() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cria-sha-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        let data = Data((0 ..< 3_000_000).map { UInt8(truncatingIfNeeded: $0 % 251) })
        try data.write(to: url)
        XCTAssertEqual(try SHA256.hexDigest(ofFile: url), SHA256.hexDigest(of: data))
    }
}
