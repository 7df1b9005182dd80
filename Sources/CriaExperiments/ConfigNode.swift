import CriaCore
import Foundation
import Yams

/// One entry of a YAML mapping, in file order.
public struct ConfigEntry: Equatable, Sendable {
    public var key: String
    public var value: ConfigNode
}

/// A YAML value with where it came from ("line 23", "--set"), so that every
/// validation error can name the key path and the line. Sweeps and `--set`
/// overrides edit this tree before it is decoded, so they are validated by
/// exactly the same code as the file.
public struct ConfigNode: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// The text of a scalar; `quoted` scalars are always strings.
        case scalar(String, quoted: Bool)
        case list([ConfigNode])
        case map([ConfigEntry])
    }

    public var kind: Kind
    public var location: String

    public init(_ kind: Kind, location: String) {
        self.kind = kind
        self.location = location
    }

    public static func scalar(_ text: String, quoted: Bool = false, location: String = "default") -> ConfigNode {
        ConfigNode(.scalar(text, quoted: quoted), location: location)
    }

    public static func map(_ entries: [(String, ConfigNode)], location: String = "default") -> ConfigNode {
        ConfigNode(.map(entries.map { ConfigEntry(key: $0.0, value: $0.1) }), location: location)
    }

    public static func list(_ items: [ConfigNode], location: String = "default") -> ConfigNode {
        ConfigNode(.list(items), location: location)
    }

    public var isNull: Bool {
        if case .scalar(let text, false) = kind { return ["", "~", "null", "Null", "NULL"].contains(text) }
        return false
    }

    public var scalarText: String? {
        if case .scalar(let text, _) = kind { return text }
        return nil
    }

    public var entries: [ConfigEntry]? {
        if case .map(let entries) = kind { return entries }
        return nil
    }

    public var items: [ConfigNode]? {
        if case .list(let items) = kind { return items }
        return nil
    }

    public subscript(key: String) -> ConfigNode? {
        entries?.first { $0.key == key }?.value
    }

    /// The same value with every location replaced (for `--set` values).
    func relocated(_ location: String) -> ConfigNode {
        var copy = self
        copy.location = location
        switch kind {
        case .scalar: break
        case .list(let items): copy.kind = .list(items.map { $0.relocated(location) })
        case .map(let entries): copy.kind = .map(entries.map { ConfigEntry(key: $0.key, value: $0.value.relocated(location)) })
        }
        return copy
    }
}

// MARK: - Parsing

extension ConfigNode {
    /// Parses YAML text; syntax errors name the line.
    public static func parse(_ text: String, source: String, location: ((Int) -> String)? = nil) throws -> ConfigNode {
        let where_ = location ?? { "line \($0)" }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw CriaError("\(source): \(describe(error, location: where_))")
        } catch {
            throw CriaError("\(source): invalid YAML: \(error)")
        }
        guard let node else { return ConfigNode(.map([]), location: where_(1)) }
        return try convert(node, source: source, location: where_)
    }

    static func describe(_ error: YamlError, location: (Int) -> String) -> String {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            let context = context.map { " (\($0.text) at \(location($0.mark.line)))" } ?? ""
            return "\(location(mark.line)): YAML syntax error: \(problem)\(context)"
        case let .reader(problem, _, _, _):
            return "YAML syntax error: \(problem)"
        default:
            return "YAML syntax error: \(error)"
        }
    }

    private static func convert(_ node: Node, source: String, location: (Int) -> String) throws -> ConfigNode {
        let here = location(node.mark?.line ?? 0)
        switch node {
        case .scalar(let scalar):
            let quoted = scalar.style != .plain && scalar.style != .any
            return ConfigNode(.scalar(scalar.string, quoted: quoted), location: here)
        case .sequence(let sequence):
            return ConfigNode(.list(try sequence.map { try convert($0, source: source, location: location) }), location: here)
        case .mapping(let mapping):
            var entries: [ConfigEntry] = []
            for (key, value) in mapping {
                let keyLine = location(key.mark?.line ?? 0)
                guard case .scalar(let scalar) = key else {
                    throw CriaError("\(source): \(keyLine): a mapping key must be a plain name")
                }
                if entries.contains(where: { $0.key == scalar.string }) {
                    throw CriaError("\(source): \(keyLine): duplicate key \(scalar.string)")
                }
                var converted = try convert(value, source: source, location: location)
                // An empty value (`key:`) has the key's line, not the next line's.
                if converted.isNull && converted.scalarText == "" { converted.location = keyLine }
                entries.append(ConfigEntry(key: scalar.string, value: converted))
            }
            return ConfigNode(.map(entries), location: here)
        }
    }
}

// MARK: - Key paths

/// A dotted key path such as `phases[1].fine_tune_at`.
public struct ConfigPath: Hashable, Sendable, CustomStringConvertible {
    public enum Component: Hashable, Sendable {
        case key(String)
        case index(Int)
    }

    public var components: [Component]

    public init(_ components: [Component]) { self.components = components }

    public init(parsing text: String) throws {
        var components: [Component] = []
        let characters = Array(text)
        var i = 0
        func isName(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" }
        while i < characters.count {
            let c = characters[i]
            if isName(c) {
                var name = ""
                while i < characters.count, isName(characters[i]) { name.append(characters[i]); i += 1 }
                components.append(.key(name))
            } else if c == "[" {
                guard let close = characters[i...].firstIndex(of: "]"), let index = Int(String(characters[(i + 1)..<close])), index >= 0 else {
                    throw CriaError("\(text): bad index in key path (write it as phases[1].lr)")
                }
                components.append(.index(index))
                i = close + 1
            } else if c == ".", !components.isEmpty, i + 1 < characters.count, isName(characters[i + 1]) {
                i += 1
            } else {
                throw CriaError("\(text): bad key path at \"\(c)\" (write it as phases[1].lr or augment.rotation)")
            }
        }
        guard case .key? = components.first else { throw CriaError("\(text): a key path starts with a key name") }
        self.components = components
    }

    public var description: String {
        var text = ""
        for component in components {
            switch component {
            case .key(let key): text += text.isEmpty ? key : ".\(key)"
            case .index(let index): text += "[\(index)]"
            }
        }
        return text
    }

    /// The last key name (`fine_tune_at` for `phases[1].fine_tune_at`), used in trial ids.
    public var lastKey: String {
        for component in components.reversed() { if case .key(let key) = component { return key } }
        return description
    }
}

extension ConfigNode {
    /// Sets the value at `path`, creating mappings on the way; list indices must exist.
    public mutating func set(_ path: ConfigPath, to value: ConfigNode) throws {
        try set(path.components[...], value, prefix: ConfigPath([]))
    }

    private mutating func set(_ rest: ArraySlice<ConfigPath.Component>, _ value: ConfigNode, prefix: ConfigPath) throws {
        guard let first = rest.first else { self = value; return }
        var here = prefix
        here.components.append(first)
        switch first {
        case .key(let key):
            if isNull { kind = .map([]) }
            guard case .map(var entries) = kind else {
                throw CriaError("\(here): \(location): \(prefix.components.isEmpty ? "the config" : prefix.description) is not a mapping")
            }
            if let position = entries.firstIndex(where: { $0.key == key }) {
                try entries[position].value.set(rest.dropFirst(), value, prefix: here)
            } else {
                var child = ConfigNode(.map([]), location: value.location)
                try child.set(rest.dropFirst(), value, prefix: here)
                entries.append(ConfigEntry(key: key, value: child))
            }
            kind = .map(entries)
        case .index(let index):
            guard case .list(var items) = kind else {
                throw CriaError("\(here): \(location): \(prefix) is not a list")
            }
            guard items.indices.contains(index) else {
                throw CriaError("\(here): \(value.location): \(prefix) has \(items.count) entries (indices start at 0)")
            }
            try items[index].set(rest.dropFirst(), value, prefix: here)
            kind = .list(items)
        }
    }

    /// Removes the key at `path` if present (to replace one of several exclusive keys).
    public mutating func remove(_ path: ConfigPath) {
        guard let last = path.components.last, case .key(let key) = last else { return }
        let parent = ConfigPath(Array(path.components.dropLast()))
        func edit(_ node: inout ConfigNode, _ rest: ArraySlice<ConfigPath.Component>) {
            guard let first = rest.first else {
                if case .map(let entries) = node.kind { node.kind = .map(entries.filter { $0.key != key }) }
                return
            }
            switch (first, node.kind) {
            case (.key(let name), .map(var entries)):
                if let position = entries.firstIndex(where: { $0.key == name }) {
                    edit(&entries[position].value, rest.dropFirst())
                    node.kind = .map(entries)
                }
            case (.index(let index), .list(var items)) where items.indices.contains(index):
                edit(&items[index], rest.dropFirst())
                node.kind = .list(items)
            default: break
            }
        }
        edit(&self, parent.components[...])
    }

    public func value(at path: ConfigPath) -> ConfigNode? {
        var node = self
        for component in path.components {
            switch component {
            case .key(let key): guard let next = node[key] else { return nil }; node = next
            case .index(let index): guard let items = node.items, items.indices.contains(index) else { return nil }; node = items[index]
            }
        }
        return node
    }
}
