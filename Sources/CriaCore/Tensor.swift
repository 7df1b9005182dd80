/// A dense float32 tensor in row-major order. Images and activations are NHWC.
///
/// Storage is a Swift array, so copies are copy-on-write. Kernels never see a
/// `Tensor`: they take unsafe pointers plus explicit shapes, so that the hot
/// path has no hidden allocation or bounds checks.
public struct Tensor: Equatable, Sendable {
    public private(set) var shape: [Int]
    public var scalars: [Float]

    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.reduce(1, *) == scalars.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) scalars, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }

    /// The same scalars under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, scalars: scalars)
    }

    public mutating func reshape(_ newShape: [Int]) {
        precondition(newShape.reduce(1, *) == scalars.count, "cannot reshape \(shape) to \(newShape)")
        shape = newShape
    }

    /// Largest absolute value, the scale that parity tolerances are relative to.
    public var maxMagnitude: Float {
        scalars.reduce(0) { max($0, abs($1)) }
    }

    /// The `index`-th slice along the first axis (one image of a batch).
    public func slice(_ index: Int) -> Tensor {
        let inner = Array(shape.dropFirst())
        let n = inner.reduce(1, *)
        return Tensor(shape: inner, scalars: Array(scalars[index * n ..< (index + 1) * n]))
    }

    /// Stacks equally shaped tensors along a new leading axis.
    public static func stack(_ items: [Tensor]) -> Tensor {
        guard let first = items.first else { return Tensor(zeros: [0]) }
        var all = [Float]()
        all.reserveCapacity(first.count * items.count)
        for item in items {
            precondition(item.shape == first.shape, "stack: shapes \(item.shape) and \(first.shape) differ")
            all.append(contentsOf: item.scalars)
        }
        return Tensor(shape: [items.count] + first.shape, scalars: all)
    }
}

public func describeShape(_ shape: [Int]) -> String {
    "(" + shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
}
