import CriaCore
import Foundation

/// A dataset listed in a CSV file of `path,label` rows instead of class folders.
///
/// Paths are relative to the CSV's folder unless absolute. An optional header row
/// `path,label` is skipped. Labels may be class names or integers; classes are the
/// distinct labels sorted as Python sorts them (integers numerically). The rows then go
/// through Keras's shuffle and split exactly like a directory's file list.
public enum CSVDataset {
    public static func index(_ csv: URL, shuffle: Bool = true, seed: UInt32? = nil) throws -> FileIndex {
        let text: String
        do { text = try String(contentsOf: csv, encoding: .utf8) } catch {
            throw CriaError("\(csv.path): cannot read: \(error.localizedDescription)")
        }
        var rows: [(path: String, label: String)] = []
        for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let fields = try parse(String(trimmed), line: number + 1, name: csv.path)
            guard fields.count == 2 else {
                throw CriaError("\(csv.path):\(number + 1): expected 2 fields (path,label), found \(fields.count)")
            }
            if rows.isEmpty && number == 0 && fields[0].lowercased() == "path" && fields[1].lowercased() == "label" { continue }
            rows.append((fields[0], fields[1]))
        }
        guard !rows.isEmpty else { throw CriaError("\(csv.path): no rows") }
        let distinct = Array(Set(rows.map(\.label)))
        let numeric = distinct.allSatisfy { Int($0) != nil }
        let classNames = numeric ? distinct.sorted { Int($0)! < Int($1)! } : distinct.sorted(by: pythonLess)
        guard classNames.count >= 2 else {
            throw CriaError("\(csv.path): found \(classNames.count) label(s) \(classNames); a classifier needs at least 2")
        }
        let position = Dictionary(uniqueKeysWithValues: classNames.enumerated().map { ($1, $0) })
        var files = rows.map(\.path), labels = rows.map { position[$0.label]! }
        if shuffle {
            let seed = seed ?? UInt32.random(in: 0..<1_000_000)
            var a = NumpyRandomState(seed: seed), b = NumpyRandomState(seed: seed)
            a.shuffle(&files)
            b.shuffle(&labels)
        }
        return FileIndex(directory: csv.deletingLastPathComponent(), classNames: classNames, files: files, labels: labels)
    }

    /// Loads the CSV's images with the directory loader's options (class_names is ignored).
    public static func load(_ csv: URL, options: DirectoryDatasetOptions) throws -> ImageDataset {
        try DirectoryDataset.check(options)
        var index = try self.index(csv, shuffle: options.shuffle, seed: options.seed)
        var shuffle = options.shuffle
        let all = index  // both parts share one pixel cache file
        if let split = options.validationSplit {
            let parts = try DirectoryIndex.split(index, validationSplit: split)
            switch options.subset {
            case .validation?: index = parts.validation; shuffle = false
            case .training?: index = parts.training
            default: throw CriaError("CSVDataset.load takes subset training or validation")
            }
        }
        return try DirectoryDataset.materialise(index, options: options, shuffle: shuffle,
                                                role: options.subset == .validation ? "validation" : "training",
                                                cache: try DirectoryDataset.mappedPixels([all], options: options))
    }

    /// One CSV line: commas separate fields; double quotes protect commas and quote themselves ("").
    static func parse(_ line: String, line number: Int, name: String) throws -> [String] {
        var fields: [String] = [], field = "", quoted = false
        var characters = line.makeIterator()
        while let c = characters.next() {
            if quoted {
                if c == "\"" {
                    if let next = characters.next() {
                        if next == "\"" { field.append("\"") } else { quoted = false; if next == "," { fields.append(field); field = "" } else { field.append(next) } }
                    } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                fields.append(field); field = ""
            } else {
                field.append(c)
            }
        }
        if quoted { throw CriaError("\(name):\(number): unterminated quote") }
        fields.append(field)
        return fields.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}
