import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

@Suite("diffusers folders")
struct DiffusersTests {
    @Test("a pipeline folder reads model_index.json and every component, tensors prefixed by component")
    func pipeline() throws {
        let checkpoint = try Checkpoint.open(Fixtures.path("checkpoints/diffusers/pipeline"))
        #expect(checkpoint.format == .diffusersPipeline)
        #expect(checkpoint.config("model_index.json")?["_class_name"]?.stringValue == "DiTPipeline")
        #expect(checkpoint.config("transformer/config.json")?["num_layers"]?.intValue == 2)
        #expect(checkpoint.config("scheduler/scheduler_config.json")?["_class_name"]?.stringValue == "DDIMScheduler")
        #expect(checkpoint.config("model_index.json")?["id2label"]?["0"]?.stringValue == "tench, Tinca tinca")
        #expect(checkpoint.tensor(named: "transformer.transformer_blocks.1.attn1.to_q.weight")?.shape == [32, 32])
        #expect(checkpoint.tensors.contains { $0.name.hasPrefix("vae.") })
    }

    @Test("variants: several variants and no default weights means a variant is required, and names them (no CLI flag in the library)")
    func variantRequired() throws {
        #expect {
            try Checkpoint.open(Fixtures.path("variants/transformer-two-variants"))
        } throws: { error in
            guard case .variantNeeded(_, let variants)? = error as? CheckpointError else { return false }
            return variants == ["bf16", "fp16"] && !"\(error)".contains("--")
        }
        for folder in ["transformer-fp16", "transformer-fp16-sharded", "transformer-fp16-sharded-old"] {
            let checkpoint = try Checkpoint.open(Fixtures.path("checkpoints/diffusers/" + folder), options: OpenOptions(variant: "fp16"))
            #expect(checkpoint.tensors.count == 44, "\(folder)")
            #expect(checkpoint.tensors.allSatisfy { $0.dtype == .f16 }, "\(folder)")
        }
    }

    @Test("an unknown variant lists what is there")
    func unknownVariant() throws {
        #expect {
            try Checkpoint.open(Fixtures.path("checkpoints/diffusers/transformer-fp16"), options: OpenOptions(variant: "bf16"))
        } throws: { error in
            let text = (error as? CheckpointError)?.description ?? ""
            return text.contains("variant 'bf16'") && text.contains("fp16")
        }
    }

    @Test("a missing shard and a missing config.json are named", arguments: [
        ("broken-missing-shard", "diffusion_pytorch_model-00002-of-00004.safetensors"),
        ("broken-no-config", "config.json"),
    ])
    func broken(_ c: (String, String)) throws {
        #expect {
            try Checkpoint.open(Fixtures.path("checkpoints/diffusers/" + c.0))
        } throws: { error in
            guard let error = error as? CheckpointError else { return false }
            if !error.description.contains(c.1) { Issue.record("\(error) lacks \(c.1)") }
            return error.exitCode == 3 && error.description.contains(c.1)
        }
    }

    @Test("legacy Transformer2DModel configs open like current ones")
    func legacyConfig() throws {
        let legacy = try Checkpoint.open(Fixtures.path("checkpoints/diffusers/transformer-legacy"))
        let current = try Checkpoint.open(Fixtures.path("checkpoints/diffusers/transformer"))
        #expect(legacy.config("config.json")?["_class_name"]?.stringValue == "Transformer2DModel")
        #expect(legacy.tensors.map(\.name) == current.tensors.map(\.name))
    }

    @Test("a model_index.json naming a missing component folder is an error naming it")
    func missingComponent() throws {
        let dir = TemporaryDirectory()
        try #"{"_class_name": "DiTPipeline", "transformer": ["diffusers", "DiTTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}"#
            .write(toFile: dir.file("model_index.json"), atomically: true, encoding: .utf8)
        #expect {
            try Checkpoint.open(dir.path)
        } throws: { error in
            let text = (error as? CheckpointError)?.description ?? ""
            return text.contains("transformer/") && text.contains("vae/")
        }
    }

    /// A copy of the fixture pipeline in `dir/name`, plus a victim component outside it (`dir/x`).
    static func pipelineCopy(in dir: TemporaryDirectory, name: String = "pipe") throws -> String {
        let root = dir.file(name)
        try FileManager.default.copyItem(atPath: Fixtures.path("checkpoints/diffusers/pipeline"), toPath: root)
        try FileManager.default.copyItem(atPath: Fixtures.path("checkpoints/diffusers/transformer"), toPath: dir.file("x"))
        return root
    }

    static func setIndex(_ root: String, extra: String) throws {
        try #"{"_class_name": "DiTPipeline", "scheduler": ["diffusers", "DDIMScheduler"], "#.appending(extra)
            .appending(#", "transformer": ["diffusers", "DiTTransformer2DModel"]}"#)
            .write(toFile: root + "/model_index.json", atomically: true, encoding: .utf8)
    }

    @Test("a component name that is not a plain name is refused before any path is built", arguments: [
        #""../x""#, #""..""#, #""""#, #""a/b""#, #""/etc""#, #""x\u0000/../../x""#,
    ])
    func componentNames(_ name: String) throws {
        let dir = TemporaryDirectory()
        let root = try Self.pipelineCopy(in: dir)
        try Self.setIndex(root, extra: "\(name): [\"diffusers\", \"DiTTransformer2DModel\"]")
        #expect {
            try Checkpoint.open(root)
        } throws: { error in
            guard let error = error as? CheckpointError, case .escapes = error else { return false }
            return error.exitCode == 3 && "\(error)".contains("model_index.json") && "\(error)".contains("plain name")
        }
    }

    @Test("a shard name that leads out of the folder is refused, naming the tensor", arguments: [
        "../../secret", "..", "", "/etc/passwd", "a\\u0000b",
    ])
    func shardNames(_ shard: String) throws {
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("c"), withIntermediateDirectories: true)
        try #"{"weight_map": {"w": "\#(shard)"}}"#.write(toFile: dir.file("c/diffusion_pytorch_model.safetensors.index.json"), atomically: true, encoding: .utf8)
        #expect {
            try Checkpoint.open(dir.file("c"))
        } throws: { error in
            guard let error = error as? CheckpointError, case .escapes = error else { return false }
            return "\(error)".contains("weight_map[\"w\"]")
        }
    }

    @Test("only the configs diffusers names are read: a token file beside them is not")
    func onlyNamedFiles() throws {
        let dir = TemporaryDirectory()
        let root = try Self.pipelineCopy(in: dir)
        try FileManager.default.createDirectory(atPath: root + "/tokenizer", withIntermediateDirectories: true)
        try #"{"hf_token": "hf_SECRET"}"#.write(toFile: root + "/tokenizer/token.json", atomically: true, encoding: .utf8)
        try #"{"hf_token": "hf_SECRET"}"#.write(toFile: root + "/scheduler/token.json", atomically: true, encoding: .utf8)
        try #"{"model_max_length": 77}"#.write(toFile: root + "/tokenizer/tokenizer_config.json", atomically: true, encoding: .utf8)
        try Self.setIndex(root, extra: #""tokenizer": ["transformers", "CLIPTokenizer"], "vae": ["diffusers", "AutoencoderKL"]"#)
        let checkpoint = try Checkpoint.open(root)
        #expect(!checkpoint.configs.contains { $0.0.contains("token.json") })
        #expect(!checkpoint.configs.map { $0.1.serialized() }.joined().contains("hf_SECRET"))
        #expect(checkpoint.config("tokenizer/tokenizer_config.json")?["model_max_length"]?.intValue == 77)
        #expect(checkpoint.config("scheduler/scheduler_config.json") != nil)
    }

    @Test("a config or weights file that links out of the folder, or is a FIFO, is refused without opening it")
    func linksAndPipes() throws {
        let dir = TemporaryDirectory()
        try #"{"hf_token": "hf_SECRET"}"#.write(toFile: dir.file("secret.json"), atomically: true, encoding: .utf8)
        let cases: [(String, (String) throws -> Void, String)] = [
            ("scheduler/scheduler_config.json", { try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: dir.file("secret.json")) }, "outside"),
            ("transformer/config.json", { try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: "../../secret.json") }, "outside"),
            ("transformer/config.json", { #expect(mkfifo($0, 0o644) == 0) }, "named pipe"),
            ("transformer/diffusion_pytorch_model.safetensors", { #expect(mkfifo($0, 0o644) == 0) }, "named pipe"),
        ]
        for (i, (file, make, expected)) in cases.enumerated() {
            let root = try Self.pipelineCopy(in: dir, name: "p\(i)")
            try FileManager.default.removeItem(atPath: root + "/" + file)
            try make(root + "/" + file)
            #expect {
                try Checkpoint.open(root)
            } throws: { error in
                "\(error)".contains(file) && "\(error)".contains(expected) && (error as? CheckpointError)?.exitCode == 3
            }
            try? FileManager.default.removeItem(atPath: dir.file("x"))
        }
    }

    @Test("an index naming 60,000 missing shards fails at once, naming the first few and the count")
    func manyMissingShards() throws {
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("c"), withIntermediateDirectories: true)
        let entries = (0..<60_000).map { "\"t\($0)\": \"s\($0).safetensors\"" }.joined(separator: ",")
        try #"{"weight_map": {\#(entries)}}"#.write(toFile: dir.file("c/diffusion_pytorch_model.safetensors.index.json"), atomically: true, encoding: .utf8)
        let start = Date()
        #expect {
            try Checkpoint.open(dir.file("c"))
        } throws: { error in
            let text = "\(error)"
            return text.contains("60000 of the 60000 shard file(s)") && text.contains("s0.safetensors") && text.contains("60000 tensor(s)")
                && text.count < 1000
        }
        #expect(Date().timeIntervalSince(start) < 3, "took \(Date().timeIntervalSince(start)) s")
    }
}
