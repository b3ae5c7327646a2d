import Checkpoints
import Models
import Reference
import Tensors

/// How close two layers must be.
public struct Tolerance: Sendable, Equatable {
    /// Relative L2 error ‖a−b‖/‖b‖ allowed.
    public var rtol: Double
    /// Absolute max |a−b| that passes regardless (for layers near zero).
    public var atol: Double

    /// A tolerance of relative L2 error `rtol` and absolute max error `atol`.
    public init(rtol: Double, atol: Double) {
        self.rtol = rtol
        self.atol = atol
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
    /// Largest |a−b| over its elements (infinity when non-finite values differ or the shapes do).
    public let maxAbs: Double
    /// ‖a−b‖/‖b‖ in float64 (infinity when non-finite values differ or the shapes do).
    public let relativeL2: Double
    /// Whether the layer is within the tolerance.
    public let passed: Bool
    /// Why a layer could not be compared (missing on one side, shapes differ).
    public let problem: String?
    /// Whether the values were compared (the shapes matched).
    public let compared: Bool
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
    /// whose causes are added with "(also)").
    public static func compare(
        _ a: Trace, _ b: Trace, tolerance: Tolerance, order: ([String]) -> [String], causes: (String) -> [String],
        followUps: [String], labelA: String, labelB: String
    ) -> VerificationReport {
        let names = order(Array(Set(a.layers.map(\.name)).union(b.layers.map(\.name))))
        var rows: [LayerComparison] = []
        for name in names {
            guard let x = a.layer(name), let y = b.layer(name) else {
                continue  // a trace may hold only some layers; compare what both have
            }
            guard x.shape == y.shape, x.values.count == y.values.count else {
                rows.append(LayerComparison(name: name, shape: x.shape, maxAbs: .infinity, relativeL2: .infinity, passed: false,
                                            problem: "shapes differ: \(x.shape) vs \(y.shape)", compared: false))
                continue
            }
            var maxAbs = 0.0, diff2 = 0.0, ref2 = 0.0
            var nonFinite = false
            for (u, v) in zip(x.values, y.values) {
                let du = Double(u), dv = Double(v)
                if !du.isFinite || !dv.isFinite { if !(du.isNaN && dv.isNaN) && du != dv { nonFinite = true }; continue }
                let delta = abs(du - dv)
                maxAbs = max(maxAbs, delta)
                diff2 += delta * delta
                ref2 += dv * dv
            }
            let rel = ref2 > 0 ? (diff2 / ref2).squareRoot() : (diff2 > 0 ? .infinity : 0)
            let passed = !nonFinite && (rel <= tolerance.rtol || maxAbs <= tolerance.atol)
            rows.append(LayerComparison(name: name, shape: x.shape, maxAbs: nonFinite ? .infinity : maxAbs, relativeL2: nonFinite ? .infinity : rel,
                                        passed: passed, problem: nonFinite ? "non-finite values differ" : nil, compared: true))
        }
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
            followUps: F.causeFollowUps, labelA: labelA, labelB: labelB)
    }

    /// Compares two DiT traces (``compare(_:_:tolerance:family:configA:configB:semanticsA:semanticsB:labelA:labelB:)``
    /// with the DiT family).
    public static func compare(_ a: Trace, _ b: Trace, tolerance: Tolerance, configA: DiTConfig?, configB: DiTConfig?,
                               semanticsA: DiTConfig?, semanticsB: DiTConfig?, labelA: String, labelB: String) -> VerificationReport {
        compare(a, b, tolerance: tolerance, family: DiTFamily.self, configA: configA, configB: configB, semanticsA: semanticsA,
                semanticsB: semanticsB, labelA: labelA, labelB: labelB)
    }
}
