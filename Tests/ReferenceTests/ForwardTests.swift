import Checkpoints
import Foundation
import Models
import Reference
import Tensors
import DitkitTestSupport
import Testing
import Verification

enum Load {
    static func view(_ relative: String, heads: Int? = 2) throws -> ModelView<DiTFamily> {
        try ModelView<DiTFamily>.open(try Checkpoint.open(Fixtures.path(relative)), options: ModelOptions(heads: heads))
    }
    static func forward(_ view: ModelView<DiTFamily>, semantics: DiTConfig? = nil) throws -> DiTForward {
        DiTForward(weights: try DiTWeights(view), semantics: semantics)
    }
    static func trace(_ forward: DiTForward, _ inputs: DiTInputs) -> Trace {
        let trace = Trace()
        _ = forward.run(inputs, trace: trace)
        return trace
    }
}

@Suite("reference forward pass")
struct ForwardTests {
    @Test("the same weights in the original and diffusers layouts compute the same function under the same semantics, bit for bit")
    func layoutsAgree() throws {
        let original = try Load.view("checkpoints/original/tiny-dit.pt")
        let diffusers = try Load.view("checkpoints/diffusers/transformer", heads: nil)
        let inputs = DiTInputs.make(config: original.config, batch: 3, seed: 5)
        let a = try Load.forward(original).run(inputs)
        let b = try Load.forward(diffusers, semantics: original.config).run(inputs)
        #expect(a == b)
        let c = try Load.forward(diffusers).run(inputs)
        #expect(a != c, "diffusers' own semantics (shift 1, eps 1e-5) change the output")
    }

    @Test("the untraced and traced runs give identical outputs; the trace holds every layer in order")
    func traceShape() throws {
        let view = try Load.view("checkpoints/original/tiny-dit.pt")
        let forward = try Load.forward(view)
        let inputs = DiTInputs.make(config: view.config, batch: 2, seed: 1)
        let trace = Trace()
        let traced = forward.run(inputs, trace: trace)
        #expect(traced == forward.run(inputs))
        #expect(trace.layers.map(\.name) == ["input.x", "input.t", "input.y", "patch_embed", "t_embed", "y_embed", "cond", "blocks.0", "blocks.1", "final", "output"])
        #expect(trace.layer("final")?.shape == [2, 16, 32] && trace.layer("output")?.shape == [2, 8, 8, 8])
        #expect(TraceFile.order(trace.layers.map(\.name)).first == "input.x")
        #expect(inputs.t == [0, 999] && inputs.y == [0, 10], "defaults cover t = 0 and 999 and the null class")
    }

    @Test("a bf16 checkpoint is widened once and tracks the f32 model within bf16 precision")
    func widened() throws {
        let f32 = try Load.view("checkpoints/original/tiny-dit.pt"), bf16 = try Load.view("checkpoints/original/tiny-dit-bf16.pt")
        let inputs = DiTInputs.make(config: f32.config, batch: 2, seed: 3)
        let report = VerificationReport.compare(
            Load.trace(try Load.forward(f32), inputs), Load.trace(try Load.forward(bf16), inputs),
            tolerance: Tolerance.default(for: [.f32, .bf16]), configA: f32.config, configB: bf16.config,
            semanticsA: nil, semanticsB: nil, labelA: "f32", labelB: "bf16")
        #expect(report.passed, "\(report.text)")
        #expect(report.layers.first { $0.name == "output" }!.relativeL2 > 1e-5, "bf16 rounding is visible")
    }

    @Test("classifier-free guidance: original guides the first 3 channels, diffusers all latent channels")
    func guidance() {
        let cond: [Float] = Array(repeating: 2, count: 8 * 4), uncond: [Float] = Array(repeating: 1, count: 8 * 4)
        let original = DiTForward.guide(conditional: cond, unconditional: uncond, scale: 4, batch: 1, channels: 8, guided: 3, side: 2)
        #expect(Array(original[0..<12]) == Array(repeating: 5, count: 12) && Array(original[12...]) == Array(repeating: 2, count: 20))
        let diffusers = DiTForward.guide(conditional: cond, unconditional: uncond, scale: 4, batch: 1, channels: 8, guided: 4, side: 2)
        #expect(Array(diffusers[0..<16]) == Array(repeating: 5, count: 16) && Array(diffusers[16...]) == Array(repeating: 2, count: 16))
    }
}

@Suite("verify catches corrupted conversions")
struct CorruptionTests {
    /// The tiny original model as canonical tensors, with one tensor changed by `edit`.
    static func corrupted(_ name: String, _ edit: @escaping ([Float], [Int]) -> [Float]) throws -> DiTForward {
        let view = try Load.view("checkpoints/original/tiny-dit.pt")
        var tensors = Dictionary(view.canonicalOutputs().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let original = try #require(tensors[name])
        let values = edit(try original.float32(), original.shape)
        tensors[name] = OutputTensor(name: name, dtype: .f32, shape: original.shape) { sink in try values.withUnsafeBytes { try sink.write($0) } }
        return DiTForward(weights: try DiTWeights(config: view.config, tensors: tensors))
    }

    static func swapRows(_ v: [Float], _ shape: [Int], _ a: Range<Int>, _ b: Range<Int>) -> [Float] {
        var out = v
        let width = shape.dropFirst().reduce(1, *)
        for (i, j) in zip(a, b) { for k in 0..<width { out.swapAt(i * width + k, j * width + k) } }
        return out
    }

    struct Case: CustomStringConvertible, Sendable {
        let label: String
        let tensor: String
        let firstBad: String
        let edit: @Sendable ([Float], [Int]) -> [Float]
        var description: String { label }
    }

    static let cases: [Case] = [
        Case(label: "q and k swapped in block 1", tensor: "blocks.1.attn.qkv.weight", firstBad: "blocks.1") { swapRows($0, $1, 0..<32, 32..<64) },
        Case(label: "attention projection transposed in block 0", tensor: "blocks.0.attn.out.weight", firstBad: "blocks.0") { v, s in
            (0..<(s[0] * s[1])).map { v[($0 % s[1]) * s[1] + $0 / s[1]] }
        },
        Case(label: "shift and scale chunks swapped in block 0", tensor: "blocks.0.modulation.weight", firstBad: "blocks.0") { swapRows($0, $1, 0..<32, 32..<64) },
        Case(label: "final shift/scale order swapped", tensor: "final.modulation.bias", firstBad: "final") { swapRows($0, $1, 0..<32, 32..<64) },
        Case(label: "one flipped bit in block 1's MLP", tensor: "blocks.1.mlp.fc2.weight", firstBad: "blocks.1") { v, _ in
            var out = v
            out[77] = Float(bitPattern: out[77].bitPattern ^ (1 << 22))
            return out
        },
        Case(label: "timestep MLP rows swapped", tensor: "t_embed.fc2.weight", firstBad: "t_embed") { swapRows($0, $1, 0..<1, 1..<2) },
    ]

    @Test("the first bad layer is named", arguments: cases)
    func caught(_ c: Case) throws {
        let view = try Load.view("checkpoints/original/tiny-dit.pt")
        let inputs = DiTInputs.make(config: view.config, batch: 2, seed: 11)
        let good = Load.trace(try Load.forward(view), inputs)
        let bad = Load.trace(try Self.corrupted(c.tensor, c.edit), inputs)
        let report = VerificationReport.compare(bad, good, tolerance: Tolerance(rtol: 1e-5, atol: 0), configA: view.config, configB: view.config,
                                                semanticsA: nil, semanticsB: nil, labelA: "corrupted", labelB: "good")
        #expect(report.firstDivergence == c.firstBad, "\(report.text)")
        #expect(report.likelyCauses.first?.contains("the weights themselves differ at \(c.firstBad)") == true)
    }
}
