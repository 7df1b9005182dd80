import CriaCore
import Foundation

/// Global average and max pooling over the spatial axes of NHWC tensors.
public enum GlobalPooling {
    /// output[n, c] = mean over (h, w) of input[n, h, w, c]; summed in Double
    /// so the mean of 25 or 6400 pixels matches TensorFlow's float reduction closely.
    public static func averageForward(input: UnsafePointer<Float>, batch: Int, pixels: Int, channels: Int,
                                      output: UnsafeMutablePointer<Float>) {
        Threads.parallelFor(batch) { range in
            ScratchSpace.with(Double.self, count: channels) { sums in
            for n in range {
                for c in 0..<channels { sums[c] = 0 }
                let image = input + n * pixels * channels
                for p in 0..<pixels {
                    let pixel = image + p * channels
                    for c in 0..<channels { sums[c] += Double(pixel[c]) }
                }
                for c in 0..<channels { output[n * channels + c] = Float(sums[c] / Double(pixels)) }
            }
            }
        }
    }

    /// dInput[n, h, w, c] = dOutput[n, c] / pixels (overwrites).
    public static func averageBackward(outputGradient: UnsafePointer<Float>, batch: Int, pixels: Int, channels: Int,
                                       inputGradient: UnsafeMutablePointer<Float>) {
        let inverse = 1 / Float(pixels)
        for n in 0..<batch {
            for p in 0..<pixels {
                let target = inputGradient + (n * pixels + p) * channels
                for c in 0..<channels { target[c] = outputGradient[n * channels + c] * inverse }
            }
        }
    }

    public static func maxForward(input: UnsafePointer<Float>, batch: Int, pixels: Int, channels: Int,
                                  output: UnsafeMutablePointer<Float>) {
        for n in 0..<batch {
            let image = input + n * pixels * channels
            for c in 0..<channels { output[n * channels + c] = -.infinity }
            for p in 0..<pixels {
                for c in 0..<channels { output[n * channels + c] = max(output[n * channels + c], image[p * channels + c]) }
            }
        }
    }
}

/// Softmax and sigmoid over the last axis, as Keras's Dense activations compute them.
public enum Activations {
    public static func softmax(_ data: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        for row in 0..<rows {
            let line = data + row * columns
            var largest = -Float.infinity
            for c in 0..<columns { largest = max(largest, line[c]) }
            var sum: Float = 0
            for c in 0..<columns { line[c] = expf(line[c] - largest); sum += line[c] }
            for c in 0..<columns { line[c] /= sum }
        }
    }

    public static func sigmoid(_ data: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { data[i] = 1 / (1 + expf(-data[i])) }
    }
}

