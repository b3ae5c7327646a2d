import Checkpoints
import Foundation
import Models
import Reference
import DitkitTestSupport
import Testing
import Verification

/// The reference forward against traces PyTorch wrote with forward hooks (fixtures/generate/make_traces.py).
@Suite("matches PyTorch layer by layer")
struct TorchTraceTests {
    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let entry: JSONValue
        var description: String { name }
        var model: String { Fixtures.path(entry["model"]!.stringValue!) }
        var trace: String { Fixtures.path(entry["trace"]!.stringValue!) }
    }

    static let manifest: JSONValue = {
        (try? JSONParser.parse([UInt8](FileManager.default.contents(atPath: Fixtures.path("expected/traces.json")) ?? Data()))) ?? .null
    }()
    static let cases: [Case] = manifest["cases"]?.objectValue?.map { Case(name: $0.0, entry: $0.1) } ?? []

    static func view(_ path: String, heads: Int) throws -> ModelView<DiTFamily> {
        try ModelView<DiTFamily>.open(try Checkpoint.open(path), options: ModelOptions(heads: heads))
    }

    static func report(
        _ view: ModelView<DiTFamily>, semantics: DiTConfig? = nil, against path: String, kernels: KernelChoice = .automatic
    ) throws -> VerificationReport {
        let (reference, _) = try TraceFile.read(path)
        let inputs = try #require(TraceFile.inputs(of: reference))
        let trace = Trace()
        _ = DiTForward(weights: try DiTWeights(view), semantics: semantics, kernels: kernels).run(inputs, trace: trace)
        return VerificationReport.compare(trace, reference, tolerance: Tolerance(rtol: 1e-5, atol: 0), configA: view.config, configB: nil,
                                          semanticsA: semantics, semanticsB: nil, labelA: "ditkit", labelB: path)
    }

    /// The AVX-512 kernels (where the CPU has them) and the OpenBLAS-only path must both match.
    static let kernelChoices: [KernelChoice] = GEMM.avx512Available ? [.automatic, .blas] : [.blas]

    @Test("every fixture trace: each layer within rel 1e-5 in the model's own semantics, with either kernel set",
          arguments: cases, kernelChoices)
    func ownSemantics(_ c: Case, kernels: KernelChoice) throws {
        let view = try Self.view(c.model, heads: c.entry["config"]?["heads"]?.intValue ?? 2)
        let report = try Self.report(view, against: c.trace, kernels: kernels)
        #expect(report.passed, "\(report.text)")
        #expect(report.layers.map(\.name) == TraceFile.order(c.entry["layers"]!.arrayValue!.compactMap(\.stringValue)))
    }

    @Test("in the other source's semantics: original weights reproduce the diffusers trace, diffusers weights the original trace")
    func crossSemantics() throws {
        let original = try Self.view(Fixtures.path("traces/orig-p2-s8/model.pt"), heads: 2)
        let diffusers = try Self.view(Fixtures.path("traces/diffusers-from-orig-p2-s8/transformer"), heads: 2)
        let asDiffusers = try Self.report(original, semantics: diffusers.config, against: Fixtures.path("traces/diffusers-from-orig-p2-s8/trace.safetensors"))
        #expect(asDiffusers.passed, "\(asDiffusers.text)")
        let asOriginal = try Self.report(diffusers, semantics: original.config, against: Fixtures.path("traces/orig-p2-s8/trace.safetensors"))
        #expect(asOriginal.passed, "\(asOriginal.text)")
        // In their own semantics they part at t_embed, by the amounts PyTorch measured.
        let own = try Self.report(diffusers, against: Fixtures.path("traces/orig-p2-s8/trace.safetensors"))
        #expect(own.firstDivergence == "t_embed")
        let recorded = Self.manifest["comparisons"]?.arrayValue?.first?["layers"]?["output"]?["rel_l2"]?.doubleValue ?? 0
        let ours = own.layers.first { $0.name == "output" }!.relativeL2
        #expect(abs(ours - recorded) / recorded < 0.01, "output rel L2 \(ours) vs PyTorch's \(recorded)")
    }
}
