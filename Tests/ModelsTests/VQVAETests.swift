import Checkpoints
import Foundation
import Models
import Tensors
import DitkitTestSupport
import Testing

/// Builds, converts and reads VQ-VAE checkpoints through the library.
enum VQ {
    /// A VQ-VAE with every irregularity: channels that change (shortcuts), attention at two of three levels, two ResNets
    /// per encoder level (three per decoder level).
    static let config: VQVAEConfig = {
        var c = VQVAEConfig(
            blockOutChannels: [32, 64, 96], levelAttention: [false, true, true], layersPerBlock: 2, latentChannels: 16, numCodes: 24,
            embedDim: 8, sampleSize: 128)
        c.sourceLayout = nil
        return c
    }()

    /// Synthetic canonical tensors of `config`, with the EMA-quantizer state when `ema`.
    static func canonical(_ config: VQVAEConfig = config, ema: Bool) -> [OutputTensor] {
        var outputs = Synthetic.canonicalOutputs(config, seed: 7)
        if ema {
            outputs.append(Synthetic.random("quantize.cluster_size", [config.numCodes], std: 1, seed: 11))
            outputs.append(Synthetic.random("quantize.embedding_avg", [config.numCodes, config.embedDim], std: 1, seed: 12))
        }
        return outputs
    }

    static func open(_ path: String, _ options: ModelOptions = ModelOptions()) throws -> ModelView<VQVAEFamily> {
        try ModelView<VQVAEFamily>.open(try Checkpoint.open(path), options: options)
    }

    static func write(_ plan: ConversionPlan<VQVAEFamily>, _ path: String, componentOnly: Bool = true) throws {
        var export = ExportOptions()
        export.componentOnly = componentOnly
        try Exporter.write(plan, to: path, options: export)
    }

    /// Writes synthetic weights of `config` in `target`.
    static func synth(_ target: Layout, _ path: String, ema: Bool, config: VQVAEConfig = config) throws {
        let options = ConversionOptions(drop: target == .diffusers ? ["quantize.cluster_size", "quantize.embedding_avg"] : [])
        try write(try ConversionPlan<VQVAEFamily>.make(canonical: canonical(config, ema: ema), sources: [:], config: config, to: target, options: options), path)
    }

    static func convert(_ view: ModelView<VQVAEFamily>, to target: Layout, _ path: String, drop: Set<String> = []) throws {
        try write(try view.plan(to: target, options: ConversionOptions(drop: drop)), path)
    }

    /// Name → bytes of every tensor under `prefix` (prefix removed).
    static func tensors(_ path: String, prefix: String = "") throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for t in try Checkpoint.open(path).tensors where t.name.hasPrefix(prefix) { out[String(t.name.dropFirst(prefix.count))] = try t.contiguousBytes() }
        return out
    }

    static let ema: Set<String> = ["quantize.cluster_size", "quantize.embedding_avg"]
    static let fixtures = Fixtures.path("vq-diffusion")
    static var haveFixtures: Bool { FileManager.default.fileExists(atPath: fixtures + "/original/vqvae.pth") }
}

@Suite("VQ-VAE: canonical scheme")
struct VQVAESchemeTests {
    @Test("ITHQ: diffusers 303 tensors / 64,009,667; original 305 / 64,538,051 with the EMA state frozen; canonical 303")
    func ithqParams() throws {
        let ithq = try #require(VQVAEFamily.preset(named: "ITHQ-VQVAE"))
        #expect(VQVAEFamily.sourceTensors(.diffusers, config: ithq.config).count == 303)
        #expect(ParameterCount(config: ithq.config, layout: .diffusers).total == 64_009_667)
        #expect(VQVAEFamily.sourceTensors(.original, config: ithq.config).count == 305)
        let original = ParameterCount(config: ithq.config, layout: .original)
        #expect(original.total == 64_538_051)
        #expect(original.trainable == 64_009_667)
        #expect(original.frozen == 4096 + 4096 * 128)
        #expect(VQVAEFamily.canonicalTensors(ithq.config).count == 303)
        #expect(ParameterCount(config: ithq.config, layout: Layout("original-codec")).total == 64_538_051 + 4096 * 257)
    }

    @Test("the tiny preset is the fixture's model: 151 diffusers tensors, 247,371 numbers; 153 original, 247,659")
    func tinyParams() throws {
        let tiny = try #require(VQVAEFamily.preset(named: "vqvae-tiny"))
        #expect(VQVAEFamily.sourceTensors(.diffusers, config: tiny.config).count == 151)
        #expect(ParameterCount(config: tiny.config, layout: .diffusers).total == 247_371)
        #expect(VQVAEFamily.sourceTensors(.original, config: tiny.config).count == 153)
        #expect(ParameterCount(config: tiny.config, layout: .original).total == 247_659)
    }

    @Test("targets: canonical, original, diffusers (the solver's codec is read, not offered)")
    func targets() {
        #expect(VQVAEFamily.targets == [.canonical, .original, .diffusers])
        #expect(VQVAEFamily.layout(Layout("original-codec")) != nil)
    }

    @Test("per-level shapes and presence: shortcuts where channels change, attention where the level has it, no resampler at the last level")
    func presence() {
        let names = Dictionary(VQVAEFamily.canonicalTensors(VQ.config).map { ($0.name, $0.spec.shape(VQ.config)) }, uniquingKeysWith: { a, _ in a })
        #expect(names["encoder.down_blocks.0.resnets.0.conv_shortcut.weight"] == nil)
        #expect(names["encoder.down_blocks.1.resnets.0.conv_shortcut.weight"] == [64, 32, 1, 1])
        #expect(names["encoder.down_blocks.1.resnets.1.conv_shortcut.weight"] == nil)
        #expect(names["encoder.down_blocks.2.resnets.0.conv1.weight"] == [96, 64, 3, 3])
        #expect(names["encoder.down_blocks.0.attentions.0.to_q.weight"] == nil)
        #expect(names["encoder.down_blocks.1.attentions.1.to_q.weight"] == [64, 64])
        #expect(names["encoder.down_blocks.1.downsamplers.0.conv.weight"] == [64, 64, 3, 3])
        #expect(names["encoder.down_blocks.2.downsamplers.0.conv.weight"] == nil)
        // Decoder up-blocks in execution order: up_blocks.0 is the lowest resolution (96 channels).
        #expect(names["decoder.up_blocks.0.resnets.2.conv1.weight"] == [96, 96, 3, 3])
        #expect(names["decoder.up_blocks.0.attentions.2.to_out.0.weight"] == [96, 96])
        #expect(names["decoder.up_blocks.0.resnets.0.conv_shortcut.weight"] == nil)
        #expect(names["decoder.up_blocks.1.resnets.0.conv_shortcut.weight"] == [64, 96, 1, 1])
        #expect(names["decoder.up_blocks.2.resnets.0.conv1.weight"] == [32, 64, 3, 3])
        #expect(names["decoder.up_blocks.2.attentions.0.to_q.weight"] == nil)
        #expect(names["decoder.up_blocks.2.upsamplers.0.conv.weight"] == nil)
        #expect(names["decoder.up_blocks.1.upsamplers.0.conv.weight"] == [64, 64, 3, 3])
        #expect(names["decoder.up_blocks.3.resnets.0.conv1.weight"] == nil)
    }

    @Test("original names: levels, 1×1-conv attention, the middle block, and decoder levels numbered by resolution")
    func originalNames() {
        let stored = Dictionary(VQVAEFamily.sourceTensors(.original, config: VQ.config).map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        #expect(stored["encoder.down.1.block.0.nin_shortcut.weight"] == [64, 32, 1, 1])
        #expect(stored["encoder.down.1.attn.1.q.weight"] == [64, 64, 1, 1])
        #expect(stored["encoder.mid.attn_1.proj_out.weight"] == [96, 96, 1, 1])
        #expect(stored["decoder.mid.block_2.conv2.weight"] == [96, 96, 3, 3])
        #expect(stored["encoder.norm_out.weight"] == [96])
        #expect(stored["quantize.embedding"] == [24, 8])
        #expect(stored["quantize.cluster_size"] == [24])
        // up.2 is the lowest resolution (diffusers' up_blocks.0); up.0 the full resolution, with no upsampler.
        #expect(stored["decoder.up.2.attn.2.k.weight"] == [96, 96, 1, 1])
        #expect(stored["decoder.up.2.upsample.conv.weight"] == [96, 96, 3, 3])
        #expect(stored["decoder.up.0.block.0.conv1.weight"] == [32, 64, 3, 3])
        #expect(stored["decoder.up.0.upsample.conv.weight"] == nil)
    }
}

@Suite("VQ-VAE: layouts and conversion")
struct VQVAEConversionTests {
    @Test("detection and inference: every layout of a synthetic model is recognised and its config read back")
    func detection() throws {
        let dir = TemporaryDirectory()
        try VQ.synth(.original, dir.file("o.pth"), ema: true)
        try VQ.synth(.diffusers, dir.file("d"), ema: false)
        try VQ.synth(Layout("original-codec"), dir.file("c.pth"), ema: true)
        for (path, layout, prefix) in [("o.pth", Layout.original, "model."), ("d", .diffusers, ""), ("c.pth", Layout("original-codec"), "model.content_codec.")] {
            let checkpoint = try Checkpoint.open(dir.file(path))
            let match = try #require(LayoutDetector.detect(checkpoint.tensors.map(\.name)).first)
            #expect(match.family == "vq-vae")
            #expect(match.layout == layout)
            #expect(match.prefix == prefix)
            #expect(match.depth == 3)
            let view = try VQ.open(dir.file(path))
            var expected = VQ.config
            expected.sourceLayout = layout
            #expect(view.config == expected, "\(path): \(view.config.summary)")
        }
        // The image size is not fixed by the weights: assumed without a config.json, read from one.
        #expect(try VQ.open(dir.file("o.pth")).assumptions.map(\.field) == ["sample_size"])
        #expect(try VQ.open(dir.file("d")).assumptions.isEmpty)
    }

    @Test("original → canonical → original is bit-identical for the whole file, EMA-quantizer state included")
    func originalRoundTrip() throws {
        let dir = TemporaryDirectory()
        try VQ.synth(.original, dir.file("o.pth"), ema: true)
        try VQ.convert(try VQ.open(dir.file("o.pth")), to: .canonical, dir.file("c.safetensors"))
        let canonical = try VQ.open(dir.file("c.safetensors"))
        #expect(canonical.tensors.count == VQVAEFamily.allCanonicalTensors(VQ.config).count)
        try VQ.convert(canonical, to: .original, dir.file("back.pth"))
        let a = try VQ.tensors(dir.file("o.pth")), b = try VQ.tensors(dir.file("back.pth"))
        #expect(a.count == VQVAEFamily.sourceTensors(.original, config: VQ.config).count)
        #expect(a == b)
    }

    @Test("original ↔ diffusers: the EMA state is refused unless dropped by name; the rest round-trips bit for bit")
    func originalDiffusers() throws {
        let dir = TemporaryDirectory()
        try VQ.synth(.original, dir.file("o.pth"), ema: true)
        let original = try VQ.open(dir.file("o.pth"))
        #expect(throws: ModelError.self) { try original.plan(to: .diffusers) }
        try VQ.convert(original, to: .diffusers, dir.file("d"), drop: VQ.ema)
        let diffusers = try VQ.open(dir.file("d"))
        try VQ.convert(diffusers, to: .canonical, dir.file("c.safetensors"))
        try VQ.convert(try VQ.open(dir.file("c.safetensors")), to: .diffusers, dir.file("d2"))
        #expect(try VQ.tensors(dir.file("d")) == VQ.tensors(dir.file("d2")))
        let plan = try diffusers.plan(to: .original)
        #expect(plan.notes.contains { $0.contains("quantize.cluster_size not written") })
        try VQ.write(plan, dir.file("o2.pth"))
        var withoutEMA = try VQ.tensors(dir.file("o.pth"), prefix: "model.")
        withoutEMA["quantize.cluster_size"] = nil
        withoutEMA["quantize.embedding_avg"] = nil
        #expect(try VQ.tensors(dir.file("o2.pth"), prefix: "model.") == withoutEMA)
    }

    @Test("diffusers maps decoder up-blocks by resolution: up_blocks.k holds the original's up.(L−1−k), and reversed up-blocks are refused")
    func upBlockOrder() throws {
        let dir = TemporaryDirectory()
        try VQ.synth(.original, dir.file("o.pth"), ema: false)
        try VQ.convert(try VQ.open(dir.file("o.pth")), to: .diffusers, dir.file("d"))
        let original = try VQ.tensors(dir.file("o.pth"), prefix: "model.")
        let diffusers = try VQ.tensors(dir.file("d"))
        for k in 0..<3 {
            #expect(diffusers["decoder.up_blocks.\(k).resnets.1.conv2.weight"] == original["decoder.up.\(2 - k).block.1.conv2.weight"])
        }
        #expect(diffusers["decoder.up_blocks.0.resnets.1.conv2.weight"] != original["decoder.up.0.block.1.conv2.weight"])
        // The same tensors with the up-blocks numbered the other way are not the same model.
        let checkpoint = try Checkpoint.open(dir.file("d") + "/diffusion_pytorch_model.safetensors")
        let reversed = checkpoint.tensors.map { t -> OutputTensor in
            guard let k = (0..<3).first(where: { t.name.hasPrefix("decoder.up_blocks.\($0).") }) else { return OutputTensor(name: t.name, tensor: t) }
            return OutputTensor(name: "decoder.up_blocks.\(2 - k)." + t.name.dropFirst("decoder.up_blocks.\(k).".count), tensor: t)
        }
        try SafetensorsWriter.write(reversed, metadata: [("format", "pt")], to: dir.file("reversed.safetensors"))
        #expect(throws: ModelError.self) { try VQ.open(dir.file("reversed.safetensors")) }
    }

    @Test("diffusers folders with the old attention names (query/key/value/proj_attn) are read, and written with the new ones")
    func oldAttentionNames() throws {
        let dir = TemporaryDirectory()
        try VQ.synth(.diffusers, dir.file("d"), ema: false)
        let checkpoint = try Checkpoint.open(dir.file("d") + "/diffusion_pytorch_model.safetensors")
        let renames = [(".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")]
        var renamed = 0
        let old = checkpoint.tensors.map { t -> OutputTensor in
            var name = t.name
            for (new, old) in renames where name.contains(new) {
                name = name.replacingOccurrences(of: new, with: old)
                renamed += 1
            }
            return OutputTensor(name: name, tensor: t)
        }
        try FileManager.default.createDirectory(atPath: dir.file("old"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir.file("d/config.json"), toPath: dir.file("old/config.json"))
        try SafetensorsWriter.write(old, metadata: [("format", "pt")], to: dir.file("old/diffusion_pytorch_model.safetensors"))
        let view = try VQ.open(dir.file("old"))
        #expect(view.layout == .diffusers)
        #expect(view.notes.contains("\(renamed) tensors stored under older names of the diffusers layout, read as the current ones"))
        try VQ.convert(view, to: .diffusers, dir.file("new"))
        #expect(try VQ.tensors(dir.file("new")) == VQ.tensors(dir.file("d")))
    }

    @Test("a solver checkpoint's codec: the shared quantizer is written twice, read once, and copies that differ are refused")
    func sharedQuantizer() throws {
        let dir = TemporaryDirectory()
        try VQ.synth(Layout("original-codec"), dir.file("c.pth"), ema: true)
        let stored = try VQ.tensors(dir.file("c.pth"), prefix: "model.content_codec.")
        #expect(stored["enc.quantize.embedding"] != nil && stored["enc.quantize.embedding"] == stored["dec.quantize.embedding"])
        #expect(stored["enc.encoder.conv_in.weight"] != nil && stored["dec.decoder.conv_out.weight"] != nil)
        try VQ.convert(try VQ.open(dir.file("c.pth")), to: .original, dir.file("o.pth"))
        try VQ.synth(.original, dir.file("direct.pth"), ema: true)
        #expect(try VQ.tensors(dir.file("o.pth")) == VQ.tensors(dir.file("direct.pth")))
        // Copies that differ.
        let checkpoint = try Checkpoint.open(dir.file("c.pth"))
        let tampered = checkpoint.tensors.map { t -> OutputTensor in
            let name = String(t.name.dropFirst("model.content_codec.".count))
            if name == "dec.quantize.embedding" { return Synthetic.random(name, t.shape, std: 1, seed: 99) }
            return OutputTensor(name: name, tensor: t)
        }
        try TorchWriter.write(.dict([("model", .dict(tampered.map { ("content_codec." + $0.name, .tensor($0)) }))]), to: dir.file("bad.pth"))
        let bad = try VQ.open(dir.file("bad.pth"))
        #expect(throws: ModelError.self) { try VQ.convert(bad, to: .original, dir.file("bad-out.pth")) }
    }

    @Test("a config.json that contradicts the weights is refused, naming the key")
    func contradictingConfig() throws {
        let dir = TemporaryDirectory()
        try VQ.synth(.diffusers, dir.file("d"), ema: false)
        let text = try String(contentsOfFile: dir.file("d/config.json"), encoding: .utf8)
        try text.replacingOccurrences(of: "\"layers_per_block\": 2", with: "\"layers_per_block\": 3").write(toFile: dir.file("d/config.json"), atomically: true, encoding: .utf8)
        #expect {
            try VQ.open(dir.file("d"))
        } throws: { error in
            "\(error)".contains("layers_per_block = 3 but the weights have 2")
        }
    }
}

@Suite("VQ-VAE: real fixtures", .enabled(if: VQ.haveFixtures))
struct VQVAEFixtureTests {
    static let config = VQVAEFamily.preset(named: "VQVAE-tiny")!.config

    @Test("the fixtures' files: original, diffusers (new and old attention names) and a solver's codec, each detected and counted")
    func fixtures() throws {
        let cases: [(String, Layout, Int, Int)] = [
            ("original/vqvae.pth", .original, 153, 247_659), ("diffusers/vqvae", .diffusers, 151, 247_371),
            ("diffusers/vqvae-old-names", .diffusers, 151, 247_371),
        ]
        for (path, layout, tensors, numbers) in cases {
            let view = try VQ.open(VQ.fixtures + "/" + path)
            #expect(view.layout == layout, "\(path)")
            #expect(view.tensors.count == tensors, "\(path)")
            #expect(view.parameterEntry().total == numbers, "\(path)")
            var expected = Self.config
            expected.sourceLayout = layout
            expected.sampleSize = view.config.sampleSize  // not fixed by the weights
            #expect(view.config == expected, "\(path)")
        }
        let codec = try VQ.open(VQ.fixtures + "/original/solver.pth", ModelOptions(key: "model.content_codec"))
        #expect(codec.layout == Layout("original-codec"))
        #expect(codec.tensors.count == 153)
    }

    @Test("the written config.json has every key and value diffusers wrote for the same model (sample_size: ours)")
    func configJSON() throws {
        let dir = TemporaryDirectory()
        try VQ.synth(.diffusers, dir.file("d"), ema: false, config: Self.config)
        func read(_ path: String) throws -> [String: JSONValue] {
            guard case .object(let pairs) = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: path)))) else { return [:] }
            return Dictionary(pairs.filter { $0.0 != "_name_or_path" && $0.0 != "sample_size" }, uniquingKeysWith: { a, _ in a })
        }
        #expect(try read(dir.file("d/config.json")) == read(VQ.fixtures + "/diffusers/vqvae/config.json"))
    }

    @Test("fixtures: original → canonical → original bit-identical; original → diffusers equals diffusers' own conversion; old names → new")
    func fixtureRoundTrips() throws {
        let dir = TemporaryDirectory()
        let original = try VQ.open(VQ.fixtures + "/original/vqvae.pth")
        try VQ.convert(original, to: .canonical, dir.file("c.safetensors"))
        try VQ.convert(try VQ.open(dir.file("c.safetensors")), to: .original, dir.file("o.pth"))
        #expect(try VQ.tensors(dir.file("o.pth")) == VQ.tensors(VQ.fixtures + "/original/vqvae.pth"))
        try VQ.convert(original, to: .diffusers, dir.file("d"), drop: VQ.ema)
        #expect(try VQ.tensors(dir.file("d")) == VQ.tensors(VQ.fixtures + "/diffusers/vqvae"))
        try VQ.convert(try VQ.open(VQ.fixtures + "/diffusers/vqvae-old-names"), to: .diffusers, dir.file("new"))
        #expect(try VQ.tensors(dir.file("new")) == VQ.tensors(VQ.fixtures + "/diffusers/vqvae"))
        let codec = try VQ.open(VQ.fixtures + "/original/solver.pth", ModelOptions(key: "model.content_codec"))
        try VQ.convert(codec, to: .original, dir.file("codec.pth"))
        #expect(try VQ.tensors(dir.file("codec.pth")) == VQ.tensors(VQ.fixtures + "/original/vqvae.pth"))
    }
}

@Suite("VQ-VAE: config schema")
struct VQVAESchemaTests {
    @Test("preset and inferred configs validate against schemas/model-config.schema.json (its vq-vae branch)")
    func schema() throws {
        let text = try #require(FileManager.default.contents(atPath: Fixtures.packageRoot + "/schemas/model-config.schema.json"))
        let validator = SchemaValidator(schema: try JSONParser.parse([UInt8](text)))
        for preset in VQVAEFamily.presets {
            #expect(validator.validate(preset.config.json).isEmpty, "\(preset.name): \(validator.validate(preset.config.json))")
        }
        var config = VQ.config
        config.sourceLayout = Layout("original-codec")
        #expect(validator.validate(config.json).isEmpty)
        var wrong = VQ.config.json
        if case .object(var pairs) = wrong {
            pairs.append(("heads", .int(2)))
            wrong = .object(pairs)
        }
        #expect(!validator.validate(wrong).isEmpty)
    }
}
