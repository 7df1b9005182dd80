import Foundation
import Synchronization

/// A fixed team of threads that run one closure together and meet at barriers,
/// as an OpenMP parallel region does.
///
/// Batch-1 inference splits every layer across the cores, so it needs one
/// barrier per layer or block, about 40 per image. `DispatchQueue.concurrentPerform`
/// costs ~20 µs per call on the 2-core machines Cria is measured on (the idle
/// worker must be woken); a barrier between threads that are already running
/// costs a few µs (two threads with 125 µs of work each per step took
/// 127–132 µs per step with the barrier, 143–146 µs with concurrentPerform).
/// The team's threads are its own (not GCD's), so every member is guaranteed
/// to run at once and a barrier cannot deadlock on a member that was never
/// scheduled.
///
/// Waiting members spin briefly, then yield the core, so a team that is
/// oversubscribed (another process, a VM's stolen time) still makes progress.
/// One region runs at a time; concurrent callers queue on a lock.
public final class SpinTeam: @unchecked Sendable {
    /// The process-wide team, grown on demand to the largest size asked for.
    public static let shared = SpinTeam()

    private let regionLock = NSLock()
    private var workers: [Worker] = []
    private var members = 1
    private var body: ((Int) -> Void)?
    private let arrived = Atomic<Int>(0)
    private let generation = Atomic<Int>(0)
    /// Regions started so far, which idle workers watch for a while before sleeping.
    fileprivate let regionsStarted = Atomic<Int>(0)

    /// Team threads live as long as the process; use `shared`.
    init() {}

    /// Runs `body(member)` on `size` threads at once (member 0 is the caller)
    /// and returns when every member has finished. Inside, `barrier()` holds
    /// each member until all `size` have reached it.
    ///
    /// `body` does not escape: the workers see it only until the closing
    /// barrier, so a caller's closure keeps its context on the stack. Handing
    /// it to the workers through `withoutActuallyEscaping` still costs one
    /// small heap allocation per region (Swift's context for the escape
    /// check), which no safe Swift avoids.
    public func run(size: Int, _ body: (Int) -> Void) {
        let size = max(1, size)
        regionLock.lock()
        defer { regionLock.unlock() }
        members = size  // what `barrier()` waits for, a no-op at 1
        guard size > 1 else { body(0); return }
        while workers.count < size - 1 { workers.append(Worker(team: self, member: workers.count + 1)) }
        withoutActuallyEscaping(body) { body in
            self.body = body
            regionsStarted.add(1, ordering: .releasing)
            for worker in workers[..<(size - 1)] { worker.start.signal() }
            body(0)
            barrier()
            self.body = nil
        }
    }

    /// Waits until every member of the running region has called `barrier()` as often as this one.
    public func barrier() {
        let count = members
        guard count > 1 else { return }
        let current = generation.load(ordering: .acquiring)
        if arrived.add(1, ordering: .acquiringAndReleasing).newValue == count {
            arrived.store(0, ordering: .relaxed)
            generation.store(current + 1, ordering: .releasing)
            return
        }
        var spins = 0
        while generation.load(ordering: .acquiring) == current {
            spins += 1
            if spins > 4_000 { sched_yield() }
        }
    }

    fileprivate func work(member: Int) {
        // The worker's reference to `body` must be gone before the closing
        // barrier: `run` checks, after it, that the closure did not escape.
        do {
            let body = self.body!  // set before the region's start was signalled
            body(member)
        }
        barrier()
    }

    private final class Worker: @unchecked Sendable {
        let start = DispatchSemaphore(value: 0)
        private var thread: Thread?

        init(team: SpinTeam, member: Int) {
            let start = self.start
            let thread = Thread { [unowned team] in
                var seen = 0
                while true {
                    // Back-to-back regions (one batch-1 prediction after
                    // another) find the worker awake: it watches for the
                    // next region for ~0.1 ms before sleeping on the
                    // semaphore, whose wake-up took ~50 µs here. It still
                    // takes the semaphore, which the region's start signalled.
                    var spins = 0
                    while team.regionsStarted.load(ordering: .acquiring) == seen && spins < 100_000 { spins += 1 }
                    start.wait()
                    seen = team.regionsStarted.load(ordering: .acquiring)
                    team.work(member: member)
                }
            }
            thread.name = "cria-team-\(member)"
            thread.start()
            self.thread = thread
        }
    }
}
