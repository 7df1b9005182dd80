import CBLAS
import Dispatch
import Foundation

/// One thread budget shared by OpenBLAS and Cria's own parallel loops.
///
/// GEMM calls and Cria's loops never run at the same time, so both may use all
/// `count` threads without oversubscribing the cores. Work is split into a
/// fixed number of chunks that depends only on `count`, which keeps results
/// bit-identical from run to run for a given thread count.
public enum Threads {
    private static let lock = NSLock()
    /// OpenBLAS's own default (OPENBLAS_NUM_THREADS, else every core) may differ from
    /// Cria's (CRIA_THREADS, else every core); results depend on both, so the first use
    /// sets OpenBLAS to Cria's budget and the pair is always one number. It is also where
    /// OpenBLAS's kernels are checked against the CPU, before any GEMM (`OpenBLASKernels`).
    nonisolated(unsafe) private static var current: Int = {
        _ = OpenBLASKernels.corrected
        let value = defaultCount
        openblas_set_num_threads(Int32(value))
        return value
    }()

    public static var defaultCount: Int {
        if let text = ProcessInfo.processInfo.environment["CRIA_THREADS"], let value = Int(text), value > 0 {
            return value
        }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    public static var count: Int {
        lock.lock(); defer { lock.unlock() }
        return current
    }

    /// Sets the budget for both OpenBLAS and Cria. Call before running a model.
    public static func set(_ value: Int) {
        let value = max(1, value)
        lock.lock(); _ = current; current = value; lock.unlock()
        openblas_set_num_threads(Int32(value))
    }

    /// Runs `body(chunk, range)` over `0..<total` split into at most `count` contiguous ranges.
    /// Inside a `perWorker` or `parallelFor` body the loop runs inline, on the calling worker:
    /// that body already has a core of its own, and the kernels called there compute each
    /// element the same way whatever the split.
    ///
    /// The ranges run on `SpinTeam.shared`, whose threads are Cria's own: a region makes one
    /// small heap allocation (the thunk through which the team's threads call the caller's
    /// closure), where `DispatchQueue.concurrentPerform` made three (a block copy, a
    /// continuation and its context).
    public static func parallelFor(_ total: Int, minimumPerChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = max(1, min(count, total / max(1, minimumPerChunk)))
        if chunks <= 1 || total <= 1 || insideWorker.isSet {
            if total > 0 { body(0..<total) }
            return
        }
        SpinTeam.shared.run(size: chunks) { chunk in
            insideWorker.set(true)
            defer { insideWorker.set(false) }
            let start = total * chunk / chunks
            let end = total * (chunk + 1) / chunks
            if start < end { body(start..<end) }
        }
    }

    /// `[make(0), make(1), …, make(total - 1)]`, computed on all threads, each element into
    /// its own slot. `make` must depend only on its index, never on the worker running it,
    /// which keeps the result bit-identical for any thread count.
    public static func collect<Element>(_ total: Int, _ make: (Int) -> Element) -> [Element] {
        [Element](unsafeUninitializedCapacity: total) { buffer, initialized in
            let slots = SendableBuffer(buffer)
            parallelFor(total) { range in
                for index in range { (slots.buffer.baseAddress! + index).initialize(to: make(index)) }
            }
            initialized = total
        }
    }

    /// How many workers `perWorker` runs for `total` items at the thread budget: one per
    /// thread, at most one per item.
    public static func workers(for total: Int) -> Int { max(1, min(count, total)) }

    /// Runs `body(worker, range)` on `workers` threads at once, worker w taking the contiguous
    /// slice `total·w/workers ..< total·(w+1)/workers` of `0..<total`, with OpenBLAS set to one
    /// thread meanwhile: each worker calls single-threaded GEMMs and runs nested
    /// `parallelFor`s inline. The split depends only on `workers`, so results that each
    /// worker sums over its own slice are bit-identical from run to run at a thread count.
    public static func perWorker(_ total: Int, workers requested: Int, _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
        let workers = max(1, min(requested, total))
        guard workers > 1 else {
            body(0, 0..<total)
            return
        }
        // Already on a worker: the same slices, one after another (the team runs one region at a time).
        if insideWorker.isSet {
            for worker in 0..<workers { body(worker, total * worker / workers ..< total * (worker + 1) / workers) }
            return
        }
        let threads = count
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(Int32(threads)) }
        SpinTeam.shared.run(size: workers) { worker in
            insideWorker.set(true)
            defer { insideWorker.set(false) }
            body(worker, total * worker / workers ..< total * (worker + 1) / workers)
        }
    }

    /// Whether the calling thread runs a `perWorker` body.
    private static let insideWorker = ThreadFlag()

    /// Whether the calling thread is one of a `parallelFor` or `perWorker` body's workers:
    /// work started there must run inline (the team runs one region at a time, so a region
    /// opened from inside another would wait for itself).
    public static var isInsideWorker: Bool { insideWorker.isSet }

    /// Runs one GEMM as `body(range)` over slices of `0..<total` (rows or columns of its
    /// output), one slice per thread, each a single-threaded OpenBLAS call on the thread
    /// team; one call over everything inside a worker, at one thread, or when a slice would
    /// be under `minimumPerSlice`. Slices start at multiples of `alignment` (the GEMM
    /// micro-kernel's width), so only the last one has a ragged edge.
    ///
    /// OpenBLAS's own threads would otherwise spin in `sched_yield` for a while after each
    /// call, competing for the cores with the team's loops that run between the GEMMs
    /// (a whole-network training step alternates about 150 GEMMs with elementwise loops);
    /// its threaded driver also mallocs per call. Each output element is still summed by
    /// one single-threaded kernel in the same order over the shared dimension, and the
    /// slices depend only on `count`, so results stay bit-identical at a thread count.
    public static func splitGEMM(_ total: Int, minimumPerSlice: Int, alignment: Int = 1, _ body: (Range<Int>) -> Void) {
        let threads = count
        let units = (total + alignment - 1) / max(1, alignment)
        let workers = min(threads, units, total / max(1, minimumPerSlice))
        guard workers > 1, !insideWorker.isSet else {
            if total > 0 { body(0..<total) }
            return
        }
        perWorker(units, workers: workers) { _, range in
            let slice = range.lowerBound * alignment ..< min(total, range.upperBound * alignment)
            if !slice.isEmpty { body(slice) }
        }
    }

    /// Runs `body(&state, item)` for every item of `0..<total` on up to `count` workers
    /// that each take the next unclaimed item when they finish one. For items of uneven
    /// cost (photographs of different sizes), where a fixed split leaves a core idle.
    /// `makeState` runs once per worker (a decoder, a buffer). Callers must make each
    /// item's result independent of the worker that ran it, which keeps results
    /// bit-identical for any thread count.
    public static func forEachItem<State>(_ total: Int, makeState: () -> State, _ body: (inout State, Int) -> Void) {
        guard total > 0 else { return }
        let workers = max(1, min(count, total))
        if workers == 1 {
            var state = makeState()
            for item in 0..<total { body(&state, item) }
            return
        }
        let claim = NSLock()
        var next = 0
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            var state = makeState()
            while true {
                claim.lock()
                let item = next
                next += 1
                claim.unlock()
                guard item < total else { return }
                body(&state, item)
            }
        }
    }
}

/// A per-thread boolean (a pthread key whose value is set or nil).
private final class ThreadFlag: @unchecked Sendable {
    private var key = pthread_key_t()
    init() { pthread_key_create(&key, nil) }
    var isSet: Bool { pthread_getspecific(key) != nil }
    func set(_ value: Bool) { pthread_setspecific(key, value ? UnsafeRawPointer(bitPattern: 1) : nil) }
}

/// Lets parallel workers write disjoint parts of one buffer (or mapping) that the
/// compiler cannot prove disjoint.
public struct SendableBuffer<Element>: @unchecked Sendable {
    public let buffer: UnsafeMutableBufferPointer<Element>
    public init(_ buffer: UnsafeMutableBufferPointer<Element>) { self.buffer = buffer }
}
