import CriaRecords
import Foundation
import XCTest
@testable import CriaReports
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Collects every element and text of an SVG, failing on malformed XML.
final class SVGElements: NSObject, XMLParserDelegate {
    struct Element { var name: String; var attributes: [String: String] }
    var elements = [Element]()
    var texts = [String]()
    private var text = ""

    static func parse(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> SVGElements {
        let collector = SVGElements()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = collector
        XCTAssertTrue(parser.parse(), "invalid XML: \(parser.parserError.map { "\($0)" } ?? "?")", file: file, line: line)
        return collector
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
        elements.append(Element(name: name, attributes: attributes))
        text = ""
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" || name == "title" { texts.append(text) }
        text = ""
    }

    func first(_ name: String, class className: String) -> Element? {
        elements.first { $0.name == name && $0.attributes["class"] == className }
    }
}

final class FigureTests: XCTestCase {
    private func records(_ count: Int) -> [EpochRecord] {
        (0 ..< count).map { epoch in
            let x = Double(epoch)
            return EpochRecord(epoch: epoch, phase: epoch < 5 ? "frozen" : "fine_tune", loss: 0.6 - 0.04 * x, accuracy: 0.8 + 0.015 * x,
                               kerasAccuracy: 0.5, valLoss: 0.5 - 0.03 * x, valAccuracy: 0.82 + 0.012 * x,
                               valKerasAccuracy: 0.5, learningRate: 1e-3, seconds: 1)
        }
    }

    private func points(_ element: SVGElements.Element?) -> [(Double, Double)] {
        (element?.attributes["points"] ?? "").split(separator: " ").map { pair in
            let xy = pair.split(separator: ",").map { Double($0)! }
            return (xy[0], xy[1])
        }
    }

    func testCurvesAreValidSVGWithTutorialPanels() {
        let svg = CurvesFigure.svg(records: records(10), fineTuneStartEpoch: 5, title: "lr=1e-4 & <ok>")
        let parsed = SVGElements.parse(svg)
        XCTAssertEqual(parsed.elements.first?.name, "svg")
        for text in ["Training and Validation Accuracy", "Training and Validation Loss", "Training Accuracy", "Validation Accuracy",
                     "Training Loss", "Validation Loss", "Start Fine Tuning", "epoch", "lr=1e-4 & <ok>"] {
            XCTAssertTrue(parsed.texts.contains(text), "missing text \(text)")
        }
        for className in ["accuracy", "val_accuracy", "loss", "val_loss"] {
            XCTAssertEqual(points(parsed.first("polyline", class: className)).count, 10, className)
        }
    }

    func testStartFineTuningSitsOnTheLastFrozenEpochAsInTheTutorial() {
        // Keras tutorial: plt.plot([initial_epochs-1, initial_epochs-1], plt.ylim()); the fine-tune phase's first epoch is initial_epochs.
        let svg = CurvesFigure.svg(records: records(10), fineTuneStartEpoch: 5, title: "t")
        let parsed = SVGElements.parse(svg)
        let lines = parsed.elements.filter { $0.name == "line" && $0.attributes["class"] == "fine-tune-start" }
        XCTAssertEqual(lines.count, 2, "one marker per panel")
        let validation = points(parsed.first("polyline", class: "val_accuracy"))
        for line in lines {
            XCTAssertEqual(line.attributes["data-epoch"], "4")
            XCTAssertEqual(line.attributes["x1"], line.attributes["x2"])
            XCTAssertEqual(Double(line.attributes["x1"]!)!, validation[4].0, accuracy: 0.01)
        }
    }

    func testNoMarkerWithoutFineTuningAndEmptyRecordsStillRender() {
        let frozen = SVGElements.parse(CurvesFigure.svg(records: records(5), fineTuneStartEpoch: nil, title: "frozen"))
        XCTAssertNil(frozen.elements.first { $0.attributes["class"] == "fine-tune-start" })
        XCTAssertFalse(frozen.texts.contains("Start Fine Tuning"))
        let empty = SVGElements.parse(CurvesFigure.svg(records: [], fineTuneStartEpoch: nil, title: "empty"))
        XCTAssertTrue(empty.texts.contains("no epochs logged yet"))
    }

    func testDivergedLossBreaksTheLine() {
        var recs = records(6)
        recs[3].loss = .nan
        let parsed = SVGElements.parse(CurvesFigure.svg(records: recs, fineTuneStartEpoch: nil, title: "nan"))
        let lossLines = parsed.elements.filter { $0.name == "polyline" && $0.attributes["class"] == "loss" }
        XCTAssertEqual(lossLines.map { points($0).count }, [3, 2])
    }

    func testTicksAreNice() {
        XCTAssertEqual(SVG.ticks(0 ... 1, target: 5), [0, 0.2, 0.4, 0.6, 0.8, 1.0].map { $0 })
        XCTAssertEqual(SVG.ticks(-0.45 ... 9.45, target: 8, integer: true), [0, 2, 4, 6, 8])
    }
}
