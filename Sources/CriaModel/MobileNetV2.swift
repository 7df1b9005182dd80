import CriaCore
import CriaKerasIO

/// Builds the config of `keras.applications.MobileNetV2` layer for layer.
///
/// The result is the same `KerasModelConfig` that Keras writes into a full
/// model file, with Keras's layer names and order, so that `layers[i]` here
/// is `base.layers[i]` in Keras and a weights-only file matches by name.
/// Mirrors keras/src/applications/mobilenet_v2.py (Keras 3.15).
public enum MobileNetV2 {
    public static let publishedAlphas: [Double] = [0.35, 0.5, 0.75, 1.0, 1.3, 1.4]
    public static let publishedRows: [Int] = [96, 128, 160, 192, 224]

    public enum Pooling: String, Sendable { case avg, max }

    /// (filters, stride, expansion) of inverted-residual blocks 0...16.
    static let blocks: [(filters: Int, stride: Int, expansion: Int)] = [
        (16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6),
        (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6),
        (160, 2, 6), (160, 1, 6), (160, 1, 6), (320, 1, 6),
    ]

    /// Keras's `_make_divisible`: round to the nearest multiple of 8, never dropping more than 10 %.
    public static func makeDivisible(_ value: Double, _ divisor: Int = 8) -> Int {
        var rounded = max(divisor, Int(value + Double(divisor) / 2) / divisor * divisor)
        if Double(rounded) < 0.9 * value { rounded += divisor }
        return rounded
    }

    /// Keras's default model name, `mobilenetv2_{alpha:0.2f}_{rows}`.
    public static func defaultName(alpha: Double, rows: Int) -> String {
        "mobilenetv2_\(formatFixed(alpha, digits: 2))_\(rows)"
    }

    public static func config(alpha: Double = 1.0, inputHeight: Int = 224, inputWidth: Int = 224,
                              includeTop: Bool = true, classes: Int = 1000, pooling: Pooling? = nil,
                              classifierActivation: String = "softmax", name: String? = nil) throws -> KerasModelConfig {
        guard alpha > 0 else { throw CriaError("MobileNetV2: alpha must be positive, got \(alpha)") }
        guard inputHeight >= 32, inputWidth >= 32 else {
            throw CriaError("MobileNetV2: input size must be at least 32×32, got \(inputHeight)×\(inputWidth)")
        }
        guard classes >= 1 else { throw CriaError("MobileNetV2: classes must be at least 1, got \(classes)") }
        var builder = ConfigBuilder()
        let input = builder.add("InputLayer", "input_layer",
                                ["batch_shape": [nil, .number(Double(inputHeight)), .number(Double(inputWidth)), 3], "dtype": "float32"],
                                inputs: [])
        var height = inputHeight, width = inputWidth
        var x = builder.conv("Conv1", filters: makeDivisible(32 * alpha), kernel: 3, stride: 2, padding: "same", from: input)
        height = (height + 1) / 2; width = (width + 1) / 2
        x = builder.batchNorm("bn_Conv1", from: x)
        x = builder.relu6("Conv1_relu", from: x)
        var channels = makeDivisible(32 * alpha)
        for (blockID, block) in blocks.enumerated() {
            let blockInput = x
            let pointwiseFilters = makeDivisible(Double(Int(Double(block.filters) * alpha)))
            let prefix = blockID == 0 ? "expanded_conv_" : "block_\(blockID)_"
            if blockID > 0 {
                x = builder.conv("\(prefix)expand", filters: block.expansion * channels, kernel: 1, stride: 1, padding: "same", from: x)
                x = builder.batchNorm("\(prefix)expand_BN", from: x)
                x = builder.relu6("\(prefix)expand_relu", from: x)
            }
            if block.stride == 2 {
                // correct_pad: one extra row/column after on even sizes, symmetric on odd sizes.
                let adjustH = 1 - height % 2, adjustW = 1 - width % 2
                x = builder.add("ZeroPadding2D", "\(prefix)pad",
                                ["padding": [[.number(Double(1 - adjustH)), 1], [.number(Double(1 - adjustW)), 1]],
                                 "data_format": "channels_last"], inputs: [x])
                height = (height + 2 - adjustH - 3) / 2 + 1
                width = (width + 2 - adjustW - 3) / 2 + 1
            }
            x = builder.add("DepthwiseConv2D", "\(prefix)depthwise",
                            ["kernel_size": [3, 3], "strides": [.number(Double(block.stride)), .number(Double(block.stride))],
                             "padding": .string(block.stride == 1 ? "same" : "valid"), "depth_multiplier": 1,
                             "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear", "use_bias": false],
                            inputs: [x])
            x = builder.batchNorm("\(prefix)depthwise_BN", from: x)
            x = builder.relu6("\(prefix)depthwise_relu", from: x)
            x = builder.conv("\(prefix)project", filters: pointwiseFilters, kernel: 1, stride: 1, padding: "same", from: x)
            x = builder.batchNorm("\(prefix)project_BN", from: x)
            if channels == pointwiseFilters && block.stride == 1 {
                x = builder.add("Add", "\(prefix)add", [:], inputs: [blockInput, x])
            }
            channels = pointwiseFilters
        }
        let lastFilters = alpha > 1.0 ? makeDivisible(1280 * alpha) : 1280
        x = builder.conv("Conv_1", filters: lastFilters, kernel: 1, stride: 1, padding: "valid", from: x)
        x = builder.batchNorm("Conv_1_bn", from: x)
        x = builder.relu6("out_relu", from: x)
        if includeTop {
            x = builder.add("GlobalAveragePooling2D", "global_average_pooling2d", ["data_format": "channels_last", "keepdims": false], inputs: [x])
            x = builder.add("Dense", "predictions", ["units": .number(Double(classes)), "activation": .string(classifierActivation), "use_bias": true], inputs: [x])
        } else if let pooling {
            let className = pooling == .avg ? "GlobalAveragePooling2D" : "GlobalMaxPooling2D"
            let layerName = pooling == .avg ? "global_average_pooling2d" : "global_max_pooling2d"
            x = builder.add(className, layerName, ["data_format": "channels_last", "keepdims": false], inputs: [x])
        }
        let rows = inputHeight
        return KerasModelConfig(className: "Functional", name: name ?? defaultName(alpha: alpha, rows: rows),
                                layers: builder.layers, inputs: [TensorReference(layer: input)],
                                outputs: [TensorReference(layer: x)])
    }

    private struct ConfigBuilder {
        var layers: [KerasLayerConfig] = []

        mutating func add(_ className: String, _ name: String, _ fields: [String: JSONValue], inputs: [String]) -> String {
            var config = fields
            config["name"] = .string(name)
            config["trainable"] = true
            config["dtype"] = "float32"
            layers.append(KerasLayerConfig(className: className, name: name, config: .object(config),
                                           inputs: inputs.map { TensorReference(layer: $0) }))
            return name
        }

        mutating func conv(_ name: String, filters: Int, kernel: Int, stride: Int, padding: String, from input: String) -> String {
            add("Conv2D", name, ["filters": .number(Double(filters)), "kernel_size": [.number(Double(kernel)), .number(Double(kernel))],
                                 "strides": [.number(Double(stride)), .number(Double(stride))], "padding": .string(padding),
                                 "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                                 "activation": "linear", "use_bias": false], inputs: [input])
        }

        mutating func batchNorm(_ name: String, from input: String) -> String {
            add("BatchNormalization", name, ["axis": -1, "momentum": 0.999, "epsilon": 0.001, "center": true, "scale": true], inputs: [input])
        }

        mutating func relu6(_ name: String, from input: String) -> String {
            add("ReLU", name, ["max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0], inputs: [input])
        }
    }
}

/// Python's `f"{x:0.2f}"`: fixed-point with round-half-even on the binary value.
func formatFixed(_ value: Double, digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (value * scale).rounded(.toNearestOrEven)
    let integer = Int(scaled)
    let whole = integer / Int(scale)
    let fraction = abs(integer % Int(scale))
    let fractionText = String(fraction)
    return "\(whole).\(String(repeating: "0", count: digits - fractionText.count))\(fractionText)"
}
