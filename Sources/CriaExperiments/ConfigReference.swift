import CriaCore
import Foundation

/// The reference tables of `Experiments/README.md`, generated from `ConfigKeys.all`.
///
/// Each table sits between `<!-- config-keys SECTION -->` and `<!-- /config-keys -->`, so the
/// prose around the tables stays hand-written; `cria config reference --update FILE` rewrites
/// the tables and `ConfigReferenceTests` fails when the committed text differs.
public enum ConfigReference {
    public static let endMarker = "<!-- /config-keys -->"
    public static func startMarker(_ section: String) -> String { "<!-- config-keys \(section.isEmpty ? "top" : section) -->" }

    /// The markdown table of one section.
    public static func table(_ section: String) -> String {
        var lines = ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
        for key in ConfigKeys.all where key.section == section {
            let cells = ["`\(key.key)`", typeText(key), key.defaultText.isEmpty ? "—" : key.defaultText, key.doc]
            lines.append("| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\\\\|", with: "\\|") }
                .joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Every section's table under a heading naming it, for `cria config reference`.
    public static func markdown() -> String {
        ConfigKeys.sections.map { section in
            "#### `\(section.isEmpty ? "top level" : section)`\n\n" + table(section)
        }.joined(separator: "\n")
    }

    /// The type column: the type with its range (`int ≥ 1`, `float in (0, 1)`, `` `grid` | `random` ``).
    public static func typeText(_ key: ConfigKey) -> String {
        func number(_ value: Double) -> String { ConfigFormat.number(value) }
        switch key.range {
        case .any: return key.type
        case .ints(let range):
            let bounds = range.upperBound == .max ? "≥ \(range.lowerBound)" : "in [\(range.lowerBound), \(range.upperBound)]"
            switch key.type {
            case "size": return "size, each side \(bounds)"
            case "int": return "int \(bounds)"
            default: return "\(key.type), each \(bounds)"
            }
        case let .floats(min, max, openMin, openMax):
            let bounds: String
            switch (min, max) {
            case let (low?, high?): bounds = "in \(openMin ? "(" : "[")\(number(low)), \(number(high))\(openMax ? ")" : "]")"
            case let (low?, nil): bounds = "\(openMin ? ">" : "≥") \(number(low))"
            case let (nil, high?): bounds = "\(openMax ? "<" : "≤") \(number(high))"
            case (nil, nil): bounds = ""
            }
            return key.type == "float" ? "float \(bounds)" : "\(key.type), each \(bounds)"
        case .choices(let names):
            let list = names.map { "`\($0)`" }.joined(separator: " | ")
            return key.type == "choice" ? list : key.type.replacingOccurrences(of: "choice", with: list)
        case .baseLayers:
            return "int 0…the base's layer count (154 in Keras's MobileNetV2), or `none`"
        case .baseLayerName:
            return "a layer name of the base"
        }
    }

    /// `text` with every marked table replaced by the current one; throws on a marker without its end.
    public static func update(_ text: String) throws -> String {
        var out = ""
        var rest = Substring(text)
        while let start = rest.range(of: "<!-- config-keys ") {
            guard let close = rest[start.upperBound...].range(of: " -->") else { throw CriaError("unterminated config-keys marker") }
            let name = String(rest[start.upperBound..<close.lowerBound])
            let section = name == "top" ? "" : name
            guard ConfigKeys.sections.contains(section) else { throw CriaError("config-keys marker names no section: \(name)") }
            guard let end = rest[close.upperBound...].range(of: endMarker) else { throw CriaError("config-keys \(name): no \(endMarker)") }
            out += rest[..<close.upperBound] + "\n" + table(section)
            out += endMarker
            rest = rest[end.upperBound...]
        }
        return out + rest
    }

    /// The sections that have a marked table in `text`.
    public static func markedSections(_ text: String) -> [String] {
        ConfigKeys.sections.filter { text.contains(startMarker($0)) }
    }
}
