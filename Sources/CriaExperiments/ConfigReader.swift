import CriaCore
import Foundation

/// Collects validation errors while a config is decoded, so that one run of
/// `cria validate` lists every problem, each as `key.path: line N: message`.
final class ConfigReader {
    private(set) var errors: [String] = []

    func fail(_ path: String, _ node: ConfigNode, _ message: String) {
        errors.append("\(path): \(node.location): \(message)")
    }

    func add(_ message: String) { errors.append(message) }

    func failMissing(_ path: String, _ parent: ConfigNode, _ message: String) {
        errors.append("\(path): \(parent.location): \(message)")
    }

    func check(source: String) throws {
        guard !errors.isEmpty else { return }
        let count = errors.count == 1 ? "" : " (\(errors.count) errors)"
        throw CriaError("\(source): invalid config\(count):\n  " + errors.joined(separator: "\n  "))
    }

    // MARK: Scalars

    func int(_ node: ConfigNode, _ path: String, range: ClosedRange<Int>? = nil) -> Int? {
        guard case .scalar(let text, false) = node.kind, let value = Int(text.replacingOccurrences(of: "_", with: "")) else {
            fail(path, node, "must be an integer, got \(show(node))")
            return nil
        }
        if let range, !range.contains(value) {
            fail(path, node, range.upperBound == .max ? "must be at least \(range.lowerBound), got \(value)"
                 : "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
            return nil
        }
        return value
    }

    /// A number; `open` excludes the bounds (a learning rate must be above 0).
    func double(_ node: ConfigNode, _ path: String, min: Double? = nil, max: Double? = nil, openMin: Bool = false,
                openMax: Bool = false) -> Double? {
        guard case .scalar(let text, false) = node.kind, let value = Self.number(text) else {
            fail(path, node, "must be a number, got \(show(node))")
            return nil
        }
        let low = min.map { openMin ? value > $0 : value >= $0 } ?? true
        let high = max.map { openMax ? value < $0 : value <= $0 } ?? true
        if !(low && high) || !value.isFinite {
            let lower = min.map { "\(openMin ? "above" : "at least") \(format($0))" }
            let upper = max.map { "\(openMax ? "below" : "at most") \(format($0))" }
            if let min, let max, !openMin, !openMax {
                fail(path, node, "must be between \(format(min)) and \(format(max)), got \(format(value))")
            } else {
                fail(path, node, "must be \([lower, upper].compactMap { $0 }.joined(separator: " and ")), got \(format(value))")
            }
            return nil
        }
        return value
    }

    /// YAML 1.1 reads `1e-4` as a string; configs mean a number, so any plain float literal is one.
    static func number(_ text: String) -> Double? {
        let cleaned = text.replacingOccurrences(of: "_", with: "")
        guard !cleaned.isEmpty, cleaned.first != "." || cleaned.count > 1,
              cleaned.allSatisfy({ $0.isNumber || "+-.eE".contains($0) }) else { return nil }
        return Double(cleaned)
    }

    func bool(_ node: ConfigNode, _ path: String) -> Bool? {
        if case .scalar(let text, false) = node.kind {
            if ["true", "True", "TRUE", "yes"].contains(text) { return true }
            if ["false", "False", "FALSE", "no"].contains(text) { return false }
        }
        fail(path, node, "must be true or false, got \(show(node))")
        return nil
    }

    func string(_ node: ConfigNode, _ path: String) -> String? {
        guard case .scalar(let text, _) = node.kind, !node.isNull else {
            fail(path, node, "must be a string, got \(show(node))")
            return nil
        }
        return text
    }

    func choice<T: RawRepresentable & CaseIterable>(_ node: ConfigNode, _ path: String, _ type: T.Type) -> T? where T.RawValue == String {
        choice(node, path, type, names: T.allCases.map(\.rawValue))
    }

    func choice<T: RawRepresentable>(_ node: ConfigNode, _ path: String, _ type: T.Type, names: [String]) -> T? where T.RawValue == String {
        guard case .scalar(let text, _) = node.kind, let value = T(rawValue: text) else {
            let suggestion = node.scalarText.flatMap { closest($0, among: names) }.map { " (did you mean \($0)?)" } ?? ""
            fail(path, node, "must be one of \(names.joined(separator: ", ")), got \(show(node))\(suggestion)")
            return nil
        }
        return value
    }

    /// `[h, w]` or a single number for a square size, each side in `range` (the table's).
    func size(_ node: ConfigNode, _ path: String, range: ClosedRange<Int>?) -> [Int]? {
        if let items = node.items {
            guard items.count == 2 else { fail(path, node, "must be [height, width] or one number"); return nil }
            let values = items.enumerated().compactMap { int($1, "\(path)[\($0)]", range: range) }
            return values.count == 2 ? values : nil
        }
        return int(node, path, range: range).map { [$0, $0] }
    }

    func list(_ node: ConfigNode, _ path: String) -> [ConfigNode]? {
        guard let items = node.items else {
            fail(path, node, "must be a list, got \(show(node))")
            return nil
        }
        return items
    }

    func show(_ node: ConfigNode) -> String {
        switch node.kind {
        case .scalar(let text, let quoted): return node.isNull ? "null" : (quoted ? "\"\(text)\"" : text)
        case .list: return "a list"
        case .map: return "a mapping"
        }
    }

    func format(_ value: Double) -> String { ConfigFormat.number(value) }
}

extension ConfigReader {
    /// A number within a table range (`ConfigKeys`).
    func double(_ node: ConfigNode, _ path: String, _ range: ConfigRange) -> Double? {
        if case let .floats(min, max, openMin, openMax) = range { return double(node, path, min: min, max: max, openMin: openMin, openMax: openMax) }
        return double(node, path)
    }

    /// An integer within a table range (`ConfigKeys`).
    func int(_ node: ConfigNode, _ path: String, _ range: ConfigRange) -> Int? {
        int(node, path, range: range.intRange)
    }
}

extension ConfigRange {
    var intRange: ClosedRange<Int>? { if case .ints(let range) = self { return range }; return nil }
    var choices: [String]? { if case .choices(let names) = self { return names }; return nil }
}

/// A mapping being decoded: unknown keys are errors with a "did you mean". A reader of a
/// `ConfigKeys` section takes its known keys and every key's range from the table.
struct MapReader {
    let reader: ConfigReader
    let path: String
    let node: ConfigNode
    let entries: [ConfigEntry]
    /// The `ConfigKeys` section (`data`, `phases[]`), nil for mappings the table does not describe.
    let section: String?

    /// Nil (and an error) when `node` is not a mapping.
    init?(_ reader: ConfigReader, _ path: String, _ node: ConfigNode, section: String) {
        self.init(reader, path, node, keys: ConfigKeys.keys(in: section), section: section)
    }

    /// Nil (and an error) when `node` is not a mapping.
    init?(_ reader: ConfigReader, _ path: String, _ node: ConfigNode, keys: [String], section: String? = nil) {
        self.section = section
        guard let entries = node.entries else {
            reader.fail(path.isEmpty ? "config" : path, node, node.isNull ? "must be a mapping, got nothing" : "must be a mapping, got \(reader.show(node))")
            return nil
        }
        self.reader = reader
        self.path = path
        self.node = node
        self.entries = entries
        for entry in entries where !keys.contains(entry.key) {
            let suggestion = closest(entry.key, among: keys).map { " (did you mean \($0)?)" } ?? ""
            reader.fail(child(entry.key), entry.value, "unknown key\(suggestion); known keys: \(keys.joined(separator: ", "))")
        }
    }

    func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The table's range of `key` (`.any` outside the table).
    func range(_ key: String) -> ConfigRange { section.map { ConfigKeys.entry($0, key).range } ?? .any }

    /// An integer in the table's range, or `fallback` when absent.
    func int(_ key: String, _ fallback: Int) -> Int {
        self[key].flatMap { reader.int($0, child(key), range(key)) } ?? fallback
    }

    func optionalInt(_ key: String) -> Int? {
        self[key].flatMap { reader.int($0, child(key), range(key)) }
    }

    /// A number in the table's range, or `fallback` when absent.
    func double(_ key: String, _ fallback: Double) -> Double {
        self[key].flatMap { reader.double($0, child(key), range(key)) } ?? fallback
    }

    /// One of the table's choices, each the raw value of a `T`.
    func choice<T: RawRepresentable>(_ key: String, _ fallback: T) -> T where T.RawValue == String {
        guard let names = range(key).choices else { preconditionFailure("\(child(key)) has no choices in ConfigKeys") }
        return self[key].flatMap { reader.choice($0, child(key), T.self, names: names) } ?? fallback
    }

    /// The value at `key`, nil when absent or null.
    subscript(key: String) -> ConfigNode? {
        guard let value = entries.first(where: { $0.key == key })?.value, !value.isNull else { return nil }
        return value
    }

    func has(_ key: String) -> Bool { self[key] != nil }

    func bool(_ key: String, _ fallback: Bool) -> Bool {
        self[key].flatMap { reader.bool($0, child(key)) } ?? fallback
    }

    func string(_ key: String) -> String? {
        self[key].flatMap { reader.string($0, child(key)) }
    }

    func required(_ key: String, _ what: String) -> ConfigNode? {
        guard let value = self[key] else {
            reader.failMissing(child(key), node, "required: \(what)")
            return nil
        }
        return value
    }
}

/// The closest name by edit distance, when it is close enough to be a likely typo.
func closest(_ word: String, among candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    let allowed = max(2, word.count / 3)
    if best.1 <= allowed { return best.0 }
    return candidates.first { $0.hasPrefix(word) || word.hasPrefix($0) }
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + [Int](repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}

/// Number formatting shared by configs, trial ids and summaries: short and exact enough to read back.
enum ConfigFormat {
    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
        let magnitude = abs(value)
        if magnitude < 1e-2 || magnitude >= 1e6 {
            // 1.00000e-04 → 1e-4: up to 6 significant digits, no padding.
            let text = String(format: "%.5e", value)
            guard let e = text.firstIndex(of: "e") else { return text }
            var mantissa = String(text[..<e])
            while mantissa.hasSuffix("0") { mantissa.removeLast() }
            if mantissa.hasSuffix(".") { mantissa.removeLast() }
            let exponent = text[text.index(after: e)...]
            let sign = exponent.hasPrefix("-") ? "-" : ""
            let digits = exponent.drop { $0 == "-" || $0 == "+" || $0 == "0" }
            return "\(mantissa)e\(sign)\(digits.isEmpty ? "0" : String(digits))"
        }
        return String(format: "%.6g", value)
    }
}
