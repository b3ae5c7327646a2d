import ArgumentParser
import Checkpoints
import Models
import Reference
import Tensors
import Verification


/// Options that say how to read a model out of a checkpoint.
struct ModelOptionGroup: ParsableArguments {
    @Option(name: .long, help: "Sub-dict of a training checkpoint to read (ema, the default when present, or model).")
    var key: String?

    @Option(name: .long, help: "Attention heads (cannot be read from weights; default: the matching preset, or head dim 64).")
    var heads: Int?

    @Option(name: .long, help: "Latent input size S (32 for 256 px, 64 for 512 px) when no position table is stored.")
    var inputSize: Int?

    @Option(name: .long, help: "Number of classes K when the label table's row count is ambiguous.")
    var numClasses: Int?

    @Option(name: .long, help: "diffusers: the block whose embedder copy to use when the per-block copies differ.")
    var embedderBlock: Int?

    var modelOptions: ModelOptions {
        ModelOptions(key: key, heads: heads, inputSize: inputSize, numClasses: numClasses, embedderBlock: embedderBlock)
    }
}

extension DType: ExpressibleByArgument {}

/// `ditkit convert SRC -o OUT --to LAYOUT`: lossless conversion through the canonical form, streaming.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a DiT checkpoint between layouts without losing a bit.",
        discussion: """
            Layouts: canonical (one safetensors file with the config in its metadata), diffusers (a DiTPipeline \
            folder, or the transformer folder with --component-only), original (facebookresearch names, a zip .pt \
            or, when OUT ends in .safetensors, safetensors), cerebras (Cerebras Model Zoo names, .pt). Tensors are \
            kept bit for bit unless --dtype casts them; anything the target cannot hold is named and the conversion \
            stops unless told to drop it (--drop NAME, --drop-sigma). The input is never modified; outputs are \
            written to temporary names and renamed. OUT may not be, contain or lie inside SRC (real paths are \
            compared). --force swaps a complete new OUT in and removes the old one after, never following a \
            symlink (an OUT that is a link is replaced itself). A pipeline's vae/ is carried over by content, only \
            config.json and weights files; a file there that links out of SRC stops the conversion.
            """)

    @Argument(help: "Source checkpoint (any format ditkit inspect opens).")
    var source: String

    @Option(name: .shortAndLong, help: "Output file or folder.")
    var output: String

    @Option(name: .long, help: "Target layout: canonical, diffusers, original or cerebras.")
    var to: String

    @Option(name: .long, help: "Cast floating-point tensors: f32, f16 or bf16 (round-to-nearest-even).")
    var dtype: DType?

    @Flag(name: .long, help: "Replace OUT if it exists.")
    var force = false

    @Flag(name: .long, help: "fsync each output file before renaming it into place (survives a power loss; slower).")
    var fsync = false

    @Flag(name: .long, help: "diffusers: write only the transformer folder (config.json + weights).")
    var componentOnly = false

    @Option(name: .long, help: "diffusers: shard the weights (e.g. 5GB, 500MB) and write an index.")
    var shardSize: String?

    @Option(name: .long, help: "diffusers: name the weights as variant V (diffusion_pytorch_model.V.safetensors).")
    var variant: String?

    @Option(name: .long, help: "Read a diffusers source's variant weights (e.g. fp16).")
    var sourceVariant: String?

    @Flag(name: .long, help: "Refuse non-allowlisted pickle classes in the source.")
    var strict = false

    @Option(name: .long, help: ArgumentHelp("Keep the source's pickle callable NAME as an opaque value (repeatable).", valueName: "NAME"))
    var allow: [String] = []

    @Flag(name: .long, help: "Allow dropping the learned-sigma output channels (needed for --to cerebras; lossy).")
    var dropSigma = false

    @Option(name: .long, help: "Allow dropping this canonical tensor if the target cannot hold it (repeatable).")
    var drop: [String] = []

    @Flag(name: .long, help: "No progress bar.")
    var quiet = false

    @Flag(name: .long, help: "After writing, run source and output on the same inputs (source semantics) and compare every layer.")
    var verify = false

    @OptionGroup var model: ModelOptionGroup

    func validate() throws {
        guard TargetLayout(rawValue: to) != nil else {
            throw ValidationError("--to must be one of: canonical, diffusers, original, cerebras")
        }
        if let dtype, ![DType.f32, .f16, .bf16].contains(dtype) { throw ValidationError("--dtype must be f32, f16 or bf16") }
        if let shardSize, Convert.parseSize(shardSize) == nil { throw ValidationError("--shard-size \(shardSize): expected e.g. 5GB, 500MB or a byte count") }
        for name in [variant, sourceVariant].compactMap({ $0 }) where !FileSystem.isPlainName(name) {
            throw ValidationError("a variant is part of a file name: \(name) must not be empty, . or .., or hold / or NUL")
        }
        if (componentOnly || shardSize != nil || variant != nil) && to != "diffusers" {
            throw ValidationError("--component-only, --shard-size and --variant apply to --to diffusers")
        }
    }

    static func parseSize(_ text: String) -> Int? {
        let units: [(String, Int)] = [("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000), ("B", 1)]
        let upper = text.uppercased()
        for (suffix, factor) in units where upper.hasSuffix(suffix) {
            guard let value = Double(upper.dropLast(suffix.count)), value > 0 else { return nil }
            return Int(value * Double(factor))
        }
        return Int(text).flatMap { $0 > 0 ? $0 : nil }
    }

    func run() throws {
        let target = TargetLayout(rawValue: to)!
        // Refused before any work: an output that is, holds or lies inside the source, and one that exists.
        if let overlap = FileSystem.overlap(output: output, input: source) { throw CLIError.usage(overlap) }
        if FileSystem.exists(output) && !force { throw CheckpointError.outputExists(path: output) }
        let checkpoint = try Checkpoint.open(source, options: OpenOptions(variant: sourceVariant, strict: strict, allow: Set(allow)))
        let view = try modelView(checkpoint, model.modelOptions)
        let plan = try view.plan(to: target, options: ConversionOptions(dtype: dtype, dropSigma: dropSigma, drop: Set(drop)))
        var options = ExportOptions()
        options.overwrite = force
        options.durable = fsync
        options.componentOnly = componentOnly
        options.shardSize = shardSize.flatMap(Convert.parseSize)
        options.variant = variant
        options.source = checkpoint
        options.sourceLayout = view.layout
        let files = try export(plan, to: output, options: options, quiet: quiet, label: "converting")
        print(Convert.report(view: view, plan: plan, output: output, files: files))
        if verify { try verifyOutput(source: view, plan: plan) }
    }

    /// Runs the source and the written output on the same inputs, both with the source's numerics (so only the
    /// weights can differ), and fails (exit 1) on the first layer outside the tolerance.
    func verifyOutput(source: ModelView, plan: ConversionPlan) throws {
        var options = model.modelOptions
        options.heads = options.heads ?? source.config.numHeads
        options.inputSize = options.inputSize ?? source.config.inputSize
        let written = try modelView(try Checkpoint.open(output, options: OpenOptions(variant: variant)), options)
        try ForwardCost(config: source.config, batch: 2, tracing: true).check()
        let a = try DiTWeights(source), b = try DiTWeights(written)
        let inputs = DiTInputs.make(config: source.config, batch: 2, seed: 0)
        let traceA = Trace(), traceB = Trace()
        _ = DiTForward(weights: a).run(inputs, trace: traceA)
        _ = DiTForward(weights: b, semantics: written.config.withNumerics(of: source.config)).run(inputs, trace: traceB)
        var skipped: [String] = []
        if source.config.outChannels != written.config.outChannels {
            skipped = ["final", "output"]  // sigma channels were dropped on purpose
        }
        let keep = { (t: Trace) -> Trace in
            let kept = Trace()
            for layer in t.layers where !skipped.contains(layer.name) { kept.append(layer.name, layer.shape, layer.values) }
            return kept
        }
        let report = VerificationReport.compare(
            keep(traceA), keep(traceB), tolerance: Tolerance.default(for: source.tensors.map(\.dtype) + written.tensors.map(\.dtype)),
            configA: source.config, configB: written.config, semanticsA: source.config, semanticsB: source.config,
            labelA: "\(self.source) (source)", labelB: "\(output) (written, run with the source's semantics)")
        print("\nverify:\n" + report.text)
        if !skipped.isEmpty { print("(final and output not compared: the output has \(written.config.outChannels) channels, the source \(source.config.outChannels))") }
        if !report.passed { throw CLIError(message: "the written checkpoint does not compute what the source does (first divergence: \(report.firstDivergence!))", code: 1) }
    }

    static func report(view: ModelView, plan: ConversionPlan, output: String, files: [String]) -> String {
        let c = view.config
        var lines: [[String]] = [
            ["source", "\(view.checkpoint.path) (\(view.checkpoint.format.rawValue), \(view.layout.summary)"
                + (view.prefix.isEmpty ? "" : " under \"\(view.prefix)\"") + ")"],
            ["model", "D=\(c.hiddenSize), depth \(c.depth), \(c.numHeads) heads, patch \(c.patchSize), "
                + "\(c.inChannels)→\(c.outChannels) channels, \(c.numClasses) classes\(c.hasNullClass ? " + null" : ""), "
                + "input \(c.inputSize)"],
            ["wrote", "\(output) (\(plan.target.rawValue)): \(Format.grouped(plan.outputs.count)) tensors, "
                + "\(Format.bytes(plan.byteCount))"],
        ]
        if files.count > 1 { lines.append(["files", files.joined(separator: ", ")]) }
        var out = Format.table(lines)
        for note in view.notes + plan.notes { out += "\nnote: " + note }
        if !plan.casts.isEmpty {
            out += "\ncast \(plan.casts.count) tensors:"
            for cast in plan.casts.prefix(8) { out += "\n  " + cast }
            if plan.casts.count > 8 { out += "\n  … and \(plan.casts.count - 8) more" }
        }
        return out
    }
}

/// Model-layer errors are input problems (exit 3), with the message as it is.
func modelView(_ checkpoint: Checkpoint, _ options: ModelOptions) throws -> ModelView {
    try ModelView.open(checkpoint, options: options)
}

/// Writes `plan` with a progress bar on stderr when it is a terminal (and not `quiet`); returns the files written.
func export(_ plan: ConversionPlan, to output: String, options: ExportOptions, quiet: Bool, label: String) throws -> [String] {
    var options = options
    let progress = ProgressBar(total: plan.byteCount, enabled: !quiet && Platform.isTerminal(2), label: label)
    if progress.enabled { options.progress = progress.update }
    let files = try Exporter.write(plan, to: output, options: options)
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
            + "] \(percent)% \(Format.bytes(done)) / \(Format.bytes(total))")
    }

    func finish() {
        guard enabled, lastPercent >= 0 else { return }
        writeStandardError("\r" + String(repeating: " ", count: 80) + "\r")
    }
}
