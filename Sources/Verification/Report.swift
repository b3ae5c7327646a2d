import Checkpoints
import Tensors

extension VerificationReport {
    /// An error or tolerance as the report prints it: two decimals of mantissa, as `%.2e` ("1.23e-05").
    static func scientific(_ value: Double) -> String { NumberFormat.scientific(value, fractionDigits: 2) }

    /// The per-layer table, the first divergence marked, its likely causes and a verdict.
    public var text: String {
        var rows: [[String]] = [["layer", "shape", "max |a−b|", "rel L2", ""]]
        for layer in layers {
            let shape = "[" + layer.shape.map(String.init).joined(separator: ", ") + "]"
            var status = layer.passed ? "ok" : "FAIL"
            if layer.name == firstDivergence { status += "  ← first divergence" }
            if let problem = layer.problem { status += " (\(problem))" }
            rows.append([layer.name, shape, Self.scientific(layer.maxAbs), Self.scientific(layer.relativeL2), status])
        }
        var widths = [Int](repeating: 0, count: 5)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var lines = rows.map { row in
            row.enumerated().map { i, cell in
                i == 2 || i == 3 ? String(repeating: " ", count: widths[i] - cell.count) + cell
                    : (i == 4 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count))
            }.joined(separator: "  ").replacingTrailingSpaces()
        }
        lines.insert("a: \(labelA)\nb: \(labelB)\ntolerance: rel L2 ≤ \(Self.scientific(tolerance.rtol))"
                     + (tolerance.atol > 0 ? " or max |a−b| ≤ \(Self.scientific(tolerance.atol))" : "") + "\n", at: 0)
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

    /// JSON valid against `schemas/verify.schema.json`.
    public var json: JSONValue {
        func number(_ v: Double) -> JSONValue { v.isFinite ? .double(v) : .string(v.isNaN ? "nan" : "inf") }
        return .object([
            ("a", .string(labelA)), ("b", .string(labelB)),
            ("tolerance", .object([("rtol", .double(tolerance.rtol)), ("atol", .double(tolerance.atol))])),
            ("passed", .bool(passed)),
            ("first_divergence", firstDivergence.map { .string($0) } ?? .null),
            ("likely_causes", .array(likelyCauses.map { .string($0) })),
            ("notes", .array(notes.map { .string($0) })),
            ("layers", .array(layers.map { l in
                .object([
                    ("name", .string(l.name)), ("shape", .array(l.shape.map { .int($0) })), ("max_abs", number(l.maxAbs)),
                    ("relative_l2", number(l.relativeL2)), ("passed", .bool(l.passed)), ("problem", l.problem.map { .string($0) } ?? .null),
                ])
            })),
        ])
    }

    /// An SVG chart of each layer's relative L2 error on a log axis, with the tolerance as a dashed line and failing
    /// layers in red. Self-contained (no scripts, no external fonts).
    public var svg: String {
        let width = max(640, 60 + layers.count * 28 + 40), height = 420
        let left = 70.0, right = Double(width) - 60, top = 40.0, bottom = Double(height) - 110
        let floorExponent = -12.0, ceilingExponent = 1.0
        func y(_ value: Double) -> Double {
            let e = value > 0 && value.isFinite ? max(floorExponent, min(ceilingExponent, Platform.log10(value))) : (value == 0 ? floorExponent : ceilingExponent)
            return bottom - (e - floorExponent) / (ceilingExponent - floorExponent) * (bottom - top)
        }
        let step = layers.count > 1 ? (right - left) / Double(layers.count - 1) : 0
        func x(_ i: Int) -> Double { layers.count > 1 ? left + Double(i) * step : (left + right) / 2 }
        func f(_ v: Double) -> String { NumberFormat.fixed(v, fractionDigits: 1) }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f(left))" y="22" font-size="14" font-weight="bold">Relative L2 error per layer (log scale)\(passed ? " — PASS" : " — FAIL at " + (firstDivergence ?? ""))</text>

            """
        for e in stride(from: Int(floorExponent), through: Int(ceilingExponent), by: 1) {
            let yy = y(Platform.pow(10, Double(e)))
            out += "<line x1=\"\(f(left))\" y1=\"\(f(yy))\" x2=\"\(f(right))\" y2=\"\(f(yy))\" stroke=\"#e5e5e5\"/>\n"
            let label = e == Int(floorExponent) ? "≤1e\(e), 0" : "1e\(e)"
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(yy + 4))\" text-anchor=\"end\">\(label)</text>\n"
        }
        let tolY = y(tolerance.rtol)
        out += "<line x1=\"\(f(left))\" y1=\"\(f(tolY))\" x2=\"\(f(right))\" y2=\"\(f(tolY))\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>\n"
        out += "<text x=\"\(f(right))\" y=\"\(f(tolY - 5))\" text-anchor=\"end\" fill=\"#555\">tolerance \(Self.scientific(tolerance.rtol))</text>\n"
        if layers.count > 1 {
            let points = layers.enumerated().map { "\(f(x($0.offset))),\(f(y($0.element.relativeL2)))" }.joined(separator: " ")
            out += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"#3b6fb6\" stroke-width=\"1.5\"/>\n"
        }
        for (i, layer) in layers.enumerated() {
            let color = layer.passed ? "#3b6fb6" : "#d62728"
            out += "<circle cx=\"\(f(x(i)))\" cy=\"\(f(y(layer.relativeL2)))\" r=\"4\" fill=\"\(color)\"><title>\(layer.name): rel L2 \(Self.scientific(layer.relativeL2)), max |a−b| \(Self.scientific(layer.maxAbs))</title></circle>\n"
            out += "<text transform=\"translate(\(f(x(i) + 3)),\(f(bottom + 12))) rotate(60)\" fill=\"\(layer.name == firstDivergence ? "#d62728" : "#333")\">\(layer.name)</text>\n"
        }
        out += "<line x1=\"\(f(left))\" y1=\"\(f(bottom))\" x2=\"\(f(right))\" y2=\"\(f(bottom))\" stroke=\"#333\"/>\n"
        out += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(bottom))\" stroke=\"#333\"/>\n</svg>\n"
        return out
    }
}

extension String {
    fileprivate func replacingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
