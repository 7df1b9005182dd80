/// An error whose description is the single line the CLI prints.
///
/// Library code throws it with a message that names the file, layer, key or
/// line involved, so that no caller has to add context to make it useful.
public struct CriaError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
