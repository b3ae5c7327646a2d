import Checkpoints
import DitkitTestSupport
import Foundation
import Models
import Testing
import Verification

/// `WeightDiff` on real fixtures: torch's own numbers (fixtures/variants/manifest.json, by make_variants.py) are
/// the reference for the differences.
@Suite("weight diff")
struct WeightDiffTests {
    static func view(_ path: String, key: String? = nil) throws -> any AnyModelView {
        try ModelFamilies.open(try Checkpoint.open(Fixtures.path(path)), options: ModelOptions(key: key, heads: 2))
    }

    static func diff(_ a: String, _ b: String, keys: (String?, String?) = (nil, nil), chunk: Int = 1 << 20) throws -> WeightDiffReport {
        try WeightDiff.compare(try view(a, key: keys.0), try view(b, key: keys.1), names: (a, b), chunkElements: chunk)
    }

    static let manifest: JSONValue = {
        let bytes = FileManager.default.contents(atPath: Fixtures.path("variants/manifest.json")) ?? Data()
        return (try? JSONParser.parse([UInt8](bytes))) ?? .null
    }()

    @Test("the original .pt and its diffusers conversion hold the same weights; pos_embed equals the table diffusers recomputes")
    func originalVsDiffusers() throws {
        let report = try Self.diff("checkpoints/original/tiny-dit.pt", "checkpoints/diffusers/transformer")
        #expect(report.same)
        #expect(report.count(.identical) == 31 && report.count(.recomputed) == 1)
        let pos = try #require(report.tensors.first { $0.name == "pos_embed" })
        #expect(pos.status == .recomputed && pos.dtypes.b == nil && (pos.maxAbs ?? 1) <= 1e-6)
        #expect(try report.requireSame() == ())
    }

    @Test("f32 vs its bf16 copy: every tensor differs by bf16 rounding, max |Δ| as torch computes it (chunk size irrelevant)",
          arguments: [1 << 20, 7])
    func bf16Copy(_ chunk: Int) throws {
        // bf16 rounding changes values, so widening does not make them equal; torch's max |Δ| per tensor is the reference.
        let report = try Self.diff("checkpoints/original/tiny-dit.pt", "checkpoints/original/tiny-dit-bf16.pt", chunk: chunk)
        #expect(!report.same && report.count(.different) == 32)
        let expected = try #require(Self.manifest["fixtures"]?["variants/tiny-dit-bf16-as-f32.pt"])
        // Original names and canonical names agree for these tensors.
        for (original, canonical) in [("pos_embed", "pos_embed"), ("blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.weight"),
                                      ("final_layer.linear.weight", "final.linear.weight"), ("y_embedder.embedding_table.weight", "y_embed.table")] {
            let t = try #require(report.tensors.first { $0.name == canonical })
            let torchMax = try #require(expected["max_abs_vs_tiny_dit"]?[original]?.doubleValue)
            let torchRel = try #require(expected["relative_l2_vs_tiny_dit"]?[original]?.doubleValue)
            #expect(abs((t.maxAbs ?? 0) - torchMax) <= 1e-12 * max(1, torchMax), "\(canonical)")
            #expect(abs((t.relativeL2 ?? 0) - torchRel) <= 1e-9 * torchRel, "\(canonical): rtol 1e-9")
            #expect(t.maxAbs! > 0 && t.maxAbs! < 1e-2)
        }
        #expect(throws: WeightDiffError.self) { try report.requireSame() }
    }

    @Test("bf16 values stored as f32 are equal after widening")
    func widened() throws {
        let report = try Self.diff("checkpoints/original/tiny-dit-bf16.pt", "variants/tiny-dit-bf16-as-f32.pt")
        #expect(report.same && report.count(.equalWidened) == 32)
        #expect(report.tensors.allSatisfy { $0.maxAbs == 0 && $0.differing == 0 })
    }

    @Test("a training checkpoint's EMA is the EMA file, its raw weights are not")
    func ema() throws {
        #expect(try Self.diff("checkpoints/original/train-ckpt.pt", "variants/train-ckpt-ema.pt").same)
        #expect(try Self.diff("checkpoints/original/train-ckpt.pt", "variants/train-ckpt-ema.pt", keys: ("ema", nil)).same)
        let raw = try Self.diff("checkpoints/original/train-ckpt.pt", "variants/train-ckpt-ema.pt", keys: ("model", nil))
        #expect(!raw.same)
        let expected = try #require(Self.manifest["fixtures"]?["variants/train-ckpt-ema.pt"]?["max_abs_ema_vs_model"])
        let t = try #require(raw.tensors.first { $0.name == "blocks.1.mlp.fc2.weight" })
        // torch subtracts in float32 (one rounding of the difference), ditkit in float64: rtol 1e-6, atol 0.
        let torchMax = try #require(expected["blocks.1.mlp.fc2.weight"]?.doubleValue)
        #expect(abs((t.maxAbs ?? 0) - torchMax) <= 1e-6 * torchMax)
        // pos_embed is frozen: the same in both.
        #expect(raw.tensors.first { $0.name == "pos_embed" }?.status == .identical)
    }

    @Test("Cerebras vs original: frozen tables only A stores are checked against B's recomputation; other shapes are named")
    func onlyOneSide() throws {
        let report = try Self.diff("checkpoints/cerebras/tiny-cerebras.pt", "checkpoints/original/tiny-dit.pt")
        #expect(!report.same)
        // Tables only the Cerebras side stores: equal to what the other side's code computes, or reported as only in A.
        for name in ["t_embed.table", "diffusion.sqrt_alphas_cumprod", "diffusion.sqrt_one_minus_alphas_cumprod"] {
            let status = report.tensors.first { $0.name == name }?.status
            #expect(status == .recomputed || status == .onlyA, "\(name)")
        }
        // Without learned sigma the Cerebras head has half the output rows.
        #expect(report.tensors.first { $0.name == "final.linear.weight" }?.status == .shapeDiffers)
        #expect(report.count(.onlyB) == 0)
    }
}
