import Checkpoints
import Foundation
import Models
import Tensors
import DitkitTestSupport
import Testing

/// Synthetic VQ-Diffusion files in every layout and container, written through the library.
enum VQSynth {
    static let tiny = VQDiffusionPresets.tiny

    /// The tiny transformer's synthetic weights planned for `target` (seed `seed`).
    static func plan(_ target: Layout, seed: UInt64 = 0, config: VQDiffusionConfig = tiny.config) throws -> ConversionPlan<VQDiffusionFamily> {
        try ConversionPlan<VQDiffusionFamily>.make(
            canonical: Synthetic.canonicalOutputs(config, seed: seed), sources: [:], config: config, to: target)
    }

    /// Writes the tiny transformer in `target` to `path`.
    @discardableResult
    static func write(_ target: Layout, _ path: String, seed: UInt64 = 0, componentOnly: Bool = false) throws -> String {
        var options = ExportOptions()
        options.componentOnly = componentOnly
        try Exporter.write(try plan(target, seed: seed), to: path, options: options)
        return path
    }

    /// The empty-text embedding as the original stores it: (length, width) float64.
    static func embedding(_ name: String, length: Int = 77, width: Int = 16, seed: UInt64) -> OutputTensor {
        OutputTensor(name: name, dtype: .f64, shape: [length, width]) { sink in
            var generator = SplitMix64(state: seed)
            let values = (0..<(length * width)).map { _ in Double(generator.next() >> 11) / Double(1 << 53) - 0.5 }
            try values.withUnsafeBytes { try sink.write($0) }
        }
    }

    /// A tensor standing for the other models of the file (CLIP tower, diffusion buffers).
    static func other(_ name: String) -> OutputTensor { Synthetic.random(name, [3, 2], std: 0.02, seed: 9) }

    /// The DALLE `model` state dict: transformer under `transformer.transformer.`, the embedding, a CLIP tensor and
    /// a diffusion buffer beside it, and a content codec tensor.
    static func modelDict(seed: UInt64) throws -> [(String, TorchSaveValue)] {
        var out: [(String, TorchSaveValue)] = [("content_codec.quantize.embedding", .tensor(other("content_codec.quantize.embedding")))]
        out.append(("transformer.condition_emb.token_embedding.weight", .tensor(other("transformer.condition_emb.token_embedding.weight"))))
        for t in try plan(.original, seed: seed).outputs { out.append((t.name, .tensor(t))) }
        out.append(("transformer.empty_text_embed", .tensor(embedding("transformer.empty_text_embed", seed: seed))))
        out.append(("transformer.log_at", .tensor(other("transformer.log_at"))))
        return out
    }

    /// A microsoft/VQ-Diffusion solver checkpoint: `model` (raw) and `ema` (one prefix shorter), with training state.
    static func solver(_ path: String) throws -> String {
        let raw = try modelDict(seed: 1)
        var ema: [(String, TorchSaveValue)] = [("condition_emb.token_embedding.weight", .tensor(other("condition_emb.token_embedding.weight")))]
        for t in try plan(.original, seed: 2).outputs {
            let name = String(t.name.dropFirst("transformer.".count))
            ema.append((name, .tensor(t.renamed(name))))
        }
        ema.append(("empty_text_embed", .tensor(embedding("empty_text_embed", seed: 2))))
        ema.append(("log_at", .tensor(other("log_at"))))
        try TorchWriter.write(
            .dict([("last_epoch", .int(3)), ("last_iter", .int(30)), ("model", .dict(raw)), ("ema", .dict(ema)), ("clip_grad_norm", .dict([]))]),
            to: path)
        return path
    }

    /// A bare DALLE state dict (`original/model.pth`).
    static func bare(_ path: String) throws -> String {
        try TorchWriter.write(.dict(try modelDict(seed: 1)), to: path)
        return path
    }

    static func open<F: ModelFamily>(_ path: String, _ family: F.Type = VQDiffusionFamily.self, _ options: ModelOptions = ModelOptions()) throws -> ModelView<F> {
        try ModelView<F>.open(try Checkpoint.open(path), options: options)
    }

    /// Converts `view` to `target` at `path`.
    @discardableResult
    static func convert<F: ModelFamily>(_ view: ModelView<F>, to target: Layout, _ path: String, options: ConversionOptions = ConversionOptions(), componentOnly: Bool = false) throws -> ConversionPlan<F> {
        let plan = try view.plan(to: target, options: options)
        var export = ExportOptions()
        export.componentOnly = componentOnly
        export.source = view.checkpoint
        export.sourceLayout = view.layout
        try Exporter.write(plan, to: path, options: export)
        return plan
    }
}

@Suite("VQ-Diffusion transformer and learned embeddings: layouts, conversion, counts")
struct VQDiffusionTests {
    @Test("every layout and container is detected, with its prefix")
    func detection() throws {
        let dir = TemporaryDirectory()
        let cases: [(String, Layout, String)] = [
            (try VQSynth.write(.original, dir.file("o.pt")), .original, "transformer.transformer."),
            (try VQSynth.write(.original, dir.file("o.safetensors")), .original, "transformer.transformer."),
            (try VQSynth.write(.diffusers, dir.file("pipeline")), .diffusers, "transformer."),
            (try VQSynth.write(.diffusers, dir.file("component"), componentOnly: true), .diffusers, ""),
            (try VQSynth.write(.canonical, dir.file("c.safetensors")), .original, ""),
            (try VQSynth.bare(dir.file("model.pth")), .original, "transformer.transformer."),
            (try VQSynth.solver(dir.file("solver.pth")), .original, "ema.transformer."),
        ]
        for (path, layout, prefix) in cases {
            let view = try VQSynth.open(path)
            #expect(view.layout == layout && view.prefix == prefix, "\(path): \(view.layout) under \(view.prefix)")
            #expect(view.config.depth == 2 && view.config.hiddenSize == 32 && view.config.codes == 32 && view.config.contextDim == 512)
            // Through the registry: the transformer is chosen in a file that holds several families.
            let any = try ModelFamilies.open(try Checkpoint.open(path))
            #expect(any.familyName == "vq-diffusion", "\(path): \(any.familyName)")
        }
    }

    @Test("a solver checkpoint: EMA by default, --key model for the raw weights; the embedding beside the other models")
    func solver() throws {
        let dir = TemporaryDirectory()
        let path = try VQSynth.solver(dir.file("solver.pth"))
        let ema = try VQSynth.open(path)
        #expect(ema.prefix == "ema.transformer." && ema.assumptions.contains { $0.field == "weights" && $0.value == "ema" })
        #expect(ema.notes.contains { $0.contains("EMA weights under \"ema.transformer.\"") })
        let raw = try VQSynth.open(path, VQDiffusionFamily.self, ModelOptions(key: "model"))
        #expect(raw.prefix == "model.transformer.transformer.")
        let emaBytes = try ema.canonicalOutputs()[0].contiguousBytes(), rawBytes = try raw.canonicalOutputs()[0].contiguousBytes()
        #expect(emaBytes != rawBytes)

        let embeddings = try VQSynth.open(path, VQEmbeddingsFamily.self)
        #expect(embeddings.prefix == "ema." && embeddings.layout == .original)
        #expect(embeddings.config.length == 77 && embeddings.config.hiddenSize == 16 && embeddings.tensors[0].dtype == .f64)
        #expect(embeddings.notes.contains { $0.contains("belong to other models") })
        let rawEmbeddings = try VQSynth.open(path, VQEmbeddingsFamily.self, ModelOptions(key: "model"))
        #expect(rawEmbeddings.prefix == "model.transformer.")
        // Through the registry, a key reaches the family under it.
        let any = try ModelFamilies.open(try Checkpoint.open(path), options: ModelOptions(key: "model"))
        #expect(any.familyName == "vq-diffusion" && any.prefix == "model.transformer.transformer.")
    }

    struct Chain: CustomStringConvertible, Sendable {
        let source: Layout
        let via: Layout
        var description: String { "\(source) → \(via) → \(source)" }
    }

    @Test("round trips are bit-identical, tensor for tensor (masks included)", arguments: [
        Chain(source: .original, via: .canonical), Chain(source: .diffusers, via: .canonical), Chain(source: .original, via: .diffusers),
        Chain(source: .diffusers, via: .original),
    ])
    func roundTrip(_ chain: Chain) throws {
        let dir = TemporaryDirectory()
        let ext = chain.source == .original ? ".pt" : ""
        let source = try VQSynth.write(chain.source, dir.file("source" + ext), seed: 5)
        let view = try VQSynth.open(source)
        let middle = dir.file("middle" + (chain.via == .canonical ? ".safetensors" : chain.via == .original ? ".pt" : ""))
        try VQSynth.convert(view, to: chain.via, middle)
        let between = try VQSynth.open(middle)
        if chain.via == .canonical { #expect(between.config == view.config) }
        try VQSynth.convert(between, to: chain.source, dir.file("back" + ext))
        let before = try Convert.tensors(source), after = try Convert.tensors(dir.file("back" + ext))
        #expect(Set(before.keys) == Set(after.keys), "names differ: \(Set(before.keys).symmetricDifference(after.keys).sorted().prefix(6))")
        let differing = before.filter { after[$0.key] != $0.value }.map(\.key).sorted()
        #expect(differing.isEmpty, "tensors that changed: \(differing.prefix(6))")
        if chain.source == .original {
            #expect(before.keys.filter { $0.hasSuffix("attn2.mask") }.count == 2)
        }
    }

    @Test("the masks are checked against the lower-triangular table: dropped when equal, refused when not or when copies differ")
    func masks() throws {
        let dir = TemporaryDirectory()
        let view = try VQSynth.open(try VQSynth.write(.original, dir.file("o.pt")))
        let plan = try view.plan(to: .diffusers)
        #expect(plan.notes.contains { $0.contains("cross_attn.mask is not stored by the diffusers layout") && $0.contains("nothing is lost") })
        #expect(!plan.outputs.contains { $0.name.contains("mask") })
        #expect(view.tensors.filter { $0.name == "cross_attn.mask" }.count == 1)

        // One mask entry changed in every block: not the table.
        func edited(_ blocks: Set<Int>, _ name: String) throws -> String {
            let checkpoint = try Checkpoint.open(dir.file("o.pt"))
            let outputs = checkpoint.tensors.map { tensor -> OutputTensor in
                guard tensor.name.hasSuffix("attn2.mask"), blocks.contains(where: { tensor.name.contains("blocks.\($0).") }) else {
                    return OutputTensor(name: tensor.name, tensor: tensor)
                }
                return OutputTensor(name: tensor.name, dtype: .f32, shape: tensor.shape) { sink in
                    var values = try tensor.float32()
                    values[1] = 1  // above the diagonal
                    try values.withUnsafeBytes { try sink.write($0) }
                }
            }
            try SafetensorsWriter.write(outputs, to: dir.file(name))
            return dir.file(name)
        }
        let wrong = try VQSynth.open(try edited([0, 1], "wrong.safetensors"))
        #expect { try wrong.plan(to: .diffusers) } throws: {
            guard case ModelError.tableDiffers(let tensor, .diffusers, _, _, _) = $0 else { return false }
            return tensor == "cross_attn.mask"
        }
        #expect(try wrong.plan(to: .diffusers, options: ConversionOptions(drop: ["cross_attn.mask"])).notes.contains("dropped cross_attn.mask (allowed to drop)"))
        #expect { try VQSynth.open(try edited([1], "differ.safetensors")) } throws: {
            guard case ModelError.copiesDiffer(_, let tensor, let blocks) = $0 else { return false }
            return tensor == "blocks.0.attn2.mask" && blocks == [1]
        }
    }

    @Test("config inference: heads from config.json, assumed from a preset or a head dimension, or --heads; diffusers numerics")
    func inference() throws {
        let dir = TemporaryDirectory()
        let original = try VQSynth.open(try VQSynth.write(.original, dir.file("o.pt")))
        var expected = VQSynth.tiny.config
        expected.sourceLayout = .original
        #expect(original.config == expected)
        #expect(original.assumptions.contains { $0.field == "num_heads" && $0.value == "4" })
        #expect(original.assumptions.contains { $0.field == "context_length" })
        let heads = try VQSynth.open(dir.file("o.pt"), VQDiffusionFamily.self, ModelOptions(heads: 8))
        #expect(heads.config.numHeads == 8 && !heads.assumptions.contains { $0.field == "num_heads" })

        let diffusers = try VQSynth.open(try VQSynth.write(.diffusers, dir.file("d"), componentOnly: true))
        #expect(diffusers.config.output == .logProbs && diffusers.config.lateTimesteps == .refuse && diffusers.config.activation == .sigmoidGELU)
        #expect(!diffusers.assumptions.contains { $0.field == "num_heads" })
        #expect(diffusers.notes.contains { $0.contains("norm_type \"layer_norm\"") })

        // config.json: norm_eps reaches norm3 only; activation_fn; a disagreeing size is named.
        func rewrite(_ edit: (inout [(String, JSONValue)]) -> Void) throws -> ModelView<VQDiffusionFamily> {
            var pairs = VQDiffusionFamily.diffusersConfig(VQSynth.tiny.config).objectValue!
            edit(&pairs)
            try (JSONValue.object(pairs).serialized() + "\n").write(toFile: dir.file("d/config.json"), atomically: true, encoding: .utf8)
            return try VQSynth.open(dir.file("d"))
        }
        let eps = try rewrite { pairs in
            pairs = pairs.map { $0.0 == "norm_eps" ? ($0.0, .double(1e-6)) : $0.0 == "activation_fn" ? ($0.0, .string("gelu")) : $0 }
        }
        #expect(eps.config.ffNormEps == 1e-6 && eps.config.adaNormEps == 1e-5 && eps.config.outNormEps == 1e-5 && eps.config.activation == .erfGELU)
        #expect { try rewrite { pairs in pairs = pairs.map { $0.0 == "num_layers" ? ($0.0, .int(3)) : $0 } } } throws: {
            "\($0)".contains("num_layers = 3 but the weights have 2")
        }
        #expect { try rewrite { pairs in pairs = pairs.map { $0.0 == "activation_fn" ? ($0.0, .string("geglu")) : $0 } } } throws: {
            "\($0)".contains("activation_fn")
        }
    }

    @Test("diffusers' config.json has every key diffusers 0.42 saves for the ITHQ transformer")
    func diffusersConfig() throws {
        let json = VQDiffusionFamily.diffusersConfig(VQDiffusionPresets.ithq.config)
        let keys = json.objectValue!.map(\.0)
        #expect(keys == [
            "_class_name", "_diffusers_version", "activation_fn", "attention_bias", "attention_head_dim", "attention_type",
            "caption_channels", "cross_attention_dim", "double_self_attention", "dropout", "in_channels", "interpolation_scale",
            "norm_elementwise_affine", "norm_eps", "norm_num_groups", "norm_type", "num_attention_heads", "num_embeds_ada_norm",
            "num_layers", "num_vector_embeds", "only_cross_attention", "out_channels", "patch_size", "sample_size",
            "upcast_attention", "use_additional_conditions", "use_linear_projection",
        ])
        #expect(json["num_vector_embeds"] == .int(4097) && json["attention_head_dim"] == .int(88) && json["num_attention_heads"] == .int(16))
        #expect(json["sample_size"] == .int(32) && json["num_embeds_ada_norm"] == .int(100) && json["activation_fn"] == .string("geglu-approximate"))
        #expect(json["cross_attention_dim"] == .int(512) && json["num_layers"] == .int(36))
    }

    @Test("what diffusers cannot hold is named: a non-square latent, a non-4·D MLP")
    func refusals() throws {
        var config = VQSynth.tiny.config
        config.width = 8
        #expect { try VQSynth.plan(.diffusers, config: config) } throws: {
            guard case ModelError.lossy(let text) = $0 else { return false }
            return text.contains("square latent")
        }
        #expect(try VQSynth.plan(.original, config: config).outputs.count == 65)
    }

    @Test("params: ITHQ 1015 tensors, 1,359,274,624 numbers in diffusers; 1051, 1,397,023,360 original (masks frozen); embeddings 39,424")
    func params() throws {
        let ithq = try #require(ModelFamilies.preset(named: "ITHQ"))
        #expect(ithq.familyName == "vq-diffusion" && ithq.layout == .original)
        let c = VQDiffusionPresets.ithq.config
        #expect(VQDiffusionFamily.sourceTensors(.diffusers, config: c).count == 1015)
        #expect(ParameterCount(config: c, layout: .diffusers).total == 1_359_274_624)
        #expect(VQDiffusionFamily.sourceTensors(.original, config: c).count == 1051)
        let original = ParameterCount(config: c, layout: .original)
        #expect(original.total == 1_397_023_360 && original.trainable == 1_359_274_624 && original.frozen == 36 * 1024 * 1024)
        #expect(ParameterCount(config: c, layout: .canonical).total == 1_359_274_624)
        #expect(VQDiffusionFamily.canonicalTensors(c).count == 1015)
        // 28 tensors and 37,434,496 numbers per block; 7 tensors and 11,632,768 outside.
        let perBlock = VQDiffusionFamily.canonical.filter(\.perBlock)
        #expect(perBlock.count == 28 && perBlock.reduce(0) { $0 + $1.shape(c).reduce(1, *) } == 37_434_496)
        #expect(ithq.comparison?.count.total == 1_359_274_624)
        let embeddings = try #require(ModelFamilies.preset(named: "ITHQ-embeddings"))
        #expect(embeddings.familyName == "vq-diffusion-embeddings" && embeddings.count.total == 39_424)
    }

    @Test("the learned embeddings: original float64 ↔ canonical ↔ diffusers, bit-identical; dtype kept unless cast")
    func embeddings() throws {
        let dir = TemporaryDirectory()
        let view = try VQSynth.open(try VQSynth.bare(dir.file("model.pth")), VQEmbeddingsFamily.self)
        #expect(view.prefix == "transformer." && view.tensors.map(\.name) == ["embeddings"] && view.tensors[0].dtype == .f64)
        let source = try view.canonicalOutputs()[0].contiguousBytes()
        try VQSynth.convert(view, to: .canonical, dir.file("c.safetensors"))
        let canonical = try VQSynth.open(dir.file("c.safetensors"), VQEmbeddingsFamily.self)
        #expect(canonical.config.length == 77 && canonical.config.hiddenSize == 16)
        let toDiffusers = try VQSynth.convert(canonical, to: .diffusers, dir.file("d"), componentOnly: true)
        #expect(toDiffusers.notes.contains { $0.contains("casts empty_text_embed to float32") })
        let diffusers = try VQSynth.open(dir.file("d"), VQEmbeddingsFamily.self)
        #expect(diffusers.layout == .diffusers && diffusers.tensors[0].dtype == .f64)
        let config = try JSONParser.parse(try String(contentsOfFile: dir.file("d/config.json"), encoding: .utf8))
        #expect(config["learnable"] == .bool(true) && config["length"] == .int(77) && config["hidden_size"] == .int(16))
        try VQSynth.convert(diffusers, to: .original, dir.file("back.pt"))
        let back = try Convert.tensors(dir.file("back.pt"))
        #expect(Array(back.keys) == ["transformer.empty_text_embed"] && back["transformer.empty_text_embed"] == source)
        let cast = try diffusers.plan(to: .diffusers, options: ConversionOptions(dtype: .f32))
        #expect(cast.outputs[0].dtype == .f32 && cast.casts == ["embeddings: f64 → f32"])
        // A component folder of the embeddings is detected through the registry too.
        #expect(try ModelFamilies.open(try Checkpoint.open(dir.file("d"))).familyName == "vq-diffusion-embeddings")
        // In a pipeline folder, the component's own config.json is read (not the transformer's).
        try VQSynth.convert(diffusers, to: .diffusers, dir.file("p"))
        try VQSynth.write(.diffusers, dir.file("t"), componentOnly: true)
        try FileManager.default.copyItem(atPath: dir.file("t"), toPath: dir.file("p/transformer"))
        try #"{"_class_name": "VQDiffusionPipeline", "learned_classifier_free_sampling_embeddings": ["diffusers", "LearnedClassifierFreeSamplingEmbeddings"], "transformer": ["diffusers", "Transformer2DModel"]}"#
            .write(toFile: dir.file("p/model_index.json"), atomically: true, encoding: .utf8)
        let pipeline = try VQSynth.open(dir.file("p"), VQEmbeddingsFamily.self)
        #expect(pipeline.prefix == "learned_classifier_free_sampling_embeddings." && pipeline.config.length == 77)
        try #"{"_class_name": "LearnedClassifierFreeSamplingEmbeddings", "learnable": true, "hidden_size": 16, "length": 5}"#
            .write(toFile: dir.file("p/learned_classifier_free_sampling_embeddings/config.json"), atomically: true, encoding: .utf8)
        #expect { try VQSynth.open(dir.file("p"), VQEmbeddingsFamily.self) } throws: {
            "\($0)".contains("learned_classifier_free_sampling_embeddings/config.json") && "\($0)".contains("length = 5")
        }
        #expect(try VQSynth.open(dir.file("p")).config.depth == 2)
    }

    @Test("the config JSON round-trips, validates, and matches its branch of model-config.schema.json (and no other)")
    func configJSON() throws {
        let text = try #require(FileManager.default.contents(atPath: Fixtures.packageRoot + "/schemas/model-config.schema.json"))
        let schema = SchemaValidator(schema: try JSONParser.parse([UInt8](text)))
        for preset in VQDiffusionPresets.all {
            #expect(try VQDiffusionConfig(json: preset.config.json) == preset.config)
            #expect(preset.config.problems().isEmpty)
            #expect(schema.validate(preset.config.json).isEmpty, "\(schema.validate(preset.config.json))")
        }
        for preset in VQEmbeddingsFamily.presets { #expect(schema.validate(preset.config.json).isEmpty, "\(schema.validate(preset.config.json))") }
        #expect(schema.validate(try #require(DiTFamily.preset(named: "DiT-XL/2")).config.json).isEmpty)
        // A field of another family, or a missing one, is refused.
        var pairs = VQDiffusionPresets.ithq.config.json.objectValue!
        pairs.append(("patch_size", .int(2)))
        #expect(!schema.validate(.object(pairs)).isEmpty)
        #expect(!schema.validate(.object(VQDiffusionPresets.ithq.config.json.objectValue!.filter { $0.0 != "codes" })).isEmpty)
        var eps = VQDiffusionPresets.ithq.config.json.objectValue!
        eps = eps.map { $0.0 == "norm_eps" ? ($0.0, .object([("attention", .double(1e-6)), ("mlp", .double(1e-6)), ("final", .double(1e-6))])) : $0 }
        #expect(!schema.validate(.object(eps)).isEmpty)
    }
}
