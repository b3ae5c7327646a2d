import Checkpoints
import Models
import Reference

/// What a traced forward pass recorded, and the numerics it ran with.
public struct RecordedTrace<Family: RunnableFamily>: Sendable {
    /// Every layer of the trace format, inputs first.
    public let trace: Trace
    /// The config the pass ran with: the model's, with the forced semantics applied.
    public let semantics: Family.Config
    /// The semantics the trace records (`ditkit.trace.semantics`): the forced choice, or the model's layout.
    public let semanticsName: String
    /// The batch size: the first axis of the family's batch layer (DiT: `input.t`).
    public var batch: Int { trace.layer(Family.traceBatchLayer)?.shape.first ?? 0 }
}

/// Records and writes traces: the reference forward of one model with every layer's activations, in the trace
/// format `Verifier.compare(_:againstTrace:)` and PyTorch's dumping script share.
public struct Tracer: Sendable {
    /// Numerics forced on the pass (`.original` or `.diffusers`; `.a` and `.b` mean the model's own); nil for the
    /// model's own.
    public var semantics: SemanticsChoice?
    /// Inputs, budget and kernels of the pass.
    public var forward: ForwardOptions

    /// A tracer with the given numerics and forward options.
    public init(semantics: SemanticsChoice? = nil, forward: ForwardOptions = ForwardOptions()) {
        self.semantics = semantics
        self.forward = forward
    }

    /// Runs `model` on `forward`'s inputs, recording every layer. Throws `ModelError.overBudget` before any allocation
    /// when the pass exceeds the budget, and `VerificationError.invalidInputs` when the timesteps or classes do not
    /// fit the model.
    public func record<F: RunnableFamily>(_ model: ModelView<F>) throws -> RecordedTrace<F> {
        let weights = try forward.weights(model)
        let config = semantics.map { $0.apply(to: model.config, a: model.config, b: nil, family: F.self) } ?? model.config
        let trace = Trace()
        _ = F.run(weights, semantics: config, inputs: try forward.inputs(for: config), kernels: forward.kernels, trace: trace)  // inputs valid for the numerics run
        return RecordedTrace(trace: trace, semantics: config, semanticsName: semantics?.rawValue ?? model.layout.rawValue)
    }

    /// Records `model` (`record`) and writes the trace to `path` atomically, with its semantics, source and config
    /// in the metadata. Refuses before any work an output that is, contains or lies inside the model's checkpoint
    /// (`VerificationError.outputOverlapsInput`) and one that exists unless `overwrite` (`CheckpointError.outputExists`).
    /// `sourceName` names the model in the metadata (its checkpoint's path by default).
    @discardableResult
    public func write<F: RunnableFamily>(_ model: ModelView<F>, to path: String, overwrite: Bool = false, sourceName: String? = nil) throws -> RecordedTrace<F> {
        try TraceFile.checkDestination(path, input: model.checkpoint.path, overwrite: overwrite)
        let recorded = try record(model)
        try TraceFile.write(recorded.trace, to: path, metadata: [
            ("format", "pt"), ("ditkit.trace.semantics", recorded.semanticsName),
            ("ditkit.trace.source", "ditkit reference forward of \(sourceName ?? model.checkpoint.path)"),
            ("ditkit.config", recorded.semantics.json.serialized()),
        ], overwrite: overwrite)
        return recorded
    }
}

extension Tracer {
    /// Records and writes the trace of a model of any runnable family; returns the layer count and batch.
    @discardableResult
    public func writeAny(_ model: any AnyModelView, to path: String, overwrite: Bool = false, sourceName: String? = nil) throws -> (layers: Int, batch: Int) {
        try writeOpened(model, to: path, overwrite: overwrite, sourceName: sourceName)
    }

    private func writeOpened<A: AnyModelView>(_ model: A, to path: String, overwrite: Bool, sourceName: String?) throws -> (layers: Int, batch: Int) {
        guard let family = A.Family.self as? any RunnableFamily.Type else { throw VerificationError.notRunnable(family: model.familyName) }
        return try writeAs(family, model, to: path, overwrite: overwrite, sourceName: sourceName)
    }

    private func writeAs<F: RunnableFamily>(_ family: F.Type, _ model: any AnyModelView, to path: String, overwrite: Bool, sourceName: String?) throws -> (layers: Int, batch: Int) {
        guard let model = model as? ModelView<F> else { throw VerificationError.notRunnable(family: model.familyName) }
        let recorded = try write(model, to: path, overwrite: overwrite, sourceName: sourceName)
        return (recorded.trace.layers.count, recorded.batch)
    }
}
