import CriaCore
// Freezing, BatchNormMode and EpochRecord are records (CriaRecords); every user of the training
// API sees them through this module, as before they moved.
@_exported import CriaRecords
import CriaModel

extension ModelGraph {
    /// The nested model that is the transfer-learning base (MobileNetV2), or the
    /// whole model when nothing is nested.
    public var baseModelName: String {
        let nested = modelLayers.keys.filter { $0 != name }
        return nested.first { $0.hasPrefix("mobilenetv2") } ?? nested.sorted().first ?? name
    }

    /// Applies Keras's freezing rules to the base's layers; layers outside the base (the head) train.
    public mutating func applyFreezing(_ freezing: Freezing) throws {
        let base = baseModelName
        let baseLayers = modelLayers[base] ?? []
        let start: Int
        switch freezing {
        case .baseFrozen: start = baseLayers.count
        case .all: start = 0
        case .fineTuneAt(let index):
            guard (0...baseLayers.count).contains(index) else {
                throw CriaError("fine_tune_at: must be between 0 and \(baseLayers.count) (the base \(base) has \(baseLayers.count) layers), got \(index)")
            }
            start = index
        case .fineTuneFrom(let layer):
            guard let index = baseLayers.firstIndex(of: layer) else {
                let close = baseLayers.filter { $0.hasPrefix(layer.split(separator: "_").prefix(2).joined(separator: "_")) }.prefix(3)
                throw CriaError("fine_tune_from: the base \(base) has no layer \(layer)"
                    + (close.isEmpty ? "" : " (did you mean \(close.joined(separator: ", "))?)"))
            }
            start = index
        }
        for index in nodes.indices {
            let node = nodes[index]
            setTrainable(node.owner == base ? node.indexInOwner >= start : true, forNode: index)
        }
    }

    /// Whether a node has variables that an optimizer updates.
    public func hasTrainableVariables(_ index: Int) -> Bool {
        let node = nodes[index]
        guard node.trainable else { return false }
        return node.kind.definition.trainsVariables
    }

    /// Trainable and frozen parameter counts under the current flags (moving statistics never train).
    public var parameterCounts: (trainable: Int, frozen: Int) {
        var trainable = 0, frozen = 0
        for index in nodes.indices {
            for (name, tensor) in nodes[index].weights {
                if hasTrainableVariables(index) && name != "moving_mean" && name != "moving_variance" {
                    trainable += tensor.count
                } else {
                    frozen += tensor.count
                }
            }
        }
        return (trainable, frozen)
    }
}
