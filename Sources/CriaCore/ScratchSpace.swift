import Foundation

/// Per-thread scratch memory for a kernel's temporaries: partial sums, a block's
/// im2col columns, per-channel constants.
///
/// `withUnsafeTemporaryAllocation` puts at most 1 KB on the stack; anything larger
/// it takes from malloc on every call (measured with Swift 6.3 on Linux, on the main
/// thread and on others alike). A training step calls the depthwise and BatchNorm
/// backward kernels about a hundred times, so their per-call sums and partials were a
/// few hundred malloc calls per step. Each thread instead keeps a stack of blocks
/// that it grows on first use and keeps: the same step asks for the same sizes in
/// the same order every time, so after the first step no call reaches malloc.
///
/// Nested calls on one thread are nested regions of that thread's stack. What `body`
/// receives is uninitialised and valid only until it returns.
public enum ScratchSpace {
    /// Runs `body` with `count` uninitialised elements of this thread's scratch,
    /// 64-byte aligned.
    @inline(__always)
    public static func with<Element, Result>(_ type: Element.Type, count: Int,
                                             _ body: (UnsafeMutableBufferPointer<Element>) throws -> Result) rethrows -> Result {
        let stack = ScratchStack.current
        let mark = stack.mark
        defer { stack.release(to: mark) }
        let memory = stack.take(bytes: max(0, count) * MemoryLayout<Element>.stride)
        let elements = memory.bindMemory(to: Element.self, capacity: max(0, count))
        return try body(UnsafeMutableBufferPointer(start: elements, count: max(0, count)))
    }

    /// `with` for a zero-filled buffer.
    @inline(__always)
    public static func withZeroed<Element: Numeric, Result>(_ type: Element.Type, count: Int,
                                                           _ body: (UnsafeMutableBufferPointer<Element>) throws -> Result) rethrows -> Result {
        try with(type, count: count) { buffer in
            buffer.initialize(repeating: 0)
            return try body(buffer)
        }
    }

    /// Bytes this thread's scratch holds (every block it has grown), for tests and reports.
    public static var reservedBytesOnThisThread: Int { ScratchStack.current.reservedBytes }
}

/// One thread's scratch: blocks used as a stack, from the first block's start to
/// `offset` in block `block`. Blocks after the current one are free; a request that
/// does not fit moves to the next block, which is grown (replaced) when too small.
final class ScratchStack {
    struct Mark { let block: Int; let offset: Int }

    private static let alignment = 64
    /// The smallest block made: a few per-channel arrays fit without a second block.
    private static let minimumBlockBytes = 64 << 10

    private var blocks: [(memory: UnsafeMutableRawPointer, bytes: Int)] = []
    private var block = 0
    private var offset = 0

    var mark: Mark { Mark(block: block, offset: offset) }

    var reservedBytes: Int { blocks.reduce(0) { $0 + $1.bytes } }

    func release(to mark: Mark) {
        block = mark.block
        offset = mark.offset
    }

    func take(bytes: Int) -> UnsafeMutableRawPointer {
        let start = (offset + Self.alignment - 1) & ~(Self.alignment - 1)
        if block < blocks.count, start + bytes <= blocks[block].bytes {
            offset = start + bytes
            return blocks[block].memory + start
        }
        // The current block is too small and unused: grow it in place.
        if block < blocks.count, offset == 0 {
            blocks[block].memory.deallocate()
            blocks[block] = (Self.allocate(bytes), Self.blockBytes(for: bytes))
            offset = bytes
            return blocks[block].memory
        }
        // The current block is full (or there is none yet): use the next one, free by the
        // stack order, grown if it is too small.
        let next = blocks.isEmpty ? 0 : block + 1
        if next < blocks.count, blocks[next].bytes < bytes {
            blocks[next].memory.deallocate()
            blocks[next] = (Self.allocate(bytes), Self.blockBytes(for: bytes))
        } else if next == blocks.count {
            blocks.append((Self.allocate(bytes), Self.blockBytes(for: bytes)))
        }
        block = next
        offset = bytes
        return blocks[next].memory
    }

    private static func blockBytes(for bytes: Int) -> Int { max(minimumBlockBytes, bytes) }

    private static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer.allocate(byteCount: blockBytes(for: bytes), alignment: alignment)
    }

    deinit {
        for block in blocks { block.memory.deallocate() }
    }

    /// The calling thread's stack, made on its first use and freed when the thread exits.
    static var current: ScratchStack {
        if let existing = pthread_getspecific(key) {
            return Unmanaged<ScratchStack>.fromOpaque(existing).takeUnretainedValue()
        }
        let stack = ScratchStack()
        pthread_setspecific(key, Unmanaged.passRetained(stack).toOpaque())
        return stack
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { value in
            if let value { Unmanaged<ScratchStack>.fromOpaque(value).release() }
        }
        return key
    }()
}
