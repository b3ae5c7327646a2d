import Checkpoints
import Tensors

extension VerificationReport {
    /// An error or tolerance as the report prints it: two decimals of mantissa, as `%.2e` ("1.23e-05").
    static func scientific(_ value: Double) -> String { NumberFormat.scientific(value, fractionDigits: 2) }

    /// The per-layer table (max, mean and p99 |a−b|, relative L2, 1 − cosine, SNR, the error the layer adds), the
    /// first divergence marked, its likely causes and a verdict. The median is in `json`.
    public var text: String {
        let header = ["layer", "shape", "max |a−b|", "mean |a−b|", "p99 |a−b|", "rel L2", "1−cos", "SNR dB", "added", ""]
        var rows: [[String]] = [header]
        for layer in layers {
            let shape = "[" + layer.shape.map(String.init).joined(separator: ", ") + "]"
            var status = layer.passed ? "ok" : "FAIL"
            if layer.name == firstDivergence { status += "  ← first divergence" }
            if let problem = layer.problem { status += " (\(problem))" }
            let s = layer.statistics
            rows.append([layer.name, shape, Self.scientific(s.maxAbs), Self.scientific(s.meanAbs), Self.scientific(s.p99Abs),
                         Self.scientific(s.relativeL2), Self.scientific(ErrorMetric.cosine.score(s)), Self.decibels(s.snrDecibels),
                         Self.scientific(layer.addedError), status])
        }
        let last = header.count - 1
        var widths = [Int](repeating: 0, count: header.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var lines = rows.map { row in
            row.enumerated().map { i, cell in
                i >= 2 && i < last ? String(repeating: " ", count: widths[i] - cell.count) + cell
                    : (i == last ? cell : cell + String(repeating: " ", count: widths[i] - cell.count))
            }.joined(separator: "  ").replacingTrailingSpaces()
        }
        let metric = tolerance.metric
        lines.insert("a: \(labelA)\nb: \(labelB)\ntolerance: \(metric.scoreName) ≤ \(Self.scientific(tolerance.rtol))"
                     + (tolerance.atol > 0 ? " or \(metric.absoluteName) ≤ \(Self.scientific(tolerance.atol))" : "") + "\n", at: 0)
        for note in notes { lines.append("note: \(note)") }
        if isVacuous {
            lines.append("\nFAIL: nothing beyond the inputs was compared (\(layers.map(\.name).joined(separator: ", ")))")
        } else if let first = firstDivergence {
            lines.append("\nFAIL: first divergence at \(first)")
            for cause in likelyCauses { lines.append("likely cause: \(cause)") }
        } else {
            lines.append("\nPASS: all \(layers.count) layers within tolerance")
        }
        return lines.joined(separator: "\n")
    }

    /// An SNR in dB as the table prints it: one decimal, "inf" when the sides are equal.
    static func decibels(_ value: Double) -> String { NumberFormat.fixed(value, fractionDigits: 1) }

    /// The first failing layer with a token grid, and its per-token errors (the SVG's heat map); nil when no failing
    /// layer has a token axis. Before the first divergence every layer passed, so this is the first divergence
    /// itself when it has tokens, else the first later failing layer that has them.
    public var heatMapLayer: LayerComparison? {
        layers.first { !$0.passed && $0.tokenGrid != nil && $0.tokenErrors != nil }
    }

    /// JSON valid against `schemas/verify.schema.json`.
    public var json: JSONValue {
        func number(_ v: Double) -> JSONValue { v.isFinite ? .double(v) : .string(v.isNaN ? "nan" : (v < 0 ? "-inf" : "inf")) }
        let metric = tolerance.metric
        return .object([
            ("a", .string(labelA)), ("b", .string(labelB)),
            ("tolerance", .object([("rtol", .double(tolerance.rtol)), ("atol", .double(tolerance.atol)), ("metric", .string(metric.rawValue))])),
            ("passed", .bool(passed)),
            ("first_divergence", firstDivergence.map { .string($0) } ?? .null),
            ("likely_causes", .array(likelyCauses.map { .string($0) })),
            ("notes", .array(notes.map { .string($0) })),
            ("layers", .array(layers.map { l in
                let s = l.statistics
                return .object([
                    ("name", .string(l.name)), ("shape", .array(l.shape.map { .int($0) })), ("max_abs", number(s.maxAbs)),
                    ("relative_l2", number(s.relativeL2)), ("passed", .bool(l.passed)), ("problem", l.problem.map { .string($0) } ?? .null),
                    ("mean_abs", number(s.meanAbs)), ("median_abs", number(s.medianAbs)), ("p99_abs", number(s.p99Abs)),
                    ("cosine", number(s.cosine)), ("snr_db", number(s.snrDecibels)), ("reference_max_abs", number(s.referenceMaxAbs)),
                    ("score", number(metric.score(s))), ("added_error", number(l.addedError)),
                    ("series", l.series.map { .string($0) } ?? .null), ("feeders", .array(l.feeders.map { .string($0) })),
                ])
            })),
            ("heat_map", heatMapLayer.map { l in
                .object([
                    ("layer", .string(l.name)), ("rows", .int(l.tokenGrid!.rows)), ("columns", .int(l.tokenGrid!.columns)),
                    ("token_relative_l2", .array(l.tokenErrors!.map(number))),
                ])
            } ?? .null),
        ])
    }

    /// An SVG chart of each layer's score (the metric's: relative L2 by default) on a log axis: one line per chain
    /// (the embeddings, the token stream; inputs as lone points), joined only along the layers that feed each other;
    /// failing layers in red; bars for the error each layer adds; the tolerance as a dashed line; the first divergence
    /// as a red vertical line; and, when a failing layer has a token grid, a heat map of its per-token relative error.
    /// Self-contained (no scripts, no external fonts).
    public var svg: String {
        let metric = tolerance.metric
        let heat = heatMapLayer
        let chartHeight = 420
        let width = max(760, 70 + layers.count * 28 + 130), height = chartHeight + (heat == nil ? 0 : 330)
        let left = 70.0, right = Double(width) - 130, top = 40.0, bottom = Double(chartHeight) - 110
        let floorExponent = -12.0, ceilingExponent = 1.0
        func y(_ value: Double) -> Double {
            let e = value > 0 && value.isFinite ? max(floorExponent, min(ceilingExponent, Platform.log10(value))) : (value == 0 ? floorExponent : ceilingExponent)
            return bottom - (e - floorExponent) / (ceilingExponent - floorExponent) * (bottom - top)
        }
        let step = layers.count > 1 ? (right - left) / Double(layers.count - 1) : 0
        func x(_ i: Int) -> Double { layers.count > 1 ? left + Double(i) * step : (left + right) / 2 }
        func f(_ v: Double) -> String { NumberFormat.fixed(v, fractionDigits: 1) }
        func escaped(_ s: String) -> String {
            s.replacingAll("&", "&amp;").replacingAll("<", "&lt;").replacingAll(">", "&gt;").replacingAll("\"", "&quot;")
        }
        let palette = ["#3b6fb6", "#2ca02c", "#9467bd", "#8c564b", "#17becf"]
        var seriesNames: [String] = []
        for layer in layers { if let s = layer.series, !seriesNames.contains(s) { seriesNames.append(s) } }
        func color(_ series: String?) -> String { series.flatMap { seriesNames.firstIndex(of: $0) }.map { palette[$0 % palette.count] } ?? "#777" }
        let verdict = isVacuous ? " — FAIL (nothing compared)" : (passed ? " — PASS" : " — FAIL at " + escaped(firstDivergence ?? ""))
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f(left))" y="22" font-size="14" font-weight="bold">\(escaped(metric.scoreName)) per layer (log scale)\(verdict)</text>

            """
        for e in stride(from: Int(floorExponent), through: Int(ceilingExponent), by: 1) {
            let yy = y(Platform.pow(10, Double(e)))
            out += "<line x1=\"\(f(left))\" y1=\"\(f(yy))\" x2=\"\(f(right))\" y2=\"\(f(yy))\" stroke=\"#e5e5e5\"/>\n"
            let label = e == Int(floorExponent) ? "≤1e\(e), 0" : "1e\(e)"
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(yy + 4))\" text-anchor=\"end\">\(label)</text>\n"
        }
        // The error each layer adds: a bar from the axis floor.
        for (i, layer) in layers.enumerated() where layer.addedError > 0 {
            let yy = y(layer.addedError)
            out += "<rect x=\"\(f(x(i) - 4))\" y=\"\(f(yy))\" width=\"8\" height=\"\(f(bottom - yy))\" fill=\"#ff7f0e\" fill-opacity=\"0.35\"><title>\(escaped(layer.name)): adds rel L2 \(Self.scientific(layer.addedError))</title></rect>\n"
        }
        let tolY = y(tolerance.rtol)
        out += "<line x1=\"\(f(left))\" y1=\"\(f(tolY))\" x2=\"\(f(right))\" y2=\"\(f(tolY))\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>\n"
        out += "<text x=\"\(f(right))\" y=\"\(f(tolY - 5))\" text-anchor=\"end\" fill=\"#555\">tolerance \(escaped(metric.scoreName)) ≤ \(Self.scientific(tolerance.rtol))</text>\n"
        if let first = firstDivergence, let i = layers.firstIndex(where: { $0.name == first }) {
            out += "<line x1=\"\(f(x(i)))\" y1=\"\(f(top - 6))\" x2=\"\(f(x(i)))\" y2=\"\(f(bottom))\" stroke=\"#d62728\" stroke-dasharray=\"3 3\"/>\n"
            out += "<text x=\"\(f(x(i) + 4))\" y=\"\(f(top - 8))\" fill=\"#d62728\">first divergence</text>\n"
        }
        // One segment per feeder → layer edge: chains never join unrelated layers.
        let index = Dictionary(layers.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (i, layer) in layers.enumerated() {
            for feeder in layer.feeders {
                guard let j = index[feeder] else { continue }
                out += "<line x1=\"\(f(x(j)))\" y1=\"\(f(y(metric.score(layers[j].statistics))))\" x2=\"\(f(x(i)))\" y2=\"\(f(y(metric.score(layer.statistics))))\" stroke=\"\(color(layer.series))\" stroke-width=\"1.5\"/>\n"
            }
        }
        for (i, layer) in layers.enumerated() {
            let s = layer.statistics
            let stroke = color(layer.series), fill = layer.passed ? stroke : "#d62728"
            let tip = "\(layer.name): \(metric.scoreName) \(Self.scientific(metric.score(s))), rel L2 \(Self.scientific(s.relativeL2)), max |a−b| \(Self.scientific(s.maxAbs)), cos \(NumberFormat.fixed(s.cosine, fractionDigits: 6)), SNR \(Self.decibels(s.snrDecibels)) dB, adds \(Self.scientific(layer.addedError))"
            out += "<circle cx=\"\(f(x(i)))\" cy=\"\(f(y(metric.score(s))))\" r=\"4\" fill=\"\(fill)\" stroke=\"\(stroke)\" stroke-width=\"1.5\"><title>\(escaped(tip))</title></circle>\n"
            out += "<text transform=\"translate(\(f(x(i) + 3)),\(f(bottom + 12))) rotate(60)\" fill=\"\(layer.name == firstDivergence ? "#d62728" : "#333")\">\(escaped(layer.name))</text>\n"
        }
        out += "<line x1=\"\(f(left))\" y1=\"\(f(bottom))\" x2=\"\(f(right))\" y2=\"\(f(bottom))\" stroke=\"#333\"/>\n"
        out += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(bottom))\" stroke=\"#333\"/>\n"
        // Legend, right of the plot.
        var ly = top + 4
        let lx = right + 14
        for name in seriesNames {
            out += "<line x1=\"\(f(lx))\" y1=\"\(f(ly))\" x2=\"\(f(lx + 18))\" y2=\"\(f(ly))\" stroke=\"\(color(name))\" stroke-width=\"2\"/>\n"
            out += "<text x=\"\(f(lx + 24))\" y=\"\(f(ly + 4))\">\(escaped(name))</text>\n"
            ly += 18
        }
        out += "<rect x=\"\(f(lx + 5))\" y=\"\(f(ly - 6))\" width=\"8\" height=\"12\" fill=\"#ff7f0e\" fill-opacity=\"0.35\"/>\n"
        out += "<text x=\"\(f(lx + 24))\" y=\"\(f(ly + 4))\">error added</text>\n"
        ly += 18
        out += "<rect x=\"\(f(lx + 5))\" y=\"\(f(ly - 4))\" width=\"8\" height=\"8\" fill=\"#d62728\"/>\n"
        out += "<text x=\"\(f(lx + 24))\" y=\"\(f(ly + 4))\">fails</text>\n"
        if let heat, let grid = heat.tokenGrid, let values = heat.tokenErrors {
            out += heatMap(layer: heat.name, grid: grid, values: values, top: Double(chartHeight) + 10, left: left, f: f, escaped: escaped)
        }
        out += "</svg>\n"
        return out
    }

    /// The heat map of `values` (per-token relative L2, row-major on `grid`) with its colour scale (log, the two
    /// decades below the largest value), in a box of 300 px from `top`.
    private func heatMap(layer: String, grid: TokenGrid, values: [Double], top: Double, left: Double,
                         f: (Double) -> String, escaped: (String) -> String) -> String {
        let finite = values.filter { $0.isFinite && $0 > 0 }
        let high = finite.max() ?? 0
        // A log scale over the two decades below the largest token error, white to dark red (zero white, infinite
        // black): tokens within a few percent of each other look alike, so an even map means an even error.
        let hi = high > 0 ? Platform.log10(high) : 0, lo = hi - 2
        func shade(_ v: Double) -> String {
            if !v.isFinite { return "#000000" }
            if v <= 0 { return "#ffffff" }
            let t = max(0, min(1, (Platform.log10(v) - lo) / (hi - lo)))
            let r = Int((255 - 120 * max(0, t - 0.6) / 0.4).rounded()), gb = Int((245 * (1 - min(1, t / 0.8))).rounded())
            func hex(_ c: Int) -> String { let h = String(max(0, min(255, c)), radix: 16); return h.count == 1 ? "0" + h : h }
            return "#" + hex(r) + hex(gb) + hex(gb)
        }
        let cell = max(4, min(40, 240 / max(grid.rows, grid.columns)))
        var out = "<text x=\"\(f(left))\" y=\"\(f(top + 14))\" font-size=\"13\" font-weight=\"bold\">Per-token rel L2 at \(escaped(layer)) (mean over samples; \(grid.rows)×\(grid.columns) token grid, row-major)</text>\n"
        let y0 = top + 28
        for r in 0..<grid.rows {
            for c in 0..<grid.columns {
                let v = values[r * grid.columns + c]
                out += "<rect x=\"\(f(left + Double(c * cell)))\" y=\"\(f(y0 + Double(r * cell)))\" width=\"\(cell)\" height=\"\(cell)\" fill=\"\(shade(v))\" stroke=\"#ddd\" stroke-width=\"0.5\"><title>token (\(r), \(c)): \(Self.scientific(v))</title></rect>\n"
            }
        }
        // The colour scale: ten steps from the lowest to the highest token error.
        let sx = left + Double(grid.columns * cell) + 40
        out += "<text x=\"\(f(sx))\" y=\"\(f(y0 + 4))\">token rel L2</text>\n"
        for k in 0..<10 {
            let t = Double(9 - k) / 9
            let v = high > 0 ? Platform.pow(10, lo + t * (hi - lo)) : 0
            out += "<rect x=\"\(f(sx))\" y=\"\(f(y0 + 12 + Double(k * 18)))\" width=\"18\" height=\"18\" fill=\"\(shade(v))\" stroke=\"#ddd\" stroke-width=\"0.5\"/>\n"
        }
        out += "<text x=\"\(f(sx + 24))\" y=\"\(f(y0 + 25))\">\(Self.scientific(high)) (largest token)</text>\n"
        out += "<text x=\"\(f(sx + 24))\" y=\"\(f(y0 + 12 + 9 * 18 + 13))\">≤ \(Self.scientific(high / 100)) (log scale, 2 decades)</text>\n"
        let mean = values.reduce(0, +) / Double(max(1, values.count))
        let smallest = values.min() ?? 0, exact = values.filter { $0 == 0 }.count
        let spread = smallest > 0 && high.isFinite ? "; largest/smallest " + NumberFormat.fixed(high / smallest, fractionDigits: 1) + "×" : ""
        out += "<text x=\"\(f(sx))\" y=\"\(f(y0 + 12 + 10 * 18 + 30))\">mean \(Self.scientific(mean)); smallest \(Self.scientific(smallest))\(spread)\(exact > 0 ? "; \(exact) of \(values.count) tokens exact" : "")</text>\n"
        out += "<text x=\"\(f(sx))\" y=\"\(f(y0 + 12 + 10 * 18 + 46))\" fill=\"#555\">even: a global cause (a table, an eps); a pattern: a spatial one (positions, patches)</text>\n"
        return out
    }
}

extension String {
    /// The string with every `target` replaced by `replacement`.
    fileprivate func replacingAll(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }

    fileprivate func replacingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
