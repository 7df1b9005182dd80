import CriaCore
@testable import CriaExperiments
import CriaTestSupport
import CriaTraining
import XCTest

/// The one table of config keys (`ConfigKeys.all`) against what uses it: the reference in
/// Experiments/README.md, the decoder's ranges and choices, and the resolved-config emitter.
final class ConfigKeysTests: XCTestCase {
    var readme: URL { Fixtures.repositoryRoot.appendingPathComponent("Experiments/README.md") }

    func testReferenceInExperimentsREADMEIsCurrent() throws {
        let text = try String(contentsOf: readme, encoding: .utf8)
        XCTAssertEqual(ConfigReference.markedSections(text), ConfigKeys.sections, "every section of ConfigKeys has a marked table")
        let updated = try ConfigReference.update(text)
        XCTAssertTrue(updated == text, "Experiments/README.md's config tables are stale: run `make config-reference` "
                      + "(cria config reference --update Experiments/README.md)")
        // The generated text is what the table says, e.g. the range of a phase's learning rate.
        XCTAssertTrue(text.contains("| `lr` | float in (0, 10] | `1e-3` | learning rate |"))
    }

    func testUpdateRewritesOnlyTheMarkedTables() throws {
        let text = "intro\n<!-- config-keys model.head -->\n| stale |\n<!-- /config-keys -->\noutro\n"
        let updated = try ConfigReference.update(text)
        XCTAssertEqual(updated, "intro\n<!-- config-keys model.head -->\n" + ConfigReference.table("model.head") + "<!-- /config-keys -->\noutro\n")
        XCTAssertEqual(try ConfigReference.update(updated), updated)
        XCTAssertThrowsError(try ConfigReference.update("<!-- config-keys nowhere -->\n<!-- /config-keys -->"))
        XCTAssertThrowsError(try ConfigReference.update("<!-- config-keys data -->\n| no end |\n"))
    }

    func testEveryKeyIsUniqueAndEveryChoiceDecodes() throws {
        var seen = Set<String>()
        for key in ConfigKeys.all { XCTAssertTrue(seen.insert("\(key.section)|\(key.key)").inserted, "\(key.section).\(key.key) twice") }
        XCTAssertEqual(ConfigKeys.entry("sweep", "metric").range, .choices(SweepSpec.metrics))
        XCTAssertEqual(ConfigKeys.entry("phases[].callbacks[] (early_stopping)", "monitor").range, .choices(EpochRecord.metricNames))
        // Every listed choice of a plain key decodes (no "must be one of" error at that key).
        for key in ConfigKeys.all {
            guard case .choices(let names) = key.range, let path = Self.overridePath(key) else { continue }
            for name in names {
                let message = errors(overrides: ["\(path)=\(name)"])
                XCTAssertFalse(message.contains("\(path): --set: must be one of"), "\(path)=\(name): \(message)")
            }
        }
    }

    /// Each integer and float range of the table is the decoder's: the bound itself passes and
    /// one step beyond it fails at that key, with the range in the message.
    func testEveryRangeIsTheDecodersRange() throws {
        var checked = 0
        for key in ConfigKeys.all {
            guard let path = Self.overridePath(key) else { continue }
            var inside: [String] = [], outside: [String] = []
            switch key.range {
            case .ints(let range):
                inside = [String(range.lowerBound)]
                outside = [String(range.lowerBound - 1)]
                if range.upperBound != .max { inside.append(String(range.upperBound)); outside.append(String(range.upperBound + 1)) }
            case let .floats(min, max, openMin, openMax):
                if let min {
                    if openMin { outside.append(ConfigFormat.number(min)) } else { inside.append(ConfigFormat.number(min)) }
                    outside.append(ConfigFormat.number(min - 1))
                }
                if let max {
                    if openMax { outside.append(ConfigFormat.number(max)) } else { inside.append(ConfigFormat.number(max)) }
                    outside.append(ConfigFormat.number(max + 1))
                }
            default: continue
            }
            if key.type == "size" { inside = inside.map { "[\($0), \($0)]" }; outside = outside.map { "[\($0), \($0)]" } }
            for value in inside {
                let message = errors(overrides: ["\(path)=\(value)"])
                XCTAssertFalse(message.contains("\(path)") && message.contains("must be"), "\(path)=\(value): \(message)")
            }
            for value in outside {
                XCTAssertTrue(errors(overrides: ["\(path)=\(value)"]).contains("\(path)"), "\(path)=\(value) was accepted")
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 25)
    }

    /// fine_tune_at's range is the base's layer count, read from the model, not a constant.
    func testFineTuneAtIsCheckedAgainstTheBase() throws {
        let base = BaseModelLayers.of(ModelSpec())
        XCTAssertEqual(base.count, 154)  // Keras's MobileNetV2(include_top=False): InputLayer ... out_relu
        XCTAssertEqual(base.names.first, "input_layer")
        XCTAssertEqual(base.names.last, "out_relu")
        XCTAssertTrue(errors(overrides: ["phases[1].fine_tune_at=155"]).contains("phases[1].fine_tune_at: --set: must be between 0 and 154, got 155"))
        XCTAssertEqual(errors(overrides: ["phases[1].fine_tune_at=154"]), "")
        let from = errors(overrides: ["phases[1].fine_tune_from=block_13_expnd"])
        XCTAssertTrue(from.contains("phases[1].fine_tune_from: --set: the base") && from.contains("did you mean block_13_expand?"), from)
        XCTAssertEqual(errors(overrides: ["phases[1].fine_tune_from=block_13_expand"]), "")
    }

    /// The emitter writes every key of the table (over a set of configs that between them use
    /// every variant), each section in the table's order, and its output decodes to the same config.
    func testResolvedConfigWritesEveryTableKey() throws {
        var emitted = [String: [[String]]]()
        func collect(_ node: ConfigNode, _ section: String) {
            guard let entries = node.entries else { return }
            emitted[section, default: []].append(entries.map(\.key))
            for entry in entries {
                switch (section, entry.key) {
                case ("", "phases"): for item in entry.value.items ?? [] { collect(item, "phases[]") }
                case ("phases[]", "optimizer"): collect(entry.value, "phases[].optimizer")
                case ("phases[]", "schedule"): if let name = entry.value["name"]?.scalarText { collect(entry.value, "phases[].schedule (\(name))") }
                case ("phases[]", "callbacks"):
                    for item in entry.value.items ?? [] { collect(item, "phases[].callbacks[] (\(item["type"]?.scalarText ?? ""))") }
                default: if entry.value.entries != nil { collect(entry.value, section.isEmpty ? entry.key : "\(section).\(entry.key)") }
                }
            }
        }
        let phases = """
            phases:
              - {name: a, trainable: none, schedule: {name: cosine, decay_steps: 10}, callbacks: [{type: early_stopping}, {type: reduce_lr_on_plateau}, {type: model_checkpoint}]}
              - {name: b, fine_tune_at: 120, schedule: {name: exponential, decay_steps: 10, decay_rate: 0.9}}
              - {name: c, fine_tune_from: block_13_expand, schedule: {name: step, boundaries: [5], values: [1e-3, 1e-4]}}
              - {name: d, type: linear_probe, schedule: {name: constant}}

            """
        let text = "data: {source: fashion_mnist}\n" + phases
        let config = try ExperimentConfig.decode(try ConfigNode.parse(text, source: "t.yaml"), source: "t.yaml", defaultName: "t")
        let tree = config.resolvedTree(criaVersion: "test", gitCommit: "abc")
        collect(tree, "")
        for section in ConfigKeys.sections {
            let keys = ConfigKeys.keys(in: section)
            let written = Set(emitted[section]?.flatMap { $0 } ?? [])
            // Not written: the sweep (a resolved config is one trial's), the preset name (the
            // preset's layers are written instead), and the name of `schedule: constant` (a scalar).
            let exempt: [String: Set<String>] = ["": ["sweep"], "sweep": Set(ConfigKeys.keys(in: "sweep")), "augment": ["preset"],
                                                 "phases[].schedule (constant)": ["name"]]
            let unwritten = Set(keys).subtracting(written).subtracting(exempt[section] ?? [])
            XCTAssertEqual(unwritten, [], "\(section): keys the emitter never writes")
            for order in emitted[section] ?? [] { XCTAssertEqual(order, keys.filter(order.contains), "\(section) out of the table's order") }
        }
        // And the resolved config reads back as the same config.
        let again = try ExperimentConfig.decode(try ConfigNode.parse(ConfigEmitter.yaml(tree), source: "resolved"), source: "resolved", defaultName: "t")
        XCTAssertEqual(again.phases, config.phases)
        XCTAssertEqual(again.data, { var d = config.data; d.seed = config.seed; return d }())
    }

    /// The table's defaults are the decoder's: a config that leaves every key out resolves each key
    /// whose documented default is a literal (`` `32` ``, `` `val_loss` ``) to that value.
    func testTheTablesDefaultsAreTheDecodersDefaults() throws {
        let text = """
            data: {source: fashion_mnist}
            phases:
              - {name: a, callbacks: [{type: early_stopping}, {type: reduce_lr_on_plateau}, {type: model_checkpoint}]}
              - {name: b, type: linear_probe, schedule: {name: cosine, decay_steps: 10}}
              - {name: c, schedule: {name: exponential, decay_steps: 10, decay_rate: 0.5}}

            """
        let config = try ExperimentConfig.decode(try ConfigNode.parse(text, source: "t.yaml"), source: "t.yaml", defaultName: "t")
        var values = [String: String]()
        func collect(_ node: ConfigNode, _ section: String) {
            for entry in node.entries ?? [] {
                let key = "\(section)|\(entry.key)"
                if values[key] == nil, let inline = ConfigEmitter.inline(entry.value) { values[key] = inline }
                switch (section, entry.key) {
                case ("", "phases"): for item in entry.value.items ?? [] { collect(item, "phases[]") }
                case ("phases[]", "optimizer"): collect(entry.value, "phases[].optimizer")
                case ("phases[]", "schedule"): if let name = entry.value["name"]?.scalarText { collect(entry.value, "phases[].schedule (\(name))") }
                case ("phases[]", "callbacks"):
                    for item in entry.value.items ?? [] { collect(item, "phases[].callbacks[] (\(item["type"]?.scalarText ?? ""))") }
                default: if entry.value.entries != nil { collect(entry.value, section.isEmpty ? entry.key : "\(section).\(entry.key)") }
                }
            }
        }
        collect(config.resolvedTree(criaVersion: "test", gitCommit: "abc"), "")
        var checked = 0
        for key in ConfigKeys.all {
            let text = key.defaultText
            guard text.hasPrefix("`"), text.hasSuffix("`"), text.dropFirst().dropLast().allSatisfy({ $0 != "`" }), text.count > 2 else { continue }
            let literal = String(text.dropFirst().dropLast())
            // Not literals: another key (`data.batch_size`), the environment, a pattern; and the keys this config sets.
            let reference = literal.hasPrefix("$") || literal.contains("<") || ConfigKeys.all.contains { $0.path == literal }
            guard !reference, !["data.source", "phases[].name"].contains(key.path) else { continue }
            guard let emitted = values["\(key.section)|\(key.key)"] else { continue }
            if let x = Double(literal), let y = ConfigReader.number(emitted) { XCTAssertEqual(x, y, "\(key.path)") } else {
                XCTAssertEqual(emitted, literal, "\(key.path): the table says \(text)")
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 45)
    }

    /// The real binary: `cria config reference` prints the tables and `--update` rewrites a file's.
    func testCLIConfigReference() throws {
        guard CLI.binary != nil else { throw Skip.missing("the cria binary is not built next to the tests") }
        let printed = try CLI.run(["config", "reference"])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        XCTAssertEqual(printed.stdout, ConfigReference.markdown())
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cria-reference-\(UUID().uuidString).md")
        defer { try? FileManager.default.removeItem(at: file) }
        try "# Keys\n<!-- config-keys sweep -->\nstale\n<!-- /config-keys -->\n".write(to: file, atomically: true, encoding: .utf8)
        let updated = try CLI.run(["config", "reference", "--update", file.path])
        XCTAssertEqual(updated.status, 0, updated.stderr)
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "# Keys\n<!-- config-keys sweep -->\n" + ConfigReference.table("sweep") + "<!-- /config-keys -->\n")
        let missing = try CLI.run(["config", "reference", "--update", "/nonexistent/README.md"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderr, "error: /nonexistent/README.md: cannot read\n")
    }

    // MARK: Helpers

    let base = """
        data:
          directory: /tmp/none
          image_size: [32, 32]
        phases:
          - name: frozen
            trainable: none
          - name: fine_tune
            fine_tune_at: 120

        """

    /// A `--set` path for a key of a plain (non-variant) section; nil for keys that need a context.
    static func overridePath(_ key: ConfigKey) -> String? {
        guard !key.section.contains(" ") else { return nil }
        if key.section == "phases[]" {
            return ["fine_tune_at", "fine_tune_from", "optimizer"].contains(key.key) ? nil : "phases[1].\(key.key)"
        }
        if key.section == "phases[].optimizer" { return "phases[1].optimizer.\(key.key)" }
        if key.section == "sweep" || key.section == "cria" || key.type == "mapping" || key.key == "fold" { return nil }
        return key.section.isEmpty ? key.key : "\(key.section).\(key.key)"
    }

    /// The decoder's errors for the base config with `overrides`, "" when it decodes.
    func errors(overrides: [String]) -> String {
        do {
            var tree = try ConfigNode.parse(base, source: "test.yaml")
            tree = try ExperimentConfig.applyOverrides(overrides, to: tree)
            _ = try ExperimentConfig.decode(tree, source: "test.yaml", defaultName: "test")
            return ""
        } catch {
            return "\(error)"
        }
    }
}
