import ArgumentParser
import Checkpoints
import Models
import Reference
import Tensors
import Verification


/// `ditkit convert SRC -o OUT --to LAYOUT`: lossless conversion through the canonical form, streaming.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a DiT checkpoint between layouts without losing a bit.",
        discussion: """
            Tensors are kept bit for bit unless --dtype casts them; anything the target cannot hold is named and the conversion \
            stops unless told to drop it (--drop NAME, --drop-sigma). The input is never modified; outputs are \
            written to temporary names and renamed. OUT may not be, contain or lie inside SRC (real paths are \
            compared). A pipeline's vae/ is carried over by content, only \
            config.json and weights files; a file there that links out of SRC stops the conversion. As in every \
            command, --variant is the weight variant of the input (SRC); --output-variant names the written files.
            """)

    @Argument(help: "Source checkpoint (any format ditkit inspect opens).")
    var source: String

    @OptionGroup var out: OutputOptionGroup
    @OptionGroup var write: WriteOptionGroup

    @Option(name: .long, help: "Allow dropping this canonical tensor if the target cannot hold it (repeatable).")
    var drop: [String] = []

    @Flag(name: .long, help: "After writing, run source and output on the same inputs (source semantics) and compare every layer.")
    var verify = false

    @OptionGroup var open: OpenOptionGroup
    @OptionGroup var model: ModelOptionGroup

    /// The old name of `--variant` in convert, from when `--variant` named the written files.
    @Option(name: .long, help: .hidden)
    var sourceVariant: String?

    var output: String { out.output }

    /// The input's variant: `--variant`, or its old spelling `--source-variant`.
    var inputVariant: String? { open.variant ?? sourceVariant }

    func validate() throws {
        if let sourceVariant {
            try OpenOptionGroup.checkVariantName(sourceVariant)
            if let variant = open.variant, variant != sourceVariant {
                throw ValidationError("--variant \(variant) and --source-variant \(sourceVariant) (its old spelling) disagree")
            }
        }
    }

    func run() throws {
        try model.requireCount("convert")
        // Refused before any work: an output that is, holds or lies inside the source, and one that exists.
        if let overlap = FileSystem.overlap(output: output, input: source) { throw CLIError.usage(overlap) }
        if FileSystem.exists(output) && !out.force { throw CheckpointError.outputExists(path: output) }
        if try convertWhole() { return }
        let checkpoint = try openSource()
        let view = try ModelFamilies.open(checkpoint, options: model.modelOptions)
        let plan = try view.erasedPlan(
            to: write.to, options: ConversionOptions(dtype: write.dtype?.dtype, dropSigma: write.dropSigma, drop: Set(drop)))
        var options = write.exportOptions(overwrite: out.force)
        options.source = checkpoint
        options.sourceLayout = view.layout
        let files = try export(plan, to: output, options: options, quiet: write.quiet, label: "converting")
        print(Convert.report(view: view, plan: plan, output: output, files: files))
        if let bundle = try? ModelBundle.open(checkpoint, readModels: false), BundleText.isWhole(bundle) {
            let others = bundle.components.filter { $0.match.prefix != view.prefix }.count
            let models = others == 0 ? nil : "\(others) other \(others == 1 ? "model" : "models")"
            let tensors = bundle.extras.isEmpty ? nil : "\(bundle.extras.count) other \(bundle.extras.count == 1 ? "tensor" : "tensors")"
            print("note: \(source) holds " + [models, tensors].compactMap { $0 }.joined(separator: " and ")
                + ", not converted here; convert to a folder (-o DIR --to canonical) to keep the whole file")
        }
        if verify { try verifyOutput(source: view, plan: plan) }
    }

    /// A whole file or folder: a canonical folder (`bundle.json`) written back in its source layout, or a file of
    /// several models (or a model beside optimizer state, buffers, a text encoder) converted to a canonical folder
    /// when the output is not one `.safetensors` file. False when the source is one model (the plain conversion).
    func convertWhole() throws -> Bool {
        var options = BundleWriteOptions()
        options.conversion = ConversionOptions(dtype: write.dtype?.dtype, dropSigma: write.dropSigma, drop: Set(drop))
        options.overwrite = out.force
        options.durable = write.fsync
        if ModelBundle.isCanonicalFolder(source) {
            let bundle = try ModelBundle.openCanonicalFolder(source, options: open.openOptions)
            let result: BundleWriteResult
            switch write.to {
            case .original, .cerebras:
                // Each component in its source layout; a .mdl when asked (--container mdl, or OUT ending in .mdl).
                if write.container == .mdl || (write.container == nil && output.lowercased().hasSuffix(".mdl")) {
                    options.container = .mdl
                    options.compression = write.compression
                } else if write.compression != nil {
                    throw CLIError.usage("--compression applies to a .mdl output")
                }
                result = try bundle.writeWhole(to: output, options: options)
            case .diffusers: result = try bundle.writeDiffusers(to: output, options: options)
            default:
                throw CLIError.usage("\(source) is a canonical folder of a whole file; it converts with --to original (or --to cerebras for a .mdl) or --to diffusers "
                    + "(each component file in it is a canonical file of its own)")
            }
            print(report(source: source, bundle: bundle, output: output, target: write.to, result: result))
            return true
        }
        guard (write.to == .canonical && !output.hasSuffix(".safetensors")) || write.to == .diffusers, !write.componentOnly else { return false }
        let checkpoint = try openSource()
        guard checkpoint.metadata.first(where: { $0.0 == "ditkit.config" }) == nil else { return false }
        let bundle = try ModelBundle.open(checkpoint, options: model.modelOptions)
        guard BundleText.isWhole(bundle) else { return false }
        let result: BundleWriteResult
        if write.to == .diffusers {
            // One family's model (a DiT training checkpoint) keeps the plain conversion: its pipeline is that model's.
            guard Set(bundle.selected.map(\.family)).count > 1 else { return false }
            result = try bundle.writeDiffusers(to: output, options: options)
        } else {
            result = try bundle.writeCanonical(to: output, options: options)
        }
        print(report(source: source, bundle: bundle, output: output, target: write.to, result: result))
        return true
    }

    func report(source: String, bundle: ModelBundle, output: String, target: Layout, result: BundleWriteResult) -> String {
        var lines: [[String]] = [["source", "\(source) (\(bundle.folder == nil ? bundle.checkpoint.format.rawValue : "canonical folder"), "
            + "\(bundle.components.count) \(bundle.components.count == 1 ? "model" : "models"), \(bundle.extras.count) extra tensors)"]]
        for c in bundle.listed {
            lines.append(["", "\(c.name): \(c.match.summary)" + (c.match.prefix.isEmpty ? "" : " under \"\(c.match.prefix)\"")])
        }
        let kind = target == .canonical ? "canonical folder" : target == .diffusers ? "diffusers pipeline folder" : "\(target.rawValue) whole file"
        lines.append(["wrote", "\(output) (\(kind)): "
            + "\(NumberFormat.grouped(result.tensors)) tensors, \(NumberFormat.binaryBytes(result.bytes))"])
        lines.append(["files", result.files.joined(separator: ", ")])
        var out = TextTable.render(lines)
        let written = target == .diffusers ? bundle.selected : bundle.components
        var seen = Set<String>()
        if verify { out += "\nnote: --verify compares one model, and is not run for a whole file; verify a component file of the output instead" }
        for note in written.compactMap(\.view).flatMap(\.notes) + result.notes where seen.insert(note).inserted { out += "\nnote: " + note }
        return out
    }

    /// The source, read with its `--variant`. A variant the source does not have is a usage error that points to
    /// `--output-variant`: before that option existed, convert's `--variant` named the written files, and a command
    /// written then must not quietly read other weights or ignore the name now.
    func openSource() throws -> Checkpoint {
        var options = open.openOptions
        options.variant = inputVariant
        guard let variant = inputVariant else { return try Checkpoint.open(source, options: options) }
        let checkpoint: Checkpoint
        do {
            checkpoint = try Checkpoint.open(source, options: options)
        } catch let original {
            // Whether it failed for want of the variant: the source opens without one, or holds other variants only.
            options.variant = nil
            let fallback: Checkpoint
            do {
                fallback = try Checkpoint.open(source, options: options)
            } catch CheckpointError.variantNeeded(_, let variants) where !variants.contains(variant) {
                throw noSuchVariant(variant, present: variants)
            } catch _ {
                throw original
            }
            // It opens without a variant: default weights, or the only variant present.
            throw noSuchVariant(variant, present: fallback.variant.map { [$0] } ?? [])
        }
        guard checkpoint.variant == variant else { throw noSuchVariant(variant, present: []) }
        return checkpoint
    }

    func noSuchVariant(_ variant: String, present: [String]) -> CLIError {
        CLIError.usage(
            "\(source) has no weight variant '\(variant)' to read"
                + (present.isEmpty ? "" : " (it has: \(present.joined(separator: ", ")))")
                + "; --variant names the variant of the INPUT. To name the written files "
                + "(diffusion_pytorch_model.\(variant).safetensors), use --output-variant \(variant)")
    }

    /// Runs the source and the written output on the same inputs, both with the source's numerics (so only the
    /// weights can differ), and fails (exit 1) on the first layer outside the tolerance.
    func verifyOutput(source: any AnyModelView, plan: any AnyConversionPlan) throws {
        // The written model is read with what was known of the source (values the weights cannot give, such as heads).
        var options = source.reproducingOptions
        options.key = nil
        options.optionNames = model.modelOptions.optionNames
        let written = try ModelFamilies.open(try Checkpoint.open(output, options: OpenOptions(variant: write.outputVariant)), options: options)
        let verifier = Verifier(options: VerificationOptions(forward: ForwardOptions(kernels: Ditkit.kernels)))
        let (report, skipped) = try verifier.compareConversionAny(
            source: source, written: written, names: (self.source, "\(output) (written, run with the source's semantics)"))
        print("\nverify:\n" + report.text)
        if !skipped.isEmpty {
            print("(\(skipped.joined(separator: " and ")) not compared: their shapes differ between the source and the output, "
                + "which dropped channels on purpose)")
        }
        if !report.passed {
            throw CLIError(message: "the written checkpoint does not compute what the source does (first divergence: \(report.firstDivergence ?? "none: nothing was compared"))", code: 1)
        }
    }

    static func report(view: any AnyModelView, plan: any AnyConversionPlan, output: String, files: [String]) -> String {
        var lines: [[String]] = [
            ["source", "\(view.checkpoint.path) (\(view.checkpoint.format.rawValue), \(view.layoutSummary)"
                + (view.prefix.isEmpty ? "" : " under \"\(view.prefix)\"") + ")"],
            ["model", view.configSummary],
            ["wrote", "\(output) (\(plan.target.rawValue)): \(NumberFormat.grouped(plan.outputs.count)) tensors, "
                + "\(NumberFormat.binaryBytes(plan.byteCount))"],
        ]
        if files.count > 1 { lines.append(["files", files.joined(separator: ", ")]) }
        var out = TextTable.render(lines)
        for note in view.notes + plan.notes { out += "\nnote: " + note }
        if !plan.casts.isEmpty {
            out += "\ncast \(plan.casts.count) tensors:"
            for cast in plan.casts.prefix(8) { out += "\n  " + cast }
            if plan.casts.count > 8 { out += "\n  … and \(plan.casts.count - 8) more" }
        }
        return out
    }
}

/// The model at `path`, of whatever family the registry finds; its config validated, no weight read yet.
func openModel(_ path: String, _ open: OpenOptionGroup, _ model: ModelOptionGroup) throws -> any AnyModelView {
    try ModelFamilies.open(try Checkpoint.open(path, options: open.openOptions), options: model.modelOptions)
}

/// Writes `plan` with a progress bar on stderr when it is a terminal (and not `quiet`); returns the files written.
func export(_ plan: any AnyConversionPlan, to output: String, options: ExportOptions, quiet: Bool, label: String) throws -> [String] {
    var options = options
    let progress = ProgressBar(total: plan.byteCount, enabled: !quiet && Platform.isTerminal(2), label: label)
    if progress.enabled { options.progress = progress.update }
    let files = try plan.write(to: output, options: options)
    progress.finish()
    return files
}

/// A one-line progress bar on stderr, redrawn at most every 1%.
final class ProgressBar {
    let total: Int
    let enabled: Bool
    let label: String
    private var lastPercent = -1

    init(total: Int, enabled: Bool, label: String) {
        self.total = max(total, 1)
        self.enabled = enabled
        self.label = label
    }

    func update(_ done: Int) {
        guard enabled else { return }
        let percent = min(100, done * 100 / total)
        guard percent != lastPercent else { return }
        lastPercent = percent
        let filled = percent * 30 / 100
        writeStandardError("\r\(label) [" + String(repeating: "#", count: filled) + String(repeating: " ", count: 30 - filled)
            + "] \(percent)% \(NumberFormat.binaryBytes(done)) / \(NumberFormat.binaryBytes(total))")
    }

    func finish() {
        guard enabled, lastPercent >= 0 else { return }
        writeStandardError("\r" + String(repeating: " ", count: 80) + "\r")
    }
}
