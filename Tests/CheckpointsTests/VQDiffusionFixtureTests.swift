import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

/// The VQ-Diffusion fixtures (made by the real microsoft/VQ-Diffusion code and diffusers' conversion script, see
/// fixtures/README.md) open with ditkit's existing container readers, with the tensor and number counts that
/// `fixtures/vq-diffusion/expected.json` recorded in Python. Family-level reading is tested elsewhere.
@Suite("VQ-Diffusion fixtures open")
struct VQDiffusionFixtureTests {
    static let root = Fixtures.path("vq-diffusion")

    static let expected: JSONValue = {
        let data = FileManager.default.contents(atPath: root + "/expected.json") ?? Data()
        return (try? JSONParser.parse([UInt8](data))) ?? .object([])
    }()

    static func files() -> [(String, JSONValue)] { expected["files"]?.objectValue ?? [] }

    /// (path relative to fixtures/vq-diffusion, tensors, numbers) for every weights file and trace.
    static let singleFiles: [FixtureCount] = {
        var out: [FixtureCount] = []
        for (path, entry) in files() {
            if path.hasSuffix(".safetensors"), let t = entry["tensors"]?.intValue, let n = entry["numbers"]?.intValue {
                out.append(FixtureCount(path: path, tensors: t, numbers: n))
            }
        }
        if let solver = expected["files"]?["original/solver.pth"]?["all_tensors"],
           let t = solver["tensors"]?.intValue, let n = solver["numbers"]?.intValue {
            out.append(FixtureCount(path: "original/solver.pth", tensors: t, numbers: n))
        }
        if let model = expected["files"]?["original/model.pth"],
           let t = model["tensors"]?.intValue, let n = model["numbers"]?.intValue {
            out.append(FixtureCount(path: "original/model.pth", tensors: t, numbers: n))
        }
        if let vq = expected["files"]?["original/vqvae.pth"]?["model"],
           let t = vq["tensors"]?.intValue, let n = vq["numbers"]?.intValue {
            out.append(FixtureCount(path: "original/vqvae.pth", tensors: t, numbers: n))
        }
        return out
    }()

    @Test("expected.json lists every file kind")
    func manifestComplete() {
        let paths = Set(Self.singleFiles.map(\.path))
        for p in ["original/solver.pth", "original/model.pth", "original/vqvae.pth",
                  "diffusers/transformer/diffusion_pytorch_model.safetensors",
                  "diffusers/learned_classifier_free_sampling_embeddings/diffusion_pytorch_model.safetensors",
                  "diffusers/vqvae/diffusion_pytorch_model.safetensors",
                  "diffusers/vqvae-old-names/diffusion_pytorch_model.safetensors",
                  "traces/transformer-original.safetensors", "traces/transformer-diffusers.safetensors",
                  "traces/transformer-original-late.safetensors", "traces/vqvae-original.safetensors",
                  "traces/vqvae-diffusers.safetensors"] {
            #expect(paths.contains(p), "\(p) in expected.json")
        }
    }

    @Test("every weights file and trace opens with the recorded tensor and number counts", arguments: singleFiles)
    func opens(_ fixture: FixtureCount) throws {
        let checkpoint = try Checkpoint.open(Self.root + "/" + fixture.path)
        #expect(checkpoint.tensors.count == fixture.tensors)
        #expect(checkpoint.elementCount == fixture.numbers)
    }

    @Test("component folders open as folders with the counts of their weights file",
          arguments: ["transformer", "learned_classifier_free_sampling_embeddings", "vqvae", "vqvae-old-names"])
    func componentFolder(_ name: String) throws {
        let entry = Self.expected["files"]?["diffusers/\(name)/diffusion_pytorch_model.safetensors"]
        let checkpoint = try Checkpoint.open(Self.root + "/diffusers/" + name)
        #expect(checkpoint.tensors.count == entry?["tensors"]?.intValue)
        #expect(checkpoint.elementCount == entry?["numbers"]?.intValue)
    }

    @Test("the pipeline folder opens with every component's tensors, prefixed by component")
    func pipeline() throws {
        let checkpoint = try Checkpoint.open(Self.root + "/diffusers/pipeline")
        #expect(checkpoint.format == .diffusersPipeline)
        #expect(checkpoint.config("model_index.json")?["_class_name"]?.stringValue == "VQDiffusionPipeline")
        var tensors = 0, numbers = 0
        for (path, entry) in Self.files() where path.hasPrefix("diffusers/pipeline/") && path.hasSuffix(".safetensors") {
            tensors += entry["tensors"]?.intValue ?? 0
            numbers += entry["numbers"]?.intValue ?? 0
        }
        #expect(tensors > 0)
        #expect(checkpoint.tensors.count == tensors)
        #expect(checkpoint.elementCount == numbers)
        #expect(checkpoint.tensor(named: "transformer.latent_image_embedding.emb.weight")?.shape == [33, 32])
        #expect(checkpoint.tensor(named: "learned_classifier_free_sampling_embeddings.embeddings")?.shape == [77, 512])
    }

    @Test("the solver checkpoint keeps model, ema one prefix shorter, and the float64 empty-text table")
    func solverLayout() throws {
        let checkpoint = try Checkpoint.open(Self.root + "/original/solver.pth")
        let model = checkpoint.tensor(named: "model.transformer.empty_text_embed")
        #expect(model?.shape == [77, 512])
        #expect(model?.dtype.rawValue == "f64")
        #expect(checkpoint.tensor(named: "ema.empty_text_embed")?.shape == [77, 512])
        #expect(checkpoint.tensor(named: "model.transformer.transformer.blocks.1.attn2.mask")?.shape == [1, 1, 16, 16])
        #expect(checkpoint.tensor(named: "ema.transformer.blocks.1.attn2.mask")?.shape == [1, 1, 16, 16])
    }
}

/// One fixture file and the counts Python recorded for it.
struct FixtureCount: Sendable, CustomTestStringConvertible {
    let path: String
    let tensors: Int
    let numbers: Int
    var testDescription: String { path }
}
