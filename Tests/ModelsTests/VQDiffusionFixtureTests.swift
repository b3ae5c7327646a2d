import Checkpoints
import Foundation
import Models
import Tensors
import DitkitTestSupport
import Testing

/// The real files of `fixtures/vq-diffusion/` (made by microsoft/VQ-Diffusion's own classes and solver, and diffusers'
/// own conversion script): each test runs when its files are present.
@Suite("VQ-Diffusion transformer and embeddings against the real files")
struct VQDiffusionFixtureTests {
    static func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: Fixtures.path(relative)) }
    static let solver = "vq-diffusion/original/solver.pth"
    static let model = "vq-diffusion/original/model.pth"
    static let transformer = "vq-diffusion/diffusers/transformer"
    static let embeddings = "vq-diffusion/diffusers/learned_classifier_free_sampling_embeddings"

    /// The fixture's transformer: 2 blocks, D 32, 4 heads, context 77×512, 32 codes + mask, 4×4, 10 steps.
    static var expected: VQDiffusionConfig {
        var c = VQDiffusionConfig(depth: 2, hiddenSize: 32, numHeads: 4, contextDim: 512, codes: 32, height: 4, width: 4, diffusionSteps: 10)
            .withOriginalSemantics()
        c.sourceLayout = .original
        return c
    }

    @Test("the solver checkpoint: EMA by default, --key model for the raw weights, masks checked and dropped", .enabled(if: exists(solver)))
    func solverCheckpoint() throws {
        let checkpoint = try Checkpoint.open(Fixtures.path(Self.solver))
        let ema = try ModelView<VQDiffusionFamily>.open(checkpoint)
        #expect(ema.prefix == "ema.transformer." && ema.config == Self.expected)
        #expect(ema.assumptions.contains { $0.field == "weights" && $0.value == "ema" })
        #expect(ema.assumptions.contains { $0.field == "num_heads" && $0.value == "4" })
        let raw = try ModelView<VQDiffusionFamily>.open(checkpoint, options: ModelOptions(key: "model"))
        #expect(raw.prefix == "model.transformer.transformer." && raw.config == Self.expected)
        #expect(try ModelFamilies.open(checkpoint).familyName == "vq-diffusion")
        let plan = try ema.plan(to: .diffusers)
        #expect(plan.notes.contains { $0.contains("cross_attn.mask is not stored by the diffusers layout") && $0.contains("nothing is lost") })
        #expect(plan.outputs.count == 63 && !plan.outputs.contains { $0.name.contains("mask") })
        // The embedding: under ema. beside the transformer, the CLIP tower and the diffusion buffers; float64.
        let embedding = try ModelView<VQEmbeddingsFamily>.open(checkpoint)
        #expect(embedding.prefix == "ema." && embedding.config.length == 77 && embedding.config.hiddenSize == 512)
        #expect(embedding.tensors[0].dtype == .f64)
        #expect(try ModelView<VQEmbeddingsFamily>.open(checkpoint, options: ModelOptions(key: "model")).prefix == "model.transformer.")
    }

    @Test("the bare model state dict: original → canonical → original and original → diffusers → original are bit-identical", .enabled(if: exists(model)))
    func bareRoundTrips() throws {
        let dir = TemporaryDirectory()
        let view = try VQSynth.open(Fixtures.path(Self.model))
        #expect(view.prefix == "transformer.transformer." && view.config == Self.expected)
        let before = try Convert.tensors(Fixtures.path(Self.model), prefix: "transformer.transformer.")
        for via in [Layout.canonical, .diffusers] {
            let middle = dir.file("middle-\(via)" + (via == .canonical ? ".safetensors" : ""))
            try VQSynth.convert(view, to: via, middle)
            try VQSynth.convert(try VQSynth.open(middle), to: .original, dir.file("back-\(via).pt"))
            let after = try Convert.tensors(dir.file("back-\(via).pt"), prefix: "transformer.transformer.")
            #expect(Set(after.keys) == Set(before.keys), "\(via): \(Set(after.keys).symmetricDifference(before.keys).sorted().prefix(6))")
            let differing = before.filter { after[$0.key] != $0.value }.map(\.key).sorted()
            #expect(differing.isEmpty, "\(via): \(differing.prefix(6))")
        }
    }

    @Test("ditkit's conversion of the solver checkpoint equals diffusers' own, tensor by tensor, config.json key by key", .enabled(if: exists(solver) && exists(transformer)))
    func equalsDiffusersConversion() throws {
        let dir = TemporaryDirectory()
        let view = try VQSynth.open(Fixtures.path(Self.solver))
        try VQSynth.convert(view, to: .diffusers, dir.file("t"), componentOnly: true)
        let theirs = try Convert.tensors(Fixtures.path(Self.transformer)), ours = try Convert.tensors(dir.file("t"))
        #expect(Set(ours.keys) == Set(theirs.keys), "\(Set(ours.keys).symmetricDifference(theirs.keys).sorted().prefix(6))")
        let differing = theirs.filter { ours[$0.key] != $0.value }.map(\.key).sorted()
        #expect(differing.isEmpty, "\(differing.prefix(6))")
        let theirConfig = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: Fixtures.path(Self.transformer + "/config.json")))))
        let ourConfig = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: dir.file("t/config.json")))))
        for (key, value) in try #require(theirConfig.objectValue) where key != "_diffusers_version" && key != "_name_or_path" {
            #expect(ourConfig[key] == value, "\(key): ours \(ourConfig[key].map { $0.serialized() } ?? "absent"), diffusers' \(value.serialized())")
        }
        // diffusers' folder reads back as the same model, heads from its config.json.
        let diffusers = try VQSynth.open(Fixtures.path(Self.transformer))
        #expect(diffusers.config.withNumerics(of: Self.expected) == { var c = Self.expected; c.sourceLayout = .diffusers; return c }())
        #expect(!diffusers.assumptions.contains { $0.field == "num_heads" })
    }

    @Test("the learned embeddings: diffusers' conversion is the EMA table cast to float32; ditkit keeps float64 unless cast", .enabled(if: exists(solver) && exists(embeddings)))
    func embeddingsConversion() throws {
        let dir = TemporaryDirectory()
        let view = try ModelView<VQEmbeddingsFamily>.open(try Checkpoint.open(Fixtures.path(Self.solver)))
        let kept = try VQSynth.convert(view, to: .diffusers, dir.file("kept"), componentOnly: true)
        #expect(kept.outputs[0].dtype == .f64 && kept.notes.contains { $0.contains("casts empty_text_embed to float32") })
        try VQSynth.convert(view, to: .diffusers, dir.file("cast"), options: ConversionOptions(dtype: .f32), componentOnly: true)
        let theirs = try Convert.tensors(Fixtures.path(Self.embeddings)), ours = try Convert.tensors(dir.file("cast"))
        #expect(Array(theirs.keys) == ["embeddings"] && ours["embeddings"] == theirs["embeddings"])
        let theirConfig = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: Fixtures.path(Self.embeddings + "/config.json")))))
        let ourConfig = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: dir.file("cast/config.json")))))
        for key in ["_class_name", "learnable", "hidden_size", "length"] { #expect(ourConfig[key] == theirConfig[key], "\(key)") }
        let diffusers = try ModelView<VQEmbeddingsFamily>.open(try Checkpoint.open(Fixtures.path(Self.embeddings)))
        #expect(diffusers.layout == .diffusers && diffusers.config.length == 77)
    }

    @Test("the CLI: inspect, params, convert and synth reach the families through the registry", .enabled(if: exists(solver)))
    func cli() throws {
        let dir = TemporaryDirectory()
        let inspect = try DitkitBinary.run(["inspect", "fixtures/" + Self.solver, "--summary"])
        #expect(inspect.status == 0 && inspect.stdout.contains("original VQ-Diffusion transformer") && inspect.stdout.contains("under \"ema.transformer.\""))
        let params = try DitkitBinary.run(["params", "ITHQ", "fixtures/" + Self.solver, "--json"])
        #expect(params.status == 0, "\(params.stderr)")
        let json = try JSONParser.parse(params.stdout)
        #expect(json["presets"]?.arrayValue?.first?["total"] == .int(1_397_023_360) && json["presets"]?.arrayValue?.first?["diffusers_total"] == .int(1_359_274_624))
        #expect(json["checkpoints"]?.arrayValue?.first?["total"] == .int(107_584) && json["checkpoints"]?.arrayValue?.first?["prefix"] == .string("ema.transformer."))
        let convert = try DitkitBinary.run(["convert", "fixtures/" + Self.solver, "--key", "model", "--heads", "4", "--to", "diffusers", "-o", dir.file("d")])
        #expect(convert.status == 0 && (convert.stdout + convert.stderr).contains("cross_attn.mask is not stored"), "\(convert.stderr)")
        let synth = try DitkitBinary.run(["synth", "vq-diffusion-tiny", "--to", "original", "-o", dir.file("s.pt")])
        #expect(synth.status == 0, "\(synth.stderr)")
        let back = try DitkitBinary.run(["convert", dir.file("s.pt"), "--to", "canonical", "-o", dir.file("c.safetensors")])
        #expect(back.status == 0, "\(back.stderr)")
    }
}
