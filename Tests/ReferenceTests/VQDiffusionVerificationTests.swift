import Checkpoints
import DitkitTestSupport
import Foundation
import Models
import Reference
import Tensors
import Testing
import Verification

/// `verify`, `trace` and the likely-cause rules of the VQ-Diffusion transformer through the registry's erased entry
/// points (what the CLI calls), on synthetic canonical weights: the semantic differences are named, corrupted
/// conversions are caught at their first bad layer and blamed on the weights.
@Suite("VQ-Diffusion verification")
struct VQDiffusionVerificationTests {
    static func tiny(contextDim: Int = 16) -> VQDiffusionConfig {
        VQDiffusionConfig(depth: 3, hiddenSize: 32, numHeads: 4, contextDim: contextDim, contextLength: 8, codes: 20, height: 3, width: 4,
                          diffusionSteps: 10, mlpHidden: 64)
    }

    /// Writes `config`'s synthetic weights (seed 5), each tensor passed through `change(name, values)`, as a canonical file.
    @discardableResult
    static func write(_ config: VQDiffusionConfig, to path: String, change: (String, [Float]) -> [Float] = { $1 }) throws -> String {
        let outputs = try Synthetic.canonicalOutputs(config, seed: 5).map { output -> OutputTensor in
            let values = change(output.name, try output.float32())
            return OutputTensor(name: output.name, dtype: .f32, shape: output.shape) { sink in try values.withUnsafeBytes { try sink.write($0) } }
        }
        try Exporter.write(try ConversionPlan<VQDiffusionFamily>.make(canonical: outputs, sources: [:], config: config, to: .canonical), to: path)
        return path
    }

    static func open(_ path: String) throws -> any AnyModelView { try ModelFamilies.open(try Checkpoint.open(path)) }

    static let weightsDiffer = "the configs agree on every numeric choice here, so the weights themselves differ at "

    @Test("the same weights under the two semantics: pass under shared semantics; otherwise the output form is named at output")
    func semantics() throws {
        let dir = TemporaryDirectory()
        let config = Self.tiny()
        let a = try Self.open(try Self.write(config.withDiffusersSemantics(), to: dir.file("a.safetensors")))
        let b = try Self.open(try Self.write(config.withOriginalSemantics(), to: dir.file("b.safetensors")))
        #expect(a.familyName == "vq-diffusion")
        for shared in [SemanticsChoice.original, .diffusers, .a, .b] {
            let report = try Verifier(options: VerificationOptions(semantics: shared)).compareAny(a, b)
            #expect(report.passed, "\(shared.rawValue): \(report.text)")
        }
        let own = try Verifier().compareAny(a, b)
        #expect(!own.passed && own.firstDivergence == "output")
        #expect(own.likelyCauses.first?.hasPrefix("output: output form log_probs vs log_probs_mask_row") == true, "\(own.likelyCauses)")
        #expect(own.layers.filter { $0.name.hasPrefix("blocks.") }.allSatisfy { $0.maxAbs == 0 })
    }

    @Test("each numeric field has a rule at its layer")
    func rules() {
        let a = Self.tiny()
        var b = a
        b.adaNormEps = 1e-6
        b.ffNormEps = 1e-6
        b.activation = .erfGELU
        b.numHeads = 2
        b.lateTimesteps = .meanEmbedding
        let blocks = VQDiffusionFamily.likelyCauses(layer: "blocks.0", a, b, configA: a, configB: b)
        #expect(blocks == [
            "blocks.*: attention heads 4 vs 2", "blocks.*: adaptive norm (norm1, norm2) eps 1e-5 vs 1e-6",
            "blocks.*: MLP norm (norm3) eps 1e-5 vs 1e-6", "blocks.*: MLP activation sigmoid_gelu vs erf_gelu",
            "blocks.*: timesteps ≥ 10 (the tables' rows) refuse vs mean_embedding (the original uses each table's mean for the whole batch when its first timestep is late)",
        ])
        var c = a
        c.outNormEps = 1e-6
        c.output = .logProbsMaskRow
        #expect(VQDiffusionFamily.likelyCauses(layer: "output", a, c, configA: a, configB: c).count == 2)
        #expect(VQDiffusionFamily.likelyCauses(layer: "latent_embed", a, c, configA: a, configB: c).isEmpty)
        #expect(VQDiffusionFamily.likelyCauses(layer: "blocks.1", a, a, configA: a, configB: a).isEmpty)
    }

    @Test("corrupted conversions are caught at their first bad layer and blamed on the weights: q/k swapped, a transposed cross-attention k, scale/shift halves swapped")
    func corruptions() throws {
        let dir = TemporaryDirectory()
        let config = Self.tiny(contextDim: 32)  // context width = D, so a transposed cross-attention k keeps its shape
        let good = try Self.open(try Self.write(config, to: dir.file("good.safetensors")))
        let d = config.hiddenSize
        var originals: [String: [Float]] = [:]
        _ = try Self.write(config, to: dir.file("copy.safetensors")) { name, values in originals[name] = values; return values }
        let cases: [(String, String, (String, [Float]) -> [Float])] = [
            ("swapped-qk", "blocks.1", { name, values in
                name.hasPrefix("blocks.1.self_attn.q.") ? originals[name.replacingOccurrences(of: ".q.", with: ".k.")]!
                    : name.hasPrefix("blocks.1.self_attn.k.") ? originals[name.replacingOccurrences(of: ".k.", with: ".q.")]! : values
            }),
            ("transposed-cross-k", "blocks.2", { name, values in
                guard name == "blocks.2.cross_attn.k.weight" else { return values }
                return (0..<(d * d)).map { values[($0 % d) * d + $0 / d] }
            }),
            ("scale-shift", "blocks.0", { name, values in
                guard name.hasPrefix("blocks.0.norm1.linear.") else { return values }
                let half = values.count / 2
                return Array(values[half...] + values[..<half])
            }),
        ]
        for (label, layer, change) in cases {
            let bad = try Self.open(try Self.write(config, to: dir.file(label + ".safetensors"), change: change))
            let report = try Verifier().compareAny(good, bad)
            #expect(!report.passed && report.firstDivergence == layer, "\(label): \(report.text)")
            #expect(report.likelyCauses.first == Self.weightsDiffer + layer + " (a mapping or data error)", "\(label): \(report.likelyCauses)")
        }
    }

    @Test("trace then verify against it, in each semantics; a trace with late timesteps runs under its own numerics only")
    func traces() throws {
        let dir = TemporaryDirectory()
        let config = Self.tiny()
        let model = try Self.open(try Self.write(config, to: dir.file("m.safetensors")))
        for semantics in [SemanticsChoice.original, .diffusers] {
            let path = dir.file("trace-\(semantics.rawValue).safetensors")
            let written = try Tracer(semantics: semantics, forward: ForwardOptions(batch: 3)).writeAny(model, to: path)
            #expect(written.batch == 3 && written.layers == 3 + 1 + config.depth + 1)
            let trace = try Checkpoint.open(path)
            #expect(trace.tensor(named: "output")?.shape == [3, semantics == .original ? config.codes + 1 : config.codes, config.tokens])
            #expect(trace.metadata.contains { $0.0 == "ditkit.trace.semantics" && $0.1 == semantics.rawValue })
            let against = try Verifier(options: VerificationOptions(semantics: .b)).compareAny(model, againstTrace: path)
            #expect(against.passed && against.layers.allSatisfy { $0.maxAbs == 0 }, "\(semantics.rawValue): \(against.text)")
        }
        // The model's own numerics are diffusers': against the original's trace only the output form differs.
        let own = try Verifier().compareAny(model, againstTrace: dir.file("trace-original.safetensors"))
        #expect(own.firstDivergence == "output" && own.likelyCauses.first?.hasPrefix("output: output form") == true, "\(own.text)")
        // Late timesteps: the original's trace uses the mean tables; diffusers' numerics cannot (they refuse such t).
        let late = dir.file("late.safetensors")
        _ = try Tracer(semantics: .original, forward: ForwardOptions(batch: 2, timesteps: [12, 3])).writeAny(model, to: late)
        #expect(try Verifier(options: VerificationOptions(semantics: .b)).compareAny(model, againstTrace: late).passed)
        #expect(throws: ModelError.self) { try Verifier().compareAny(model, againstTrace: late) }
        #expect(throws: ModelError.self) { try Verifier(options: VerificationOptions(semantics: .diffusers)).compareAny(model, againstTrace: late) }
    }
}
