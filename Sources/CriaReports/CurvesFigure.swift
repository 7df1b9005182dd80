import CriaRecords
import Foundation

/// The seed's learning-curve figure, as the Keras transfer-learning tutorial draws it.
///
/// Two stacked panels, "Training and Validation Accuracy" (legend lower right)
/// and "Training and Validation Loss" (legend upper right), epochs on a 0-based
/// axis. The tutorial draws its "Start Fine Tuning" line at
/// `x = initial_epochs - 1`, the last frozen epoch, because its curves are
/// Python lists indexed from 0; with `fineTuneStartEpoch` being the first
/// epoch of the fine-tune phase (`initial_epochs`), the line sits at
/// `fineTuneStartEpoch - 1` here, so the two figures look the same.
///
/// The tutorial fixes ylim to [0.8, 1] and [0, 1]; these limits are kept as
/// the default view and widened only when a curve would leave them.
/// Accuracy is Cria's correct figure (logit > 0), not Keras's 0.5-threshold one.
public enum CurvesFigure {
    public static let width = 800.0
    public static let height = 800.0

    public static func svg(records: [EpochRecord], fineTuneStartEpoch: Int?, title: String) -> String {
        let epochs = records.map { Double($0.epoch) }
        let markerX = fineTuneStartEpoch.map { Double($0 - 1) }
        let xValues = epochs + (markerX.map { [$0] } ?? [])
        let xLow = xValues.min() ?? 0, xHigh = xValues.max() ?? 1
        let margin = max((xHigh - xLow) * 0.05, 0.25)
        let xRange = (xLow - margin) ... (xHigh + margin)

        let accuracies = records.flatMap { [$0.accuracy, $0.valAccuracy].compactMap { $0 } }.filter(\.isFinite)
        let accuracyLow = min(0.8, ((accuracies.min() ?? 0.8) * 10).rounded(.down) / 10)
        let losses = records.flatMap { [$0.loss, $0.valLoss].compactMap { $0 } }.filter(\.isFinite)
        let lossHigh = max(1.0, ((losses.max() ?? 1) * 10).rounded(.up) / 10)

        let marker = markerX.map {
            [VerticalMarker(x: $0, label: "Start Fine Tuning", color: SVG.palette[2],
                            attributes: " class=\"fine-tune-start\" data-epoch=\"\(Int($0))\"")]
        } ?? []
        let accuracy = LinePanel(
            title: "Training and Validation Accuracy", xLabel: nil, yLabel: "accuracy", xRange: xRange, yRange: accuracyLow ... 1.0,
            series: [
                PlotSeries(label: "Training Accuracy", color: SVG.palette[0], points: records.map { (Double($0.epoch), $0.accuracy) },
                           attributes: " class=\"accuracy\""),
                PlotSeries(label: "Validation Accuracy", color: SVG.palette[1],
                           points: records.compactMap { r in r.valAccuracy.map { (Double(r.epoch), $0) } }, attributes: " class=\"val_accuracy\""),
            ],
            markers: marker, legend: .lowerRight)
        let loss = LinePanel(
            title: "Training and Validation Loss", xLabel: "epoch", yLabel: "loss", xRange: xRange, yRange: 0 ... lossHigh,
            series: [
                PlotSeries(label: "Training Loss", color: SVG.palette[0], points: records.map { (Double($0.epoch), $0.loss) },
                           attributes: " class=\"loss\""),
                PlotSeries(label: "Validation Loss", color: SVG.palette[1],
                           points: records.compactMap { r in r.valLoss.map { (Double(r.epoch), $0) } }, attributes: " class=\"val_loss\""),
            ],
            markers: marker, legend: .upperRight)
        var body = SVG.text(title, x: width / 2, y: 22, size: 15, weight: "bold")
        if records.isEmpty { body += SVG.text("no epochs logged yet", x: width / 2, y: 44, size: 12) }
        body += accuracy.render(x: 0, y: 30, width: width, height: (height - 30) / 2)
        body += loss.render(x: 0, y: 30 + (height - 30) / 2, width: width, height: (height - 30) / 2)
        return SVG.document(width: width, height: height, title: title, body: body)
    }
}
