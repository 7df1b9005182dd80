import CriaCore
import CriaKernels
import XCTest

/// The 1×1 GEMM of the inference executor: bias, clamp and residual folded
/// around one sgemm, whole or on slices of output channels.
final class BandGemmTests: XCTestCase {
    private struct Shape { var rows, k, n: Int }
    private let shapes = [Shape(rows: 1, k: 1, n: 1), Shape(rows: 25, k: 17, n: 23),
                          Shape(rows: 100, k: 96, n: 576), Shape(rows: 25, k: 960, n: 160), Shape(rows: 7, k: 0, n: 9)]

    private func reference(_ s: Shape, input: [Float], kernel: [Float], bias: [Float], clamp: Clamp,
                           residual: [Float]?) -> [Float] {
        var output = [Float](repeating: 0, count: s.rows * s.n)
        for r in 0..<s.rows {
            for j in 0..<s.n {
                var sum = Double(bias[j])
                for i in 0..<s.k { sum += Double(input[r * s.k + i]) * Double(kernel[i * s.n + j]) }
                output[r * s.n + j] = clamp.apply(Float(sum)) + (residual?[r * s.n + j] ?? 0)
            }
        }
        return output
    }

    private func gemm(_ s: Shape, input: [Float], kernel: [Float], bias: [Float], clamp: Clamp, residual: [Float]?,
                      slices: [Int]) -> [Float] {
        var output = [Float](repeating: .nan, count: s.rows * s.n)
        input.withUnsafeBufferPointer { x in
            kernel.withUnsafeBufferPointer { w in
                bias.withUnsafeBufferPointer { b in
                    (residual ?? []).withUnsafeBufferPointer { r in
                        output.withUnsafeMutableBufferPointer { o in
                            let add = residual == nil ? nil : r.baseAddress
                            for (lower, upper) in zip(slices, slices.dropFirst()) where upper > lower {
                                BandKernels.gemm(input: x.baseAddress!, rows: s.rows, inputChannels: s.k,
                                                 kernel: w.baseAddress! + lower, kernelStride: s.n,
                                                 outputChannels: upper - lower, bias: b.baseAddress! + lower,
                                                 clamp: clamp, residual: add.map { $0 + lower },
                                                 output: o.baseAddress! + lower, outputStride: s.n)
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    func testMatchesReferenceWholeAndInSlices() {
        var random = TestRandom(seed: 5)
        for s in shapes {
            let input = random.tensor([s.rows, s.k], scale: 2).scalars
            let kernel = random.tensor([s.k, s.n]).scalars
            let bias = random.tensor([s.n]).scalars
            let residual = random.tensor([s.rows, s.n]).scalars
            for (clamp, add) in [(Clamp.relu6, nil), (Clamp.none, residual), (Clamp.relu6, residual)] as [(Clamp, [Float]?)] {
                let whole = gemm(s, input: input, kernel: kernel, bias: bias, clamp: clamp, residual: add, slices: [0, s.n])
                let expected = reference(s, input: input, kernel: kernel, bias: bias, clamp: clamp, residual: add)
                for i in 0..<whole.count {
                    XCTAssertEqual(whole[i], expected[i], accuracy: 1e-5 * Float(max(1, s.k)).squareRoot() * 4,
                                   "\(s) clamp \(clamp.upper) residual \(add != nil) at \(i)")
                }
                // OpenBLAS's edge tiles may round a sliced column differently: the slices agree to rounding.
                for slices in [[0, (s.n / 2) & ~7, s.n], [0, 8 * (s.n / 24), 8 * (s.n / 12), s.n]] {
                    let sliced = gemm(s, input: input, kernel: kernel, bias: bias, clamp: clamp, residual: add, slices: slices)
                    for i in 0..<whole.count {
                        XCTAssertEqual(sliced[i], whole[i], accuracy: 2e-6 * Float(max(1, s.k)).squareRoot() * 4,
                                       "\(s) slices \(slices) at \(i)")
                    }
                }
            }
        }
    }
}
