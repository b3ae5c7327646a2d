import ArgumentParser
import Checkpoints
import Models
import Tensors

/// `ditkit synth PRESET --to LAYOUT -o OUT`: a deterministic random-weight checkpoint of any preset.
struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a deterministic random-weight checkpoint of any preset in any layout.",
        discussion: """
            Presets: see `ditkit params` (DiT-S/2 … DiT-XL/8, with -512 for 512 px; cerebras-dit-small … \
            cerebras-dit-2B). --to was called --layout before; that spelling still works. \
            --to cerebras writes a torch.save file, or a Cerebras .mdl (HDF5, format 0.5, as cerebras.pytorch.save \
            writes it) with --container mdl or an OUT ending in .mdl; --compression none stores it uncompressed.
            """)

    @Argument(help: "Preset name, e.g. DiT-XL/2, DiT-B/4-512, cerebras-dit-2B.")
    var preset: String

    @OptionGroup var out: OutputOptionGroup
    @OptionGroup var write: WriteOptionGroup

    @Option(name: .long, help: "Seed of the random weights.")
    var seed: UInt64 = 0

    func run() throws {
        guard let chosen = ModelFamilies.preset(named: preset) else {
            throw ModelError.unknownPreset(preset, nearest: ModelFamilies.nearestPresets(to: preset))
        }
        let target = write.to
        guard chosen.targets.contains(target) else {
            throw CLIError.usage("--to \(target): a \(chosen.familyName) model can be written as " + chosen.targets.map(\.rawValue).joined(separator: ", "))
        }
        let plan = try chosen.synthesize(
            to: target, seed: seed, options: ConversionOptions(dtype: write.dtype?.dtype, dropSigma: write.dropSigma))
        var options = write.exportOptions(overwrite: out.force)
        options.sourceLayout = chosen.layout
        let files = try export(plan, to: out.output, options: options, quiet: write.quiet, label: "writing")
        print("wrote \(out.output): \(chosen.name) (seed \(seed)) in the \(target.rawValue) layout, "
            + "\(NumberFormat.grouped(plan.outputs.count)) tensors, \(NumberFormat.binaryBytes(plan.byteCount))"
            + (files.count > 1 ? " in \(files.count) files" : ""))
        for note in plan.notes { print("note: " + note) }
    }
}
