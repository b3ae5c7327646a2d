import ArgumentParser
import Checkpoints
import Models
import Reference
import Tensors
import Verification

/// `ditkit verify A [B] [--against TRACE]`: do two checkpoints compute the same function, layer by layer?
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two checkpoints (or one against a PyTorch trace) layer by layer on the same inputs.",
        discussion: """
            Each side runs in its own numerics by default (timestep frequency shift, norm eps, GELU form); \
            --semantics forces one, so "the weights were mapped wrong" can be told from "the implementations \
            differ". Exit 0 when every layer is within tolerance, 1 when one is not.
            """)

    @Argument(help: "Checkpoint A.")
    var a: String

    @Argument(help: "Checkpoint B.")
    var b: String?

    @Option(name: .long, help: "Compare A with this trace (e.g. written by scripts/torch-trace.py) on its inputs.")
    var against: String?

    @OptionGroup var numerics: SemanticsOptionGroup

    @Option(name: .long, help: "Relative tolerance per layer on the --metric score (default 1e-5, scaled for f16/bf16 weights).")
    var rtol: Double?

    @Option(name: .long, help: "Absolute max |a−b| (p99 |a−b| with --metric p99) under which a layer passes anyway.")
    var atol: Double = 0

    @Option(name: .long, help: "The pass/fail statistic: rel-l2 (‖a−b‖/‖b‖ ≤ rtol), max-abs (max|a−b|/max|b| ≤ rtol), cosine (1−cos ≤ rtol), p99 (p99|a−b|/max|b| ≤ rtol).")
    var metric: ErrorMetric = .relativeL2

    @OptionGroup var output: JSONOptionGroup

    @Option(name: .long, help: "Write an SVG chart of the per-layer error (one line per chain, the error each layer adds, the first failing layer's per-token heat map).")
    var plot: String?

    @OptionGroup var inputs: InputOptionGroup
    @OptionGroup var open: OpenOptionGroup
    @OptionGroup var model: ModelOptionGroup

    var semantics: SemanticsChoice? { numerics.semantics }
    var json: Bool { output.json }

    func validate() throws {
        guard (b == nil) != (against == nil) else { throw ValidationError("give either a second checkpoint B or --against TRACE") }
        if model.heads == .auto && against == nil { throw ValidationError("--heads auto searches against a trace: use it with --against") }
    }

    func run() throws {
        if let plot {  // the chart may replace a file, never one of the inputs
            for input in [a, b, against].compactMap({ $0 }) {
                if let overlap = FileSystem.overlap(output: plot, input: input) { throw CLIError.usage("--plot: " + overlap) }
            }
        }
        let report = try Verify.compare(a: a, b: b, against: against, semantics: semantics, rtol: rtol, atol: atol,
                                        metric: metric, inputs: inputs, open: open, model: model)
        if let plot { try report.writeSVG(to: plot, overwrite: true) }
        print(json ? report.json.serialized(pretty: true) : report.text)
        // A report comparing nothing beyond the inputs fails with exit 3 (the input cannot support a verdict), a
        // divergence with exit 1.
        try report.requirePassed()
    }

    static func compare(a: String, b: String?, against: String?, semantics: SemanticsChoice?, rtol: Double?, atol: Double,
                        metric: ErrorMetric = .relativeL2, inputs: InputOptionGroup, open: OpenOptionGroup, model: ModelOptionGroup) throws -> VerificationReport {
        var options = VerificationOptions(semantics: semantics, rtol: rtol, atol: atol, metric: metric, forward: inputs.forward)
        options.searchAssumed = model.heads == .auto
        let verifier = Verifier(options: options)
        let viewA = try openModel(a, open, model)
        writeAssumptions(of: viewA)
        if let against { return try verifier.compareAny(viewA, againstTrace: against, name: a) }
        let viewB = try openModel(b!, open, model)
        writeAssumptions(of: viewB)
        return try InputOptionGroup.naming { try verifier.compareAny(viewA, viewB, names: (a, b!)) }
    }
}
