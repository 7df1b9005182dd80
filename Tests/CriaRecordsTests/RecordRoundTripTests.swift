import CriaCore
import CriaRecords
import Foundation
import XCTest

/// Every record survives encode → decode exactly (every double to the last bit), and the
/// text forms of files written before the records were typed still decode.
final class RecordRoundTripTests: XCTestCase {
    func roundTrip<T: Codable & Equatable>(_ value: T, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let data = try RecordCoding.encoder().encode(value)
        let back = try RecordCoding.decode(T.self, from: data, source: "test")
        XCTAssertEqual(back, value, file: file, line: line)
        return String(decoding: data, as: UTF8.self)
    }

    func testFreezingIsWrittenAsItsConfigKey() throws {
        XCTAssertEqual(try roundTrip([Freezing.baseFrozen]), "[\n  {\n    \"trainable\" : \"none\"\n  }\n]")
        XCTAssertEqual(try roundTrip([Freezing.all]), "[\n  {\n    \"trainable\" : \"all\"\n  }\n]")
        XCTAssertEqual(try roundTrip([Freezing.fineTuneAt(120)]), "[\n  {\n    \"fine_tune_at\" : 120\n  }\n]")
        XCTAssertEqual(try roundTrip([Freezing.fineTuneFrom("block_13_expand")]), "[\n  {\n    \"fine_tune_from\" : \"block_13_expand\"\n  }\n]")
    }

    func testFreezingReadsTheOlderTextForm() throws {
        let old = #"["trainable=none", "trainable=all", "fine_tune_at=120", "fine_tune_from=block_13_expand"]"#
        XCTAssertEqual(try RecordCoding.decode([Freezing].self, from: Data(old.utf8), source: "old"),
                       [.baseFrozen, .all, .fineTuneAt(120), .fineTuneFrom("block_13_expand")])
        for bad in [#"["fine_tune_at=x"]"#, #"["trainable=some"]"#, #"["lr=1"]"#, #"[{"trainable": "some"}]"#] {
            XCTAssertThrowsError(try RecordCoding.decode([Freezing].self, from: Data(bad.utf8), source: "bad.json"), bad) { error in
                XCTAssertTrue("\(error)".hasPrefix("bad.json: "), "\(error)")
            }
        }
        // The text form is the description, for logs; the two agree for every case.
        for freezing in [Freezing.baseFrozen, .all, .fineTuneAt(0), .fineTuneAt(154), .fineTuneFrom("Conv_1")] {
            XCTAssertEqual(Freezing(legacyText: freezing.description), freezing)
        }
    }

    func testEpochRecordRoundTripsEveryBit() throws {
        let records = [
            EpochRecord(epoch: 0, phase: "frozen", loss: 0.6931471805599453, accuracy: 0.1 + 0.2, kerasAccuracy: 1.0 / 3.0,
                        valLoss: nil, valAccuracy: nil, valKerasAccuracy: nil, learningRate: 1e-4, seconds: 12.000000000000002),
            EpochRecord(epoch: 7, phase: "fine_tune", loss: .infinity, accuracy: 0, kerasAccuracy: 5e-324, valLoss: -.infinity,
                        valAccuracy: .ulpOfOne, valKerasAccuracy: 0.9999999999999999, learningRate: 1.7976931348623157e308, seconds: 0),
        ]
        let text = try roundTrip(records)
        XCTAssertTrue(text.contains("\"Infinity\"") && text.contains("\"-Infinity\""), text)
        XCTAssertTrue(text.contains("\"keras_accuracy\"") && text.contains("\"val_loss\" : null"), text)
        // NaN is not equal to itself, so it is checked apart.
        var nan = records[0]
        nan.loss = .nan
        let back = try RecordCoding.decode(EpochRecord.self, from: try RecordCoding.encoder().encode(nan), source: "nan")
        XCTAssertTrue(back.loss.isNaN)
    }

    func testPhaseRecordRoundTripsAndReadsOlderFiles() throws {
        let phase = PhaseRecord(name: "fine_tune", type: .train, epochs: 5, epochsRun: 3, firstEpoch: 5, freezing: .fineTuneAt(120),
                                optimizer: "adam", learningRate: 1e-4, bnMode: .train)
        let text = try roundTrip(phase)
        XCTAssertTrue(text.contains("\"fine_tune_at\" : 120") && text.contains("\"lr\" : 0.0001"), text)
        let probe = PhaseRecord(name: "probe", type: .linearProbe, epochs: 0, firstEpoch: 0, freezing: .baseFrozen, optimizer: "adam", learningRate: nil)
        _ = try roundTrip(probe)
        // Before epochs_run and bn_mode existed, and with the text freezing.
        let old = #"{"name": "fine_tune", "type": "train", "epochs": 5, "first_epoch": 5, "freezing": "fine_tune_at=120", "optimizer": "adam", "lr": 0.0001}"#
        let read = try RecordCoding.decode(PhaseRecord.self, from: Data(old.utf8), source: "old")
        XCTAssertEqual(read, PhaseRecord(name: "fine_tune", epochs: 5, firstEpoch: 5, freezing: .fineTuneAt(120), optimizer: "adam", learningRate: 1e-4))
    }

    func testTrialSummaryRoundTripsEveryField() throws {
        var summary = TrialSummary(trialID: "fine_tune_at=120,lr=1e-4", experiment: "alpaca-sweep", seed: 43, repeatIndex: 1,
                                   parameters: ["phases[1].fine_tune_at": 120, "phases[1].lr": 0.0001, "augment": "flip+rotation", "x": nil, "b": true],
                                   phases: [PhaseRecord(name: "frozen", epochs: 5, epochsRun: 5, firstEpoch: 0, freezing: .baseFrozen, optimizer: "adam",
                                                        learningRate: 1e-3, bnMode: .inference)])
        summary.fold = 3
        summary.folds = 10
        summary.fineTuneStartEpoch = 5
        summary.bestValAccuracy = 0.9615384615384616
        summary.bestEpoch = 7
        summary.finalValAccuracy = 0.1 + 0.2
        summary.finalValLoss = 0.6931471805599453
        summary.finalAccuracy = 1
        summary.finalLoss = 2.220446049250313e-16
        summary.epochs = 10
        summary.frozenPhaseValAccuracy = 0.5
        summary.test = .init(loss: 0.25, accuracy: 0.75, kerasAccuracy: 0.7, count: 20,
                             perClass: [.init(name: "alpaca", precision: nil, recall: 0.5), .init(name: "not alpaca", precision: 1, recall: 1)],
                             confusion: [[5, 4], [0, 11]])
        summary.linearProbeValAccuracy = 0.875
        summary.wallSeconds = 12.5
        summary.peakRSSMB = 153.33984375
        summary.criaVersion = "0.1.0"
        summary.gitCommit = "abc1234"
        summary.classNames = ["alpaca", "not alpaca"]
        summary.dataset = .init(directory: "/data/alpaca", trainCount: 262, valCount: 65, testCount: nil,
                                classCountsTrain: ["alpaca": 113, "not alpaca": 149], classCountsVal: ["alpaca": 29, "not alpaca": 36])
        let text = try roundTrip(summary)
        // Whole numbers among the parameters stay integers, for pandas.
        XCTAssertTrue(text.contains("\"phases[1].fine_tune_at\" : 120,"), text)
        XCTAssertTrue(text.contains("\"linear_probe\" : {\n    \"val_accuracy\" : 0.875"), text)

        // Absent values are written as null, and a non-finite metric becomes null rather than an unreadable file.
        var sparse = TrialSummary(trialID: "seed=42", experiment: "smoke")
        sparse.finalValLoss = .nan
        let sparseText = try sparse.json()
        for key in ["fold", "test", "linear_probe", "dataset", "final_val_loss", "best_epoch"] {
            XCTAssertTrue(sparseText.contains("\"\(key)\" : null"), "\(key) in \(sparseText)")
        }
    }

    func testTrialSummaryReadsADirectoryAndFillsFromTheEpochLog() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cria-records-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try #"{"trial_id": "t", "status": "finished", "seed": "not a number", "phases": [{"name": "a", "epochs": 2, "freezing": "trainable=all"}]}"#
            .write(to: directory.appendingPathComponent("summary.json"), atomically: true, encoding: .utf8)
        try """
            {"epoch": 0, "accuracy": 0.5, "keras_accuracy": 0.5, "learning_rate": 0.001, "loss": 0.7, "phase": "a", "seconds": 1.0, "val_accuracy": 0.75, "val_keras_accuracy": 0.5, "val_loss": 0.6}

            {"epoch": 1, "accuracy": 0.6, "keras_accuracy": 0.5, "learning_rate": 0.001, "loss": 0.6, "seconds": 1.0, "val_accuracy": "NaN", "val_keras_accuracy": null, "val_loss": null}

            """.write(to: directory.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        let summary = try TrialSummary(directory: directory)
        XCTAssertEqual(summary.trialID, "t")
        XCTAssertNil(summary.seed)  // lenient: a wrongly typed optional key reads as absent
        XCTAssertEqual(summary.phases.map(\.freezing), [.all])
        XCTAssertEqual(summary.records.count, 2)
        XCTAssertEqual(summary.records[1].phase, "")
        XCTAssertEqual(summary.bestValAccuracy, 0.75)
        XCTAssertEqual(summary.bestEpoch, 0)
        XCTAssertTrue(summary.finalValAccuracy!.isNaN)
        XCTAssertEqual(summary.fineTunePhase?.name, "a")

        try #"{"epoch": 0, "loss": 1}"#.write(to: directory.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrialSummary(directory: directory)) { error in
            XCTAssertEqual("\(error)", "\(directory.path)/metrics.jsonl: line 1: missing accuracy")
        }
    }
}
