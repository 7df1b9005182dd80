import CriaCore
import CriaKerasIO
import CriaModel
import CriaTraining
import Foundation

/// The layers of the base model a config trains, in Keras's order (`base.layers`), for the
/// range of `fine_tune_at` and the names of `fine_tune_from`.
///
/// The base is the one `TransferModel.baseConfig` takes from `model.weights`: a transfer
/// model's nested base, a flat MobileNetV2 cut at `out_relu`, or for a weights-only file the
/// MobileNetV2 architecture at `model.alpha`. When the file cannot be read yet (it is fetched
/// later, or `cria validate` runs on another machine), the architecture at `model.alpha` stands
/// in: it is what a weights-only file gives, and every MobileNetV2 base has the same layers.
public struct BaseModelLayers: Equatable, Sendable {
    /// The base model's name (`mobilenetv2_1.00_160`).
    public var name: String
    public var names: [String]
    public var count: Int { names.count }

    /// The base of `model`, read once per weights file and width.
    public static func of(_ model: ModelSpec) -> BaseModelLayers {
        let url = TrialData.resolvePath(model.weights)
        let modified = (try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? nil
        let key = "\(url.path)|\(model.alpha)|\(modified?.timeIntervalSince1970 ?? -1)"
        cache.lock.lock()
        defer { cache.lock.unlock() }
        if let known = cache.bases[key] { return known }
        let base = (try? read(url, alpha: model.alpha)) ?? architecture(alpha: model.alpha)
        cache.bases[key] = base
        return base
    }

    static func read(_ url: URL, alpha: Double) throws -> BaseModelLayers {
        let config = try TransferModel.baseConfig(from: try KerasFile.open(url), alpha: alpha, inputHeight: 224, inputWidth: 224)
        return BaseModelLayers(name: config.name, names: config.layers.map(\.name))
    }

    /// Keras's `MobileNetV2(alpha=alpha, include_top=False)`.
    static func architecture(alpha: Double) -> BaseModelLayers {
        guard let config = try? MobileNetV2.config(alpha: alpha, includeTop: false) else { return BaseModelLayers(name: "mobilenetv2", names: []) }
        return BaseModelLayers(name: config.name, names: config.layers.map(\.name))
    }

    private final class Cache: @unchecked Sendable {
        let lock = NSLock()
        var bases: [String: BaseModelLayers] = [:]
    }
    private static let cache = Cache()
}
