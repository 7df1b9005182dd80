import CriaCore
import CriaRecords
import Foundation

/// `comparison.svg`: validation-accuracy curves of frozen-only trials (grey,
/// dashed) against fine-tuned ones (one colour per fine-tune depth), and,
/// when the trials differ in both the fine-tune phase's learning rate and its
/// freezing, a heatmap of the mean final validation accuracy over the two.
enum ComparisonFigure {
    static let width = 900.0

    static func svg(trials: [TrialSummary], title: String) -> String {
        let overlayHeight = 460.0
        var body = SVG.text(title, x: width / 2, y: 22, size: 15, weight: "bold")
        body += overlay(trials).render(x: 0, y: 30, width: width, height: overlayHeight)
        var height = 30 + overlayHeight
        if let heatmap = heatmap(trials) {
            body += heatmap.render(x: 0, y: height, width: width, height: 60 + 46 * Double(heatmap.rows.count) + 50)
            height += 60 + 46 * Double(heatmap.rows.count) + 50
        }
        return SVG.document(width: width, height: height, title: title, body: body)
    }

    /// Depth labels in display order: frozen only first, then by the layer fine-tuning starts from.
    static func depthOrder(_ trials: [TrialSummary]) -> [String] {
        var seen = [String: (Double, Bool)]()
        for trial in trials { seen[trial.depthLabel] = (trial.depthValue ?? .infinity, trial.isFrozenOnly) }
        return seen.keys.sorted { a, b in
            let x = seen[a]!, y = seen[b]!
            if x.1 != y.1 { return x.1 }
            return x.0 != y.0 ? x.0 < y.0 : a < b
        }
    }

    static func overlay(_ trials: [TrialSummary]) -> LinePanel {
        let depths = depthOrder(trials)
        let colours = SVG.palette.enumerated().filter { $0.offset != 7 }.map(\.element)  // grey is for frozen only
        var colourOf = [String: String]()
        var index = 0
        for depth in depths {
            if depth == "frozen only" { colourOf[depth] = SVG.palette[7] } else { colourOf[depth] = colours[index % colours.count]; index += 1 }
        }
        var labelled = Set<String>()
        var series = [PlotSeries]()
        // Frozen trials first so fine-tuned curves are drawn over them.
        for trial in trials.sorted(by: { ($0.isFrozenOnly ? 0 : 1, $0.trialID) < ($1.isFrozenOnly ? 0 : 1, $1.trialID) }) {
            let depth = trial.depthLabel
            let label = labelled.insert(depth).inserted ? depth : ""
            series.append(PlotSeries(label: label, color: colourOf[depth]!,
                                     points: trial.records.compactMap { r in r.valAccuracy.map { (Double(r.epoch), $0) } },
                                     dashed: trial.isFrozenOnly, width: 1.2,
                                     attributes: " class=\"val_accuracy\" data-trial=\"\(SVG.escape(trial.trialID))\" data-depth=\"\(SVG.escape(depth))\""))
        }
        let epochs = trials.flatMap { $0.records.map { Double($0.epoch) } }
        let values = trials.flatMap { $0.records.compactMap(\.valAccuracy) }.filter(\.isFinite)
        let low = min(0.8, ((values.min() ?? 0.8) * 10).rounded(.down) / 10)
        let starts = Set(trials.compactMap(\.fineTuneStartEpoch))
        // One shared marker only when every fine-tuned trial starts at the same epoch; otherwise it would mislead.
        let markers = starts.count == 1 ? [VerticalMarker(x: Double(starts.first! - 1), label: "Start Fine Tuning", color: "#444444")] : []
        let xLow = (epochs + markers.map(\.x)).min() ?? 0, xHigh = (epochs + markers.map(\.x)).max() ?? 1
        let margin = max((xHigh - xLow) * 0.03, 0.25)
        return LinePanel(title: "Validation accuracy: frozen only vs fine-tuned", xLabel: "epoch", yLabel: "val_accuracy",
                         xRange: (xLow - margin) ... (xHigh + margin), yRange: low ... 1.0, series: series, markers: markers,
                         legend: .lowerRight)
    }

    /// The learning rate × freezing grid of the fine-tune phase, or nil when the trials do not differ in both.
    /// The fine-tune phase is the first phase that unfreezes the base in any trial; a frozen-only
    /// trial contributes that same phase (frozen) to the `none` column. Both axes come from the
    /// phases' typed records, never from the names of sweep keys.
    static func heatmap(_ trials: [TrialSummary]) -> HeatmapPanel? {
        guard let index = trials.lazy.compactMap({ trial in trial.fineTunePhase.flatMap { phase in trial.phases.firstIndex(of: phase) } }).first
        else { return nil }
        let cells = trials.compactMap { trial -> (lr: JSONValue, depth: JSONValue, trial: TrialSummary)? in
            guard trial.phases.indices.contains(index), let lr = trial.phases[index].learningRate else { return nil }
            return (.number(lr), depthValue(trial.phases[index].freezing), trial)
        }
        let lrs = distinct(cells.map(\.lr))
        let depths = distinct(cells.map(\.depth))
        guard lrs.count > 1, depths.count > 1 else { return nil }
        let values = lrs.map { lr in
            depths.map { depth in
                MeanStd(cells.filter { $0.lr == lr && $0.depth == depth }.compactMap(\.trial.finalValAccuracy))?.mean
            }
        }
        let keys = Set(cells.map { $0.trial.phases[index].freezing }.filter(\.unfreezesBase).map(\.configKey))
        let lrLabel = "phases[\(index)].lr"
        let depthLabel = keys.count == 1 && keys.first != "trainable" ? "phases[\(index)].\(keys.first!)" : "phases[\(index)] freezing"
        return HeatmapPanel(title: "Mean final val_accuracy over \(lrLabel) × \(depthLabel)", rowLabel: lrLabel, columnLabel: depthLabel,
                            rows: lrs.map(TrialSummary.format), columns: depths.map(TrialSummary.format), values: values)
    }

    /// A freezing as a heatmap column: none (null) for a frozen base, the layer index, or the config's value.
    static func depthValue(_ freezing: Freezing) -> JSONValue {
        switch freezing {
        case .baseFrozen: return .null
        case .fineTuneAt(let index): return .number(Double(index))
        case .all, .fineTuneFrom: return .string(freezing.configValue)
        }
    }

    /// Distinct values, none (null) first, numbers ascending, then strings.
    static func distinct(_ values: [JSONValue]) -> [JSONValue] {
        var unique = [JSONValue]()
        for value in values where !unique.contains(value) { unique.append(value) }
        func order(_ value: JSONValue) -> (Int, Double, String) {
            switch value {
            case .null: return (0, 0, "")
            case .string(let text) where text.lowercased() == "none": return (0, 0, "")
            case .number(let number): return (1, number, "")
            default: return (2, 0, TrialSummary.format(value))
            }
        }
        return unique.sorted { order($0) < order($1) }
    }
}
