import Checkpoints
import Foundation
import Models
import DitkitTestSupport
import Testing

@Suite("ditkit convert, params, synth (end to end)")
struct ConvertCLITests {
    static func schema(_ name: String) throws -> SchemaValidator {
        SchemaValidator(schema: try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: Fixtures.packageRoot + "/schemas/" + name)))))
    }

    @Test("params with no argument lists every preset with the exact figures of the DiT paper and the Cerebras configs")
    func presets() throws {
        let result = try DitkitBinary.run(["params"])
        #expect(result.status == 0)
        let xl = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("DiT-XL/2 ") })
        for figure in ["675,129,632", "674,834,720", "294,912", "118.64", "749,826,464"] { #expect(xl.contains(figure), "\(figure) in \(xl)") }
        let c2b = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("cerebras-dit-2B ") })
        #expect(c2b.contains("2,281,078,788"))
        // Every family's presets are listed; DiT's are the 24 of the paper and the 5 Cerebras ones.
        #expect(result.stdout.split(separator: "\n").filter { $0.hasPrefix("DiT-") || $0.hasPrefix("cerebras-dit-") }.count == 24 + 5)
        #expect(result.stdout.split(separator: "\n").count == 1 + ModelFamilies.presets.count)
        let json = try JSONParser.parse(try DitkitBinary.run(["params", "--json"]).stdout)
        #expect(try Self.schema("params.schema.json").validate(json).isEmpty)
        #expect(json["presets"]?.arrayValue?.filter { $0["config"]?["family"] == .string("dit") }.count == 29)
        #expect(json["presets"]?.arrayValue?.count == ModelFamilies.presets.count)
    }

    @Test("params of real checkpoints: per-group breakdown, the same model in three layouts counts the same")
    func checkpoints() throws {
        let result = try DitkitBinary.run([
            "params", "--json", "--heads", "2", "fixtures/checkpoints/original/tiny-dit.pt", "fixtures/checkpoints/diffusers/transformer",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONParser.parse(result.stdout)
        #expect(try Self.schema("params.schema.json").validate(json).isEmpty)
        let entries = try #require(json["checkpoints"]?.arrayValue)
        #expect(entries.count == 2)
        #expect(entries[0]["total"]?.intValue == 51_680 && entries[0]["trainable"]?.intValue == 51_168)
        #expect(entries[1]["total"]?.intValue == 51_168 && entries[1]["stored"]?.intValue == 60_800)
        #expect(entries[0]["groups"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["embedders", "blocks.0", "blocks.1", "final layer"])
        let text = try DitkitBinary.run(["params", "--heads", "2", "fixtures/checkpoints/original/tiny-dit.pt"]).stdout
        #expect(text.contains("blocks.0") && text.contains("18,912"))
    }

    @Test("convert writes, refuses to overwrite without --force, never touches the input")
    func convert() throws {
        let dir = TemporaryDirectory()
        let source = "fixtures/checkpoints/original/train-ckpt.pt"
        let before = try #require(FileManager.default.contents(atPath: Fixtures.path("checkpoints/original/train-ckpt.pt")))
        let out = dir.file("ema.safetensors")
        let first = try DitkitBinary.run(["convert", source, "-o", out, "--to", "canonical", "--heads", "2"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("ema.") && first.stdout.contains("canonical"))
        #expect(first.stderr.isEmpty, "no progress bar when stderr is not a terminal")
        let again = try DitkitBinary.run(["convert", source, "-o", out, "--to", "canonical", "--heads", "2"])
        #expect(again.status == 4 && again.stderr.contains("--force"))
        #expect(try DitkitBinary.run(["convert", source, "-o", out, "--to", "canonical", "--heads", "2", "--force", "--key", "model"]).status == 0)
        #expect(FileManager.default.contents(atPath: Fixtures.path("checkpoints/original/train-ckpt.pt")) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["ema.safetensors"], "no temporary files left")
        let model = try Checkpoint.open(out)
        let raw = try Checkpoint.open(Fixtures.path("checkpoints/original/train-ckpt.pt"))
        let same = try model.tensor(named: "blocks.0.attn.qkv.weight")!.contiguousBytes() == raw.tensor(named: "model.blocks.0.attn.qkv.weight")!.contiguousBytes()
        #expect(same, "--key model reads the raw weights")
    }

    @Test("convert exit codes: 2 usage, 3 unmappable or lossy, 4 when the output exists")
    func convertErrors() throws {
        let dir = TemporaryDirectory()
        #expect(try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("x"), "--to", "onnx"]).status == 2)
        #expect(try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("x"), "--to", "canonical", "--dtype", "i8"]).status == 2)
        let variant = try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("x"), "--to", "diffusers", "--variant", "../../escape", "--heads", "2"])
        #expect(variant.status == 2 && variant.stderr.contains("../../escape"), "a variant names files: no path in it")
        let heads = try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("x"), "--to", "canonical"])
        #expect(heads.status == 3 && heads.stderr.contains("--heads"))
        let sigma = try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("x.pt"), "--to", "cerebras", "--heads", "2"])
        #expect(sigma.status == 3 && sigma.stderr.contains("--drop-sigma"))
        let views = try DitkitBinary.run(["convert", "fixtures/checkpoints/original/views.pt", "-o", dir.file("x"), "--to", "canonical"])
        #expect(views.status == 3 && views.stderr.contains("no DiT layout"))
        #expect(try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", "fixtures/checkpoints/original/tiny-dit.pt", "--to", "original", "--heads", "2"]).status == 2)
        #expect(!FileManager.default.fileExists(atPath: dir.file("x")) && !FileManager.default.fileExists(atPath: dir.file("x.pt")))
    }

    @Test("synth is deterministic per seed, loads back with the preset's config, and has non-trivial weights")
    func synth() throws {
        let dir = TemporaryDirectory()
        for (name, seed) in [("a", "1"), ("b", "1"), ("c", "2")] {
            let result = try DitkitBinary.run(["synth", "DiT-S/8", "--layout", "canonical", "--seed", seed, "--dtype", "bf16", "-o", dir.file(name)])
            #expect(result.status == 0, "\(result.stderr)")
        }
        let a = FileManager.default.contents(atPath: dir.file("a")), b = FileManager.default.contents(atPath: dir.file("b"))
        #expect(a == b, "same seed, same bytes")
        #expect(a != FileManager.default.contents(atPath: dir.file("c")), "another seed, other weights")
        let view = try ModelView<DiTFamily>.open(try Checkpoint.open(dir.file("a")))
        var expected = try #require(Preset.named("DiT-S/8")).config
        expected.sourceLayout = .original
        #expect(view.config == expected)
        let modulation = try #require(try Checkpoint.open(dir.file("a")).tensor(named: "blocks.3.modulation.weight")).float32()
        #expect(modulation.allSatisfy(\.isFinite) && modulation.contains { $0 != 0 })
        let spread = modulation.map { $0 * $0 }.reduce(0, +) / Float(modulation.count)
        #expect(abs(spread.squareRoot() - 1 / Float(384).squareRoot()) < 0.005, "std ≈ 1/√fan_in")

        let cerebras = try DitkitBinary.run(["synth", "cerebras-dit-small", "--layout", "cerebras", "--dtype", "bf16", "-o", dir.file("c.pt")])
        #expect(cerebras.status == 0, "\(cerebras.stderr)")
        let cview = try ModelView<DiTFamily>.open(try Checkpoint.open(dir.file("c.pt")))
        #expect(cview.layout == .cerebras && cview.config.hiddenSize == 384 && cview.config.numHeads == 6)
        #expect(ParameterCount(config: cview.config, layout: .cerebras).trainable == 32_858_884)
    }

    @Test("an unknown preset is a usage error naming the nearest presets; a missing file stays a missing file")
    func unknownPreset() throws {
        let preset = try DitkitBinary.run(["params", "DiT-XL/3"])
        #expect(preset.status == 2 && preset.stderr.contains("unknown preset 'DiT-XL/3'") && preset.stderr.contains("DiT-XL/2"))
        let synth = try DitkitBinary.run(["synth", "DiT-XXL/2", "--to", "canonical", "-o", "/tmp/never-written"])
        #expect(synth.status == 2 && synth.stderr.contains("nearest: DiT-XL/2"))
        #expect(try DitkitBinary.run(["params", "no-such-file.pt"]).status == 4)
    }
}
