import Checkpoints
import DitkitTestSupport
import Foundation
import Reference
import Testing
import Verification

/// The per-layer error statistics of `verify` (Polygraphy's set plus the error a layer adds), `--metric`, the JSON
/// and the SVG's series and heat map.
@Suite("verify statistics, metrics, added error, heat map")
struct StatisticsTests {
    /// 1000 float32 values, exact in both Swift and numpy: a_i = ((7919 i) mod 1000)/100 − 5, b_i = a_i + ((104729 i)
    /// mod 201 − 100)/10000.
    static let pair: (a: [Float], b: [Float]) = {
        let a: [Float] = (0..<1000).map { (i: Int) -> Float in
            let units: Int = (i * 7919) % 1000
            return Float(units) / 100 - 5
        }
        let b: [Float] = (0..<1000).map { (i: Int) -> Float in
            let offset: Int = (i * 104729) % 201 - 100
            return a[i] + Float(offset) / 10000
        }
        return (a, b)
    }()

    @Test("every statistic matches numpy on 1000 values (median and p99 as numpy.percentile, cosine as torch)")
    func againstNumpy() {
        let s = ErrorStatistics(Self.pair.a, Self.pair.b)
        // numpy 2 / torch 2.15 on the same float32 values widened to float64 (the generator is in this test's doc).
        let expected: [(String, Double, Double)] = [
            ("max", s.maxAbs, 0.010000228881835938), ("mean", s.meanAbs, 0.005011499622836709),
            ("median", s.medianAbs, 0.005000114440917969), ("p99", s.p99Abs, 0.009901092052459716),
            ("rel L2", s.relativeL2, 0.002006031462310667), ("cosine", s.cosine, 0.9999979887426313),
            ("SNR", s.snrDecibels, 53.953245196992384),
        ]
        for (name, got, want) in expected {
            #expect(abs(got - want) <= 1e-12 * max(1, abs(want)), "\(name): \(got) vs \(want) (rtol 1e-12)")
        }
        #expect(s.count == 1000 && !s.nonFinite)
    }

    @Test("order statistics interpolate as numpy; equal and zero layers; differing non-finite values")
    func edges() {
        #expect(ErrorStatistics.percentile(sorted: [1, 2, 3, 4], 0.5) == 2.5)
        #expect(ErrorStatistics.percentile(sorted: [0, 10], 0.99) == 9.9)
        #expect(ErrorStatistics.percentile(sorted: [7], 0.99) == 7 && ErrorStatistics.percentile(sorted: [], 0.5) == 0)
        let equal = ErrorStatistics([1, -2, 3], [1, -2, 3])
        #expect(equal.maxAbs == 0 && equal.relativeL2 == 0 && equal.cosine == 1 && equal.snrDecibels == .infinity)
        let zeros = ErrorStatistics([0, 0], [0, 0])
        #expect(zeros.cosine == 1 && zeros.relativeL2 == 0 && zeros.snrDecibels == .infinity)
        let againstZero = ErrorStatistics([1, 0], [0, 0])
        #expect(againstZero.relativeL2 == .infinity && againstZero.cosine == 0 && againstZero.snrDecibels == -.infinity)
        let opposite = ErrorStatistics([1, 2], [-1, -2])
        #expect(abs(opposite.cosine + 1) < 1e-15)
        let nan = ErrorStatistics([.nan, 1], [2, 1])
        #expect(nan.nonFinite && nan.maxAbs == .infinity && nan.p99Abs == .infinity)
        let bothNaN = ErrorStatistics([.nan, 1], [.nan, 1])
        #expect(!bothNaN.nonFinite && bothNaN.maxAbs == 0 && bothNaN.count == 1)
    }

    @Test("each metric passes and fails where its documented rule says", arguments: ErrorMetric.allCases)
    func metrics(metric: ErrorMetric) {
        // One element off by 0.5 in 100 values of 1: rel L2 0.05, max/max|b| 0.5, 1 − cos ≈ 1.2e-3 (a·b = 100.5, ‖a‖² = 101.25, ‖b‖ = 10), p99 ≈ 5e-3 of max|b|.
        var a = [Float](repeating: 1, count: 100)
        let b = a
        a[7] = 1.5
        let s = ErrorStatistics(a, b)
        let score = metric.score(s)
        switch metric {
        case .relativeL2: #expect(abs(score - 0.05) < 1e-12)
        case .maxAbs: #expect(score == 0.5)
        case .cosine: #expect(abs(score - (1 - 100.5 / (101.25.squareRoot() * 10))) < 1e-12)
        case .p99: #expect(abs(score - 0.5 * 0.01) < 1e-12, "position 98.01 of the sorted errors: 0.01 of the way to 0.5")
        }
        #expect(Tolerance(rtol: score * 1.01, atol: 0, metric: metric).passes(s))
        #expect(!Tolerance(rtol: score * 0.99, atol: 0, metric: metric).passes(s))
        // atol bounds max |a−b| (0.5), or p99 |a−b| (0.005) for p99.
        let absolute = metric == .p99 ? 0.005 : 0.5
        #expect(abs(metric.absolute(s) - absolute) < 1e-12)
        #expect(Tolerance(rtol: 0, atol: absolute * 1.01, metric: metric).passes(s))
        #expect(!Tolerance(rtol: 0, atol: absolute * 0.99, metric: metric).passes(s))
        // In a report: the verdict follows the metric, the text and JSON name it.
        let report = Self.compare(layers: [("t_embed", [1, 100], a, b)], tolerance: Tolerance(rtol: score * 0.99, atol: 0, metric: metric))
        #expect(report.firstDivergence == "t_embed")
        #expect(report.text.contains("tolerance: \(metric.scoreName) ≤ "))
        #expect(report.json["tolerance"]?["metric"]?.stringValue == metric.rawValue)
    }

    static let inputs: [(String, [Int], [Float], [Float])] = [
        ("input.x", [1, 4, 4, 4], [Float](repeating: 0.5, count: 64), [Float](repeating: 0.5, count: 64)),
        ("input.t", [1], [3], [3]), ("input.y", [1], [1], [1]),
    ]

    static func compare(layers: [(String, [Int], [Float], [Float])], tolerance: Tolerance = Tolerance(rtol: 1e-5, atol: 0)) -> VerificationReport {
        let a = Trace(), b = Trace()
        for (name, shape, x, y) in inputs + layers {
            a.append(name, shape, x)
            b.append(name, shape, y)
        }
        return VerificationReport.compare(a, b, tolerance: tolerance, configA: nil, configB: nil, semanticsA: nil, semanticsB: nil,
                                          labelA: "a", labelB: "b")
    }

    /// A (1, T, D) layer of ones, scaled by `1 + relative` on side A.
    static func layer(_ name: String, tokens: Int = 4, width: Int = 2, relative: Float) -> (String, [Int], [Float], [Float]) {
        let b = [Float](repeating: 1, count: tokens * width)
        return (name, [1, tokens, width], b.map { $0 * (1 + relative) }, b)
    }

    @Test("the error a layer adds is measured along its own chain: embeddings and the token stream never mix")
    func addedError() throws {
        let report = Self.compare(layers: [
            ("t_embed", [1, 2], [1.5, 1.5], [1, 1]),  // rel 0.5
            ("y_embed", [1, 2], [1, 1], [1, 1]),  // rel 0
            ("cond", [1, 2], [1.25, 1.25], [1, 1]),  // rel 0.25: inherits 0.5 from t_embed, adds nothing
            Self.layer("patch_embed", relative: 0),
            Self.layer("blocks.0", relative: 0.001),  // the token stream's first error: its own, not t_embed's
            Self.layer("blocks.1", relative: 0.003),  // adds 0.002
            // blocks.2 missing from the traces: final inherits from blocks.1
            Self.layer("final", relative: 0.0025),  // below what it inherits: adds 0
        ])
        func row(_ name: String) throws -> LayerComparison { try #require(report.layers.first { $0.name == name }) }
        #expect(try row("t_embed").addedError == 0.5 && row("t_embed").series == "embeddings")
        #expect(try row("cond").addedError == 0 && row("cond").feeders == ["t_embed", "y_embed"])
        #expect(try abs(row("blocks.0").addedError - 0.001) < 1e-7 && row("blocks.0").feeders == ["patch_embed"])
        #expect(try abs(row("blocks.1").addedError - 0.002) < 1e-7 && row("blocks.1").series == "blocks")
        #expect(try row("final").addedError == 0 && row("final").feeders == ["blocks.1"])
        #expect(try row("input.x").series == nil && row("input.x").feeders.isEmpty)
        #expect(report.text.contains("added"))
    }

    @Test("a layer (N, T, D) on a square grid gets per-token errors; the first failing one is the heat map in JSON and SVG")
    func heatMap() throws {
        // Two samples, 4 tokens on a 2×2 grid, width 2: token 3 is off by 10% in sample 0 and 30% in sample 1.
        let b = [Float](repeating: 2, count: 16)
        var a = b
        for k in 6..<8 { a[k] = 2.2 }
        for k in 14..<16 { a[k] = 2.6 }
        let report = Self.compare(layers: [Self.layer("patch_embed", relative: 0), ("blocks.0", [2, 4, 2], a, b)])
        let row = try #require(report.layers.first { $0.name == "blocks.0" })
        #expect(row.tokenGrid == TokenGrid(rows: 2, columns: 2))
        let tokens = try #require(row.tokenErrors)
        #expect(tokens[0] == 0 && tokens[1] == 0 && tokens[2] == 0 && abs(tokens[3] - 0.2) < 1e-6, "\(tokens)")
        #expect(report.heatMapLayer?.name == "blocks.0")
        let heat = try #require(report.json["heat_map"])
        #expect(heat["layer"]?.stringValue == "blocks.0" && heat["rows"] == .int(2) && heat["token_relative_l2"]?.arrayValue?.count == 4)
        #expect(report.svg.contains("Per-token rel L2 at blocks.0") && report.svg.contains("token (1, 1): 2.00e-01"))
        #expect(TokenGrid.square([2, 16, 8]) == TokenGrid(rows: 4, columns: 4))
        #expect(TokenGrid.square([2, 12, 8]) == nil && TokenGrid.square([2, 8]) == nil && TokenGrid.square([1, 4, 4, 4]) == nil)
        let passing = Self.compare(layers: [Self.layer("blocks.0", relative: 0)])
        #expect(passing.heatMapLayer == nil && passing.json["heat_map"] == .null && !passing.svg.contains("Per-token"))
    }

    @Test("the SVG joins only layers that feed each other, marks tolerance and first divergence; the JSON is valid")
    func svgAndSchema() throws {
        let report = Self.compare(layers: [
            ("t_embed", [1, 2], [1.5, 1.5], [1, 1]), ("y_embed", [1, 2], [1, 1], [1, 1]), ("cond", [1, 2], [1.25, 1.25], [1, 1]),
            Self.layer("patch_embed", relative: 0), Self.layer("blocks.0", relative: 0.001), Self.layer("final", relative: 0.002),
        ])
        let svg = report.svg
        #expect(svg.components(separatedBy: "<circle").count - 1 == report.layers.count, "one point per layer")
        // Edges: t_embed→cond, y_embed→cond, patch_embed→blocks.0, blocks.0→final; none from cond to patch_embed.
        let edges = svg.components(separatedBy: "stroke-width=\"1.5\"/>").count - 1
        #expect(edges == 4, "\(edges) edges")
        #expect(svg.contains("first divergence") && svg.contains("tolerance rel L2 ≤ 1.00e-05"))
        #expect(svg.contains(">embeddings</text>") && svg.contains(">blocks</text>"))
        let schema = SchemaValidator(schema: try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: Fixtures.packageRoot + "/schemas/verify.schema.json")))))
        #expect(schema.validate(report.json).isEmpty, "\(schema.validate(report.json))")
        let blocks = try #require(report.json["layers"]?.arrayValue?.first { $0["name"]?.stringValue == "blocks.0" })
        for key in ["mean_abs", "median_abs", "p99_abs", "cosine", "snr_db", "added_error", "score"] { #expect(blocks[key] != nil, "\(key)") }
        #expect(report.json["layers"]?.arrayValue?.first?["snr_db"]?.stringValue == "inf")
    }
}
