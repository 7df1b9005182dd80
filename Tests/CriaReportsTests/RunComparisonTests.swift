import CriaCore
import Foundation
import XCTest
@testable import CriaReports

final class RunComparisonTests: XCTestCase {
    func testVerdictNamesTheBestDepthAtEqualEpochs() throws {
        let experiment = try temporaryDirectory()
        try ReportFixtures.makeSweep(in: experiment)
        let markdown = try RunComparison.compare([experiment])
        XCTAssertTrue(markdown.contains("**Unfreezing helped: fine_tune_at=120 is the best depth with 0.9650 ± 0.0129 final val accuracy "
                                        + "against 0.9050 ± 0.0058 frozen only (+0.0600 at 7 epochs).**"), markdown)
        // Paired by (lr, seed): differences 0.05, 0.05, 0.03, 0.03; mean 0.04 ± t(0.975, 3) · 0.011547 / 2 = 0.018374.
        XCTAssertTrue(markdown.contains("| fine_tune_at=100 | 4 | 0.9450 ± 0.0129 | [0.9245, 0.9655] | +0.0400 | +0.0400 [+0.0216, +0.0584] |"), markdown)
        XCTAssertTrue(markdown.contains("| frozen only | 4 | 0.9050 ± 0.0058 | [0.8958, 0.9142] | — | — |"), markdown)
        XCTAssertTrue(markdown.contains("- **Fine-tuning from 100 helps by +4.0 points, 95 % CI +2.2 to +5.8 (4 pairs over seeds on one validation split).**"),
                      markdown)
        XCTAssertTrue(markdown.contains("Pooled over: `phases[1].lr`."))
        // Within lr 1e-4, 120 gains 0.975 - 0.905.
        XCTAssertTrue(markdown.contains("| 0.0001 | fine_tune_at=120 | 2 | 0.9750 ± 0.0071 | +0.0700 | +0.0700 [+0.0700, +0.0700] |"), markdown)
        XCTAssertEqual(try String(contentsOf: experiment.appendingPathComponent("comparison.md"), encoding: .utf8), markdown)
    }

    func testUnequalEpochsAreNeverCompared() throws {
        // A 3-epoch frozen run cannot be set against a 5-epoch fine-tuned one.
        let runs = try temporaryDirectory()
        let short = runs.appendingPathComponent("short"), long = runs.appendingPathComponent("long")
        try ReportFixtures.makeTrial(in: short, id: "frozen", parameters: [:], valAccuracies: [0.8, 0.85, 0.9], frozenEpochs: 3, fineTuneAt: nil)
        try ReportFixtures.makeTrial(in: long, id: "ft", parameters: [:], valAccuracies: [0.8, 0.85, 0.9, 0.95, 0.96], frozenEpochs: 3, fineTuneAt: 120)
        let output = runs.appendingPathComponent("out.md")
        let markdown = try RunComparison.compare([short, long], output: output)
        XCTAssertTrue(markdown.contains("## 3 epochs") && markdown.contains("## 5 epochs"))
        XCTAssertTrue(markdown.contains("Only frozen-only trials at 3 epochs"), markdown)
        XCTAssertTrue(markdown.contains("No frozen-only trials at 5 epochs to compare against; the best fine-tune depth is fine_tune_at=120"), markdown)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output.path))
    }

    func testVerdictWhenFrozenWinsAndWithinNoise() throws {
        let experiment = try temporaryDirectory()
        for (index, final) in [0.93, 0.91].enumerated() {
            try ReportFixtures.makeTrial(in: experiment, id: "frozen", parameters: ["fine_tune_at": nil], repeatIndex: index,
                                         valAccuracies: [0.8, 0.9, final], frozenEpochs: 3, fineTuneAt: nil)
            try ReportFixtures.makeTrial(in: experiment, id: "ft140", parameters: ["fine_tune_at": 140], repeatIndex: index,
                                         valAccuracies: [0.8, 0.9, final - 0.005], frozenEpochs: 2, fineTuneAt: 140)
        }
        let markdown = try RunComparison.compare([experiment])
        XCTAssertTrue(markdown.contains("Unfreezing did not help: frozen only reaches 0.9200 ± 0.0141 final val accuracy; "
                                        + "the best depth, fine_tune_at=140, reaches 0.9150 ± 0.0141 (-0.0050 at 3 epochs, "
                                        + "within one standard deviation, so not conclusive)."), markdown)
    }

    /// The full alpaca sweep's situation: at lr 1e-3 fine-tuning collapses to the majority
    /// class, so pooled over rates unfreezing "did not help", while at 1e-4 it clearly did.
    func testHeadlineAlsoAnswersWithinTheBestSettingOfPooledParameters() throws {
        let experiment = try temporaryDirectory()
        for (lr, tuned) in [(1e-3, 0.60), (1e-4, 0.95)] {
            for index in 0..<2 {
                let spread = Double(index) * 0.01
                try ReportFixtures.makeTrial(in: experiment, id: "frozen,lr=\(lr)", parameters: ["fine_tune_at": nil, "phases[1].lr": .number(lr)],
                                             repeatIndex: index, valAccuracies: [0.8, 0.85, 0.90 + spread], frozenEpochs: 3, fineTuneAt: nil)
                try ReportFixtures.makeTrial(in: experiment, id: "ft120,lr=\(lr)", parameters: ["fine_tune_at": 120, "phases[1].lr": .number(lr)],
                                             repeatIndex: index, valAccuracies: [0.8, 0.85, tuned + spread], frozenEpochs: 2, fineTuneAt: 120)
            }
        }
        let markdown = try RunComparison.compare([experiment])
        XCTAssertTrue(markdown.contains("**Unfreezing did not help: frozen only reaches 0.9050"), markdown)
        XCTAssertTrue(markdown.contains("**At the best setting of the pooled parameters (`phases[1].lr` = 0.0001): unfreezing helped: "
                                        + "fine_tune_at=120 is the best depth with 0.9550 ± 0.0071 final val accuracy against 0.9050 ± 0.0071 "
                                        + "frozen only (+0.0500 at 3 epochs).**"), markdown)
    }

    func testNoTrialsIsAnError() throws {
        let empty = try temporaryDirectory()
        XCTAssertThrowsError(try RunComparison.compare([empty])) { error in
            XCTAssertTrue("\(error)".contains("no finished trials"))
        }
    }
}
