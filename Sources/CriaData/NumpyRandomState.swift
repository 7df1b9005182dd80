/// numpy's legacy `np.random.RandomState`, far enough to reproduce `shuffle`.
///
/// Keras's `index_directory` shuffles paths and labels with `RandomState(seed).shuffle`,
/// so the training/validation split is only Keras's split if this stream is numpy's
/// bit for bit: MT19937 seeded by `init_genrand` (numpy's `mt19937_seed` for an integer
/// seed), and a Fisher–Yates walk from the end drawing with `random_interval`
/// (mask to the next power of two minus one, reject values above the bound).
public struct NumpyRandomState {
    private var state = [UInt32](repeating: 0, count: 624)
    private var position = 624

    /// `np.random.RandomState(seed)`; numpy accepts integer seeds in 0 ..< 2^32.
    public init(seed: UInt32) {
        var s = seed
        for i in 0..<624 {
            state[i] = s
            s = 1_812_433_253 &* (s ^ (s >> 30)) &+ UInt32(i + 1)
        }
    }

    private mutating func generate() {
        let upper: UInt32 = 0x8000_0000, lower: UInt32 = 0x7fff_ffff
        for i in 0..<624 {
            let y = (state[i] & upper) | (state[(i + 1) % 624] & lower)
            state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_b0df : 0)
        }
        position = 0
    }

    public mutating func nextUInt32() -> UInt32 {
        if position >= 624 { generate() }
        var y = state[position]
        position += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    public mutating func nextUInt64() -> UInt64 {
        let high = UInt64(nextUInt32())
        return high << 32 | UInt64(nextUInt32())
    }

    /// `random_sample()`: a double in [0, 1) with 53 random bits.
    public mutating func nextDouble() -> Double {
        let a = Double(nextUInt32() >> 5), b = Double(nextUInt32() >> 6)
        return (a * 67_108_864 + b) / 9_007_199_254_740_992
    }

    /// numpy's `random_interval(max)`: uniform in 0...max by masked rejection.
    public mutating func interval(_ max: UInt64) -> UInt64 {
        if max == 0 { return 0 }
        var mask = max
        mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4
        mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32
        if max <= 0xffff_ffff {
            while true {
                let value = UInt64(nextUInt32()) & mask
                if value <= max { return value }
            }
        }
        while true {
            let value = nextUInt64() & mask
            if value <= max { return value }
        }
    }

    /// `RandomState.shuffle(x)` for a list or a 1-D array (both take the same draws).
    public mutating func shuffle<T>(_ items: inout [T]) {
        var i = items.count - 1
        while i >= 1 {
            let j = Int(interval(UInt64(i)))
            items.swapAt(i, j)
            i -= 1
        }
    }
}
