/// Calls `body` with a pointer to the array's storage, or nil for a nil array:
/// kernels take optional bias and γ pointers, and Swift has no direct spelling for that.
public func withOptionalPointer<R>(_ array: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}

/// The mutable counterpart: a pointer into the array, or nil when there is none.
public func withOptionalMutablePointer<R>(_ array: inout [Float]?, _ body: (UnsafeMutablePointer<Float>?) -> R) -> R {
    guard array != nil else { return body(nil) }
    return array!.withUnsafeMutableBufferPointer { body($0.baseAddress) }
}
