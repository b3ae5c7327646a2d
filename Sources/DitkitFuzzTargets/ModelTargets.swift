import Checkpoints
import Models
import Reference
import Tensors
import Verification

/// Targets that reach the model and the reference forward.
enum ModelTargets {
    /// A refusal the harness itself makes, where the CLI would refuse too.
    struct Refusal: Error, CustomStringConvertible {
        let description: String
    }

    /// The input is the `ditkit.config` text of a canonical safetensors file. When its shapes are small, the file
    /// also holds synthetic weights of those shapes (from the config with one head and shift 0, which change no
    /// shape, so a config that lies about heads or numerics still meets matching tensors), and the model is run
    /// forward once, as `trace` and `verify` would.
    static func canonical(_ input: [UInt8]) throws {
        let text = String(decoding: input, as: UTF8.self)
        var outputs: [OutputTensor] = []
        if let config = try? DiTConfig(json: JSONParser.parse(input)) {
            var shapes = config
            shapes.numHeads = 1
            shapes.timestepShift = 0
            if isSmall(shapes) && shapes.problems().isEmpty { outputs = Synthetic.canonicalOutputs(shapes, seed: 1) }
        }
        let path = Scratch.path("canonical.safetensors")
        try SafetensorsWriter.write(
            outputs, metadata: [("format", "pt"), ("ditkit.canonical", "1"), ("ditkit.config", text)], to: path, overwrite: true)
        let checkpoint = try Checkpoint.open(path)
        try Exercise.checkpoint(checkpoint)
        let view = try ModelView<DiTFamily>.open(checkpoint)
        guard isSmall(view.config) else { return }
        let weights = try DiTWeights(view)
        _ = DiTForward(weights: weights).run(DiTInputs.make(config: view.config, batch: 1, seed: 0), trace: Trace())
    }

    /// Small enough to make weights for and run in a few milliseconds.
    static func isSmall(_ c: DiTConfig) -> Bool {
        let bounds: [(Int, Int)] = [
            (c.hiddenSize, 128), (c.depth, 4), (c.numHeads, 128), (c.patchSize, 8), (c.inChannels, 8), (c.outChannels, 16),
            (c.numClasses, 100), (c.mlpHidden, 512), (c.inputSize, 32), (c.frequencyEmbeddingSize, 512),
        ]
        return bounds.allSatisfy { $0.0 >= 1 && $0.0 <= $0.1 }
    }

    /// The committed tiny model the trace target runs (original layout, 2 heads, patch 2, 8×8 inputs, 4 channels:
    /// fixtures/expected/traces.json, case orig-p2-s8).
    static let model: (config: DiTConfig, dtypes: [DType], weights: DiTWeights) = {
        let path = Scratch.packageRoot + "/fixtures/traces/orig-p2-s8/model.pt"
        do {
            let view = try ModelView<DiTFamily>.open(try Checkpoint.open(path), options: ModelOptions(heads: 2))
            return (view.config, view.tensors.map(\.dtype), try DiTWeights(view))
        } catch {
            fatalError("ditkit-fuzz: cannot open the trace target's model \(path): \(error)")
        }
    }()

    /// The input is a trace file: read as `verify --against` reads it, its inputs run through the tiny model, and the
    /// two traces compared and reported (text, JSON, SVG).
    static func trace(_ input: [UInt8]) throws {
        let (config, dtypes, weights) = model
        let (reference, _) = try TraceFile.read(Scratch.store("trace.safetensors", input))
        guard let inputs = TraceFile.inputs(of: reference) else { throw Refusal(description: "the trace has no input.x, input.t and input.y") }
        let ours = Trace()
        _ = DiTForward(weights: weights, semantics: config).run(inputs, trace: ours)
        let report = VerificationReport.compare(
            ours, reference, tolerance: Tolerance.default(for: dtypes), configA: config, configB: nil, semanticsA: config,
            semanticsB: nil, labelA: "model", labelB: "trace")
        _ = (report.text, report.json.serialized(pretty: true), report.svg)
    }
}
