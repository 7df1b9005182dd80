import CriaCore
import Foundation

/// TensorBoard's HParams plugin records, as `tensorboard.plugins.hparams` writes them:
/// summaries whose metadata names the plugin "hparams" and whose content is a
/// serialised `HParamsPluginData` (tensorboard/plugins/hparams/plugin_data.proto):
///
/// - the experiment, at the sweep's root run: every hyperparameter with its type and
///   domain, and the metrics, each a (run suffix, scalar tag) pair;
/// - per trial (a "session"), in the trial's root run: a start record with its
///   hyperparameter values, and an end record with its status.
///
/// The dashboard finds a session's metric `(group, tag)` as the last value of scalar
/// `tag` in run `<session>/<group>`: `validation/epoch_accuracy` is the trial's final
/// validation accuracy, read from the `validation/` run Keras's layout already has.
public enum HParams {
    public static let pluginName = "hparams"
    public static let experimentTag = "_hparams_/experiment"
    public static let sessionStartTag = "_hparams_/session_start_info"
    public static let sessionEndTag = "_hparams_/session_end_info"
    /// The experiment's event file at the sweep root. A fixed name, written atomically, so
    /// shards that start at once, and reruns, leave one file rather than one each.
    public static let experimentFileName = "events.out.tfevents.0.cria-hparams.v2"

    /// A `google.protobuf.Value`: hyperparameter values are numbers, strings or booleans.
    public enum Value: Equatable, Sendable {
        case number(Double)
        case string(String)
        case bool(Bool)
    }

    /// api.proto's `DataType`.
    public enum DataType: UInt64, Sendable { case string = 1, bool = 2, float64 = 3 }

    public enum Domain: Equatable, Sendable {
        case discrete([Value])
        case interval(min: Double, max: Double)
    }

    public struct HParamInfo: Equatable, Sendable {
        public var name: String
        public var displayName: String
        public var description: String
        public var type: DataType
        public var domain: Domain?
        /// Whether sessions take different values; TensorBoard's dashboard shows such hparams first.
        public var differs: Bool

        public init(name: String, displayName: String = "", description: String = "", type: DataType, domain: Domain?, differs: Bool = true) {
            self.name = name
            self.displayName = displayName
            self.description = description
            self.type = type
            self.domain = domain
            self.differs = differs
        }
    }

    /// api.proto's `DatasetType`.
    public enum DatasetType: UInt64, Sendable { case unknown = 0, training = 1, validation = 2 }

    public struct MetricInfo: Equatable, Sendable {
        /// The run suffix under the session's run (`validation`), "" for the session's own run.
        public var group: String
        public var tag: String
        public var displayName: String
        public var description: String
        public var datasetType: DatasetType

        public init(group: String, tag: String, displayName: String = "", description: String = "", datasetType: DatasetType = .unknown) {
            self.group = group
            self.tag = tag
            self.displayName = displayName
            self.description = description
            self.datasetType = datasetType
        }
    }

    public struct Experiment: Equatable, Sendable {
        public var name: String
        public var description: String
        public var timeCreatedSecs: Double
        public var hparams: [HParamInfo]
        public var metrics: [MetricInfo]

        public init(name: String, description: String = "", timeCreatedSecs: Double, hparams: [HParamInfo], metrics: [MetricInfo]) {
            self.name = name
            self.description = description
            self.timeCreatedSecs = timeCreatedSecs
            self.hparams = hparams
            self.metrics = metrics
        }
    }

    /// api.proto's `Status`.
    public enum Status: UInt64, Sendable { case unknown = 0, success = 1, failure = 2, running = 3 }

    // MARK: Encoding (field numbers from api.proto and plugin_data.proto)

    /// HParamsPluginData { int32 version = 1; oneof data { Experiment experiment = 2;
    ///   SessionStartInfo session_start_info = 3; SessionEndInfo session_end_info = 4; } }
    /// Version 0 is the plugin's PLUGIN_DATA_VERSION (a default, so not written).
    static func pluginData(_ field: Int, _ message: ProtobufMessage) -> [UInt8] {
        ProtobufMessage { $0.message(field, message) }.bytes
    }

    /// Experiment { string description = 1; string user = 2; double time_created_secs = 3;
    ///   repeated HParamInfo hparam_infos = 4; repeated MetricInfo metric_infos = 5; string name = 6; }
    public static func content(_ experiment: Experiment) -> [UInt8] {
        pluginData(2, ProtobufMessage { out in
            if !experiment.description.isEmpty { out.string(1, experiment.description) }
            out.doubleField(3, experiment.timeCreatedSecs)
            for info in experiment.hparams { out.message(4, encode(info)) }
            for info in experiment.metrics { out.message(5, encode(info)) }
            if !experiment.name.isEmpty { out.string(6, experiment.name) }
        })
    }

    /// SessionStartInfo { map<string, google.protobuf.Value> hparams = 1; string model_uri = 2;
    ///   string monitor_url = 3; string group_name = 4; double start_time_secs = 5; }
    /// A map entry is a message { key = 1; value = 2; }. An empty group name puts each session in its own group.
    public static func sessionStartContent(hparams: [(name: String, value: Value)], groupName: String = "", modelURI: String = "",
                                           startTimeSecs: Double) -> [UInt8] {
        pluginData(3, ProtobufMessage { out in
            for (name, value) in hparams {
                out.message(1, ProtobufMessage { entry in
                    entry.string(1, name)
                    entry.message(2, encode(value))
                })
            }
            if !modelURI.isEmpty { out.string(2, modelURI) }
            if !groupName.isEmpty { out.string(4, groupName) }
            out.doubleField(5, startTimeSecs)
        })
    }

    /// SessionEndInfo { Status status = 1; double end_time_secs = 2; }
    public static func sessionEndContent(status: Status, endTimeSecs: Double) -> [UInt8] {
        pluginData(4, ProtobufMessage { out in
            if status != .unknown { out.varint(1, status.rawValue) }
            out.doubleField(2, endTimeSecs)
        })
    }

    /// google.protobuf.Value { oneof kind { NullValue null_value = 1; double number_value = 2;
    ///   string string_value = 3; bool bool_value = 4; ListValue list_value = 6; } }
    static func encode(_ value: Value) -> ProtobufMessage {
        ProtobufMessage { out in
            switch value {
            case .number(let number): out.double(2, number)
            case .string(let text): out.string(3, text)
            case .bool(let flag): out.bool(4, flag)
            }
        }
    }

    /// HParamInfo { string name = 1; string display_name = 2; string description = 3; DataType type = 4;
    ///   oneof domain { google.protobuf.ListValue domain_discrete = 5; Interval domain_interval = 6; } bool differs = 7; }
    /// ListValue { repeated Value values = 1; }  Interval { double min_value = 1; double max_value = 2; }
    static func encode(_ info: HParamInfo) -> ProtobufMessage {
        ProtobufMessage { out in
            out.string(1, info.name)
            if !info.displayName.isEmpty { out.string(2, info.displayName) }
            if !info.description.isEmpty { out.string(3, info.description) }
            out.varint(4, info.type.rawValue)
            switch info.domain {
            case .discrete(let values)?:
                out.message(5, ProtobufMessage { list in for value in values { list.message(1, encode(value)) } })
            case .interval(let low, let high)?:
                out.message(6, ProtobufMessage { interval in
                    interval.doubleField(1, low)
                    interval.doubleField(2, high)
                })
            case nil: break
            }
            if info.differs { out.bool(7, true) }
        }
    }

    /// MetricInfo { MetricName name = 1; string display_name = 3; string description = 4; DatasetType dataset_type = 5; }
    /// MetricName { string group = 1; string tag = 2; }
    static func encode(_ info: MetricInfo) -> ProtobufMessage {
        ProtobufMessage { out in
            out.message(1, ProtobufMessage { name in
                if !info.group.isEmpty { name.string(1, info.group) }
                name.string(2, info.tag)
            })
            if !info.displayName.isEmpty { out.string(3, info.displayName) }
            if !info.description.isEmpty { out.string(4, info.description) }
            if info.datasetType != .unknown { out.varint(5, info.datasetType.rawValue) }
        }
    }

    /// The event holding one plugin record, at step 0 as `hp.hparams` writes it.
    public static func event(tag: String, content: [UInt8], wallTime: Double) -> [UInt8] {
        TFEvents.summaryEvent(wallTime: wallTime, step: 0, values: [.pluginData(tag: tag, plugin: pluginName, content: content)])
    }

    // MARK: Files

    /// Writes the experiment into the sweep's root run: the file `experimentFileName`,
    /// whole and atomically (temporary file, then rename).
    public static func writeExperiment(_ experiment: Experiment, to directory: URL) throws {
        let now = Date().timeIntervalSince1970
        let bytes = TFEvents.record(TFEvents.fileVersionEvent(wallTime: now))
            + TFEvents.record(event(tag: experimentTag, content: content(experiment), wallTime: now))
        try AtomicFile.write(Data(bytes), to: directory.appendingPathComponent(experimentFileName))
    }

    /// Appends a session's start record to the event file of its run (the trial directory).
    public static func startSession(in directory: URL, hparams: [(name: String, value: Value)], groupName: String = "",
                                    modelURI: String = "", time: Double = Date().timeIntervalSince1970) throws {
        let content = sessionStartContent(hparams: hparams, groupName: groupName, modelURI: modelURI, startTimeSecs: time)
        try EventFileWriter(directory: directory).append([event(tag: sessionStartTag, content: content, wallTime: time)])
    }

    /// Appends a session's end record, after `scalars` (summary metrics the experiment
    /// lists with an empty group), to the event file of its run.
    public static func endSession(in directory: URL, status: Status, scalars: [(tag: String, value: Double)] = [], step: Int64 = 0,
                                  time: Double = Date().timeIntervalSince1970) throws {
        var events = [[UInt8]]()
        if !scalars.isEmpty {
            events.append(TFEvents.summaryEvent(wallTime: time, step: step, values: scalars.map { .scalar(tag: $0.tag, value: Float($0.value)) }))
        }
        events.append(event(tag: sessionEndTag, content: sessionEndContent(status: status, endTimeSecs: time), wallTime: time))
        try EventFileWriter(directory: directory).append(events)
    }
}
