import CriaTestSupport
import XCTest

/// `cria compare` end to end on hand-written trial summaries: paired verdicts, a reference
/// file with its config chosen, the export in the reference's format, and one-line errors.
final class CompareCommandTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cria-compare-\(UUID().uuidString)")
        // 4 folds × 2 seeds, frozen only and fine_tune_at=120; fine-tuning adds 5 points (± 0.5) on every fold.
        for depth in ["none", "120"] {
            for fold in 0..<4 {
                for seed in 1...2 {
                    let id = "fine_tune_at=\(depth),seed=\(seed),fold=\(fold)"
                    let frozen = 0.85 + 0.03 * Double(fold)
                    let accuracy = depth == "none" ? frozen : frozen + 0.05 + 0.005 * Double(seed == 1 ? 1 : -1)
                    let directory = root.appendingPathComponent("cv").appendingPathComponent(id)
                    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                    let parameters = depth == "none" ? #"{"phases[1].fine_tune_at": null}"# : #"{"phases[1].fine_tune_at": 120}"#
                    let phases = #"[{"name": "frozen", "epochs": 5, "freezing": "trainable=none"}, {"name": "fine_tune", "epochs": 5, "freezing": "\#(depth == "none" ? "trainable=none" : "fine_tune_at=120")", "bn_mode": "train"}]"#
                    let summary = """
                        {"trial_id": "\(id)", "experiment": "cv", "seed": \(seed), "repeat": \(seed - 1), "fold": \(fold), "folds": 4,
                         "parameters": \(parameters), "status": "finished", "phases": \(phases),
                         "fine_tune_start_epoch": \(depth == "none" ? "null" : "5"), "final_val_accuracy": \(accuracy), "final_val_loss": \(1 - accuracy),
                         "dataset": {"train_count": 30, "val_count": 10}}
                        """
                    try summary.write(to: directory.appendingPathComponent("summary.json"), atomically: true, encoding: .utf8)
                }
            }
        }
    }

    override func tearDownWithError() throws {
        if let root { try? FileManager.default.removeItem(at: root) }
    }

    func testPairedVerdictReferenceAndExport() throws {
        let cv = root.appendingPathComponent("cv").path
        let compared = try CLI.run(["compare", cv])
        XCTAssertEqual(compared.status, 0, compared.stderr)
        XCTAssertTrue(compared.stdout.contains("- **Fine-tuning from 120 helps by +5.0 points, 95 % CI +"), compared.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent("cv/comparison.md").path))

        let exported = root.appendingPathComponent("cria-cv.jsonl").path
        let export = try CLI.run(["compare", cv, "--export-jsonl", exported, "--label", "recipe"])
        XCTAssertEqual(export.status, 0, export.stderr)
        let lines = try String(contentsOfFile: exported, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 16)
        XCTAssertTrue(lines[0].contains(#""config":"recipe""#) && lines[0].contains(#""framework":"cria""#), String(lines[0]))

        // The fine-tuned runs against the frozen-only runs exported as a reference: +5 points on every fold.
        let frozen = (0..<4).flatMap { fold in (1...2).map { "\(cv)/fine_tune_at=none,seed=\($0),fold=\(fold)" } }
        let tuned = (0..<4).flatMap { fold in (1...2).map { "\(cv)/fine_tune_at=120,seed=\($0),fold=\(fold)" } }
        XCTAssertEqual(try CLI.run(["compare"] + frozen + ["--export-jsonl", exported, "--label", "frozen"]).status, 0)
        let reference = try CLI.run(["compare"] + tuned + ["--reference", exported, "-o", root.appendingPathComponent("r.md").path])
        XCTAssertEqual(reference.status, 0, reference.stderr)
        XCTAssertTrue(reference.stdout.contains("**Cria is higher than cria on the same folds: Cria − cria = +5.0 points, 95 % CI +5.0 to +5.0.**"),
                      reference.stdout)

        let wrong = try CLI.run(["compare", cv, "--reference", exported, "--reference-config", "flip"])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.stderr.contains("--reference-config flip: ") && wrong.stderr.contains("has configs frozen"), wrong.stderr)
        XCTAssertEqual(wrong.stderr.split(separator: "\n").count, 1, "one line: \(wrong.stderr)")
    }
}
