import Checkpoints
import Models
import DitkitTestSupport
import Testing

@Suite("layout detection")
struct LayoutDetectorTests {
    static let cases = Fixtures.entries().filter { $0.entry["problem"] == nil && $0.entry["layout"] != nil }

    @Test("every fixture's layout is recognised as the manifest says", arguments: cases)
    func layout(_ fixture: FixtureCase) throws {
        let checkpoint = try Checkpoint.open(fixture.absolutePath, options: OpenOptions(variant: fixture.entry["variant"]?.stringValue, allow: Set(fixture.allow)))
        #expect(LayoutDetector.primary(checkpoint).rawValue == fixture.entry["layout"]?.stringValue)
    }

    @Test("prefixes: training checkpoints, DDP and pipelines")
    func prefixes() throws {
        let train = try Checkpoint.open(Fixtures.path("checkpoints/original/train-ckpt.pt"))
        #expect(LayoutDetector.detect(train.tensors.map(\.name)).map(\.prefix) == ["model.", "ema."])
        let ddp = try Checkpoint.open(Fixtures.path("checkpoints/original/ddp-module.pt"))
        #expect(LayoutDetector.detect(ddp.tensors.map(\.name)) == [
            LayoutMatch(layout: .original, prefix: "module.", depth: 2, matchedTensors: 32, tensorsUnderPrefix: 32)
        ])
        let pipeline = try Checkpoint.open(Fixtures.path("checkpoints/diffusers/pipeline"))
        let match = try #require(LayoutDetector.detect(pipeline.tensors.map(\.name)).first)
        #expect(match.layout == .diffusers && match.prefix == "transformer." && match.depth == 2 && match.matchedTensors == 44)
    }

    @Test("Cerebras names are recognised under model.model.")
    func cerebras() {
        var names = [
            "model.model.patch_embedding_layer.linear_proj.weight", "model.model.timestep_embedding_layer.ffn.ffn.0.linear_layer.weight",
            "model.model.label_embedding_layer.weight",
        ]
        for i in 0..<3 { names.append("model.model.transformer_decoder.layers.\(i).self_attn.proj_q_dense_layer.weight") }
        let match = LayoutDetector.detect(names)
        #expect(match == [LayoutMatch(layout: .cerebras, prefix: "model.model.", depth: 3, matchedTensors: 6, tensorsUnderPrefix: 6)])
    }

    @Test("inspect report groups and totals")
    func report() throws {
        let report = InspectReport(try Checkpoint.open(Fixtures.path("checkpoints/original/train-ckpt.pt")))
        #expect(report.groups.map(\.name) == ["model", "ema", "opt"])
        #expect(report.groups[0].elements == 51_680)
        #expect(report.groups[0].bytes == 206_720)
        #expect(report.layout == .original)
    }
}

@Suite("numeric semantics")
struct SemanticsTests {
    @Test("withNumerics copies every numeric choice and keeps the sizes; a table is used only when the model has one")
    func numerics() throws {
        var cerebras = try #require(Preset.named("cerebras-dit-small")).config
        cerebras.mlpNormEps = 1e-6
        let original = try #require(Preset.named("DiT-S/2")).config
        let mixed = original.withNumerics(of: cerebras)
        #expect(mixed.gelu == .erf && mixed.timestepInput == .sinusoid && mixed.hiddenSize == original.hiddenSize)
        #expect(mixed.outChannels == original.outChannels)
        let diffusers = cerebras.withDiffusersSemantics()
        #expect(diffusers.timestepShift == 1 && diffusers.mlpNormEps == 1e-5 && diffusers.gelu == .tanh && diffusers.timestepInput == .sinusoid)
        let back = cerebras.withNumerics(of: cerebras.withOriginalSemantics())
        #expect(back.timestepInput == .sinusoid && back.gelu == .tanh)
    }
}
