import CriaCore
import CriaModel
import Dispatch

/// Times an `InferenceModel` from outside, through the executor's
/// `ExecutionHook`: thread-seconds per spatial step and per kernel category.
///
/// Each thread writes its own slots (at most 256 threads, as the executor
/// allows), so the hook needs no lock; the sums are read after the run.
/// A clock read per kernel call costs about 1 % of a batch.
public final class InferenceProfiler: ExecutionHook, @unchecked Sendable {
    private static let maxThreads = 256
    private let stepCount: Int
    private let categories = KernelCategory.allCases.count
    private let stepSeconds: UnsafeMutablePointer<Double>
    private let categorySeconds: UnsafeMutablePointer<Double>

    public init(model: InferenceModel) {
        stepCount = max(1, model.stepDescriptions.count)
        stepSeconds = .allocate(capacity: Self.maxThreads * stepCount)
        categorySeconds = .allocate(capacity: Self.maxThreads * categories)
        reset()
    }

    deinit { stepSeconds.deallocate(); categorySeconds.deallocate() }

    public func reset() {
        stepSeconds.initialize(repeating: 0, count: Self.maxThreads * stepCount)
        categorySeconds.initialize(repeating: 0, count: Self.maxThreads * categories)
    }

    public func step(_ index: Int, thread: Int, _ body: () -> Void) {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        stepSeconds[thread * stepCount + index] += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    public func kernel(_ category: KernelCategory, thread: Int, _ body: () -> Void) {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        categorySeconds[thread * categories + category.rawValue] += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    /// Thread-seconds in spatial step `index` since the last reset, barrier waits included.
    public func seconds(step index: Int) -> Double {
        (0..<Self.maxThreads).reduce(0) { $0 + stepSeconds[$1 * stepCount + index] }
    }

    /// Thread-seconds in kernels of `category` since the last reset.
    public func seconds(_ category: KernelCategory) -> Double {
        (0..<Self.maxThreads).reduce(0) { $0 + categorySeconds[$1 * categories + category.rawValue] }
    }
}

/// A diagnostic hook: runs only the 1×1 GEMM calls (and the barriers between
/// steps), in the real schedule, and skips every other kernel. The outputs
/// are meaningless; the time is what the OpenBLAS calls alone cost
/// (`cria bench`'s "batch 1, its 1x1 GEMM calls alone").
public struct PointwiseOnlyHook: ExecutionHook {
    public init() {}
    public func step(_ index: Int, thread: Int, _ body: () -> Void) { body() }
    public func kernel(_ category: KernelCategory, thread: Int, _ body: () -> Void) {
        if category == .pointwise { body() }
    }
}
