import Checkpoints
import Foundation
import TestSupport
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

    @Test("variants: only variant files present means a variant is required, and names it (no CLI flag in the library)")
    func variantRequired() throws {
        #expect {
            try Checkpoint.open(Fixtures.path("checkpoints/diffusers/transformer-fp16"))
        } throws: { error in
            guard case .variantNeeded(_, let variants)? = error as? CheckpointError else { return false }
            return variants == ["fp16"] && !"\(error)".contains("--")
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
}
