import CriaCore
import CriaModel

/// How BatchNormalization layers that train behave, as in Keras.
public enum BatchNormMode: String, Sendable, CaseIterable {
    /// The Keras tutorial's `base(x, training=False)`: moving statistics always,
    /// while γ and β of unfrozen layers still train. The default.
    case inference
    /// `base(x, training=True)`: unfrozen BN layers normalise with batch
    /// statistics and update their moving averages (momentum 0.999).
    case train
}

/// Which layers of the base model train, in Keras's terms.
public enum Freezing: Equatable, Sendable {
    /// `base.trainable = False`: only the head trains.
    case baseFrozen
    /// `base.trainable = True`: everything trains.
    case all
    /// `base.layers[:k]` frozen, the rest trainable (the tutorial's `fine_tune_at`).
    case fineTuneAt(Int)
    /// Trainable from the named base layer on.
    case fineTuneFrom(String)

    public var description: String {
        switch self {
        case .baseFrozen: return "trainable=none"
        case .all: return "trainable=all"
        case .fineTuneAt(let index): return "fine_tune_at=\(index)"
        case .fineTuneFrom(let name): return "fine_tune_from=\(name)"
        }
    }
}

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
        switch node.kind {
        case .conv2D, .depthwiseConv2D, .dense: return true
        case .batchNormalization(_, let center, let scale): return center || scale
        default: return false
        }
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
