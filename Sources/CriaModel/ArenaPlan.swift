import CriaCore
import CriaKernels

/// Where a node's output lives while a batch runs.
///
/// Spatial layers run one image at a time (see `InferenceExecutor`), so most
/// activations need room for one image only, in a per-thread arena whose slots
/// are reused once their last reader has run. Outputs that leave the spatial
/// phase (requested layers, inputs of the Dense/vector tail) need the whole
/// batch and live in the batch arena, image `i` at `offset + i * perImage`.
/// Buffers of the image-group phase (see `InferenceProgram.groupStart`) hold
/// a group of images contiguously, so that one GEMM covers the whole group.
enum Storage: Equatable {
    case input
    case thread(offset: Int)
    /// In the group region after a thread's one-image buffers: image slot `s`
    /// of a group of `g` at `offset * g + s * perImage`.
    case group(offset: Int)
    case batch(offset: Int)
}

/// Float offsets of every buffer, planned once per model; sizes per thread
/// and per batch image, so one plan serves every batch size.
struct ArenaPlan {
    var storage: [Storage?]
    /// Scalars per image of each node's output.
    var perImage: [Int]
    /// Scalars of one thread's activation arena (one image in flight).
    var threadCount: Int
    /// Scalars of one thread's kernel scratch (expanded bands, im2col lines).
    var scratchCount: Int
    /// Scalars per group image of the group region and of group-phase scratch
    /// (whole expanded images of a block); a thread needs `g` times as much.
    var groupPerImage: Int
    var groupScratchPerImage: Int
    /// Scalars per batch image of the batch arena.
    var batchPerImage: Int

    /// Rounds to whole 64-byte lines so that no two buffers share a cache line.
    static func aligned(_ count: Int) -> Int { (count + 15) & ~15 }

    /// Interval-graph allocation: each thread buffer is live from the step that
    /// writes it to the last step that reads it; a buffer takes the lowest
    /// offset that overlaps no live buffer (first fit). The input of a step is
    /// still live while the step runs, so no step writes over what it reads.
    static func plan(graph: ModelGraph, program: InferenceProgram, requested: [Int]) -> ArenaPlan {
        let nodeCount = graph.nodes.count
        var perImage = [Int](repeating: 0, count: nodeCount)
        for (index, node) in graph.nodes.enumerated() { perImage[index] = node.outputShape.reduce(1, *) }

        // Which buffers must hold the whole batch.
        var needsBatch = [Bool](repeating: false, count: nodeCount)
        for node in requested { needsBatch[program.root[node]] = true }
        for step in program.vectorSteps {
            needsBatch[program.root[step.node]] = true
            for input in step.step.inputs { needsBatch[program.root[input]] = true }
        }

        var storage = [Storage?](repeating: nil, count: nodeCount)
        storage[graph.inputNode] = .input
        var batchOffset = 0
        var lastUse = [Int](repeating: -1, count: nodeCount)
        for (position, step) in program.spatialSteps.enumerated() {
            for input in step.inputs { lastUse[program.root[input]] = position }
        }
        // Two regions, each first fit: one image's buffers, and the group
        // region for every buffer the group phase reads or writes. A buffer
        // written before the group phase for it is live from the phase's start:
        // the images of a group are run up to there one after the other.
        let groupStart = program.groupStart
        var live: [[(offset: Int, size: Int, end: Int)]] = [[], []]
        var regionSize = [0, 0]
        for (position, step) in program.spatialSteps.enumerated() {
            let node = step.node
            guard program.root[node] == node, storage[node] == nil else { continue }
            let size = aligned(perImage[node])
            if needsBatch[node] {
                storage[node] = .batch(offset: batchOffset)
                batchOffset += size
                continue
            }
            let end = max(lastUse[node], position)
            let region = end >= groupStart ? 1 : 0
            let start = region == 1 ? max(position, groupStart) : position
            live[region].removeAll { $0.end < start }
            live[region].sort { $0.offset < $1.offset }
            var offset = 0
            for buffer in live[region] {
                if offset + size <= buffer.offset { break }
                offset = max(offset, buffer.offset + buffer.size)
            }
            storage[node] = region == 1 ? .group(offset: offset) : .thread(offset: offset)
            live[region].append((offset, size, end))
            regionSize[region] = max(regionSize[region], offset + size)
        }
        let threadCount = regionSize[0]
        for step in program.vectorSteps where program.root[step.node] == step.node && storage[step.node] == nil {
            storage[step.node] = .batch(offset: batchOffset)
            batchOffset += aligned(perImage[step.node])
        }
        for node in 0..<nodeCount where program.root[node] != node { storage[node] = storage[program.root[node]] }
        let scratch = program.spatialSteps.map { aligned($0.op.scratchCount) }.max() ?? 0
        let groupScratch = program.spatialSteps[min(groupStart, program.spatialSteps.count)...]
            .map { aligned($0.op.groupScratchPerImage) }.max() ?? 0
        return ArenaPlan(storage: storage, perImage: perImage, threadCount: threadCount,
                         scratchCount: scratch, groupPerImage: regionSize[1], groupScratchPerImage: groupScratch,
                         batchPerImage: batchOffset)
    }
}

/// One owned, zeroed, 64-byte-aligned float buffer that grows but never shrinks.
final class FloatArena {
    private(set) var base: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    init(capacity: Int = 0) {
        self.capacity = max(capacity, 16)
        base = FloatArena.allocate(self.capacity)
    }

    deinit { base.deallocate() }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
        // Touch every page now, so that the first batch does not pay page faults either.
        raw.initializeMemory(as: Float.self, repeating: 0, count: count)
        return raw.assumingMemoryBound(to: Float.self)
    }

    /// Grows to at least `count` scalars; returns whether it had to allocate.
    @discardableResult
    func reserve(_ count: Int) -> Bool {
        guard count > capacity else { return false }
        base.deallocate()
        capacity = count
        base = FloatArena.allocate(count)
        return true
    }
}

/// The model's folded weights, each copied once into its own aligned
/// allocation, so that kernels get stable raw pointers and the hot loop
/// touches no Swift array (no retain/release, no exclusivity checks).
final class WeightStore {
    private var buffers: [UnsafeMutablePointer<Float>] = []

    func copy(_ array: [Float]) -> UnsafePointer<Float> {
        let count = max(1, array.count)
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: count)
        pointer.initialize(repeating: 0, count: count)
        array.withUnsafeBufferPointer { if let source = $0.baseAddress { pointer.update(from: source, count: array.count) } }
        buffers.append(pointer)
        return UnsafePointer(pointer)
    }

    func copy(_ array: [Float]?) -> UnsafePointer<Float>? { array.map { copy($0) } }

    deinit { buffers.forEach { $0.deallocate() } }
}
