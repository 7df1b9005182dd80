import Foundation

/// A minimal line-plot and heatmap renderer producing plain SVG text.
///
/// Only what the report figures need: axes with "nice" ticks, polylines,
/// labelled vertical markers, a legend and a colour grid. Colours follow
/// matplotlib's default cycle so the figures look like the Keras tutorial's.
enum SVG {
    /// matplotlib's tab10 cycle.
    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    static func document(width: Double, height: Double, title: String, body: String) -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(number(width))" height="\(number(height))" viewBox="0 0 \(number(width)) \(number(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
        <title>\(escape(title))</title>
        <rect x="0" y="0" width="\(number(width))" height="\(number(height))" fill="white"/>
        \(body)</svg>

        """
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }

    /// Coordinates with two decimals and no trailing zeros: small files, stable text.
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        var text = String(format: "%.2f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text == "-0" ? "0" : text
    }

    static func text(_ content: String, x: Double, y: Double, size: Double = 12, anchor: String = "middle",
                     weight: String? = nil, rotate: Bool = false, extra: String = "") -> String {
        let transform = rotate ? " transform=\"rotate(-90 \(number(x)) \(number(y)))\"" : ""
        let bold = weight.map { " font-weight=\"\($0)\"" } ?? ""
        return "<text x=\"\(number(x))\" y=\"\(number(y))\" font-size=\"\(number(size))\" text-anchor=\"\(anchor)\"\(bold)\(transform)\(extra)>\(escape(content))</text>\n"
    }

    /// Tick values covering `range` with a 1-2-5 step, about `target` of them.
    static func ticks(_ range: ClosedRange<Double>, target: Int = 6, integer: Bool = false) -> [Double] {
        let span = range.upperBound - range.lowerBound
        guard span > 0, span.isFinite else { return [range.lowerBound] }
        let raw = span / Double(max(target, 1))
        var exponent = Int(floor(log10(raw)))
        var mantissa = [1.0, 2.0, 2.5, 5.0, 10.0].first { $0 * pow(10, Double(exponent)) >= raw } ?? 10
        if integer && exponent < 0 { mantissa = 1; exponent = 0 }
        if integer && exponent == 0 && mantissa == 2.5 { mantissa = 5 }
        // k × mantissa scaled by an exact power of ten: 3 × 2 / 10 is 0.6, where 3 × 0.2 is 0.6000000000000001.
        func tick(_ k: Double) -> Double { exponent < 0 ? k * mantissa / pow(10, Double(-exponent)) : k * mantissa * pow(10, Double(exponent)) }
        let step = tick(1)
        var values = [Double]()
        var k = (range.lowerBound / step).rounded(.up)
        while tick(k) <= range.upperBound + step * 1e-9 {
            values.append(k == 0 ? 0 : tick(k))
            k += 1
        }
        return values
    }

    static func tickLabel(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e9 { return String(Int(value)) }
        var text = String(format: "%.4f", value)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }
}

struct PlotSeries {
    var label: String
    var color: String
    var points: [(x: Double, y: Double)]
    var dashed = false
    var width = 1.5
    /// Extra attributes for the polyline (for example a class that tests look for).
    var attributes = ""
}

struct VerticalMarker {
    var x: Double
    var label: String
    var color: String
    var attributes = ""
}

enum LegendCorner { case lowerRight, upperRight, upperLeft, lowerLeft }

struct LinePanel {
    var title: String
    var xLabel: String?
    var yLabel: String?
    var xRange: ClosedRange<Double>
    var yRange: ClosedRange<Double>
    var series: [PlotSeries]
    var markers: [VerticalMarker] = []
    var legend: LegendCorner = .lowerRight
    var integerX = true

    /// Renders into the rectangle (x, y, width, height) of the outer figure, margins included.
    func render(x originX: Double, y originY: Double, width: Double, height: Double) -> String {
        let left = originX + 62, right = originX + width - 16, top = originY + 30, bottom = originY + height - 44
        func px(_ value: Double) -> Double {
            let span = xRange.upperBound - xRange.lowerBound
            return span == 0 ? (left + right) / 2 : left + (value - xRange.lowerBound) / span * (right - left)
        }
        func py(_ value: Double) -> Double {
            let span = yRange.upperBound - yRange.lowerBound
            return span == 0 ? (top + bottom) / 2 : bottom - (value - yRange.lowerBound) / span * (bottom - top)
        }
        var out = "<g>\n"
        out += SVG.text(title, x: (left + right) / 2, y: originY + 20, size: 14)
        out += "<rect x=\"\(SVG.number(left))\" y=\"\(SVG.number(top))\" width=\"\(SVG.number(right - left))\" height=\"\(SVG.number(bottom - top))\" fill=\"none\" stroke=\"black\" stroke-width=\"0.8\"/>\n"
        for tick in SVG.ticks(xRange, target: 8, integer: integerX) {
            let x = px(tick)
            out += "<line x1=\"\(SVG.number(x))\" y1=\"\(SVG.number(bottom))\" x2=\"\(SVG.number(x))\" y2=\"\(SVG.number(bottom + 4))\" stroke=\"black\" stroke-width=\"0.8\"/>\n"
            out += SVG.text(SVG.tickLabel(tick), x: x, y: bottom + 17, size: 10)
        }
        for tick in SVG.ticks(yRange, target: 5) {
            let y = py(tick)
            out += "<line x1=\"\(SVG.number(left - 4))\" y1=\"\(SVG.number(y))\" x2=\"\(SVG.number(left))\" y2=\"\(SVG.number(y))\" stroke=\"black\" stroke-width=\"0.8\"/>\n"
            out += SVG.text(SVG.tickLabel(tick), x: left - 7, y: y + 3.5, size: 10, anchor: "end")
        }
        if let xLabel { out += SVG.text(xLabel, x: (left + right) / 2, y: bottom + 36, size: 12) }
        if let yLabel { out += SVG.text(yLabel, x: originX + 16, y: (top + bottom) / 2, size: 12, rotate: true) }
        // Clip the data to the axes, as matplotlib does when ylim cuts a curve.
        let clip = "clip\(abs(Int(originX * 7 + originY * 13)))"
        out += "<clipPath id=\"\(clip)\"><rect x=\"\(SVG.number(left))\" y=\"\(SVG.number(top))\" width=\"\(SVG.number(right - left))\" height=\"\(SVG.number(bottom - top))\"/></clipPath>\n"
        out += "<g clip-path=\"url(#\(clip))\">\n"
        for series in series {
            // A non-finite value (a diverged loss) breaks the line instead of drawing to infinity.
            var runs: [[(x: Double, y: Double)]] = [[]]
            for point in series.points {
                if point.x.isFinite && point.y.isFinite { runs[runs.count - 1].append(point) } else if !runs[runs.count - 1].isEmpty { runs.append([]) }
            }
            for run in runs where !run.isEmpty {
                let points = run.map { "\(SVG.number(px($0.x))),\(SVG.number(py($0.y)))" }.joined(separator: " ")
                let dash = series.dashed ? " stroke-dasharray=\"5,3\"" : ""
                out += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(series.color)\" stroke-width=\"\(SVG.number(series.width))\"\(dash)\(series.attributes)/>\n"
                if run.count == 1 {
                    out += "<circle cx=\"\(SVG.number(px(run[0].x)))\" cy=\"\(SVG.number(py(run[0].y)))\" r=\"2\" fill=\"\(series.color)\"/>\n"
                }
            }
        }
        for marker in markers {
            let x = px(marker.x)
            out += "<line x1=\"\(SVG.number(x))\" y1=\"\(SVG.number(top))\" x2=\"\(SVG.number(x))\" y2=\"\(SVG.number(bottom))\" stroke=\"\(marker.color)\" stroke-width=\"1.5\"\(marker.attributes)/>\n"
        }
        out += "</g>\n"
        for marker in markers {
            out += SVG.text(marker.label, x: px(marker.x) + 4, y: top + 12, size: 10, anchor: "start", extra: " fill=\"\(marker.color)\"")
        }
        out += legendBlock(left: left, right: right, top: top, bottom: bottom)
        return out + "</g>\n"
    }

    private func legendBlock(left: Double, right: Double, top: Double, bottom: Double) -> String {
        let entries = series.filter { !$0.label.isEmpty }.map { ($0.label, $0.color, $0.dashed) } + markers.map { ($0.label, $0.color, false) }
        guard !entries.isEmpty else { return "" }
        let rowHeight = 16.0
        let width = 36 + Double(entries.map(\.0.count).max() ?? 0) * 6.3
        let height = Double(entries.count) * rowHeight + 8
        let x = legend == .lowerRight || legend == .upperRight ? right - width - 8 : left + 8
        let y = legend == .lowerRight || legend == .lowerLeft ? bottom - height - 8 : top + 8
        var out = "<g class=\"legend\">\n<rect x=\"\(SVG.number(x))\" y=\"\(SVG.number(y))\" width=\"\(SVG.number(width))\" height=\"\(SVG.number(height))\" fill=\"white\" fill-opacity=\"0.8\" stroke=\"#cccccc\" rx=\"3\"/>\n"
        for (index, entry) in entries.enumerated() {
            let rowY = y + 12 + Double(index) * rowHeight
            let dash = entry.2 ? " stroke-dasharray=\"5,3\"" : ""
            out += "<line x1=\"\(SVG.number(x + 6))\" y1=\"\(SVG.number(rowY - 4))\" x2=\"\(SVG.number(x + 28))\" y2=\"\(SVG.number(rowY - 4))\" stroke=\"\(entry.1)\" stroke-width=\"2\"\(dash)/>\n"
            out += SVG.text(entry.0, x: x + 33, y: rowY, size: 10.5, anchor: "start")
        }
        return out + "</g>\n"
    }
}

/// A colour grid of values over two categorical axes (rows × columns), annotated with each cell's value.
struct HeatmapPanel {
    var title: String
    var rowLabel: String
    var columnLabel: String
    var rows: [String]
    var columns: [String]
    /// values[row][column]; nil cells are drawn grey.
    var values: [[Double?]]

    func render(x originX: Double, y originY: Double, width: Double, height: Double) -> String {
        let left = originX + 90, right = originX + width - 20, top = originY + 30, bottom = originY + height - 46
        let finite = values.flatMap { $0 }.compactMap { $0 }.filter(\.isFinite)
        let low = finite.min() ?? 0, high = finite.max() ?? 1
        let cellWidth = (right - left) / Double(max(columns.count, 1)), cellHeight = (bottom - top) / Double(max(rows.count, 1))
        var out = "<g class=\"heatmap\">\n" + SVG.text(title, x: (left + right) / 2, y: originY + 20, size: 14)
        for (r, row) in rows.enumerated() {
            for (c, _) in columns.enumerated() {
                let value = values[r][c]
                let x = left + Double(c) * cellWidth, y = top + Double(r) * cellHeight
                let fill = value.map { viridis(high > low ? ($0 - low) / (high - low) : 0.5) } ?? "#dddddd"
                out += "<rect x=\"\(SVG.number(x))\" y=\"\(SVG.number(y))\" width=\"\(SVG.number(cellWidth))\" height=\"\(SVG.number(cellHeight))\" fill=\"\(fill)\" stroke=\"white\"/>\n"
                let label = value.map { String(format: "%.3f", $0) } ?? "–"
                let dark = value.map { high > low ? ($0 - low) / (high - low) > 0.6 : false } ?? true
                out += SVG.text(label, x: x + cellWidth / 2, y: y + cellHeight / 2 + 4, size: 11, extra: " fill=\"\(dark ? "black" : "white")\"")
            }
            out += SVG.text(row, x: left - 6, y: top + (Double(r) + 0.5) * cellHeight + 4, size: 10, anchor: "end")
        }
        for (c, column) in columns.enumerated() {
            out += SVG.text(column, x: left + (Double(c) + 0.5) * cellWidth, y: bottom + 15, size: 10)
        }
        out += SVG.text(columnLabel, x: (left + right) / 2, y: bottom + 34, size: 12)
        out += SVG.text(rowLabel, x: originX + 14, y: (top + bottom) / 2, size: 12, rotate: true)
        return out + "</g>\n"
    }

    /// matplotlib's viridis at five anchors, linearly interpolated: readable and colour-blind safe.
    private func viridis(_ t: Double) -> String {
        let anchors: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let position = min(max(t, 0), 1) * Double(anchors.count - 1)
        let index = min(Int(position), anchors.count - 2)
        let f = position - Double(index)
        let a = anchors[index], b = anchors[index + 1]
        func channel(_ x: Double, _ y: Double) -> Int { Int((x + (y - x) * f).rounded()) }
        return String(format: "#%02x%02x%02x", channel(a.0, b.0), channel(a.1, b.1), channel(a.2, b.2))
    }
}
