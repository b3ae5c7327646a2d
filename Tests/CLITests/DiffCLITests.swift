import Checkpoints
import DitkitTestSupport
import Foundation
import Testing

@Suite("ditkit diff (end to end)")
struct DiffCLITests {
    static let schema: SchemaValidator = {
        let bytes = FileManager.default.contents(atPath: Fixtures.packageRoot + "/schemas/diff.schema.json") ?? Data()
        return SchemaValidator(schema: (try? JSONParser.parse([UInt8](bytes))) ?? .null)
    }()

    @Test("the same weights: exit 0 and a summary line; --all lists every tensor", arguments: [
        ["fixtures/checkpoints/original/tiny-dit.pt", "fixtures/checkpoints/diffusers/transformer"],
        ["fixtures/checkpoints/original/tiny-dit.pt", "fixtures/checkpoints/diffusers/transformer-sharded"],
        ["fixtures/checkpoints/original/tiny-dit-bf16.pt", "fixtures/variants/tiny-dit-bf16-as-f32.pt"],
        ["fixtures/checkpoints/original/train-ckpt.pt", "fixtures/variants/train-ckpt-ema.pt"],
    ])
    func same(_ pair: [String]) throws {
        let result = try DitkitBinary.run(["diff"] + pair + ["--heads", "2"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("32 tensors: ") && result.stdout.contains("— the same weights"))
        let all = try DitkitBinary.run(["diff", "--all"] + pair + ["--heads", "2"])
        #expect(all.stdout.contains("blocks.1.mlp.fc2.weight"))
    }

    @Test("different weights: exit 1, the differing tensors with max |Δ| and relative L2; --json valid against the schema")
    func different() throws {
        let result = try DitkitBinary.run(["diff", "fixtures/checkpoints/original/tiny-dit.pt", "fixtures/checkpoints/original/tiny-dit-bf16.pt", "--heads", "2"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("32 tensors: 32 different — the weights differ"))
        #expect(result.stdout.contains("max |Δ|") && result.stdout.contains("rel L2"))
        #expect(result.stderr.contains("the weights differ: 32 tensors"))
        let json = try DitkitBinary.run(["diff", "--json", "fixtures/checkpoints/original/tiny-dit.pt", "fixtures/checkpoints/diffusers/transformer", "--heads", "2"])
        #expect(json.status == 0)
        let value = try JSONParser.parse(json.stdout)
        #expect(Self.schema.validate(value).isEmpty, "\(Self.schema.validate(value))")
        #expect(value["same"] == .bool(true) && value["counts"]?["recomputed"]?.intValue == 1)
        let failing = try DitkitBinary.run(["diff", "--json", "fixtures/checkpoints/cerebras/tiny-cerebras.pt", "fixtures/checkpoints/original/tiny-dit.pt", "--heads", "2"])
        #expect(failing.status == 1)
        let failingValue = try JSONParser.parse(failing.stdout)
        #expect(Self.schema.validate(failingValue).isEmpty, "\(Self.schema.validate(failingValue))")
        #expect(failingValue["counts"]?["shape-differs"]?.intValue == 2)
    }

    @Test("does this file hold the EMA weights? --a-key/--b-key choose each side's sub-dict")
    func ema() throws {
        let ckpt = "fixtures/checkpoints/original/train-ckpt.pt"
        let emaVsModel = try DitkitBinary.run(["diff", ckpt, ckpt, "--a-key", "ema", "--b-key", "model", "--heads", "2"])
        #expect(emaVsModel.status == 1 && emaVsModel.stdout.contains("under \"ema.\"") && emaVsModel.stdout.contains("under \"model.\""))
        let raw = try DitkitBinary.run(["diff", ckpt, "fixtures/variants/train-ckpt-ema.pt", "--a-key", "model", "--heads", "2"])
        #expect(raw.status == 1)
        let ema = try DitkitBinary.run(["diff", ckpt, "fixtures/variants/train-ckpt-ema.pt", "--a-key", "ema", "--heads", "2"])
        #expect(ema.status == 0)
    }

    @Test("a variant-only folder is diffed as its variant, with the note; missing inputs are I/O errors")
    func variantsAndErrors() throws {
        let result = try DitkitBinary.run(["diff", "fixtures/variants/pipeline-fp16", "fixtures/checkpoints/diffusers/transformer-fp16", "--heads", "2"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("only weight variant present"))
        #expect(try DitkitBinary.run(["diff", "no/such.pt", "fixtures/checkpoints/original/tiny-dit.pt"]).status == 4)
        #expect(try DitkitBinary.run(["diff", "fixtures/checkpoints/original/tiny-dit.pt"]).status == 2)
    }

    @Test("streaming: comparing a DiT-S/2 pair (132 MB f32, 66 MB bf16) takes less memory than either file")
    func streaming() throws {
        let dir = TemporaryDirectory()
        // DiT-S/2 synthetic weights twice (f32 and bf16) — peak RSS must stay below the smaller file's size.
        for (name, dtype) in [("a.safetensors", "f32"), ("b.safetensors", "bf16")] {
            let synth = try DitkitBinary.run(["synth", "DiT-S/2", "--to", "canonical", "--dtype", dtype, "-o", dir.file(name), "--quiet"])
            #expect(synth.status == 0, "\(synth.stderr)")
        }
        let result = try DitkitBinary.run(["diff", dir.file("a.safetensors"), dir.file("b.safetensors")], environment: ["DITKIT_REPORT_PEAK_RSS": "1"])
        #expect(result.status == 1)
        let peak = result.stderr.split(separator: "\n").first { $0.contains("peak RSS") }
            .flatMap { Int($0.split(separator: " ").dropFirst(3).first ?? "") } ?? Int.max
        #expect(peak < 60 * 1024, "peak RSS \(peak) KiB for a 132 MB + 66 MB pair")
    }
}
