import ArgumentParser
import Checkpoints
import Models
import Tensors


/// `ditkit synth PRESET --layout L -o OUT`: a deterministic random-weight checkpoint of any preset.
struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a deterministic random-weight checkpoint of any preset in any layout.",
        discussion: "Presets: see `ditkit params` (DiT-S/2 … DiT-XL/8, with -512 for 512 px; cerebras-dit-small … cerebras-dit-2B).")

    @Argument(help: "Preset name, e.g. DiT-XL/2, DiT-B/4-512, cerebras-dit-2B.")
    var preset: String

    @Option(name: .long, help: "Layout: original, diffusers, canonical or cerebras.")
    var layout: String

    @Option(name: .shortAndLong, help: "Output file or folder.")
    var output: String

    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Store weights as f32, f16 or bf16.")
    var dtype: DType?

    @Flag(name: .long, help: "Replace OUT if it exists.")
    var force = false

    @Flag(name: .long, help: "fsync each output file before renaming it into place (survives a power loss; slower).")
    var fsync = false

    @Flag(name: .long, help: "Allow dropping learned-sigma channels (DiT presets in the Cerebras layout).")
    var dropSigma = false

    @Flag(name: .long, help: "diffusers: write only the transformer folder.")
    var componentOnly = false

    @Flag(name: .long, help: "No progress bar.")
    var quiet = false

    func validate() throws {
        guard TargetLayout(rawValue: layout) != nil else { throw ValidationError("--layout must be original, diffusers, canonical or cerebras") }
        guard Preset.named(preset) != nil else { throw ValidationError("unknown preset '\(preset)' (see `ditkit params`)") }
        if let dtype, ![DType.f32, .f16, .bf16].contains(dtype) { throw ValidationError("--dtype must be f32, f16 or bf16") }
    }

    func run() throws {
        let chosen = Preset.named(preset)!
        let target = TargetLayout(rawValue: layout)!
        let canonical = Synthetic.canonicalOutputs(chosen.config, seed: seed)
        let plan = try ModelView.plan(
            canonical: canonical, sources: [:], config: chosen.config, to: target,
            options: ConversionOptions(dtype: dtype, dropSigma: dropSigma))
        var options = ExportOptions()
        options.overwrite = force
        options.durable = fsync
        options.componentOnly = componentOnly
        options.sourceLayout = chosen.layout
        let files = try export(plan, to: output, options: options, quiet: quiet, label: "writing")
        print("wrote \(output): \(chosen.name) (seed \(seed)) in the \(target.rawValue) layout, \(Format.grouped(plan.outputs.count)) tensors, "
            + "\(Format.bytes(plan.byteCount))" + (files.count > 1 ? " in \(files.count) files" : ""))
        for note in plan.notes { print("note: " + note) }
    }
}
