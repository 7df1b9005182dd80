import CriaTestSupport
import Foundation
import XCTest
@testable import CriaReports

/// The hand-encoded HParams records, checked against TensorBoard's own protobuf classes.
final class HParamsTests: XCTestCase {
    static let experiment = HParams.Experiment(
        name: "sweep", description: "a sweep", timeCreatedSecs: 1_700_000_000.25,
        hparams: [
            .init(name: "phases[1].lr", displayName: "lr", type: .float64, domain: .discrete([.number(1e-4), .number(1e-5)])),
            .init(name: "augment", displayName: "aug", type: .string, domain: .discrete([.string("none"), .string("flip+rotation")])),
            .init(name: "dropout", type: .float64, domain: .interval(min: 0, max: 0.5)),
            .init(name: "flag", type: .bool, domain: .discrete([.bool(false), .bool(true)]), differs: false),
        ],
        metrics: [
            .init(group: "", tag: "best_val_accuracy", displayName: "best_val_accuracy", datasetType: .validation),
            .init(group: "train", tag: "epoch_loss", description: "last epoch", datasetType: .training),
        ])

    /// Python's protobuf parses each record into the message it should be; re-serialised
    /// deterministically, the experiment and the end record give back Cria's exact bytes
    /// (same field order, defaults omitted as proto3 does).
    func testRecordsParseWithTensorBoardProtos() throws {
        let start = HParams.sessionStartContent(hparams: [("phases[1].lr", .number(1e-4)), ("augment", .string("flip")), ("flag", .bool(true))],
                                                groupName: "", startTimeSecs: 12.5)
        let end = HParams.sessionEndContent(status: .success, endTimeSecs: 99.75)
        let script = """
            import sys, json
            from tensorboard.plugins.hparams import plugin_data_pb2
            from google.protobuf import json_format
            for hexed in sys.argv[1:]:
                raw = bytes.fromhex(hexed)
                message = plugin_data_pb2.HParamsPluginData.FromString(raw)
                print(json.dumps(json_format.MessageToDict(message), sort_keys=True))
                print(message.SerializeToString(deterministic=True) == raw)
            """
        let hex = { (bytes: [UInt8]) in bytes.map { String(format: "%02x", $0) }.joined() }
        let output = try Python.run(script, arguments: [hex(HParams.content(Self.experiment)), hex(start), hex(end)],
                                    requiring: ["tensorboard"]).split(separator: "\n").map(String.init)
        XCTAssertEqual(output.count, 6, "\(output)")
        guard output.count == 6 else { return }
        XCTAssertEqual(output[0], """
            {"experiment": {"description": "a sweep", "hparamInfos": [{"differs": true, "displayName": "lr", "domainDiscrete": [0.0001, 1e-05], \
            "name": "phases[1].lr", "type": "DATA_TYPE_FLOAT64"}, {"differs": true, "displayName": "aug", "domainDiscrete": ["none", "flip+rotation"], \
            "name": "augment", "type": "DATA_TYPE_STRING"}, {"differs": true, "domainInterval": {"maxValue": 0.5}, "name": "dropout", \
            "type": "DATA_TYPE_FLOAT64"}, {"domainDiscrete": [false, true], "name": "flag", "type": "DATA_TYPE_BOOL"}], "metricInfos": [{"datasetType": \
            "DATASET_VALIDATION", "displayName": "best_val_accuracy", "name": {"tag": "best_val_accuracy"}}, {"datasetType": "DATASET_TRAINING", \
            "description": "last epoch", "name": {"group": "train", "tag": "epoch_loss"}}], "name": "sweep", "timeCreatedSecs": 1700000000.25}}
            """)
        XCTAssertEqual(output[1], "True")
        XCTAssertEqual(output[2], """
            {"sessionStartInfo": {"hparams": {"augment": "flip", "flag": true, "phases[1].lr": 0.0001}, "startTimeSecs": 12.5}}
            """)
        XCTAssertEqual(output[4], #"{"sessionEndInfo": {"endTimeSecs": 99.75, "status": "STATUS_SUCCESS"}}"#)
        XCTAssertEqual(output[5], "True")
    }

    /// Known bytes, for machines without TensorBoard: HParamsPluginData { session_end_info { status: SUCCESS, end_time_secs: 1.5 } }.
    func testSessionEndBytes() {
        XCTAssertEqual(HParams.sessionEndContent(status: .success, endTimeSecs: 1.5),
                       [0x22, 0x0B, 0x08, 0x01, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF8, 0x3F])
    }

    /// The files: the experiment at the sweep root under its fixed name, rewritten whole;
    /// a session's start, summary scalar and end appended to its run's event file.
    func testFilesHoldTheRecords() throws {
        let root = try temporaryDirectory()
        try HParams.writeExperiment(Self.experiment, to: root)
        try HParams.writeExperiment(Self.experiment, to: root)
        let files = try FileManager.default.contentsOfDirectory(atPath: root.path)
        XCTAssertEqual(files, [HParams.experimentFileName])
        let rootRecords = try TFEvents.readSummaries(root.appendingPathComponent(HParams.experimentFileName))
        XCTAssertEqual(rootRecords.map(\.tag), [HParams.experimentTag])
        XCTAssertEqual(rootRecords.first?.pluginName, "hparams")
        XCTAssertEqual(rootRecords.first?.pluginContent, HParams.content(Self.experiment))

        let trial = root.appendingPathComponent("lr=1e-4")
        try HParams.startSession(in: trial, hparams: [("phases[1].lr", .number(1e-4))], time: 10)
        try HParams.endSession(in: trial, status: .success, scalars: [("best_val_accuracy", 0.75)], step: 3, time: 20)
        let events = try FileManager.default.contentsOfDirectory(atPath: trial.path).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(events.count, 1)
        let records = try TFEvents.readSummaries(trial.appendingPathComponent(events[0]))
        XCTAssertEqual(records.map(\.tag), [HParams.sessionStartTag, "best_val_accuracy", HParams.sessionEndTag])
        XCTAssertEqual(records[1].simpleValue, 0.75)
        XCTAssertEqual(records[1].step, 3)
        XCTAssertEqual(records[2].pluginContent, HParams.sessionEndContent(status: .success, endTimeSecs: 20))
    }
}
