import CriaCore
import CriaTraining
import Dispatch
import Foundation

/// Serves a streamed dataset (pixels in a mapped cache file or rendered on demand) a few
/// batches ahead of the trainer, as `tf.data`'s `prefetch` does: when the trainer takes
/// batch k of its plan, batches k+1 … k+depth are assembled on worker threads.
///
/// Every batch is made by the wrapped source's own `images(...)` with the trainer's
/// arguments, so pixels and augmentation draws (keyed by seed, epoch and position) are
/// exactly what the in-memory path gives; only when they are computed changes. Batches the
/// trainer skips (served from its frozen-prefix cache) are never waited for and their
/// results are dropped; no work is started until the trainer asks for a batch, so an epoch
/// served entirely from that cache decodes nothing.
public final class PrefetchingBatchSource: ImageBatchSource, BatchPlanning, @unchecked Sendable {
    public let base: ImageBatchSource
    /// Batches assembled ahead of the one the trainer is using.
    public let depth: Int
    public let count: Int
    /// Computed once: a subset source's labels are rebuilt on every access.
    public let labels: [Int]
    public let augments: Bool

    private let condition = NSCondition()
    private var batches: [[Int]] = []
    private var key: (epoch: Int, augment: Bool, seed: UInt64)?
    private var generation = 0
    /// The plan position after the last batch handed out.
    private var cursor = 0
    /// Plan positions below this have been started (or skipped).
    private var started = 0
    private var results: [Int: Result<Tensor, Error>] = [:]

    public init(_ base: ImageBatchSource, depth: Int = 2) {
        self.base = base
        self.depth = max(1, depth)
        count = base.count
        labels = base.labels
        augments = base.augments
    }

    public func plan(_ batches: [[Int]], epoch: Int, augment: Bool, seed: UInt64) {
        condition.lock()
        defer { condition.unlock() }
        generation += 1  // results of an older plan still running are dropped when they arrive
        self.batches = batches
        key = (epoch, augment, seed)
        cursor = 0
        started = 0
        results = [:]
    }

    public func images(_ indices: [Int], epoch: Int, augment: Bool, seed: UInt64) throws -> Tensor {
        condition.lock()
        guard let key, key.epoch == epoch, key.augment == augment, key.seed == seed,
              let position = (cursor..<batches.count).first(where: { batches[$0] == indices }) else {
            condition.unlock()
            return try base.images(indices, epoch: epoch, augment: augment, seed: seed)
        }
        for skipped in results.keys where skipped < position { results[skipped] = nil }
        cursor = position + 1
        started = max(started, position)
        while started < min(batches.count, position + 1 + depth) {
            launch(started)
            started += 1
        }
        while results[position] == nil { condition.wait() }
        let result = results.removeValue(forKey: position)!
        condition.unlock()
        return try result.get()
    }

    /// Starts plan position `position` on a worker; called with the lock held.
    private func launch(_ position: Int) {
        let indices = batches[position], key = key!, generation = generation
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            let result = Result { try base.images(indices, epoch: key.epoch, augment: key.augment, seed: key.seed) }
            condition.lock()
            if self.generation == generation && position >= cursor - 1 {
                results[position] = result
                condition.broadcast()
            }
            condition.unlock()
        }
    }
}
