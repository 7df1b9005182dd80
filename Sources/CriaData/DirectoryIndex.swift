import CriaCore
import Foundation

/// Python's `sorted()` order for strings: by Unicode code point, never by locale
/// or by Swift's normalisation-aware `<`.
@inlinable func pythonLess(_ a: String, _ b: String) -> Bool {
    a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value }
}

/// The file list Keras's `index_directory` produces, in its order.
public struct FileIndex: Equatable, Sendable {
    /// The dataset root; `files` are relative to it, "class/name.jpg".
    public let directory: URL
    public let classNames: [String]
    public var files: [String]
    public var labels: [Int]

    public init(directory: URL, classNames: [String], files: [String], labels: [Int]) {
        precondition(files.count == labels.count)
        self.directory = directory
        self.classNames = classNames
        self.files = files
        self.labels = labels
    }

    public var count: Int { files.count }
    /// Absolute paths (possible in a CSV list) are kept; others are under `directory`.
    public func url(_ i: Int) -> URL {
        files[i].hasPrefix("/") ? URL(fileURLWithPath: files[i]) : directory.appendingPathComponent(files[i])
    }

    /// Files per class, in class order.
    public var classCounts: [Int] {
        var counts = [Int](repeating: 0, count: classNames.count)
        for label in labels where label < counts.count { counts[label] += 1 }
        return counts
    }

    public func subset(_ range: Range<Int>) -> FileIndex {
        FileIndex(directory: directory, classNames: classNames, files: Array(files[range]), labels: Array(labels[range]))
    }
}

/// `image_dataset_from_directory`'s `subset`.
public enum Subset: String, CaseIterable, Sendable {
    case training, validation, both
}

/// Keras 3's `keras/src/utils/dataset_utils.py` indexing and splitting, step for step.
public enum DirectoryIndex {
    /// `ALLOWLIST_FORMATS` of image_dataset_utils.py, matched case-insensitively on the name's end.
    public static let imageExtensions = [".bmp", ".gif", ".jpeg", ".jpg", ".png"]

    /// `index_directory(directory, labels="inferred", formats, class_names, shuffle, seed)`.
    ///
    /// - Classes: sorted entries of `directory` that are directories (symlinks followed) and
    ///   do not start with "."; or `classNames`, which must be a subset and keeps its order.
    /// - Files: each class folder walked recursively (`os.walk`: real subfolders only unless
    ///   `followLinks`), folders visited in sorted path order, names sorted within a folder,
    ///   hidden files included, kept when the lower-cased name ends in an allowed extension.
    /// - Shuffle: `RandomState(seed).shuffle(paths)` and, separately, the same for labels.
    ///   Keras draws `np.random.randint(1e6)` when seed is nil; Cria draws a random seed too.
    /// With `unlabeled` (Keras's `labels=None`) the whole tree is indexed from the root, class
    /// folders are not required, `classNames` is empty and every label is 0.
    public static func index(directory: URL, classNames: [String]? = nil, unlabeled: Bool = false, shuffle: Bool = true,
                             seed: UInt32? = nil, followLinks: Bool = false) throws -> FileIndex {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDirectory) else {
            throw CriaError("\(directory.path): directory does not exist")
        }
        guard isDirectory.boolValue else { throw CriaError("\(directory.path): not a directory") }
        let entries: [String]
        do { entries = try fm.contentsOfDirectory(atPath: directory.path) } catch {
            throw CriaError("\(directory.path): cannot list: \(error.localizedDescription)")
        }
        if unlabeled {
            if classNames != nil { throw CriaError("class_names cannot be given for an unlabeled dataset") }
            var files = try walk(directory, prefix: "", followLinks: followLinks)
            guard !files.isEmpty else { throw CriaError("\(directory.path): no images found (\(imageExtensions.joined(separator: " ")))") }
            if shuffle {
                var state = NumpyRandomState(seed: seed ?? UInt32.random(in: 0..<1_000_000))
                state.shuffle(&files)
            }
            return FileIndex(directory: directory, classNames: [], files: files, labels: [Int](repeating: 0, count: files.count))
        }
        var subdirectories = entries.sorted(by: pythonLess).filter { name in
            var isDir: ObjCBool = false
            return !name.hasPrefix(".")
                && fm.fileExists(atPath: directory.appendingPathComponent(name).path, isDirectory: &isDir) && isDir.boolValue
        }
        if let classNames {
            let missing = classNames.filter { !subdirectories.contains($0) }
            guard missing.isEmpty else {
                throw CriaError("\(directory.path): class_names \(missing) do not match the sub-folders; expected a subset of \(subdirectories)")
            }
            guard Set(classNames).count == classNames.count else {
                throw CriaError("\(directory.path): class_names \(classNames) contain duplicates")
            }
            subdirectories = classNames
        }
        guard subdirectories.count >= 2 else {
            throw CriaError("\(directory.path): found \(subdirectories.count) class folder(s) \(subdirectories); a classifier needs at least 2 sub-folders, one per class")
        }
        var files = [String]()
        var labels = [Int]()
        for (label, name) in subdirectories.enumerated() {
            let found = try walk(directory.appendingPathComponent(name), prefix: name, followLinks: followLinks)
            guard !found.isEmpty else {
                throw CriaError("\(directory.appendingPathComponent(name).path): class folder '\(name)' has no images (\(imageExtensions.joined(separator: " ")))")
            }
            files += found
            labels += [Int](repeating: label, count: found.count)
        }
        if shuffle {
            let seed = seed ?? UInt32.random(in: 0..<1_000_000)
            var paths = NumpyRandomState(seed: seed)
            paths.shuffle(&files)
            var labelState = NumpyRandomState(seed: seed)
            labelState.shuffle(&labels)
        }
        return FileIndex(directory: directory, classNames: subdirectories, files: files, labels: labels)
    }

    /// `iter_valid_files` for one class folder: relative paths "class/sub/name".
    static func walk(_ root: URL, prefix: String, followLinks: Bool) throws -> [String] {
        let fm = FileManager.default
        // (relative folder, file names) for every folder, like os.walk, then sorted by folder path.
        var folders: [(path: String, relative: String, files: [String])] = []
        var pending: [(URL, String)] = [(root, prefix)]
        var visited = Set<String>()
        while let (url, relative) = pending.popLast() {
            let resolved = url.resolvingSymlinksInPath().path
            if followLinks { if visited.contains(resolved) { continue }; visited.insert(resolved) }
            guard let names = try? fm.contentsOfDirectory(atPath: url.path) else {
                if relative == prefix { throw CriaError("\(url.path): cannot list class folder") }
                continue
            }
            var fileNames = [String]()
            for name in names {
                let child = url.appendingPathComponent(name)
                var isDir: ObjCBool = false
                // A broken symlink is a "file" to os.walk; it is listed and fails later to decode.
                if fm.fileExists(atPath: child.path, isDirectory: &isDir), isDir.boolValue {
                    let isLink = (try? fm.destinationOfSymbolicLink(atPath: child.path)) != nil
                    if !isLink || followLinks { pending.append((child, join(relative, name))) }
                } else {
                    fileNames.append(name)
                }
            }
            folders.append((url.path, relative, fileNames))
        }
        folders.sort { pythonLess($0.path, $1.path) }
        var result = [String]()
        for folder in folders {
            for name in folder.files.sorted(by: pythonLess) {
                let lower = name.lowercased()
                if imageExtensions.contains(where: { lower.hasSuffix($0) }) {
                    result.append(join(folder.relative, name))
                }
            }
        }
        return result
    }

    private static func join(_ folder: String, _ name: String) -> String {
        folder.isEmpty ? name : folder + "/" + name
    }

    /// `get_training_or_validation_split`: the last `int(validationSplit * n)` files validate.
    /// Python's `samples[:-0]` is empty, so a split that rounds to zero validation files leaves
    /// Keras with no training data; Cria reports that instead of training on nothing.
    public static func split(_ index: FileIndex, validationSplit: Double) throws -> (training: FileIndex, validation: FileIndex) {
        guard validationSplit > 0, validationSplit < 1 else {
            throw CriaError("validation_split must be between 0 and 1, got \(validationSplit)")
        }
        let validationCount = Int(validationSplit * Double(index.count))
        guard validationCount > 0 else {
            throw CriaError("\(index.directory.path): validation_split \(validationSplit) of \(index.count) files gives 0 validation files (Keras would then find no training images); use more files or a larger split")
        }
        let cut = index.count - validationCount
        return (index.subset(0..<cut), index.subset(cut..<index.count))
    }
}
