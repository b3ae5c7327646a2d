import Checkpoints
import Models
import Reference
import Tensors

/// How close two layers must be: a layer passes when its `metric` score is ≤ `rtol` or its absolute error is ≤ `atol`
/// (``ErrorMetric`` says which statistics those are), and no non-finite values differ.
public struct Tolerance: Sendable, Equatable {
    /// The relative score allowed (for the default metric, relative L2 error ‖a−b‖/‖b‖).
    public var rtol: Double
    /// The absolute error that passes regardless (for layers near zero; max |a−b|, or p99 |a−b| for `.p99`).
    public var atol: Double
    /// The statistic the verdict is taken on.
    public var metric: ErrorMetric

    /// A tolerance of relative score `rtol` and absolute error `atol` on `metric` (relative L2 by default).
    public init(rtol: Double, atol: Double, metric: ErrorMetric = .relativeL2) {
        self.rtol = rtol
        self.atol = atol
        self.metric = metric
    }

    /// Whether statistics `s` are within this tolerance.
    public func passes(_ s: ErrorStatistics) -> Bool {
        !s.nonFinite && (metric.score(s) <= rtol || metric.absolute(s) <= atol)
    }

/// 1e-5 relative for float32 weights, scaled by the coarsest weight dtype of either side
    /// (f16: 2e-3, bf16: 1.6e-2, about twice their unit roundoff).
    public static func `default`(for dtypes: [DType]) -> Tolerance {
        let rtol: Double
        if dtypes.contains(.bf16) || dtypes.contains(.f8e4m3) || dtypes.contains(.f8e5m2) { rtol = 1.6e-2 }
        else if dtypes.contains(.f16) { rtol = 2e-3 }
        else { rtol = 1e-5 }
        return Tolerance(rtol: rtol, atol: 0)
    }
}

/// One row of a verification: a layer of both traces.
public struct LayerComparison: Sendable {
    /// The layer's name in the trace format (`t_embed`, `blocks.3`, …).
    public let name: String
    /// Its shape on side A.
    public let shape: [Int]
    /// Every error statistic of side A against side B (all infinite when the shapes differ).
    public let statistics: ErrorStatistics
    /// Whether the layer is within the tolerance.
    public let passed: Bool
    /// Why a layer could not be compared (missing on one side, shapes differ).
    public let problem: String?
    /// Whether the values were compared (the shapes matched).
    public let compared: Bool
    /// The chain the layer belongs to (`embeddings`, `blocks`; nil for an input), from the family's
    /// ``TraceTopology`` or ``LayerLink/sequential(_:_:)``.
    public internal(set) var series: String? = nil
    /// The relative L2 error this layer ADDS: its relative L2 minus the largest relative L2 of the layers feeding it
    /// in its chain (``LayerLink/feeders``; a feeder missing from the traces is replaced by its own feeders), floored
    /// at 0. The first layer of a chain and an input inherit nothing. Infinite when this layer's error is infinite
    /// and its feeders' are not, 0 when both are.
    public internal(set) var addedError: Double = 0
    /// The layers of the traces whose error this one inherits (its chain's feeders present in the traces).
    public internal(set) var feeders: [String] = []
    /// The token grid of a layer of shape (N, T, D) (nil without a token axis).
    public let tokenGrid: TokenGrid?
    /// Per-token relative L2 error averaged over the samples, row-major on `tokenGrid` (nil without a grid).
    public let tokenErrors: [Double]?

    /// Largest |a−b| over its elements (infinity when non-finite values differ or the shapes do).
    public var maxAbs: Double { statistics.maxAbs }
    /// ‖a−b‖/‖b‖ in float64 (infinity when non-finite values differ or the shapes do).
    public var relativeL2: Double { statistics.relativeL2 }
}

/// The result of comparing two traces.
public struct VerificationReport: Sendable {
    /// Every layer present on both sides, in trace order (`TraceFile.order`).
    public let layers: [LayerComparison]
    /// The tolerance each layer was held to.
    public let tolerance: Tolerance
    /// Name of the first layer that failed, if any.
    public let firstDivergence: String?
    /// The likely causes of the first divergence, from config differences.
    public let likelyCauses: [String]
    /// What side A is (a file and the numerics it ran with).
    public let labelA: String
    /// What side B is.
    public let labelB: String
    /// What the reader should know about how the two sides were run: values assumed on either side, an assumed
    /// value replaced by the other side's read one, a head count found by search.
    public var notes: [String] = []
    /// The trace side B was read from, when it was one (`Verifier.compare(_:againstTrace:)` sets it); errors
    /// from `requirePassed()` name it.
    public var traceFile: String? = nil
    /// The layers beyond the inputs whose values were compared: what a verdict rests on.
    public var comparedLayers: [String] { layers.filter { $0.compared && !$0.name.hasPrefix("input.") }.map(\.name) }
    /// Nothing beyond the inputs was compared (a trace holding only inputs, two models with no layer of the same
    /// shape): such a verification proves nothing and never passes.
    public var isVacuous: Bool { comparedLayers.isEmpty }
    /// Every compared layer is within tolerance and at least one beyond the inputs was compared.
    public var passed: Bool { firstDivergence == nil && !isVacuous }

    /// Throws unless the report passed: `VerificationError.nothingCompared` (kind `.input`) when nothing beyond the
    /// inputs was compared, else `VerificationError.diverged` (kind `.verification`) naming the first divergence.
    public func requirePassed() throws {
        if isVacuous { throw VerificationError.nothingCompared(trace: traceFile, compared: layers.map(\.name)) }
        if let first = firstDivergence { throw VerificationError.diverged(layer: first, trace: traceFile) }
    }

    /// The report with `cause` put first among the likely causes.
    public func addingCause(_ cause: String) -> VerificationReport {
        var copy = VerificationReport(
            layers: layers, tolerance: tolerance, firstDivergence: firstDivergence, likelyCauses: [cause] + likelyCauses,
            labelA: labelA, labelB: labelB)
        copy.notes = notes
        copy.traceFile = traceFile
        return copy
    }

    /// Writes `svg` to `path` through the atomic writer (a temporary file renamed into place): an existing file is
    /// replaced only when `overwrite` (else a `CheckpointError` of kind `.io`). On any error nothing is left behind.
    public func writeSVG(to path: String, overwrite: Bool = false) throws {
        let out = try AtomicFileWriter(destination: path, overwrite: overwrite)  // discards its temporary unless committed
        try out.write(Array(svg.utf8))
        try out.commit()
    }

    /// Compares every layer present in both traces (inputs included: they must be identical), in `order`; names the
    /// first divergence and its likely causes (`causes(layer)`, the family's rules; `followUps` are the later layers
    /// whose causes are added with "(also)"). `links` places each layer in its chain (for the error it adds and the
    /// SVG's series); `tokenGrid` gives the token grid of a layer's shape (for the per-token heat map).
    public static func compare(
        _ a: Trace, _ b: Trace, tolerance: Tolerance, order: ([String]) -> [String], causes: (String) -> [String],
        followUps: [String], labelA: String, labelB: String,
        links: (String, [String]) -> LayerLink? = LayerLink.sequential, tokenGrid: ([Int]) -> TokenGrid? = TokenGrid.square
    ) -> VerificationReport {
        let names = order(Array(Set(a.layers.map(\.name)).union(b.layers.map(\.name))))
        var rows: [LayerComparison] = []
        for name in names {
            guard let x = a.layer(name), let y = b.layer(name) else {
                continue  // a trace may hold only some layers; compare what both have
            }
            guard x.shape == y.shape, x.values.count == y.values.count else {
                rows.append(LayerComparison(name: name, shape: x.shape, statistics: .incomparable, passed: false,
                                            problem: "shapes differ: \(x.shape) vs \(y.shape)", compared: false, tokenGrid: nil, tokenErrors: nil))
                continue
            }
            let stats = ErrorStatistics(x.values, y.values)
            // A grid only for a well-formed (N, T, D) whose element count is the values' (a hostile trace may lie).
            let elements = x.shape.reduce(Optional(1)) { p, d in p.flatMap { d < 0 ? nil : $0.multipliedReportingOverflow(by: d).overflow ? nil : $0 * d } }
            let grid = x.shape.count == 3 && elements == x.values.count
                ? tokenGrid(x.shape).flatMap { g in g.rows > 0 && g.columns > 0 && g.rows * g.columns == x.shape[1] ? g : nil } : nil
            let tokens = grid.map { _ in ErrorStatistics.perToken(x.values, y.values, samples: x.shape[0], tokens: x.shape[1], width: x.shape[2]) }
            rows.append(LayerComparison(name: name, shape: x.shape, statistics: stats, passed: tolerance.passes(stats),
                                        problem: stats.nonFinite ? "non-finite values differ" : nil, compared: true,
                                        tokenGrid: grid, tokenErrors: tokens))
        }
        addErrors(&rows, links: links)
        let first = rows.first { !$0.passed }?.name
        var found = first.map(causes) ?? []
        if let first, !found.isEmpty, !found[0].hasPrefix(VerificationReport.weightsDiffer) {
            // Other numeric differences that affect the layers after the first divergence.
            for later in followUps where later != first {
                for cause in causes(later) where !cause.hasPrefix(VerificationReport.weightsDiffer) && !found.contains(cause) {
                    found.append(cause + " (also)")
                }
            }
        }
        return VerificationReport(layers: rows, tolerance: tolerance, firstDivergence: first, likelyCauses: found, labelA: labelA, labelB: labelB)
    }

    /// Fills each row's `series` and `addedError` (``LayerComparison/addedError``) from `links`.
    static func addErrors(_ rows: inout [LayerComparison], links: (String, [String]) -> LayerLink?) {
        let names = rows.map(\.name)
        let index = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        func present(_ feeders: [String], depth: Int) -> [String] {
            feeders.flatMap { feeder -> [String] in
                if index[feeder] != nil { return [feeder] }
                guard depth < 4096, let link = links(feeder, names) else { return [] }
                return present(link.feeders, depth: depth + 1)
            }
        }
        for i in rows.indices {
            let link = links(rows[i].name, names)
            rows[i].series = link?.series
            rows[i].feeders = present(link?.feeders ?? [], depth: 0)
            let before = rows[i].feeders.map { rows[index[$0]!].relativeL2 }.max() ?? 0, own = rows[i].relativeL2
            rows[i].addedError = own.isInfinite ? (before.isInfinite ? 0 : .infinity) : max(0, own - before)
        }
    }

    /// How the cause that blames the weights starts (no numeric choice of the configs explains the layer).
    public static let weightsDiffer = "the configs agree"

    /// Compares two traces of a family's model: its layer order, and its likely-cause rules applied to the two sides'
    /// numerics (`semantics`, else `config`).
    public static func compare<F: VerifiableFamily>(
        _ a: Trace, _ b: Trace, tolerance: Tolerance, family: F.Type, configA: F.Config?, configB: F.Config?,
        semanticsA: F.Config?, semanticsB: F.Config?, labelA: String, labelB: String,
        assumedA: [Assumption] = [], assumedB: [Assumption] = []
    ) -> VerificationReport {
        compare(
            a, b, tolerance: tolerance, order: F.traceOrder,
            causes: { layer in
                guard let x = semanticsA ?? configA, let y = semanticsB ?? configB else { return [] }
                let found = F.likelyCauses(layer: layer, x, y, configA: configA, configB: configB)
                guard found.isEmpty else { return found }
                // No difference of the values read explains it; an assumed value still might, and is named.
                let assumed = assumedA.map { "a's \($0)" } + assumedB.map { "b's \($0)" }
                guard assumed.isEmpty else {
                    return ["the configs agree on every value read, but not every value was read: " + assumed.joined(separator: "; ")
                        + " — an assumed value could explain the divergence at \(layer)"]
                }
                return ["\(weightsDiffer) on every numeric choice here, so the weights themselves differ at \(layer) (a mapping or data error)"]
            },
            followUps: F.causeFollowUps, labelA: labelA, labelB: labelB,
            links: (F.self as? any TraceTopology.Type).map { topology in { topology.link(of: $0, among: $1) } } ?? LayerLink.sequential)
    }

    /// Compares two DiT traces (``compare(_:_:tolerance:family:configA:configB:semanticsA:semanticsB:labelA:labelB:)``
    /// with the DiT family).
    public static func compare(_ a: Trace, _ b: Trace, tolerance: Tolerance, configA: DiTConfig?, configB: DiTConfig?,
                               semanticsA: DiTConfig?, semanticsB: DiTConfig?, labelA: String, labelB: String) -> VerificationReport {
        compare(a, b, tolerance: tolerance, family: DiTFamily.self, configA: configA, configB: configB, semanticsA: semanticsA,
                semanticsB: semanticsB, labelA: labelA, labelB: labelB)
    }
}
