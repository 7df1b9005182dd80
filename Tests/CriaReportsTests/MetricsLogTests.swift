import CriaTestSupport
import CriaRecords
import Foundation
import XCTest
@testable import CriaReports

final class MetricsLogTests: XCTestCase {
    func testPythonFloatRepr() {
        // Expected strings are Python 3's repr() of the same doubles.
        let cases: [(Double, String)] = [
            (0.0, "0.0"), (-0.0, "-0.0"), (1.0, "1.0"), (0.5, "0.5"), (0.0001, "0.0001"), (1e-05, "1e-05"),
            (0.00012, "0.00012"), (1.5e-05, "1.5e-05"), (123.456, "123.456"), (1e15, "1000000000000000.0"),
            (1e16, "1e+16"), (1.25e17, "1.25e+17"), (0.6931471805599453, "0.6931471805599453"),
            (0.10000000149011612, "0.10000000149011612"), (-2.5, "-2.5"), (Double.leastNonzeroMagnitude, "5e-324"),
            (1e100, "1e+100"), (.nan, "nan"), (.infinity, "inf"), (-.infinity, "-inf"), (12.0, "12.0"),
        ]
        for (value, expected) in cases { XCTAssertEqual(PythonFloat.repr(value), expected, "\(value)") }
    }

    func testCSVIsKerasCSVLoggerText() throws {
        let directory = try temporaryDirectory()
        let log = try MetricsLog(directory: directory)
        try log.append(ReportFixtures.record(epoch: 0, phase: "frozen", valAccuracy: 0.75))
        try log.append(EpochRecord(epoch: 1, phase: "fine,tune", loss: 0.25, accuracy: 0.875, kerasAccuracy: 0.5,
                                   valLoss: nil, valAccuracy: nil, valKerasAccuracy: nil, learningRate: 1e-05, seconds: 2.0))
        let text = try String(contentsOf: directory.appendingPathComponent("metrics.csv"), encoding: .utf8)
        XCTAssertEqual(text, """
            epoch,accuracy,keras_accuracy,learning_rate,loss,phase,seconds,val_accuracy,val_keras_accuracy,val_loss\r
            0,0.5,0.25,0.001,0.6931471805599453,frozen,1.5,0.75,0.5,0.6\r
            1,0.875,0.5,1e-05,0.25,"fine,tune",2.0,NA,NA,NA\r

            """)
    }

    func testJSONLRoundTrip() throws {
        let directory = try temporaryDirectory()
        let records = [
            ReportFixtures.record(epoch: 0, phase: "frozen", valAccuracy: 0.75),
            EpochRecord(epoch: 1, phase: "fine \"tune\"", loss: .nan, accuracy: 1, kerasAccuracy: 0, valLoss: .infinity,
                        valAccuracy: nil, valKerasAccuracy: 0.125, learningRate: 1e-4, seconds: 0.001),
        ]
        let log = try MetricsLog(directory: directory)
        for record in records { try log.append(record) }
        let back = try MetricsLog.read(directory: directory)
        XCTAssertEqual(back.count, 2)
        XCTAssertEqual(back[0], records[0])
        XCTAssertTrue(back[1].loss.isNaN)
        var second = back[1]
        second.loss = 0
        var expected = records[1]
        expected.loss = 0
        XCTAssertEqual(second, expected)
        // Reopening continues the same logs rather than starting over.
        let reopened = try MetricsLog(directory: directory)
        XCTAssertEqual(reopened.records.count, 2)
        XCTAssertEqual(reopened.trainEventsURL, log.trainEventsURL)
        XCTAssertEqual(reopened.validationEventsURL, log.validationEventsURL)
    }

    func testCRC32CKnownVectors() {
        // RFC 3720 (iSCSI) B.4 test vectors and the common "123456789" check value.
        XCTAssertEqual(TFEvents.crc32c(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(TFEvents.crc32c([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(TFEvents.crc32c([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(TFEvents.crc32c((0 ..< 32).map(UInt8.init)), 0x46DD_794E)
        XCTAssertEqual(TFEvents.crc32c([]), 0)
    }

    func testRecordFraming() throws {
        let payload = Array("hello".utf8)
        let framed = TFEvents.record(payload)
        XCTAssertEqual(framed.count, 8 + 4 + payload.count + 4)
        XCTAssertEqual(Array(framed[0 ..< 8]), [5, 0, 0, 0, 0, 0, 0, 0])
        let lengthCRC = TFEvents.maskedCRC32C(Array(framed[0 ..< 8]))
        XCTAssertEqual(Array(framed[8 ..< 12]), withUnsafeBytes(of: lengthCRC.littleEndian) { Array($0) })
        XCTAssertEqual(try TFEvents.records(framed + framed, source: "test"), [payload, payload])
        var corrupted = framed
        corrupted[13] ^= 1
        XCTAssertThrowsError(try TFEvents.records(corrupted, source: "test"))
        XCTAssertThrowsError(try TFEvents.records(Array(framed.dropLast()), source: "test"))
    }

    func testEventFilesFollowKerasTensorBoardLayout() throws {
        let directory = try temporaryDirectory()
        let log = try MetricsLog(directory: directory)
        try log.phaseStarted(epoch: 0, text: "Phase `frozen` from epoch 0")
        try log.append(ReportFixtures.record(epoch: 0, phase: "frozen", valAccuracy: 0.75))
        try log.append(ReportFixtures.record(epoch: 1, phase: "frozen", valAccuracy: 0.8))
        // One run per Keras writer: <log_dir>/train and <log_dir>/validation.
        XCTAssertEqual(log.trainEventsURL.deletingLastPathComponent().lastPathComponent, "train")
        XCTAssertEqual(log.validationEventsURL.deletingLastPathComponent().lastPathComponent, "validation")
        XCTAssertTrue(log.trainEventsURL.lastPathComponent.hasPrefix("events.out.tfevents."))
        let bytes = [UInt8](try Data(contentsOf: log.trainEventsURL))
        let records = try TFEvents.records(bytes, source: "events")
        // file_version, the phase text, then one event per epoch holding all of its scalars.
        XCTAssertEqual(records.count, 1 + 1 + 2)
        XCTAssertTrue(String(decoding: records[0], as: UTF8.self).contains("brain.Event:2"))

        let train = try TFEvents.readScalars(log.trainEventsURL)
        XCTAssertEqual(train.map(\.tag), Array(repeating: ["epoch_loss", "epoch_accuracy", "epoch_keras_accuracy", "epoch_learning_rate"], count: 2).flatMap { $0 })
        let validation = try TFEvents.readScalars(log.validationEventsURL)
        XCTAssertEqual(validation.map(\.tag), Array(repeating: ["epoch_loss", "epoch_accuracy", "epoch_keras_accuracy"], count: 2).flatMap { $0 })
        let valAccuracy = validation.filter { $0.tag == "epoch_accuracy" }
        XCTAssertEqual(valAccuracy.map(\.step), [0, 1])
        XCTAssertEqual(valAccuracy.map(\.value), [0.75, 0.8])
        XCTAssertEqual(train.filter { $0.tag == "epoch_learning_rate" }.map(\.value), [0.001, 0.001])

        let text = try TFEvents.readSummaries(log.trainEventsURL).filter { $0.pluginName == "text" }
        XCTAssertEqual(text.map(\.tag), [MetricsLog.phaseTag])
        XCTAssertEqual(text.map(\.strings), [["Phase `frozen` from epoch 0"]])
    }

    func testEpochWithoutValidationWritesNoValidationEvent() throws {
        let directory = try temporaryDirectory()
        let log = try MetricsLog(directory: directory)
        try log.append(EpochRecord(epoch: 0, phase: "frozen", loss: 0.25, accuracy: 0.875, kerasAccuracy: 0.5,
                                   valLoss: nil, valAccuracy: nil, valKerasAccuracy: nil, learningRate: 1e-05, seconds: 2.0))
        XCTAssertEqual(try TFEvents.readScalars(log.validationEventsURL).count, 0)
        XCTAssertEqual(try TFEvents.readScalars(log.trainEventsURL).count, 4)
    }

    /// TensorBoard's own reader sees Keras's layout: the same tags in both runs, and the phase text.
    func testTensorBoardReadsEventFiles() throws {
        let directory = try temporaryDirectory()
        let log = try MetricsLog(directory: directory)
        try log.phaseStarted(epoch: 0, text: "Phase `frozen` from epoch 0")
        for epoch in 0 ..< 3 { try log.append(ReportFixtures.record(epoch: epoch, phase: "frozen", valAccuracy: 0.5 + Double(epoch) / 10)) }
        try log.phaseStarted(epoch: 3, text: "**Start Fine Tuning** at epoch 3")
        let script = """
            from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
            from tensorboard.util import tensor_util
            import sys
            mux = EventMultiplexer(); mux.AddRunsFromDirectory(sys.argv[1]); mux.Reload()
            print(sorted(mux.Runs()))
            print(sorted(mux.Runs()["train"]["scalars"]), sorted(mux.Runs()["validation"]["scalars"]))
            print(",".join("%d:%.3f" % (e.step, e.value) for e in mux.Scalars("validation", "epoch_accuracy")))
            print([(e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode()) for e in mux.Tensors("train", "phase")])
            print(mux.SummaryMetadata("train", "phase").plugin_data.plugin_name)
            """
        let result = try Python.run(script, arguments: [directory.path], requiring: ["tensorboard"])
        XCTAssertEqual(result, """
            ['train', 'validation']
            ['epoch_accuracy', 'epoch_keras_accuracy', 'epoch_learning_rate', 'epoch_loss'] ['epoch_accuracy', 'epoch_keras_accuracy', 'epoch_loss']
            0:0.500,1:0.600,2:0.700
            [(0, 'Phase `frozen` from epoch 0'), (3, '**Start Fine Tuning** at epoch 3')]
            text

            """)
    }

    func testPandasReadsCSV() throws {
        let directory = try temporaryDirectory()
        let log = try MetricsLog(directory: directory)
        try log.append(ReportFixtures.record(epoch: 0, phase: "frozen", valAccuracy: 0.75))
        try log.append(EpochRecord(epoch: 1, phase: "fine_tune", loss: 0.25, accuracy: 0.875, kerasAccuracy: 0.5,
                                   valLoss: nil, valAccuracy: nil, valKerasAccuracy: nil, learningRate: 1e-05, seconds: 2.0))
        let script = """
            import pandas as pd, sys
            df = pd.read_csv(sys.argv[1])
            print(list(df.columns)); print(df["val_accuracy"].isna().tolist()); print(df["learning_rate"].tolist(), df["phase"].tolist())
            """
        let result = try Python.run(script, arguments: [directory.appendingPathComponent("metrics.csv").path], requiring: ["pandas"])
        XCTAssertEqual(result, """
            ['epoch', 'accuracy', 'keras_accuracy', 'learning_rate', 'loss', 'phase', 'seconds', 'val_accuracy', 'val_keras_accuracy', 'val_loss']
            [False, True]
            [0.001, 1e-05] ['frozen', 'fine_tune']

            """)
    }
}
