import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import Foundation
import XCTest

/// Cria's MobileNetV2 builder against the layer lists Keras itself builds for
/// every published alpha: names, order (so `layers[120]` agrees), classes,
/// output shapes and parameter counts.
final class MobileNetV2StructureTests: XCTestCase {
    func testEveryAlphaAndSizeMatchesKeras() throws {
        let directory = Fixtures.url("keras/structure")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 10)
        for file in files {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            let expected = try JSONValue.parse(text, source: file)
            let alpha = expected["alpha"]!.double!
            let shape = expected["input_shape"]!.array!.map { $0.int! }
            let pooling = expected["pooling"]?.string.flatMap(MobileNetV2.Pooling.init(rawValue:))
            let includeTop = expected["include_top"]!.bool!
            let config = try MobileNetV2.config(alpha: alpha, inputHeight: shape[0], inputWidth: shape[1], includeTop: includeTop,
                                                classes: expected["classes"]?.int ?? 1000, pooling: pooling)
            XCTAssertEqual(config.name, expected["model_name"]!.string!, file)
            let graph = try ModelGraph(config: config, source: file)
            let layers = expected["layers"]!.array!
            XCTAssertEqual(graph.nodes.count, layers.count, "\(file): layer count")
            for (node, layer) in zip(graph.nodes, layers) {
                let index = layer["index"]!.int!
                XCTAssertEqual(node.indexInOwner, index, "\(file): index of \(node.name)")
                XCTAssertEqual(node.name, layer["name"]!.string!, "\(file): name of layer \(index)")
                XCTAssertEqual(node.className, layer["class_name"]!.string!, "\(file): class of layer \(index)")
                XCTAssertEqual(node.outputShape, layer["output_shape"]!.array!.map { $0.int! }, "\(file): shape of \(node.name)")
                let parameters = node.kind.expectedParameterCount(inputChannels: node.inputs.first.map { graph.nodes[$0].outputShape.last! } ?? 0)
                XCTAssertEqual(parameters, layer["params"]!.int!, "\(file): params of \(node.name)")
            }
        }
    }

    func testFineTuneAtIndex120IsBlock13Depthwise() throws {
        let graph = try ModelGraph(config: try MobileNetV2.config(alpha: 1.0, inputHeight: 160, inputWidth: 160, includeTop: false), source: "test")
        XCTAssertEqual(graph.nodes.count, 154)
        XCTAssertEqual(graph.nodes[120].name, "block_13_depthwise")
        XCTAssertEqual(graph.nodes[100].name, "block_11_expand_relu")
    }

    func testRejectsTinyInputs() {
        XCTAssertThrowsError(try MobileNetV2.config(inputHeight: 31, inputWidth: 64)) { error in
            XCTAssertTrue("\(error)".contains("at least 32"), "\(error)")
        }
    }
}
