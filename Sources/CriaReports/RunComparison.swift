import CriaCore
import Foundation

/// Frozen-only against each fine-tune depth.
public enum RunComparison {
    public static func compare(_ directories: [URL], output: URL? = nil) throws -> String {
        throw CriaError("cria compare: not implemented yet")
    }
}
