import ArgumentParser
import Checkpoints
import Models
import Reference
import Verification

/// Inputs of a forward pass, shared by trace and verify, and the budget the pass must stay within.
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
            workBudget: maxMultiplyAdds)
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

extension SemanticsChoice: ExpressibleByArgument {}

/// The model at `path`, its config validated; no weight is read yet.
func openModel(_ path: String, _ open: OpenOptionGroup, _ model: ModelOptionGroup) throws -> ModelView<DiTFamily> {
    try modelView(try Checkpoint.open(path, options: open.openOptions), model.modelOptions)
}

/// `ditkit trace PATH -o TRACE.safetensors`: run the reference forward and save its activations.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Run the float32 reference forward pass and save every layer's activations.",
        discussion: "The trace format (DESIGN.md): input.x, input.t, input.y, t_embed, y_embed, cond, patch_embed, blocks.{i}, final, output.")

    @Argument(help: "Checkpoint (any layout ditkit converts).")
    var path: String

    @Option(name: .shortAndLong, help: "Output trace (.safetensors).")
    var output: String

    @Option(name: .long, help: "Numerics to run with: original, diffusers (default: the checkpoint's own).")
    var semantics: SemanticsChoice?

    @Flag(name: .long, help: "Replace OUT if it exists.")
    var force = false

    @OptionGroup var inputs: InputOptionGroup
    @OptionGroup var open: OpenOptionGroup
    @OptionGroup var model: ModelOptionGroup

    func run() throws {
        // Refused before any work: a trace that would replace its own checkpoint, or an existing file.
        try TraceFile.checkDestination(output, input: path, overwrite: force)
        let view = try openModel(path, open, model)
        let recorded = try InputOptionGroup.naming {
            try Tracer(semantics: semantics, forward: inputs.forward).write(view, to: output, overwrite: force, sourceName: path)
        }
        print("wrote \(output): \(recorded.trace.layers.count) layers, batch \(inputs.batch), \(view.layoutSummary) with "
              + "\(semantics?.rawValue ?? "its own") semantics")
    }
}
