import CriaCore

/// The elementwise passes of training: gradient masks, gradient sums, and
/// Keras `ZeroPadding2D`. Each is split across threads by position, and every
/// value is computed by the same formula on any thread, so the bits do not
/// depend on `Threads.count`.
public enum Elementwise {
    /// Chunks of at least this many values are worth a thread hop.
    static let minimumPerChunk = 32_768

    /// Zeroes `gradient[i]` where the activation's output is at or below `lower`
    /// or (when given) at or above `upper`: the derivative of ReLU and ReLU6
    /// written in terms of the output, as TF's ReluGrad and Relu6Grad.
    public static func maskOutsideOpenRange(_ gradient: UnsafeMutablePointer<Float>, output: UnsafePointer<Float>, count: Int,
                                            lower: Float, upper: Float?) {
        Threads.parallelFor(count, minimumPerChunk: minimumPerChunk) { range in
            if let upper {
                for i in range where output[i] <= lower || output[i] >= upper { gradient[i] = 0 }
            } else {
                for i in range where output[i] <= lower { gradient[i] = 0 }
            }
        }
    }

    /// `target[i] += addend[i]`.
    public static func add(_ addend: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int) {
        Threads.parallelFor(count, minimumPerChunk: minimumPerChunk) { range in
            for i in range { target[i] += addend[i] }
        }
    }

    /// Column sums of a (rows × columns) matrix in Double, in row order, rounded once into `sums`:
    /// the bias gradient of a 1×1 convolution or a Dense layer.
    public static func columnSums(_ values: UnsafePointer<Float>, rows: Int, columns: Int, into sums: UnsafeMutablePointer<Float>) {
        ScratchSpace.withZeroed(Double.self, count: columns) { total in
            for r in 0..<rows { for c in 0..<columns { total[c] += Double(values[r * columns + c]) } }
            for c in 0..<columns { sums[c] = Float(total[c]) }
        }
    }
}

/// Keras `ZeroPadding2D` over NHWC buffers: `top` rows and `left` columns of
/// zeros before the image, the rest after (the output shape says how many).
public enum ZeroPadding {
    /// Overwrites all of `output` (batch, outputHeight, outputWidth, channels).
    public static func forward(input: UnsafePointer<Float>, batch: Int, height: Int, width: Int, channels: Int,
                               top: Int, left: Int, outputHeight: Int, outputWidth: Int, output: UnsafeMutablePointer<Float>) {
        let rowCount = outputWidth * channels
        Threads.parallelFor(batch * outputHeight, minimumPerChunk: max(1, Elementwise.minimumPerChunk / max(1, rowCount))) { range in
            for row in range {
                let n = row / outputHeight, y = row % outputHeight - top
                let target = output + row * rowCount
                guard y >= 0 && y < height else {
                    target.update(repeating: 0, count: rowCount)
                    continue
                }
                target.update(repeating: 0, count: left * channels)
                (target + left * channels).update(from: input + (n * height + y) * width * channels, count: width * channels)
                let after = (left + width) * channels
                (target + after).update(repeating: 0, count: rowCount - after)
            }
        }
    }

    /// Overwrites `inputGradient` (batch, height, width, channels) with the interior of `outputGradient`.
    public static func backward(outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int, channels: Int,
                                top: Int, left: Int, outputHeight: Int, outputWidth: Int,
                                inputGradient: UnsafeMutablePointer<Float>) {
        let rowCount = width * channels
        Threads.parallelFor(batch * height, minimumPerChunk: max(1, Elementwise.minimumPerChunk / max(1, rowCount))) { range in
            for row in range {
                let n = row / height, y = row % height
                (inputGradient + row * rowCount).update(from: outputGradient + ((n * outputHeight + y + top) * outputWidth + left) * channels,
                                                        count: rowCount)
            }
        }
    }
}
