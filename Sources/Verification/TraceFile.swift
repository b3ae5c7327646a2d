import Checkpoints
import Models
import Reference
import Tensors

/// Reading and writing traces: safetensors files of float32 layers, one per traced layer, named by the family's
/// trace format (DiT: `input.x`, `input.t`, `input.y`, `t_embed`, `y_embed`, `cond`, `patch_embed`, `blocks.N`,
/// `final`, `output`; README, "`ditkit verify` and `ditkit trace`").
public enum TraceFile {
    /// DiT's trace layers in order (`RunnableFamily.traceOrder` of `DiTFamily`).
    public static func order(_ names: [String]) -> [String] { DiTFamily.traceOrder(names) }

    /// Refuses an output `path` for a trace of the checkpoint at `input` before any work: one that is, contains or
    /// lies inside the input (`VerificationError.outputOverlapsInput`, compared by real paths), and one that exists
    /// unless `overwrite` (`CheckpointError.outputExists`).
    package static func checkDestination(_ path: String, input: String, overwrite: Bool) throws {
        if let reason = FileSystem.overlap(output: path, input: input) {
            throw VerificationError.outputOverlapsInput(output: path, reason: reason)
        }
        if FileSystem.exists(path) && !overwrite { throw CheckpointError.outputExists(path: path) }
    }

    /// Writes `trace` to `path` as a float32 safetensors file (atomically: a temporary file renamed into place), with
    /// `ditkit.trace: 1` and `metadata` in its `__metadata__`; an existing file is replaced only when `overwrite`.
    public static func write(_ trace: Trace, to path: String, metadata: [(String, String)], overwrite: Bool) throws {
        let outputs = trace.layers.map { layer in
            OutputTensor(name: layer.name, dtype: .f32, shape: layer.shape) { sink in
                try layer.values.withUnsafeBytes { try sink.write($0) }
            }
        }
        try SafetensorsWriter.write(outputs, metadata: [("ditkit.trace", "1")] + metadata, to: path, overwrite: overwrite)
    }

    /// Reads every layer as float32 (any float dtype is widened).
    public static func read(_ path: String) throws -> (trace: Trace, metadata: [(String, String)]) {
        let checkpoint = try Checkpoint.open(path)
        let trace = Trace()
        for name in order(checkpoint.tensors.map(\.name)) {
            let tensor = checkpoint.tensor(named: name)!
            trace.append(name, tensor.shape, try tensor.float32())
        }
        return (trace, checkpoint.metadata)
    }

    /// The DiT inputs a trace holds, or nil (class ids that are not integers give nil, never a trapping conversion).
    public static func inputs(of trace: Trace) -> DiTInputs? { try? DiTFamily.inputs(fromTrace: trace).get() }

    /// The shape of DiT trace layer `name` for `config` and batch `n`, or nil when it is not a layer of the format.
    package static func expectedShape(_ name: String, config c: DiTConfig, batch n: Int) -> [Int]? { DiTFamily.traceShape(name, config: c, batch: n) }


    /// Reads a trace to verify a model of `config` against, checking it before use: the batch N is the first axis of
    /// the family's batch layer (DiT: `input.t`'s length), whose rank must be the format's; every tensor must be a
    /// known layer with a float dtype and the shape that layer has for `config` and N; a `ditkit.config` in the
    /// metadata must be valid; the inputs must be in range (`DiTInputs.problems(for:)`). Values are read only after
    /// the shapes are checked. Throws `ModelError.trace` naming the file and each problem.
    ///
    /// A layer may also have the shape it has under the numerics the trace records (`ditkit.trace.semantics`: a
    /// VQ-Diffusion output with the original's mask row). `semantics` are the numerics the model will run with (`b`:
    /// the trace's recorded ones): the inputs are checked against those.
    public static func load<C: FamilyConfig>(_ path: String, for config: C, semantics: SemanticsChoice? = nil) throws
        -> (trace: Trace, metadata: [(String, String)], inputs: C.Family.Inputs)
        where C.Family: RunnableFamily
    {
        typealias F = C.Family
        let checkpoint = try Checkpoint.open(path)
        func fail(_ problems: [String]) -> ModelError { ModelError.trace(path: path, problems: problems) }
        if let text = checkpoint.metadata.first(where: { $0.0 == "ditkit.config" })?.1 {
            let json: JSONValue
            do { json = try JSONParser.parse(text) } catch {
                throw ModelError.invalidConfig(origin: "\(path): metadata ditkit.config", problems: ["not valid JSON (\(error))"])
            }
            _ = try C(json: json, origin: "\(path): metadata ditkit.config")
        }
        guard F.traceInputLayers.allSatisfy({ checkpoint.tensor(named: $0) != nil }) else {
            throw fail(["it has no " + F.traceInputLayers.joined(separator: ", ") + " to run on"])
        }
        // The numerics the trace records can change a layer's shape (VQ-Diffusion's mask row).
        let recorded = checkpoint.metadata.first(where: { $0.0 == "ditkit.trace.semantics" })?.1
        let recordedConfig = recorded.flatMap { $0.isEmpty ? nil : F.semantics(Layout($0), of: config) }
        // The batch is the first axis of the per-sample input layer (DiT: input.t, one timestep per sample; the
        // VQ-VAE: input.tokens, (N, h, w)).
        let probe = checkpoint.tensor(named: F.traceBatchLayer)!
        let rank = F.traceShape(F.traceBatchLayer, config: config, batch: 1)?.count ?? 1
        guard probe.shape.count == rank, probe.shape[0] >= 1 else {
            throw fail(["\(probe.name) has shape \(probe.shape), expected \(rank == 1 ? "(N)" : "(N, …) of rank \(rank)") with N ≥ 1"])
        }
        let n = probe.shape[0]
        var problems: [String] = []
        for tensor in checkpoint.tensors {
            guard let expected = F.traceShape(tensor.name, config: config, batch: n) else {
                problems.append("\(tensor.name) is not a layer of the trace format for this model (depth \(config.depth))")
                continue
            }
            if !tensor.dtype.isFloatingPoint { problems.append("\(tensor.name) has dtype \(tensor.dtype.rawValue), expected a float dtype") }
            if tensor.shape != expected, recordedConfig.flatMap({ F.traceShape(tensor.name, config: $0, batch: n) }) != tensor.shape {
                problems.append("\(tensor.name) has shape \(tensor.shape), expected \(expected) for batch \(n) of this model (\(config.summary))")
            }
            if problems.count > 12 { break }
        }
        guard problems.isEmpty else { throw fail(problems) }
        let trace = Trace()
        for name in F.traceOrder(checkpoint.tensors.map(\.name)) {
            trace.append(name, checkpoint.tensor(named: name)!.shape, try checkpoint.tensor(named: name)!.float32())
        }
        let inputs: F.Inputs
        switch F.inputs(fromTrace: trace) {
        case .success(let read): inputs = read
        case .failure(let problem): throw fail([problem.message])
        }
        let running = semantics.map { $0.apply(to: config, a: config, b: recordedConfig ?? config, family: F.self) } ?? config
        let inputProblems = F.inputProblems(inputs, config: running)
        guard inputProblems.isEmpty else { throw fail(inputProblems) }
        return (trace, checkpoint.metadata, inputs)
    }
}
