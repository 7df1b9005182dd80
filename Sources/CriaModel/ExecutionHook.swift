/// Where inference time goes, by kind of kernel (`cria bench` prints it).
public enum KernelCategory: Int, CaseIterable, Sendable {
    case pointwise, depthwise, firstConvolution, other

    public var label: String {
        switch self {
        case .pointwise: return "pointwise (1x1 GEMM)"
        case .depthwise: return "depthwise"
        case .firstConvolution: return "first conv"
        case .other: return "other"
        }
    }
}

/// What the inference executor calls around each spatial step and each kernel
/// call, so that a profiler (CriaBench's) can time them from outside.
///
/// The executor is generic over its hook: ordinary predictions run with
/// `NoExecutionHook`, whose methods only call `body` and compile away, so the
/// hot loop carries no profiling switch. A hook must call `body` at most once;
/// a diagnostic hook may skip it (the outputs are then meaningless).
public protocol ExecutionHook {
    /// Runs spatial step `index` (of `InferenceModel.stepDescriptions`) on `thread`.
    func step(_ index: Int, thread: Int, _ body: () -> Void)
    /// Runs one kernel call of `category` on `thread`.
    func kernel(_ category: KernelCategory, thread: Int, _ body: () -> Void)
}

/// The hook of ordinary predictions: runs everything, measures nothing.
public struct NoExecutionHook: ExecutionHook {
    public init() {}
    @inline(__always) public func step(_ index: Int, thread: Int, _ body: () -> Void) { body() }
    @inline(__always) public func kernel(_ category: KernelCategory, thread: Int, _ body: () -> Void) { body() }
}
