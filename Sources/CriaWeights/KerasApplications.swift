import CriaCore
import Foundation

/// Names and locations of the ImageNet MobileNetV2 weight files that Keras publishes.
///
/// Mirrors `keras/src/applications/mobilenet_v2.py` (Keras 3.15): the same
/// base URL, the same file-name pattern, the same accepted alphas and sizes.
/// Keras ships no checksum for these files, so none is pinned here either.
public enum KerasApplications {
    public static let baseURL = URL(string: "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/")!

    /// The alphas with published weights, paired with Python's `str(float(alpha))`,
    /// which is how Keras spells them in file names ("0.5", not "0.50").
    public static let alphas: [(value: Double, text: String)] = [
        (0.35, "0.35"), (0.5, "0.5"), (0.75, "0.75"), (1.0, "1.0"), (1.3, "1.3"), (1.4, "1.4"),
    ]

    public static let sizes = [96, 128, 160, 192, 224]

    public static func mobileNetV2FileName(alpha: Double, rows: Int, includeTop: Bool) throws -> String {
        // A tolerance instead of ==, so that 0.35 parsed from a command line always matches.
        guard let spelled = alphas.first(where: { abs($0.value - alpha) < 1e-9 })?.text else {
            throw CriaError("no published MobileNetV2 ImageNet weights for alpha \(alpha); Keras has alpha \(alphas.map(\.text).joined(separator: ", "))")
        }
        guard sizes.contains(rows) else {
            throw CriaError("no published MobileNetV2 ImageNet weights for input size \(rows); Keras has sizes \(sizes.map(String.init).joined(separator: ", "))")
        }
        return "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_\(spelled)_\(rows)\(includeTop ? "" : "_no_top").h5"
    }

    public static func mobileNetV2URL(alpha: Double, rows: Int, includeTop: Bool, baseURL: URL = baseURL) throws -> URL {
        let name = try mobileNetV2FileName(alpha: alpha, rows: rows, includeTop: includeTop)
        return baseURL.appendingPathComponent(name)
    }
}
