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

    @Option(name: .long, help: "Relative L2 tolerance per layer (default 1e-5, scaled for f16/bf16 weights).")
    var rtol: Double?

    @Option(name: .long, help: "Absolute max |a−b| under which a layer passes anyway.")
    var atol: Double = 0

    @OptionGroup var output: JSONOptionGroup

    @Option(name: .long, help: "Write an SVG chart of the per-layer relative error.")
    var plot: String?

    @OptionGroup var inputs: InputOptionGroup
    @OptionGroup var open: OpenOptionGroup
    @OptionGroup var model: ModelOptionGroup

    var semantics: SemanticsChoice? { numerics.semantics }
    var json: Bool { output.json }

    func validate() throws {
        guard (b == nil) != (against == nil) else { throw ValidationError("give either a second checkpoint B or --against TRACE") }
    }

    func run() throws {
        if let plot {  // the chart may replace a file, never one of the inputs
            for input in [a, b, against].compactMap({ $0 }) {
                if let overlap = FileSystem.overlap(output: plot, input: input) { throw CLIError.usage("--plot: " + overlap) }
            }
        }
        let report = try Verify.compare(a: a, b: b, against: against, semantics: semantics, rtol: rtol, atol: atol,
                                        inputs: inputs, open: open, model: model)
        if let plot {
            let out = try AtomicFileWriter(destination: plot, overwrite: true)
            try out.write(Array(report.svg.utf8))
            try out.commit()
        }
        print(json ? report.json.serialized(pretty: true) : report.text)
        if report.isVacuous {
            // Exit 3, not 1: no number was compared, so nothing disagreed; the input cannot support a verdict.
            throw CLIError(message: (against.map { "\($0): the trace holds" } ?? "the two models share")
                + " no comparable layer beyond the inputs (compared: \(report.layers.map(\.name).joined(separator: ", "))), "
                + "so nothing was verified", code: 3)
        }
        if let first = report.firstDivergence { throw CLIError(message: "verification failed at \(first)", code: 1) }
    }

    static func compare(a: String, b: String?, against: String?, semantics: SemanticsChoice?, rtol: Double?, atol: Double,
                        inputs: InputOptionGroup, open: OpenOptionGroup, model: ModelOptionGroup) throws -> VerificationReport {
        let viewA = try openModel(a, open, model)
        let dtypesA = viewA.tensors.map(\.dtype)
        if let against {
            let (reference, metadata, traceInputs) = try TraceFile.load(against, for: viewA.config)
            let weightsA = try loadWeights(viewA, budget: inputs, batch: traceInputs.batch)
            let referenceSemantics = Dictionary(metadata, uniquingKeysWith: { a, _ in a })["ditkit.trace.semantics"]
            let referenceConfig: DiTConfig? = referenceSemantics.flatMap { SemanticsChoice(rawValue: $0) }.map {
                $0.apply(to: viewA.config, a: viewA.config, b: nil)
            }
            let semanticsA = semantics.map { $0.apply(to: viewA.config, a: viewA.config, b: referenceConfig) } ?? viewA.config
            let trace = Trace()
            _ = DiTForward(weights: weightsA, semantics: semanticsA).run(traceInputs, trace: trace)
            return VerificationReport.compare(
                trace, reference, tolerance: Tolerance(rtol: rtol ?? Tolerance.default(for: dtypesA).rtol, atol: atol),
                configA: viewA.config, configB: nil, semanticsA: semanticsA, semanticsB: referenceConfig,
                labelA: "\(a) (ditkit reference, \(semantics?.rawValue ?? viewA.layout.rawValue) semantics)",
                labelB: "\(against) (trace\(referenceSemantics.map { ", \($0) semantics" } ?? ""))")
        }
        let weightsA = try loadWeights(viewA, budget: inputs, batch: inputs.batch)
        let viewB = try openModel(b!, open, model)
        let weightsB = try loadWeights(viewB, budget: inputs, batch: inputs.batch)
        let semanticsA = semantics.map { $0.apply(to: viewA.config, a: viewA.config, b: viewB.config) } ?? viewA.config
        let semanticsB = semantics.map { $0.apply(to: viewB.config, a: viewA.config, b: viewB.config) } ?? viewB.config
        guard viewA.config.inChannels == viewB.config.inChannels, viewA.config.inputSize == viewB.config.inputSize else {
            throw CLIError(message: "the models take different inputs (\(viewA.config.inChannels)×\(viewA.config.inputSize)² vs "
                           + "\(viewB.config.inChannels)×\(viewB.config.inputSize)²)", code: 3)
        }
        let shared = try inputs.inputs(for: viewA.config)
        let traceA = Trace(), traceB = Trace()
        _ = DiTForward(weights: weightsA, semantics: semanticsA).run(shared, trace: traceA)
        _ = DiTForward(weights: weightsB, semantics: semanticsB).run(shared, trace: traceB)
        return VerificationReport.compare(
            traceA, traceB, tolerance: Tolerance(rtol: rtol ?? Tolerance.default(for: dtypesA + viewB.tensors.map(\.dtype)).rtol, atol: atol),
            configA: viewA.config, configB: viewB.config, semanticsA: semanticsA, semanticsB: semanticsB,
            labelA: "\(a) (\(viewA.layout.summary), \(semantics?.rawValue ?? "own") semantics)",
            labelB: "\(b!) (\(viewB.layout.summary), \(semantics?.rawValue ?? "own") semantics)")
    }
}
