import CriaCore
import CriaKerasIO
import CriaModel
import CriaTestSupport
import CriaTraining
import Foundation
import XCTest

/// The training fixture of Tests/Fixtures/generate/make_fixtures.py (`keras/train/`): the tutorial's
/// model on the 0.35/96 base, unfrozen from layer 120, with a batch of 8 images.
enum TrainingFixture {
    static let root = "keras/train/"

    static func url(_ path: String) -> URL { Fixtures.url(root + path) }
    static func npy(_ path: String) throws -> Tensor { try Fixtures.npy(root + path) }

    /// The model with `fine_tune_at=120` applied, and the batch.
    static func modelAndBatch() throws -> (ModelGraph, TensorBatchSource) {
        guard FileManager.default.fileExists(atPath: url("model.h5").path) else {
            throw Skip.missing("training fixtures not generated yet (Tests/Fixtures/generate/make_fixtures.py)")
        }
        var graph = try ModelGraph.build(file: try KerasFile.open(url("model.h5")), architecture: nil)
        try graph.applyFreezing(.fineTuneAt(120))
        let labels = try npy("labels.npy").scalars.map { Int($0) }
        return (graph, TensorBatchSource(images: try npy("inputs.npy"), labels: labels))
    }

    /// Every `<layer>__<variable>.npy` under `directory`, sorted by file name.
    static func tensors(_ directory: String) throws -> [(layer: String, variable: String, tensor: Tensor)] {
        let folder = url(directory)
        return try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".npy") }.sorted().map { file in
            let parts = String(file.dropLast(4)).components(separatedBy: "__")
            return (parts[0], parts[1], try NPY.read(folder.appendingPathComponent(file)))
        }
    }
}
