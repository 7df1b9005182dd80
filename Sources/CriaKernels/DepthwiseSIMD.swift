// Small SIMD helpers shared by the depthwise and Conv2D kernels.
//
// `madd` is deliberately a separate multiply and add, not `addingProduct`:
// unless the module is compiled for a CPU with FMA (`-target-cpu haswell` or
// newer), Swift lowers `addingProduct` to one libm `fmaf` call per lane, which
// is about ten times slower. Zen 2 issues adds and multiplies on different
// pipes, so the unfused form costs little even when FMA is available.
// Every path (vector and scalar tail) uses the same operation, so a value
// does not depend on which path computed it.

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

@inline(__always)
func madd(_ acc: SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
    acc + a * b
}

@inline(__always)
func madd(_ acc: Float, _ a: Float, _ b: Float) -> Float {
    acc + a * b
}

// Not `pointwiseMin`/`pointwiseMax`: those stay out-of-line generic calls with
// per-lane branches (a third of the forward time on ReLU6). Compare-and-replace
// lowers to maxps/minps and, like the scalar `min(max(x, lower), upper)`, lets NaN through.
@inline(__always)
func clamp8(_ v: SIMD8<Float>, _ lower: SIMD8<Float>, _ upper: SIMD8<Float>) -> SIMD8<Float> {
    let r = v.replacing(with: lower, where: v .< lower)
    return r.replacing(with: upper, where: r .> upper)
}

extension Clamp {
    @inline(__always)
    func apply8(_ v: SIMD8<Float>) -> SIMD8<Float> {
        clamp8(v, SIMD8(repeating: lower), SIMD8(repeating: upper))
    }
}

/// Floor division that is also right for negative numerators (negative pads).
@inline(__always)
func floorDiv(_ a: Int, _ b: Int) -> Int {
    a >= 0 ? a / b : -((-a + b - 1) / b)
}

@inline(__always)
func ceilDiv(_ a: Int, _ b: Int) -> Int {
    -floorDiv(-a, b)
}

/// The output positions along one axis whose whole kernel window lies inside
/// the input, so they can skip bounds checks. Pads may be negative (cropping).
@inline(__always)
func interiorRange(input: Int, kernel: Int, stride: Int, pad: Int, output: Int) -> Range<Int> {
    let low = min(output, max(0, ceilDiv(pad, stride)))
    let high = max(low, min(output, floorDiv(input - kernel + pad, stride) + 1))
    return low..<high
}

/// The kernel taps `k` for which `origin + k` lies in `0..<size`.
@inline(__always)
func validTaps(origin: Int, kernel: Int, size: Int) -> Range<Int> {
    let low = max(0, -origin)
    let high = max(low, min(kernel, size - origin))
    return low..<high
}

/// target[i] += source[i], the flush of per-row partial sums into a gradient.
@inline(__always)
func accumulate(_ source: UnsafeMutablePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count { store8(load8(target + i) + load8(source + i), target + i); i += 8 }
    while i < count { target[i] += source[i]; i += 1 }
}

/// Channels per block for a gradient loop whose row sums need `rows` floats
/// per channel: as wide as possible (longer contiguous reads) while the sums
/// stay within 20 KB of the 32 KB L1. A multiple of 8, so SIMD groups never
/// straddle blocks and no value depends on the blocking.
func gradientBlock(channels count: Int, rows: Int) -> Int {
    let fit = max(8, (20 * 1024 / 4 / max(1, rows)) & ~7)
    let blocks = max(1, (count + fit - 1) / fit)
    return ((count + blocks - 1) / blocks + 7) & ~7
}

@inline(__always)
func loadDoubles4(_ p: UnsafePointer<Double>) -> SIMD4<Double> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Double>.self)
}

@inline(__always)
func loadDoubles4(_ p: UnsafeMutablePointer<Double>) -> SIMD4<Double> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Double>.self)
}

@inline(__always)
func storeDoubles4(_ v: SIMD4<Double>, _ p: UnsafeMutablePointer<Double>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Double>.self)
}
