import CriaTestSupport
import CriaCore
import Foundation
import XCTest
@testable import CriaReports

final class NotebookExportTests: XCTestCase {
    private func export(_ run: URL, to output: URL) throws -> [String: Any] {
        try NotebookExport.export(runDirectory: run, to: output)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: output))
        return try XCTUnwrap(object as? [String: Any])
    }

    private func text(_ cell: [String: Any]) -> String { ((cell["source"] as? [String]) ?? []).joined() }

    /// The nbformat 4.5 structure, checked without Python: versions, kernelspec, unique ids, cell fields, outputs.
    private func assertNotebookStructure(_ notebook: [String: Any], file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        XCTAssertEqual(notebook["nbformat"] as? Int, 4, file: file, line: line)
        XCTAssertEqual(notebook["nbformat_minor"] as? Int, 5, file: file, line: line)
        let metadata = try XCTUnwrap(notebook["metadata"] as? [String: Any])
        XCTAssertEqual((metadata["kernelspec"] as? [String: Any])?["name"] as? String, "python3", file: file, line: line)
        let cells = try XCTUnwrap(notebook["cells"] as? [[String: Any]])
        let ids = cells.compactMap { $0["id"] as? String }
        XCTAssertEqual(ids.count, cells.count, "every cell has an id", file: file, line: line)
        XCTAssertEqual(Set(ids).count, ids.count, "ids are unique", file: file, line: line)
        for cell in cells {
            let id = cell["id"] as? String ?? ""
            XCTAssertTrue(id.range(of: "^[a-zA-Z0-9_-]{1,64}$", options: .regularExpression) != nil, id, file: file, line: line)
            XCTAssertNotNil(cell["metadata"] as? [String: Any], file: file, line: line)
            XCTAssertNotNil(cell["source"] as? [String], file: file, line: line)
            switch cell["cell_type"] as? String {
            case "markdown": XCTAssertNil(cell["outputs"], file: file, line: line)
            case "code":
                XCTAssertTrue(cell["execution_count"] is NSNull, file: file, line: line)
                XCTAssertNotNil(cell["outputs"] as? [[String: Any]], file: file, line: line)
            default: XCTFail("unknown cell type \(cell["cell_type"] ?? "nil")", file: file, line: line)
            }
        }
        return cells
    }

    func testTrialNotebookTellsTheStoryWithEmbeddedCurves() throws {
        let runs = try temporaryDirectory()
        let trial = try ReportFixtures.makeTrial(
            in: runs.appendingPathComponent("runs/alpaca/2026-11-27_05-00-00"), id: "lr=1e-4,fine_tune_at=120", parameters: ["phases[1].fine_tune_at": 120],
            valAccuracies: [0.8, 0.85, 0.9, 0.95], frozenEpochs: 2, fineTuneAt: 120,
            test: ["loss": 0.2, "accuracy": 0.9, "per_class": [["name": "alpaca", "precision": 0.88, "recall": 0.92]], "confusion": [[11, 1], [2, 16]]])
        let notebook = try export(trial, to: runs.appendingPathComponent("Notebooks-export/alpaca.ipynb"))
        let cells = try assertNotebookStructure(notebook)
        let markdown = cells.filter { $0["cell_type"] as? String == "markdown" }.map(text).joined(separator: "\n")
        XCTAssertTrue(markdown.contains("## Config") && markdown.contains("```yaml\nexperiment: alpaca-sweep"))
        XCTAssertTrue(markdown.contains("| alpaca | 113 | 29 |"), "class counts")
        XCTAssertTrue(markdown.contains("262 training and 65 validation images"))
        XCTAssertTrue(markdown.contains("| true \\ predicted | alpaca | not alpaca |") && markdown.contains("| alpaca | 11 | 1 |"), markdown)
        let code = cells.filter { $0["cell_type"] as? String == "code" }
        // Relative to the notebook, so the folder can move as a whole.
        XCTAssertTrue(text(code[0]).contains("RUN_DIR = Path(\"../runs/alpaca/2026-11-27_05-00-00/lr=1e-4,fine_tune_at=120\")"), text(code[0]))
        let outputs = code.flatMap { ($0["outputs"] as? [[String: Any]]) ?? [] }
        XCTAssertEqual(outputs.count, 1)
        XCTAssertEqual(outputs[0]["output_type"] as? String, "display_data")
        let svg = ((outputs[0]["data"] as? [String: Any])?["image/svg+xml"] as? [String])?.joined() ?? ""
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("Start Fine Tuning"))
        _ = SVGElements.parse(svg)
        XCTAssertTrue(code.contains { text($0).contains("pd.read_csv(TRIAL_DIR / \"metrics.csv\")") && text($0).contains("plt.show()") })
    }

    func testExperimentNotebookHasSummaryAndComparison() throws {
        let runs = try temporaryDirectory()
        let experiment = runs.appendingPathComponent("alpaca-sweep/2026-11-27_05-00-00")
        try ReportFixtures.makeSweep(in: experiment)
        let output = runs.appendingPathComponent("sweep.ipynb")
        let cells = try assertNotebookStructure(try export(experiment, to: output))
        let markdown = cells.filter { $0["cell_type"] as? String == "markdown" }.map(text).joined(separator: "\n")
        XCTAssertTrue(markdown.contains("the featured trial is the best by `val_accuracy`: `lr=1e-4,fine_tune_at=120`"))
        XCTAssertTrue(markdown.contains("Unfreezing helped"))
        XCTAssertTrue(markdown.contains("### Over repeats (mean ± sample std)"))
        let svgs = cells.flatMap { ($0["outputs"] as? [[String: Any]]) ?? [] }.compactMap { ($0["data"] as? [String: Any])?["image/svg+xml"] }
        XCTAssertEqual(svgs.count, 2, "curves and comparison")
        try validateWithNBFormat(output)
    }

    func testNBFormatValidatesTrialNotebook() throws {
        let runs = try temporaryDirectory()
        let trial = try ReportFixtures.makeTrial(in: runs, id: "frozen", parameters: [:], valAccuracies: [0.8, 0.85], frozenEpochs: 2, fineTuneAt: nil)
        let output = runs.appendingPathComponent("frozen.ipynb")
        try NotebookExport.export(runDirectory: trial, to: output)
        try validateWithNBFormat(output)
    }

    /// Jupyter runs the exported notebooks for real: every code cell executes without error
    /// against the run directory, and the plotting cells produce images (matplotlib's PNG
    /// through the inline backend, the embedded SVG through IPython.display).
    func testJupyterExecutesExportedNotebooksAndTheyDrawImages() throws {
        let python = try Python.require(["nbformat", "nbconvert", "ipykernel", "pandas", "matplotlib"])
        let runs = try temporaryDirectory()
        let experiment = runs.appendingPathComponent("runs/alpaca-sweep/2026-11-27_05-00-00")
        try ReportFixtures.makeSweep(in: experiment)
        _ = try ExperimentReport.rebuild(experimentDirectory: experiment)  // comparison.svg, as a finished sweep has
        let trial = try ReportFixtures.makeTrial(
            in: runs.appendingPathComponent("runs/alpaca/2026-11-27_05-00-00"), id: "fine_tune_at=120", parameters: ["phases[1].fine_tune_at": 120],
            valAccuracies: [0.8, 0.85, 0.9, 0.95], frozenEpochs: 2, fineTuneAt: 120)
        let folder = runs.appendingPathComponent("Notebooks-export")
        let notebooks = [(trial, folder.appendingPathComponent("trial.ipynb")), (experiment, folder.appendingPathComponent("sweep.ipynb"))]
        for (run, notebook) in notebooks {
            try NotebookExport.export(runDirectory: run, to: notebook)
            let executed = folder.appendingPathComponent("executed-" + notebook.lastPathComponent)
            var environment = ProcessInfo.processInfo.environment
            environment["JUPYTER_RUNTIME_DIR"] = runs.appendingPathComponent("jupyter-runtime").path
            environment["MPLCONFIGDIR"] = runs.appendingPathComponent("matplotlib").path
            let result = try Python.execute(python, ["-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                                                     "--ExecutePreprocessor.timeout=300", "--ExecutePreprocessor.kernel_name=python3",
                                                     "--output", executed.path, notebook.path], environment: environment)
            XCTAssertEqual(result.status, 0, "nbconvert --execute \(notebook.lastPathComponent): \(result.stderr.suffix(2000))")
            guard result.status == 0 else { continue }
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: executed)) as? [String: Any])
            let cells = try XCTUnwrap(object["cells"] as? [[String: Any]]).filter { $0["cell_type"] as? String == "code" }
            let outputs = cells.flatMap { ($0["outputs"] as? [[String: Any]]) ?? [] }
            XCTAssertFalse(outputs.contains { $0["output_type"] as? String == "error" }, "\(notebook.lastPathComponent) raised")
            XCTAssertTrue(cells.allSatisfy { $0["execution_count"] is Int }, "every code cell ran")
            let images = outputs.compactMap { $0["data"] as? [String: Any] }.filter { $0["image/png"] != nil || $0["image/svg+xml"] != nil }
            let pngs = outputs.compactMap { ($0["data"] as? [String: Any])?["image/png"] as? String }
            XCTAssertFalse(images.isEmpty, "\(notebook.lastPathComponent): no cell drew an image")
            for png in pngs {
                // A real PNG: base64 of the 8-byte signature, and more than a blank pixel's worth.
                let bytes = try XCTUnwrap(Data(base64Encoded: png.replacingOccurrences(of: "\n", with: "")))
                XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
                XCTAssertGreaterThan(bytes.count, 2000)
            }
            print("nbconvert --execute \(notebook.lastPathComponent): \(cells.count) code cells, \(images.count) images (\(pngs.count) PNG)")
        }
    }

    func testRelativePaths() {
        XCTAssertEqual(NotebookExport.relativePath(from: URL(fileURLWithPath: "/a/b/nb"), to: URL(fileURLWithPath: "/a/b/runs/x")), "../runs/x")
        XCTAssertEqual(NotebookExport.relativePath(from: URL(fileURLWithPath: "/a/b"), to: URL(fileURLWithPath: "/a/b")), ".")
        XCTAssertEqual(NotebookExport.relativePath(from: URL(fileURLWithPath: "/x/nb"), to: URL(fileURLWithPath: "/y/runs")), "/y/runs")
    }

    private func validateWithNBFormat(_ url: URL) throws {
        let script = """
            import nbformat, sys
            nb = nbformat.read(sys.argv[1], as_version=4)
            nbformat.validate(nb)
            print("valid", nb.nbformat, nb.nbformat_minor, len(nb.cells))
            """
        let result = try Python.run(script, arguments: [url.path], requiring: ["nbformat"])
        XCTAssertTrue(result.hasPrefix("valid 4 5 "), result)
    }
}
