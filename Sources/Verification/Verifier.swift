import Checkpoints
import Models
import Reference
import Tensors

/// What a verification runs with: the numerics, the tolerance and the forward passes' inputs, budget and kernels.
public struct VerificationOptions: Sendable, Equatable {
    /// Numerics forced on both sides; nil runs each side in its own.
    public var semantics: SemanticsChoice?
    /// Relative L2 tolerance per layer; nil for `Tolerance.default(for:)` of both sides' weight dtypes.
    public var rtol: Double?
    /// Absolute error (max |a−b|; p99 |a−b| for `.p99`) under which a layer passes anyway.
    public var atol: Double
    /// The statistic the verdict is taken on (``ErrorMetric``; relative L2 by default).
    public var metric: ErrorMetric
    /// Inputs, budget and kernels of each forward pass (against a trace, the trace's inputs replace these inputs).
    public var forward: ForwardOptions
    /// Against a trace: when a value was assumed (DiT's head count) and the first divergence is where it matters,
    /// try the family's alternatives and run with the first that reproduces the trace (reported in the notes).
    public var searchAssumed = false

    /// Options with the given values; every default is the CLI's.
    public init(semantics: SemanticsChoice? = nil, rtol: Double? = nil, atol: Double = 0, metric: ErrorMetric = .relativeL2,
                forward: ForwardOptions = ForwardOptions()) {
        self.semantics = semantics
        self.rtol = rtol
        self.atol = atol
        self.metric = metric
        self.forward = forward
    }
}

/// Runs the float32 reference forward of opened models and compares them layer by layer: two checkpoints on the
/// same inputs, a checkpoint against a trace on the trace's inputs, or a conversion's output against its source.
///
/// ```swift
/// let a = try ModelView.open(try Checkpoint.open("DiT-XL-2-256x256.pt"))
/// let b = try ModelView.open(try Checkpoint.open("dit-pipeline"))
/// let report = try Verifier(options: VerificationOptions(semantics: .original)).compare(a, b)
/// print(report.text)
/// try report.requirePassed()   // VerificationError.diverged or .nothingCompared
/// ```
public struct Verifier: Sendable {
    /// What every comparison runs with.
    public var options: VerificationOptions

    /// A verifier with `options`.
    public init(options: VerificationOptions = VerificationOptions()) {
        self.options = options
    }

    /// Runs `a` and `b` on the same inputs (`options.forward`), each in its own numerics unless `options.semantics`
    /// forces one, and compares every layer. `names` label the two sides in the report (their checkpoints' paths
    /// by default).
    ///
    /// Throws `ModelError.overBudget` before any allocation when a pass would exceed the budget,
    /// `VerificationError.differentInputs` when the models take inputs of different shapes, and
    /// `VerificationError.invalidInputs` when the requested timesteps or classes do not fit them. A divergence is
    /// not thrown: it is in the report (`passed`, `firstDivergence`, `requirePassed()`).
    public func compare<F: VerifiableFamily>(_ a: ModelView<F>, _ b: ModelView<F>, names: (a: String, b: String)? = nil) throws -> VerificationReport {
        let forward = options.forward
        let weightsA = try forward.weights(a)
        let weightsB = try forward.weights(b)
        // A value one side assumed gives way to the other side's read one (heads, where the sizes agree).
        let (configA, configB, reconciled) = F.reconcile(a.config, assumed: a.assumptions, b.config, assumed: b.assumptions)
        let semanticsA = options.semantics.map { $0.apply(to: configA, a: configA, b: configB, family: F.self) } ?? configA
        let semanticsB = options.semantics.map { $0.apply(to: configB, a: configA, b: configB, family: F.self) } ?? configB
        guard F.inputSignature(a.config) == F.inputSignature(b.config) else {
            throw VerificationError.differentInputs(a: F.inputSignature(a.config), b: F.inputSignature(b.config))
        }
        let shared = try forward.inputs(for: a.config)
        let traceA = Trace(), traceB = Trace()
        _ = F.run(weightsA, semantics: semanticsA, inputs: shared, kernels: forward.kernels, trace: traceA)
        _ = F.run(weightsB, semantics: semanticsB, inputs: shared, kernels: forward.kernels, trace: traceB)
        let semanticsName = options.semantics?.rawValue ?? "own"
        var report = VerificationReport.compare(
            traceA, traceB, tolerance: tolerance(for: a.tensors.map(\.dtype) + b.tensors.map(\.dtype)), family: F.self,
            configA: configA, configB: configB, semanticsA: semanticsA, semanticsB: semanticsB,
            labelA: "\(names?.a ?? a.checkpoint.path) (\(a.layoutSummary), \(semanticsName) semantics)",
            labelB: "\(names?.b ?? b.checkpoint.path) (\(b.layoutSummary), \(semanticsName) semantics)",
            assumedA: remaining(a.assumptions, reconciled: a.config != configA), assumedB: remaining(b.assumptions, reconciled: b.config != configB))
        report.notes = a.assumptions.map { "a: \($0)" } + b.assumptions.map { "b: \($0)" } + reconciled
        return report
    }

    /// The assumptions still standing: a head count replaced by the other side's read one no longer is.
    func remaining(_ assumptions: [Assumption], reconciled: Bool) -> [Assumption] {
        reconciled ? assumptions.filter { $0.field != "num_heads" } : assumptions
    }

    /// Runs `model` on the inputs of the trace at `tracePath` (`input.x`, `input.t`, `input.y`) and compares every
    /// layer the trace holds. The trace is checked against the model before any value is read
    /// (`TraceFile.load`); `options.forward`'s inputs are not used, its budget and kernels are. `options.semantics`
    /// `.b` means the semantics the trace records (`ditkit.trace.semantics`). `name` labels the model in the report
    /// (its checkpoint's path by default); the report's `traceFile` is `tracePath`.
    ///
    /// Throws what `TraceFile.load` throws (`ModelError.trace`, `.invalidConfig`, checkpoint errors) and
    /// `ModelError.overBudget`.
    public func compare<F: VerifiableFamily>(_ model: ModelView<F>, againstTrace tracePath: String, name: String? = nil) throws -> VerificationReport {
        let (reference, metadata, traceInputs) = try TraceFile.load(tracePath, for: model.config, semantics: options.semantics)
        let weights = try options.forward.weights(model, batch: F.batch(of: traceInputs))
        let referenceSemantics = Dictionary(metadata, uniquingKeysWith: { a, _ in a })["ditkit.trace.semantics"]
        // The trace's own config (when it carries one) gives the values the model's weights could not.
        var notes = model.assumptions.map { "a: \($0)" }
        var config = model.config
        var assumed = model.assumptions
        let traced = F.traceConfig(metadata, like: model.config)
        if assumed.contains(where: { $0.field == "num_heads" }), let traced, traced != config {
            notes.append("the model's assumed values give way to the trace's recorded config")
            config = traced
            assumed.removeAll { $0.field == "num_heads" }
        }
        func run(_ config: F.Config) -> (VerificationReport, F.Config) {
            // The trace's side: its recorded sizes where it has them (so a differing read value is named as a cause).
            let referenceBase = traced ?? config
            let referenceConfig = referenceSemantics.flatMap { SemanticsChoice(rawValue: $0) }.map {
                $0.apply(to: referenceBase, a: referenceBase, b: nil, family: F.self)
            }
            let semantics = options.semantics.map { $0.apply(to: config, a: config, b: referenceConfig, family: F.self) } ?? config
            let trace = Trace()
            _ = F.run(weights, semantics: semantics, inputs: traceInputs, kernels: options.forward.kernels, trace: trace)
            let report = VerificationReport.compare(
                trace, reference, tolerance: tolerance(for: model.tensors.map(\.dtype)), family: F.self,
                configA: config, configB: nil, semanticsA: semantics, semanticsB: referenceConfig,
                labelA: "\(name ?? model.checkpoint.path) (ditkit reference, \(options.semantics?.rawValue ?? model.layout.rawValue) semantics)",
                labelB: "\(tracePath) (trace\(referenceSemantics.map { ", \($0) semantics" } ?? ""))", assumedA: assumed)
            return (report, semantics)
        }
        var (report, _) = run(config)
        // A divergence an assumed value may explain: try the family's alternatives and say which reproduce the trace
        // (with `searchAssumed`, the first that does is used).
        // Only when no difference of the values read explains it (each try is a whole forward pass).
        if let first = report.firstDivergence, report.likelyCauses.first?.hasPrefix(VerificationReport.weightsDiffer) == true {
            let alternatives = F.alternatives(config, assumed: assumed, divergedAt: first)
            var passing: [(F.Config, String)] = []
            for (candidate, change) in alternatives {
                let (tried, _) = run(candidate)
                if tried.passed { passing.append((candidate, change)) }
            }
            if !alternatives.isEmpty {
                let tried = alternatives.map(\.change).joined(separator: ", ")
                if let (found, change) = passing.first {
                    if options.searchAssumed {
                        notes.append("searched \(tried): \(change) reproduces the trace and is used")
                        (report, _) = run(found)
                    } else {
                        report = report.addingCause("with \(change) instead of the assumed value, every layer is within tolerance")
                    }
                } else {
                    notes.append("searched \(tried): none reproduces the trace")
                }
            }
        }
        report.notes = notes
        report.traceFile = tracePath
        return report
    }

    /// Checks a conversion: runs `source` and `written` (the conversion's output, opened) on the same inputs, both in
    /// the source's numerics so only the weights can differ, at batch 2, seed 0 and the default budget (this
    /// verifier's semantics, tolerance and inputs are not used: a conversion must reproduce its source exactly up to
    /// a cast, whose coarsest dtype sets the tolerance). When the output has fewer output channels (learned sigma
    /// dropped on purpose), `final` and `output` are left out and named in `skipped`.
    public func compareConversion<F: VerifiableFamily>(source: ModelView<F>, written: ModelView<F>, names: (source: String, written: String)? = nil)
        throws -> (report: VerificationReport, skipped: [String])
    {
        let forward = ForwardOptions(batch: 2, seed: 0, kernels: options.forward.kernels)
        try forward.checkBudget(source.config, tracing: true)
        let a = try F.loadWeights(source), b = try F.loadWeights(written)
        let inputs = try forward.inputs(for: source.config)
        let traceA = Trace(), traceB = Trace()
        _ = F.run(a, semantics: source.config, inputs: inputs, kernels: forward.kernels, trace: traceA)
        _ = F.run(b, semantics: F.withNumerics(written.config, of: source.config), inputs: inputs, kernels: forward.kernels, trace: traceB)
        // Layers whose shapes differ were changed on purpose (learned-sigma channels dropped): not compared.
        let skipped = traceA.layers.filter { layer in traceB.layer(layer.name).map { $0.shape != layer.shape } ?? false }.map(\.name)
        func keep(_ t: Trace) -> Trace {
            let kept = Trace()
            for layer in t.layers where !skipped.contains(layer.name) { kept.append(layer.name, layer.shape, layer.values) }
            return kept
        }
        let report = VerificationReport.compare(
            keep(traceA), keep(traceB), tolerance: Tolerance.default(for: source.tensors.map(\.dtype) + written.tensors.map(\.dtype)),
            family: F.self, configA: source.config, configB: written.config, semanticsA: source.config, semanticsB: source.config,
            labelA: "\(names?.source ?? source.checkpoint.path) (source)",
            labelB: "\(names?.written ?? written.checkpoint.path) (written, run with the source's semantics)")
        return (report, skipped)
    }

    /// `options.rtol` (or the default for `dtypes`) with `options.atol`, on `options.metric`.
    func tolerance(for dtypes: [DType]) -> Tolerance {
        Tolerance(rtol: options.rtol ?? Tolerance.default(for: dtypes).rtol, atol: options.atol, metric: options.metric)
    }
}

extension Verifier {
    /// Compares two checkpoints of any family (as ``ModelFamilies/open(_:options:)`` returns them): both must hold
    /// the same family, and the family must be verifiable.
    public func compareAny(_ a: any AnyModelView, _ b: any AnyModelView, names: (a: String, b: String)? = nil) throws -> VerificationReport {
        guard a.familyName == b.familyName else { throw VerificationError.differentFamilies(a: a.familyName, b: b.familyName) }
        return try compareOpened(a, b, names: names)
    }

    private func compareOpened<A: AnyModelView>(_ a: A, _ b: any AnyModelView, names: (a: String, b: String)?) throws -> VerificationReport {
        guard let family = A.Family.self as? any VerifiableFamily.Type else { throw VerificationError.notRunnable(family: a.familyName) }
        return try compareAs(family, a, b, names: names)
    }

    private func compareAs<F: VerifiableFamily>(_ family: F.Type, _ a: any AnyModelView, _ b: any AnyModelView, names: (a: String, b: String)?) throws -> VerificationReport {
        guard let a = a as? ModelView<F>, let b = b as? ModelView<F> else { throw VerificationError.differentFamilies(a: a.familyName, b: b.familyName) }
        return try compare(a, b, names: names)
    }

    /// Compares a checkpoint of any family with a trace of its layers.
    public func compareAny(_ model: any AnyModelView, againstTrace tracePath: String, name: String? = nil) throws -> VerificationReport {
        try compareOpened(model, againstTrace: tracePath, name: name)
    }

    private func compareOpened<A: AnyModelView>(_ model: A, againstTrace tracePath: String, name: String?) throws -> VerificationReport {
        guard let family = A.Family.self as? any VerifiableFamily.Type else { throw VerificationError.notRunnable(family: model.familyName) }
        return try compareAs(family, model, againstTrace: tracePath, name: name)
    }

    private func compareAs<F: VerifiableFamily>(_ family: F.Type, _ model: any AnyModelView, againstTrace tracePath: String, name: String?) throws -> VerificationReport {
        guard let model = model as? ModelView<F> else { throw VerificationError.notRunnable(family: model.familyName) }
        return try compare(model, againstTrace: tracePath, name: name)
    }

    /// Runs a conversion's source and its written output (any family) on the same inputs with the source's numerics.
    public func compareConversionAny(source: any AnyModelView, written: any AnyModelView, names: (source: String, written: String)? = nil)
        throws -> (report: VerificationReport, skipped: [String])
    {
        guard source.familyName == written.familyName else { throw VerificationError.differentFamilies(a: source.familyName, b: written.familyName) }
        return try conversionOpened(source, written, names: names)
    }

    private func conversionOpened<A: AnyModelView>(_ source: A, _ written: any AnyModelView, names: (source: String, written: String)?)
        throws -> (report: VerificationReport, skipped: [String])
    {
        guard let family = A.Family.self as? any VerifiableFamily.Type else { throw VerificationError.notRunnable(family: source.familyName) }
        return try conversionAs(family, source, written, names: names)
    }

    private func conversionAs<F: VerifiableFamily>(_ family: F.Type, _ source: any AnyModelView, _ written: any AnyModelView, names: (source: String, written: String)?)
        throws -> (report: VerificationReport, skipped: [String])
    {
        guard let source = source as? ModelView<F>, let written = written as? ModelView<F> else {
            throw VerificationError.differentFamilies(a: source.familyName, b: written.familyName)
        }
        return try compareConversion(source: source, written: written, names: names)
    }
}
