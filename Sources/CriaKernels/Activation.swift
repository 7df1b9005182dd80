/// The activations that Cria fuses into its convolution and GEMM epilogues.
///
/// Keras's `ReLU(max_value=6)` is a clamp to [0, 6]; a linear layer is a clamp
/// to (-inf, inf). Leaky or thresholded ReLUs are not clamps and run as their
/// own layer.
public struct Clamp: Equatable, Sendable {
    public var lower: Float
    public var upper: Float

    public init(lower: Float, upper: Float) {
        self.lower = lower
        self.upper = upper
    }

    public static let none = Clamp(lower: -.infinity, upper: .infinity)
    public static let relu = Clamp(lower: 0, upper: .infinity)
    public static let relu6 = Clamp(lower: 0, upper: 6)

    public var isIdentity: Bool { lower == -.infinity && upper == .infinity }

    @inline(__always)
    public func apply(_ x: Float) -> Float { min(max(x, lower), upper) }
}
