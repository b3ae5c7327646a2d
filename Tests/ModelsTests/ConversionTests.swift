import Checkpoints
import Foundation
import Models
import Tensors
import DitkitTestSupport
import Testing

/// Converts through the library and reads the result back with the readers.
enum Convert {
    static func open(_ path: String, _ options: ModelOptions = ModelOptions(heads: 2), variant: String? = nil) throws -> ModelView<DiTFamily> {
        try ModelView<DiTFamily>.open(try Checkpoint.open(path, options: OpenOptions(variant: variant)), options: options)
    }

    @discardableResult
    static func run(_ view: ModelView<DiTFamily>, to target: TargetLayout, _ out: String, options: ConversionOptions = ConversionOptions(),
                    componentOnly: Bool = false, shardSize: Int? = nil) throws -> ConversionPlan<DiTFamily> {
        let plan = try view.plan(to: target, options: options)
        var export = ExportOptions()
        export.componentOnly = componentOnly
        export.shardSize = shardSize
        export.source = view.checkpoint
        export.sourceLayout = view.layout
        try Exporter.write(plan, to: out, options: export)
        return plan
    }

    /// Name → bytes of every tensor under `prefix` (prefix removed).
    static func tensors(_ path: String, prefix: String = "", variant: String? = nil) throws -> [String: [UInt8]] {
        let checkpoint = try Checkpoint.open(path, options: OpenOptions(variant: variant))
        var out: [String: [UInt8]] = [:]
        for t in checkpoint.tensors where t.name.hasPrefix(prefix) { out[String(t.name.dropFirst(prefix.count))] = try t.contiguousBytes() }
        return out
    }
}

@Suite("lossless conversion")
struct ConversionTests {
    struct RoundTrip: CustomStringConvertible, Sendable {
        let source: String
        let target: TargetLayout
        let prefix: String
        let output: String
        var componentOnly = false
        var description: String { "\(source) → canonical → \(target.rawValue)" }
    }

    static let roundTrips: [RoundTrip] = [
        RoundTrip(source: "checkpoints/original/tiny-dit.pt", target: .original, prefix: "", output: "x.pt"),
        RoundTrip(source: "checkpoints/original/tiny-dit-bf16.pt", target: .original, prefix: "", output: "x.pt"),
        RoundTrip(source: "checkpoints/original/tiny-dit.safetensors", target: .original, prefix: "", output: "x.safetensors"),
        RoundTrip(source: "checkpoints/diffusers/transformer", target: .diffusers, prefix: "", output: "x", componentOnly: true),
        RoundTrip(source: "checkpoints/diffusers/pipeline", target: .diffusers, prefix: "transformer.", output: "x"),
        RoundTrip(source: "checkpoints/cerebras/tiny-cerebras.pt", target: .cerebras, prefix: "model.model.", output: "x.pt"),
        RoundTrip(source: "checkpoints/cerebras/tiny-cerebras-bf16.pt", target: .cerebras, prefix: "model.model.", output: "x.pt"),
    ]

    @Test("X → canonical → X is bit-identical, tensor for tensor", arguments: roundTrips)
    func roundTrip(_ c: RoundTrip) throws {
        let dir = TemporaryDirectory()
        let view = try Convert.open(Fixtures.path(c.source))
        try Convert.run(view, to: .canonical, dir.file("c.safetensors"))
        let canonical = try Convert.open(dir.file("c.safetensors"), ModelOptions())
        #expect(canonical.config == view.config)
        try Convert.run(canonical, to: c.target, dir.file(c.output), componentOnly: c.componentOnly)
        let original = try Convert.tensors(Fixtures.path(c.source), prefix: c.prefix)
        let back = try Convert.tensors(dir.file(c.output), prefix: c.prefix)
        #expect(Set(back.keys) == Set(original.keys), "names differ: \(Set(back.keys).symmetricDifference(original.keys).sorted().prefix(6))")
        let differing = original.filter { back[$0.key] != $0.value }.map(\.key).sorted()
        #expect(differing.isEmpty, "tensors that changed: \(differing.prefix(6))")
    }

    @Test("the canonical file carries format, ditkit.canonical, ditkit.config, ditkit.source and one copy of every weight")
    func canonicalMetadata() throws {
        let dir = TemporaryDirectory()
        try Convert.run(try Convert.open(Fixtures.path("checkpoints/diffusers/transformer")), to: .canonical, dir.file("c.safetensors"))
        let file = try Checkpoint.open(dir.file("c.safetensors"))
        let metadata = Dictionary(file.metadata, uniquingKeysWith: { a, _ in a })
        #expect(metadata["format"] == "pt")
        #expect(metadata["ditkit.canonical"] == "1")
        let config = try JSONParser.parse(try #require(metadata["ditkit.config"]))
        #expect(config["timestep_shift"]?.intValue == 1)
        #expect(config["norm_eps"]?["mlp"]?.doubleValue == 1e-5)
        #expect(config["pos_embed"]?.stringValue == "computed")
        let source = try JSONParser.parse(try #require(metadata["ditkit.source"]))
        #expect(source["format"]?.stringValue == "diffusers-component" && source["scheme"]?.stringValue == "diffusers")
        #expect(file.tensors.count == 31)  // 2 patch + 4 t_embed + 1 y_embed + 2×10 block + 4 final; no copies, no pos_embed
        let schema = SchemaValidator(schema: try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: Fixtures.packageRoot + "/schemas/model-config.schema.json")))))
        #expect(schema.validate(config).isEmpty, "\(schema.validate(config))")
    }

    @Test("original ↔ diffusers ↔ original chains keep every weight; diffusers output equals the diffusers-made fixture")
    func chains() throws {
        let dir = TemporaryDirectory()
        let original = try Convert.open(Fixtures.path("checkpoints/original/tiny-dit.pt"))
        try Convert.run(original, to: .diffusers, dir.file("d"))
        let made = try Convert.tensors(dir.file("d/transformer"))
        let reference = try Convert.tensors(Fixtures.path("checkpoints/diffusers/transformer"))
        let same = made == reference
        #expect(same, "our diffusers tensors differ from the diffusers-made fixture")
        try Convert.run(try Convert.open(dir.file("d")), to: .original, dir.file("o.pt"))
        let back = try Convert.tensors(dir.file("o.pt")) == Convert.tensors(Fixtures.path("checkpoints/original/tiny-dit.pt"))
        #expect(back, "original → diffusers → original changed a tensor")
    }

    @Test("Cerebras ↔ original ↔ Cerebras: the ConvTranspose head maps exactly, frozen tables are recomputed (the timestep table within 1 ulp: libm's cos/sin against PyTorch's)")
    func cerebrasChain() throws {
        let dir = TemporaryDirectory()
        let cerebras = try Convert.open(Fixtures.path("checkpoints/cerebras/tiny-cerebras.pt"))
        let plan = try Convert.run(cerebras, to: .original, dir.file("o.pt"))
        #expect(plan.notes.contains { $0.contains("t_embed.table") && $0.contains("nothing is lost") })
        let original = try Convert.tensors(dir.file("o.pt"))
        #expect(original["final_layer.linear.weight"]?.count == 16 * 32 * 4)
        try Convert.run(try Convert.open(dir.file("o.pt")), to: .cerebras, dir.file("c.pt"))
        // The fixture holds the Model Zoo's own table (PyTorch's cos/sin); ditkit recomputes it with libm's, 1 ulp apart
        // in some entries, so that one tensor is compared in ulps and every other one bit for bit.
        let table = "model.model.timestep_embedding_layer.timestep_embedding"
        var back = try Convert.tensors(dir.file("c.pt")), fixture = try Convert.tensors(Fixtures.path("checkpoints/cerebras/tiny-cerebras.pt"))
        func floats(_ bytes: [UInt8]?) -> [Float] {
            guard let bytes else { return [] }
            return bytes.withUnsafeBytes { raw in (0..<bytes.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
        }
        let tableUlps = TableDifference(floats(back.removeValue(forKey: table)), floats(fixture.removeValue(forKey: table)), dtype: .f32).ulps
        #expect(tableUlps <= 1, "the timestep table came back \(tableUlps) ulps apart")
        #expect(back == fixture, "Cerebras → original → Cerebras changed a tensor")
    }

    @Test("bf16 Cerebras ↔ original ↔ Cerebras: tables stored in bf16 equal the recomputed ones rounded to bf16, and come back bit for bit")
    func cerebrasBF16Chain() throws {
        let dir = TemporaryDirectory()
        let plan = try Convert.run(try Convert.open(Fixtures.path("checkpoints/cerebras/tiny-cerebras-bf16.pt")), to: .original, dir.file("o.pt"))
        #expect(plan.notes.contains { $0.contains("t_embed.table") && $0.contains("nothing is lost") })
        try Convert.run(try Convert.open(dir.file("o.pt")), to: .cerebras, dir.file("c.pt"))
        let same = try Convert.tensors(dir.file("c.pt")) == Convert.tensors(Fixtures.path("checkpoints/cerebras/tiny-cerebras-bf16.pt"))
        #expect(same, "bf16 Cerebras → original → Cerebras changed a tensor")
    }

    @Test("what a target cannot hold is named: sigma channels, per-position head bias, a null-class row")
    func refusals() throws {
        let original = try Convert.open(Fixtures.path("checkpoints/original/tiny-dit.pt"))
        // A typed error the caller can match (a CLI advises its own flag, --drop-sigma).
        #expect { try original.plan(to: .cerebras) } throws: { error in
            guard case ModelError.sigmaChannels(.cerebras, 8, 4) = error else { return false }
            return "\(error)".contains("sigma channels")
        }
        #expect { try original.plan(to: .cerebras, options: ConversionOptions(dropSigma: true)) } throws: {
            "\($0)".contains("final.linear.bias differs across the 4 patch positions")
        }
    }

    @Test("--dtype casts round to nearest even and every cast is reported", arguments: [DType.bf16, .f16])
    func casts(_ dtype: DType) throws {
        let dir = TemporaryDirectory()
        let view = try Convert.open(Fixtures.path("checkpoints/original/tiny-dit.pt"))
        let plan = try Convert.run(view, to: .original, dir.file("x.pt"), options: ConversionOptions(dtype: dtype))
        #expect(plan.casts.count == 32)
        let cast = try Checkpoint.open(dir.file("x.pt"))
        let source = try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.pt"))
        for tensor in source.tensors {
            let mine = try #require(cast.tensor(named: tensor.name))
            #expect(mine.dtype == dtype)
            let expected: [UInt8] = try tensor.float32().flatMap { value -> [UInt8] in
                let bits = dtype == .bf16 ? DTypeConversion.bfloat16Bits(value) : DTypeConversion.halfBits(value)
                return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
            }
            let same = try mine.contiguousBytes() == expected
            #expect(same, "\(tensor.name)")
        }
        // The f16 and bf16 fixtures were cast by torch: our casts of the f32 weights must equal them bit for bit.
        let torchCast = try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit-\(dtype.rawValue).pt"))
        for tensor in torchCast.tensors {
            let same = try cast.tensor(named: tensor.name)!.contiguousBytes() == tensor.contiguousBytes()
            #expect(same, "\(tensor.name) differs from torch's \(dtype.rawValue) cast")
        }
    }

    @Test("diffusers output options: component only, shards with an index, a variant")
    func diffusersOptions() throws {
        let dir = TemporaryDirectory()
        let view = try Convert.open(Fixtures.path("checkpoints/original/tiny-dit.pt"))
        try Convert.run(view, to: .diffusers, dir.file("c"), componentOnly: true, shardSize: 64_000)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.file("c")).sorted()
        #expect(names.contains("config.json") && names.contains("diffusion_pytorch_model.safetensors.index.json"))
        #expect(names.filter { $0.hasSuffix(".safetensors") }.count >= 4)
        let same = try Convert.tensors(dir.file("c")) == Convert.tensors(Fixtures.path("checkpoints/diffusers/transformer"))
        #expect(same, "sharded output differs")
        let config = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: dir.file("c/config.json")))))
        #expect(config["norm_eps"]?.doubleValue == 1e-6)  // the original's MLP norm eps, kept exactly
        #expect(config["num_attention_heads"]?.intValue == 2 && config["attention_head_dim"]?.intValue == 16)
    }
}

@Suite("strict name mapping and config inference")
struct MappingTests {
    /// Writes the tiny original state dict with some names changed.
    static func edited(_ dir: TemporaryDirectory, rename: [String: String] = [:], remove: Set<String> = [], add: [String] = []) throws -> String {
        let source = try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.safetensors"))
        var outputs = source.tensors.filter { !remove.contains($0.name) }.map { OutputTensor(name: rename[$0.name] ?? $0.name, tensor: $0) }
        for name in add { outputs.append(OutputTensor(name: name, tensor: source.tensors[0])) }
        try SafetensorsWriter.write(outputs, to: dir.file("edited.safetensors"))
        return dir.file("edited.safetensors")
    }

    @Test("unmapped, missing and mis-shaped keys are reported together, with names")
    func strict() throws {
        let dir = TemporaryDirectory()
        let path = try Self.edited(dir, rename: ["blocks.1.mlp.fc2.bias": "blocks.1.mlp.fc3.bias"], remove: ["final_layer.linear.bias"], add: ["extra.thing"])
        #expect {
            try Convert.open(path)
        } throws: { error in
            let text = "\(error)"
            return text.contains("unmapped: blocks.1.mlp.fc3.bias") && text.contains("unmapped: extra.thing")
                && text.contains("missing: blocks.1.mlp.fc2.bias") && text.contains("missing: final_layer.linear.bias")
        }
    }

    @Test("a DDP prefix is recognised and reported; a training checkpoint reads ema unless --key model")
    func prefixes() throws {
        let ddp = try Convert.open(Fixtures.path("checkpoints/original/ddp-module.pt"))
        #expect(ddp.prefix == "module." && ddp.notes.contains { $0.contains("DistributedDataParallel") })
        let train = try Convert.open(Fixtures.path("checkpoints/original/train-ckpt.pt"))
        #expect(train.prefix == "ema.")
        let model = try Convert.open(Fixtures.path("checkpoints/original/train-ckpt.pt"), ModelOptions(key: "model", heads: 2))
        #expect(model.prefix == "model.")
        #expect { try Convert.open(Fixtures.path("checkpoints/original/train-ckpt.pt"), ModelOptions(key: "opt", heads: 2)) } throws: {
            guard case ModelError.noModelUnderKey(_, "opt", let found) = $0 else { return false }
            return found == ["model.", "ema."]
        }
    }

    @Test("config inference: sizes from shapes, heads from presets or --heads, semantics per source")
    func inference() throws {
        let original = try Convert.open(Fixtures.path("checkpoints/original/tiny-dit.pt"))
        #expect(original.config == {
            var c = DiTConfig(hiddenSize: 32, depth: 2, numHeads: 2, patchSize: 2, numClasses: 10, inputSize: 8)
            c.sourceLayout = .original
            return c
        }())
        #expect { try Convert.open(Fixtures.path("checkpoints/original/tiny-dit.pt"), ModelOptions()) } throws: {
            guard case ModelError.sizeNeeded(_, "num_heads", _) = $0 else { return false }
            return true
        }
        let diffusers = try Convert.open(Fixtures.path("checkpoints/diffusers/transformer"), ModelOptions())
        #expect(diffusers.config.timestepShift == 1 && diffusers.config.mlpNormEps == 1e-5 && diffusers.config.posEmbed == .computed)
        #expect(diffusers.config.numHeads == 2 && diffusers.config.inputSize == 8 && diffusers.config.numClasses == 10)
        let legacy = try Convert.open(Fixtures.path("checkpoints/diffusers/transformer-legacy"), ModelOptions())
        #expect(legacy.config.mlpNormEps == 1e-5 && legacy.notes.contains { $0.contains("no norm_eps") })
        let cerebras = try Convert.open(Fixtures.path("checkpoints/cerebras/tiny-cerebras.pt"))
        #expect(cerebras.config.gelu == .erf && cerebras.config.outputHead == .convTranspose && cerebras.config.timestepInput == .table)
        #expect(cerebras.config.outChannels == 4 && !cerebras.config.learnSigma)
    }

    @Test("diffusers' per-block embedder copies: equal copies are stored once; differing copies name their blocks")
    func embedderCopies() throws {
        let dir = TemporaryDirectory()
        let source = try Checkpoint.open(Fixtures.path("checkpoints/diffusers/transformer"))
        let other = "transformer_blocks.1.norm1.emb.timestep_embedder.linear_2.bias"
        let outputs = source.tensors.map { tensor -> OutputTensor in
            guard tensor.name == other else { return OutputTensor(name: tensor.name, tensor: tensor) }
            return OutputTensor(name: tensor.name, dtype: .f32, shape: tensor.shape) { sink in
                var bytes = try tensor.contiguousBytes()
                bytes[0] ^= 1
                try sink.write(bytes)
            }
        }
        try FileManager.default.createDirectory(atPath: dir.file("m"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.path("checkpoints/diffusers/transformer/config.json"), toPath: dir.file("m/config.json"))
        try SafetensorsWriter.write(outputs, to: dir.file("m/diffusion_pytorch_model.safetensors"))
        #expect { try Convert.open(dir.file("m"), ModelOptions()) } throws: { error in
            guard case ModelError.copiesDiffer(_, _, [1]) = error else { return false }
            return "\(error)".contains("differ from block 0's in blocks 1")
        }
        let chosen = try Convert.open(dir.file("m"), ModelOptions(embedderBlock: 1))
        guard case .tensor(let t)? = chosen.tensor("t_embed.fc2.bias") else { Issue.record("no t_embed.fc2.bias"); return }
        #expect(t.name == other)
    }
}
