import CriaCore
import Foundation

/// `comparison.svg`: validation-accuracy curves of frozen-only trials (grey,
/// dashed) against fine-tuned ones (one colour per fine-tune depth), and,
/// when the sweep varies both a learning rate and `fine_tune_at`, a heatmap of
/// the mean final validation accuracy over lr × fine_tune_at.
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

    /// The lr × fine_tune_at grid, or nil when the sweep does not vary both.
    static func heatmap(_ trials: [TrialSummary]) -> HeatmapPanel? {
        let keys = ExperimentReport.parameterKeys(trials)
        guard let depthKey = keys.first(where: { $0.contains("fine_tune_at") }),
              let lrKey = keys.first(where: { $0.lowercased().contains("lr") && !$0.contains("fine_tune_at") }) else { return nil }
        let lrs = distinct(trials.compactMap { $0.parameters[lrKey] })
        let depths = distinct(trials.compactMap { $0.parameters[depthKey] })
        guard lrs.count > 1, depths.count > 1 else { return nil }
        let values = lrs.map { lr in
            depths.map { depth in
                MeanStd(trials.filter { $0.parameters[lrKey] == lr && $0.parameters[depthKey] == depth }.compactMap(\.finalValAccuracy))?.mean
            }
        }
        return HeatmapPanel(title: "Mean final val_accuracy over \(lrKey) × \(depthKey)", rowLabel: lrKey, columnLabel: depthKey,
                            rows: lrs.map(TrialSummary.format), columns: depths.map(TrialSummary.format), values: values)
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
