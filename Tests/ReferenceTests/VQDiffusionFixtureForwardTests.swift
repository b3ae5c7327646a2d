import Checkpoints
import DitkitTestSupport
import Foundation
import Models
import Reference
import Tensors
import Testing
import Verification

/// The VQ-Diffusion transformer's reference forward against the traces of the real code (`fixtures/vq-diffusion/`:
/// microsoft/VQ-Diffusion's `predict_start` and diffusers 0.42's `Transformer2DModel`), layer by layer at every kernel
/// level; verify of the original checkpoint against diffusers' own conversion; corrupted conversions of the real
/// weights caught at their first bad layer. Each test runs when its files are present.
@Suite("VQ-Diffusion forward against the real code's traces")
struct VQDiffusionFixtureForwardTests {
    static func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: Fixtures.path(relative)) }
    static let solver = "vq-diffusion/original/solver.pth"
    static let transformer = "vq-diffusion/diffusers/transformer"
    static let traces = ["diffusers", "original", "original-late"].map { "vq-diffusion/traces/transformer-\($0).safetensors" }
    static var all: Bool { exists(solver) && exists(transformer) && traces.allSatisfy(exists) }

    static func open(_ relative: String) throws -> any AnyModelView { try ModelFamilies.open(try Checkpoint.open(Fixtures.path(relative))) }

    @Test("both models match every trace layer by layer (rel ≤ 1e-5) in the trace's semantics at every kernel level", .enabled(if: all))
    func traces() throws {
        for model in [Self.solver, Self.transformer] {
            let view = try Self.open(model)
            #expect(view.familyName == "vq-diffusion")
            for trace in Self.traces {
                for level in KernelLevel.allCases where level.isSupported {
                    let options = VerificationOptions(semantics: .b, rtol: 1e-5, forward: ForwardOptions(kernels: try KernelChoice(level: level)))
                    let report = try Verifier(options: options).compareAny(view, againstTrace: Fixtures.path(trace))
                    #expect(report.passed, "\(model) vs \(trace) at \(level): \(report.text)")
                    #expect(report.layers.map(\.name).filter { !$0.hasPrefix("input.") } == ["latent_embed", "blocks.0", "blocks.1", "output"], "\(report.layers.map(\.name))")
                    for layer in report.layers { #expect(layer.relativeL2 <= 1e-5, "\(model) vs \(trace) at \(level): \(layer.name) \(layer.relativeL2)") }
                }
            }
        }
    }

    @Test("the original checkpoint against diffusers' conversion: passes under shared semantics, names the output form otherwise", .enabled(if: all))
    func originalAgainstDiffusers() throws {
        let original = try Self.open(Self.solver), diffusers = try Self.open(Self.transformer)
        for shared in [SemanticsChoice.original, .diffusers] {
            let report = try Verifier(options: VerificationOptions(semantics: shared)).compareAny(original, diffusers)
            #expect(report.passed, "\(shared.rawValue): \(report.text)")
        }
        let own = try Verifier().compareAny(original, diffusers)
        #expect(!own.passed && own.firstDivergence == "output", "\(own.text)")
        #expect(own.likelyCauses.first?.hasPrefix("output: output form log_probs_mask_row vs log_probs") == true, "\(own.likelyCauses)")
    }

    @Test("corrupted conversions of the real weights are caught at their first bad layer and blamed on the weights", .enabled(if: all))
    func corruptions() throws {
        let dir = TemporaryDirectory()
        let original = try Self.open(Self.solver)
        let source = try #require(try Self.open(Self.transformer) as? ModelView<VQDiffusionFamily>)
        let d = source.config.hiddenSize
        let values = Dictionary(uniqueKeysWithValues: try source.canonicalOutputs().map { ($0.name, try $0.float32()) })
        let cases: [(String, String, (String, [Float]) -> [Float])] = [
            ("swapped q/k in block 1", "blocks.1", { name, v in
                name.hasPrefix("blocks.1.self_attn.q.") ? values[name.replacingOccurrences(of: ".q.", with: ".k.")]!
                    : name.hasPrefix("blocks.1.self_attn.k.") ? values[name.replacingOccurrences(of: ".k.", with: ".q.")]! : v
            }),
            // The fixture's context (512) is wider than D (32): its cross-attention q (D × D) is the transposable one.
            ("transposed cross-attention q in block 0", "blocks.0", { name, v in
                name == "blocks.0.cross_attn.q.weight" ? (0..<(d * d)).map { v[($0 % d) * d + $0 / d] } : v
            }),
            ("scale/shift halves of norm1.linear swapped in block 1", "blocks.1", { name, v in
                name.hasPrefix("blocks.1.norm1.linear.") ? Array(v[(v.count / 2)...] + v[..<(v.count / 2)]) : v
            }),
        ]
        for (index, (label, layer, change)) in cases.enumerated() {
            let outputs = try source.canonicalOutputs().map { output -> OutputTensor in
                let changed = change(output.name, values[output.name]!)
                return OutputTensor(name: output.name, dtype: .f32, shape: output.shape) { sink in try changed.withUnsafeBytes { try sink.write($0) } }
            }
            let path = dir.file("bad-\(index).safetensors")
            try Exporter.write(try ConversionPlan<VQDiffusionFamily>.make(canonical: outputs, sources: [:], config: source.config, to: .canonical), to: path)
            let bad = try ModelFamilies.open(try Checkpoint.open(path))
            // Against diffusers' conversion it was made from, and against the original checkpoint (whose EMA choice,
            // head count and context length are assumed, so the verifier names them beside the weights).
            let report = try Verifier(options: VerificationOptions(semantics: .diffusers)).compareAny(source, bad)
            #expect(!report.passed && report.firstDivergence == layer, "\(label): \(report.text)")
            // No numeric rule fires: the weights are blamed (the context length, which no weight fixes, is assumed).
            #expect(report.likelyCauses.first?.hasSuffix("could explain the divergence at \(layer)") == true, "\(label): \(report.likelyCauses)")
            #expect(report.likelyCauses.first?.contains("context_length") == true, "\(label): \(report.likelyCauses)")
            let againstOriginal = try Verifier(options: VerificationOptions(semantics: .original)).compareAny(original, bad)
            #expect(!againstOriginal.passed && againstOriginal.firstDivergence == layer, "\(label): \(againstOriginal.text)")
            #expect(againstOriginal.likelyCauses.first?.hasSuffix("could explain the divergence at \(layer)") == true, "\(label): \(againstOriginal.likelyCauses)")
        }
    }
}
