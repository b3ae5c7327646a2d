import ArgumentParser
import Checkpoints
import Models
import Reference
import Verification

/// The model at `path`, its config validated; no weight is read yet.
func openModel(_ path: String, _ open: OpenOptionGroup, _ model: ModelOptionGroup) throws -> ModelView {
    try modelView(try Checkpoint.open(path, options: open.openOptions), model.modelOptions)
}

/// The float32 weights of `view`, once a traced forward pass of `batch` samples is known to fit the budget (checked
/// before any weight, table or activation is allocated).
func loadWeights(_ view: ModelView, budget inputs: InputOptionGroup, batch: Int) throws -> DiTWeights {
    try inputs.checkBudget(view.config, batch: batch, tracing: true)
    return try DiTWeights(view)
}

/// `ditkit trace PATH -o TRACE.safetensors`: run the reference forward and save its activations.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Run the float32 reference forward pass and save every layer's activations.",
        discussion: """
            The trace is a safetensors file of float32 layers, one tensor per layer: input.x, input.t, input.y, \
            t_embed, y_embed, cond, patch_embed, blocks.{i}, final, output (the names scripts/torch-trace.py \
            writes), with the semantics and the config in its metadata.
            """)

    @Argument(help: "Checkpoint (any layout ditkit converts).")
    var path: String

    @OptionGroup var out: OutputOptionGroup
    @OptionGroup var numerics: SemanticsOptionGroup

    @OptionGroup var inputs: InputOptionGroup
    @OptionGroup var open: OpenOptionGroup
    @OptionGroup var model: ModelOptionGroup

    var output: String { out.output }
    var force: Bool { out.force }
    var semantics: SemanticsChoice? { numerics.semantics }

    func run() throws {
        // Refused before any work: a trace that would replace its own checkpoint, or an existing file.
        if let overlap = FileSystem.overlap(output: output, input: path) { throw CLIError.usage(overlap) }
        if FileSystem.exists(output) && !force { throw CheckpointError.outputExists(path: output) }
        let view = try openModel(path, open, model)
        let weights = try loadWeights(view, budget: inputs, batch: inputs.batch)
        let semanticsConfig = semantics.map { $0.apply(to: view.config, a: view.config, b: nil) } ?? view.config
        let trace = Trace()
        _ = DiTForward(weights: weights, semantics: semanticsConfig).run(try inputs.inputs(for: view.config), trace: trace)
        try TraceFile.write(trace, to: output, metadata: [
            ("format", "pt"), ("ditkit.trace.semantics", semantics?.rawValue ?? view.layout.rawValue),
            ("ditkit.trace.source", "ditkit reference forward of \(path)"), ("ditkit.config", semanticsConfig.json.serialized()),
        ], overwrite: force)
        print("wrote \(output): \(trace.layers.count) layers, batch \(inputs.batch), \(view.layout.summary) with "
              + "\(semantics?.rawValue ?? "its own") semantics")
    }
}
