import ArgumentParser
import Checkpoints
import Models
import Reference
import Verification

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
        try model.requireCount("trace")
        // Refused before any work: a trace that would replace its own checkpoint, or an existing file.
        try TraceFile.checkDestination(output, input: path, overwrite: force)
        let view = try openModel(path, open, model)
        writeAssumptions(of: view)
        let recorded = try InputOptionGroup.naming {
            try Tracer(semantics: semantics, forward: inputs.forward).writeAny(view, to: output, overwrite: force, sourceName: path)
        }
        print("wrote \(output): \(recorded.layers) layers, batch \(recorded.batch), \(view.layoutSummary) with "
              + "\(semantics?.rawValue ?? "its own") semantics")
        for note in view.notes { print("note: " + note) }
    }
}
