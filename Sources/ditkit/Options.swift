import ArgumentParser
import Checkpoints
import Models
import Reference
import Tensors
import Verification

// Every option more than one command takes is declared here, once, with one help text. A command includes the
// groups it needs with `@OptionGroup`; options only one command has stay in that command's file.

// MARK: closed choices

/// `--to` (convert, synth): the layout to write, one of the registered families' targets. `--help` and shell
/// completion list exactly those.
extension Layout: ExpressibleByArgument {
    public init?(argument: String) {
        guard ModelFamilies.targets.contains(Layout(argument)) else { return nil }
        self.init(argument)
    }
    public static var allValueStrings: [String] { ModelFamilies.targets.map(\.rawValue) }
    public static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }
}

/// `--dtype` (convert, synth): the floating-point types a tensor can be cast to, and only those, so `--help` and
/// shell completion list exactly what is accepted.
enum CastType: String, CaseIterable, ExpressibleByArgument {
    case f32, f16, bf16

    var dtype: DType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }
}

/// `--semantics` (trace, verify): numerics a user can force, a named source's or one side's.
extension SemanticsChoice: ExpressibleByArgument {
    public init?(argument: String) {
        guard SemanticsChoice.allValueStrings.contains(argument) else { return nil }
        self.init(rawValue: argument)
    }
    public static var allValueStrings: [String] { SemanticsChoice.allCases.map(\.rawValue) }
    public static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }
}

/// `--heads N` or `--heads auto`.
enum HeadsOption: ExpressibleByArgument, Equatable {
    case count(Int)
    case auto

    init?(argument: String) {
        if argument == "auto" { self = .auto } else if let n = Int(argument) { self = .count(n) } else { return nil }
    }

    /// The count given, nil for `auto`.
    var count: Int? {
        if case .count(let n) = self { return n }
        return nil
    }
}

/// `--metric` (verify): the statistic a layer's verdict is taken on.
extension ErrorMetric: ExpressibleByArgument {}

// MARK: reading

/// How to open the input (inspect, params, convert, trace, verify).
struct OpenOptionGroup: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "diffusers weight variant of the INPUT to read (e.g. fp16 for diffusion_pytorch_model.fp16.safetensors).",
        valueName: "V"))
    var variant: String?

    @Flag(name: .long, help: "Refuse any pickle class or function outside torch's weights-only allowlist, known data classes (argparse.Namespace, numpy values, torch.nn modules) included.")
    var strict = false

    @Option(name: .long, help: ArgumentHelp("Keep pickle callable NAME (module.name, e.g. mylib.Config) as an opaque value instead of refusing it; nothing is ever executed, and a code-execution primitive stays refused (repeatable).", valueName: "NAME"))
    var allow: [String] = []

    func validate() throws {
        if let variant { try OpenOptionGroup.checkVariantName(variant) }
    }

    /// A variant is part of a file name: refuses one that is empty, `.`, `..` or holds `/` or NUL.
    static func checkVariantName(_ name: String) throws {
        guard FileSystem.isPlainName(name) else {
            throw ValidationError("a variant is part of a file name: \(name) must not be empty, . or .., or hold / or NUL")
        }
    }

    var openOptions: OpenOptions { OpenOptions(variant: variant, strict: strict, allow: Set(allow)) }
}

/// How to read a model out of a checkpoint (params, convert, trace, verify).
struct ModelOptionGroup: ParsableArguments {
    @Option(name: .long, help: "Sub-dict of a training checkpoint to read (ema, the default when present, or model).")
    var key: String?

    @Option(name: .long, help: ArgumentHelp(
        "Attention heads (cannot be read from weights; default: a diffusers config's, a trace's, the matching preset, or "
            + "head dim 64, reported as assumed). `auto` (verify --against): try every count dividing D and keep the one "
            + "that reproduces the trace.", valueName: "N|auto"))
    var heads: HeadsOption?

    @Option(name: .long, help: "Latent input size S (32 for 256 px, 64 for 512 px) when no position table is stored.")
    var inputSize: Int?

    @Option(name: .long, help: "Number of classes K when the label table's row count is ambiguous.")
    var numClasses: Int?

    @Option(name: .long, help: "diffusers: the block whose embedder copy to use when the per-block copies differ.")
    var embedderBlock: Int?

    /// `auto` is for `verify --against` (which checks it); every other command refuses it.
    func requireCount(_ command: String) throws {
        if heads == .auto { throw CLIError.usage("--heads auto applies to verify --against; \(command) needs a number") }
    }

    /// The library's model options, with the flags' names for its messages.
    var modelOptions: ModelOptions {
        var options = ModelOptions(key: key, heads: heads?.count, inputSize: inputSize, numClasses: numClasses, embedderBlock: embedderBlock)
        options.optionNames = ["key": "--key", "heads": "--heads", "inputSize": "--input-size", "numClasses": "--num-classes", "embedderBlock": "--embedder-block"]
        return options
    }
}

// MARK: running

/// Inputs of a forward pass (trace, verify), and the budget the pass must stay within.
struct InputOptionGroup: ParsableArguments {
    @Option(name: .long, help: "Seed of the random latents x ~ N(0, 1).")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Batch size.")
    var batch: Int = 4

    @Option(name: .long, help: "Timesteps, comma-separated, cycled over the batch (default 0,999,500,250).")
    var timesteps: String?

    @Option(name: .long, help: "Class ids, comma-separated, cycled over the batch (default 0,K,1,2; K is the null class).")
    var classes: String?

    @Option(name: .long, help: "Activation memory a forward pass may take, in GiB.")
    var maxMemoryGib: Double = ForwardCost.defaultMemoryBudget / (1024 * 1024 * 1024)

    @Option(name: .long, help: "Multiply-adds a forward pass may take.")
    var maxMultiplyAdds: Double = ForwardCost.defaultWorkBudget

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        if let timesteps, parse(timesteps).map({ $0.contains { !($0?.isFinite ?? false) } }) ?? true {
            throw ValidationError("--timesteps: expected finite numbers like 0,999")
        }
        if let classes, parse(classes).map({ $0.contains { v in v.map { $0.rounded() != $0 || abs($0) >= 0x1p31 } ?? true } }) ?? true {
            throw ValidationError("--classes: expected integers like 0,1000")
        }
        guard maxMemoryGib > 0, maxMultiplyAdds > 0 else { throw ValidationError("--max-memory-gib and --max-multiply-adds must be positive") }
    }

    func parse(_ text: String) -> [Double?]? {
        let parts = text.split(separator: ",").map { Double($0.trimmingCharacters()) }
        return parts.isEmpty ? nil : parts
    }

    /// The library's forward options these flags describe (validated by `validate()`).
    var forward: ForwardOptions {
        ForwardOptions(
            batch: batch, seed: seed, timesteps: timesteps.map { parse($0)!.map { Float($0!) } },
            classes: classes.map { parse($0)!.map { Int($0!) } }, memoryBudget: maxMemoryGib * 1024 * 1024 * 1024,
            workBudget: maxMultiplyAdds, kernels: Ditkit.kernels)
    }

    /// Runs `body`, turning the library's "these inputs do not fit the model" into a usage error naming the flags.
    static func naming<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch VerificationError.invalidInputs(let problems) {
            throw CLIError.usage("--timesteps/--classes: " + problems.joined(separator: "; "))
        }
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

/// The numerics a forward pass runs with (trace, verify).
struct SemanticsOptionGroup: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Run with these numerics (timestep frequency shift, norm eps, GELU form): a source's (original, diffusers), or, "
            + "in verify, side a's or side b's. Default: each checkpoint's own.",
        valueName: "semantics"))
    var semantics: SemanticsChoice?
}

// MARK: writing

/// Where a command writes (convert, synth, trace).
struct OutputOptionGroup: ParsableArguments {
    @Option(name: .shortAndLong, help: ArgumentHelp(
        "Output file or folder. Refused when it is, holds or lies inside the input, or exists (see --force).",
        valueName: "out"))
    var output: String

    @Flag(name: .long, help: "Replace OUT if it exists: the complete new OUT is swapped in and the old one removed after; a symlink at OUT is replaced itself, never followed.")
    var force = false
}

/// What a checkpoint is written as (convert, synth).
struct WriteOptionGroup: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Layout to write: canonical (one safetensors file with the config in its metadata), diffusers (a pipeline "
            + "folder, or the transformer folder with --component-only), original (facebookresearch names; .pt, or "
            + "safetensors when OUT ends in .safetensors), cerebras (Cerebras Model Zoo names, .pt; .mdl with "
            + "--container mdl or when OUT ends in .mdl).",
        valueName: "layout"))
    var to: TargetLayout

    @Option(name: .long, help: ArgumentHelp(
        "cerebras: the file written — pt (torch.save zip) or mdl (Cerebras HDF5 .mdl, format 0.5, as "
            + "cerebras.pytorch.save writes it, the model under \"model\" as the Model Zoo trainer saves it). "
            + "Default: mdl when OUT ends in .mdl, else pt.",
        valueName: "pt|mdl"))
    var container: StateDictContainer?

    @Option(name: .long, help: ArgumentHelp(
        "mdl: tensor storage — lz4 (h5py's chunks, each LZ4-compressed, as the Cerebras saver; the default) or none "
            + "(contiguous, uncompressed).",
        valueName: "lz4|none"))
    var compression: MDLWriteOptions.Compression?

    @Option(name: .long, help: ArgumentHelp("Cast floating-point tensors (round-to-nearest-even).", valueName: "dtype"))
    var dtype: CastType?

    @Flag(name: .long, help: "Allow dropping the learned-sigma output channels, which the cerebras layout cannot hold (lossy).")
    var dropSigma = false

    @Flag(name: .long, help: "diffusers: write only the transformer folder (config.json + weights).")
    var componentOnly = false

    @Option(name: .long, help: "diffusers: shard the weights (e.g. 5GB, 500MB, 2GiB or a byte count) and write an index.")
    var shardSize: String?

    @Option(name: .long, help: ArgumentHelp(
        "diffusers: name the WRITTEN weights as variant V (diffusion_pytorch_model.V.safetensors).", valueName: "V"))
    var outputVariant: String?

    @Flag(name: .long, help: "fsync each output file before renaming it into place (survives a power loss; slower).")
    var fsync = false

    @Flag(name: .long, help: "No progress bar.")
    var quiet = false

    func validate() throws {
        if let shardSize, WriteOptionGroup.parseSize(shardSize) == nil {
            throw ValidationError("--shard-size \(shardSize): expected e.g. 5GB, 500MB or a byte count")
        }
        if let outputVariant { try OpenOptionGroup.checkVariantName(outputVariant) }
        if (componentOnly || shardSize != nil || outputVariant != nil) && to != .diffusers {
            throw ValidationError("--component-only, --shard-size and --output-variant apply to --to diffusers")
        }
        if container != nil && to != .cerebras {
            throw ValidationError("--container applies to --to cerebras (pt or mdl)")
        }
        if compression != nil && (to != .cerebras || container == .pt) {
            throw ValidationError("--compression applies to a .mdl output (--to cerebras --container mdl, or OUT ending in .mdl)")
        }
    }

    /// "5GB", "500MB", "2GiB", "1000" → bytes; nil for anything else or a size that is not positive.
    static func parseSize(_ text: String) -> Int? {
        let units: [(String, Int)] = [("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000), ("B", 1)]
        let upper = text.uppercased()
        for (suffix, factor) in units where upper.hasSuffix(suffix) {
            guard let value = Double(upper.dropLast(suffix.count)), value > 0, value * Double(factor) < 0x1p62 else { return nil }
            return Int(value * Double(factor))
        }
        return Int(text).flatMap { $0 > 0 ? $0 : nil }
    }

    /// The export settings these options ask for (`to` and `dtype` go into the plan, not here).
    func exportOptions(overwrite: Bool) -> ExportOptions {
        var options = ExportOptions()
        options.overwrite = overwrite
        options.durable = fsync
        options.componentOnly = componentOnly
        options.shardSize = shardSize.flatMap(WriteOptionGroup.parseSize)
        options.variant = outputVariant
        options.container = container
        options.compression = compression
        return options
    }
}

/// `--json` (inspect, params, verify).
struct JSONOptionGroup: ParsableArguments {
    @Flag(name: .long, help: "Print JSON instead of text (its schema: schemas/<command>.schema.json).")
    var json = false
}

extension StateDictContainer: ExpressibleByArgument {}
extension MDLWriteOptions.Compression: ExpressibleByArgument {}
