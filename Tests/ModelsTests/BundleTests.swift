import Checkpoints
import DitkitTestSupport
import Foundation
import Models
import Tensors
import Testing

@Suite("ModelBundle: whole files")
struct BundleTests {
    /// FNV-1a 64 of the float32 bytes.
    static func fnv(_ values: [Float]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in values { for b in withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 } }
        return h
    }

    // Digests of the buffers microsoft/VQ-Diffusion's alpha_schedule + torch float64 logs + .float() give, computed by
    // running that code (numpy 2, torch 2.15) in the fixture venv.
    static let expected: [(steps: Int, codes: Int, digests: [String: UInt64])] = [
        (100, 4096, [
            "log_at": 0xbecb_5798_52b5_6222, "log_bt": 0x62b4_b66f_fdc9_c173, "log_ct": 0x1b0d_d717_bc3c_e364,
            "log_cumprod_at": 0xcf59_7ea4_a872_b907, "log_cumprod_bt": 0xd05a_54de_a90f_1cf0, "log_cumprod_ct": 0x39e7_538f_f2ea_293a,
            "log_1_min_ct": 0x2c9c_61d4_a736_7607, "log_1_min_cumprod_ct": 0x1884_e6a0_6a43_860b,
        ]),
        (10, 16, [
            "log_at": 0x509c_be61_52de_390d, "log_bt": 0xe780_b89b_425c_ba99, "log_ct": 0x99c0_bc36_4724_c67c,
            "log_cumprod_at": 0xd148_994f_c92f_a1e4, "log_cumprod_bt": 0x955c_56b5_c2a5_4d9c, "log_cumprod_ct": 0x2e1c_bee8_b966_7745,
            "log_1_min_ct": 0xfc62_0dfa_ffd1_32e1, "log_1_min_cumprod_ct": 0xa7c5_a5b3_e465_c541,
        ]),
    ]

    @Test("the VQ-Diffusion schedule is bit-identical to the original's (ITHQ's 100 steps × 4096 codes, and a tiny one)")
    func schedule() {
        for (steps, codes, digests) in Self.expected {
            let schedule = VQDiffusionSchedule(steps: steps, codes: codes)
            for name in VQDiffusionSchedule.bufferNames {
                let values = schedule.buffers[name]!
                #expect(values.count == (name.contains("cumprod") ? steps + 1 : steps), "\(name)")
                #expect(Self.fnv(values) == digests[name], "\(name) for \(steps) steps, \(codes) codes")
            }
        }
        let tiny = VQDiffusionSchedule(steps: 4, codes: 7)
        #expect(tiny.buffers["log_cumprod_bt"]!.last == -.infinity && tiny.buffers["log_1_min_cumprod_ct"]!.last == 0)
        #expect(tiny.buffers["log_at"]![1] == -0.4054605960845947)
    }

    @Test("VQ-Diffusion knows the solver checkpoint's extras by name")
    func vqRoles() {
        let role = { (name: String) in VQDiffusionFamily.extraTensorRole(name)?.kind }
        #expect(role("model.transformer.log_cumprod_ct") == .table)
        #expect(VQDiffusionFamily.extraTensorRole("model.transformer.log_at")?.table == "log_at")
        #expect(role("model.transformer.Lt_history") == .statistics && role("model.transformer.Lt_count") == .statistics)
        #expect(role("model.transformer.condition_emb.transformer.resblocks.0.attn.in_proj_weight") == .textEncoder)
        #expect(role("model.content_codec.quantize.embedding_avg") == .componentState)
        #expect(role("model.transformer.transformer.blocks.0.attn1.key.weight") == nil)
        #expect(DiTFamily.extraTensorRole("model.transformer.log_at") == nil, "the default knows nothing")
    }

    @Test("a DiT training checkpoint: raw and EMA components, its optimizer summarised, the canonical folder round trip bit-exact")
    func ditTrainingCheckpoint() throws {
        let path = Fixtures.path("checkpoints/original/train-ckpt.pt")
        let source = try Checkpoint.open(path)
        let bundle = try ModelBundle.open(source, options: ModelOptions(heads: 2))
        #expect(bundle.components.map(\.name) == ["dit.model", "dit"])
        #expect(bundle.extras.count == 93 && bundle.extras.allSatisfy { $0.role.kind == .optimizer })
        let optimizer = try #require(bundle.optimizers.first)
        #expect(optimizer.path == "opt" && optimizer.kind == "AdamW" && optimizer.stateTensors == 93 && optimizer.groups.count == 1)
        #expect(optimizer.groups[0].contains { $0 == ("lr", "0.0001") })

        let dir = TemporaryDirectory()
        let written = try bundle.writeCanonical(to: dir.file("whole"))
        #expect(written.tensors == 157)
        let manifest = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: dir.file("whole/bundle.json")))))
        #expect(manifest["state_dicts"] == .array([.string("model"), .string("ema")]))
        #expect(manifest["values"]?.arrayValue?.contains { $0["path"]?.stringValue == "args.model" } == true)
        #expect(throws: CheckpointError.self) { try bundle.writeCanonical(to: dir.file("whole")) }

        let folder = try ModelBundle.openCanonicalFolder(dir.file("whole"))
        try folder.writeWhole(to: dir.file("back.pt"))
        let rebuilt = try Checkpoint.open(dir.file("back.pt"))
        #expect(rebuilt.tensors.map(\.name) == source.tensors.map(\.name))
        for tensor in source.tensors {
            #expect(try rebuilt.tensor(named: tensor.name)?.contiguousBytes() == tensor.contiguousBytes(), "\(tensor.name)")
        }
        #expect(rebuilt.values.contains { $0.path == "args.model" && $0.text == "'DiT-XL/2'" })
    }

    @Test("a single model is a bundle of one component and no extras")
    func single() throws {
        let bundle = try ModelBundle.open(try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.pt")), options: ModelOptions(heads: 2))
        #expect(bundle.components.count == 1 && bundle.extras.isEmpty && bundle.components[0].weights == .only)
    }
}
