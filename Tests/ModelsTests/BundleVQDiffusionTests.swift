import Checkpoints
import DitkitTestSupport
import Foundation
import Models
import Tensors
import Testing

/// Whole VQ-Diffusion files from fixtures/vq-diffusion (made by the real microsoft/VQ-Diffusion code and diffusers'
/// own conversion script); each test runs when its files are present.
@Suite("ModelBundle: whole VQ-Diffusion files")
struct BundleVQDiffusionTests {
    static let solver = "vq-diffusion/original/solver.pth"
    static let pipeline = "vq-diffusion/diffusers/pipeline"
    static func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: Fixtures.path(relative)) }

    @Test("the solver checkpoint's components, extras, optimizer and scheduler", .enabled(if: exists(solver)))
    func components() throws {
        let bundle = try ModelBundle.open(try Checkpoint.open(Fixtures.path(Self.solver)))
        let byPrefix = Dictionary(bundle.components.map { ($0.match.prefix, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byPrefix["model.transformer.transformer."]?.family == "vq-diffusion" && byPrefix["model.transformer.transformer."]?.weights == .raw)
        #expect(byPrefix["ema.transformer."]?.name == "vq-diffusion" && byPrefix["ema.transformer."]?.selected == true)
        #expect(byPrefix["model.transformer."]?.family == "vq-diffusion-embeddings" && byPrefix["model.transformer."]?.tensorNames == ["model.transformer.empty_text_embed"])
        #expect(byPrefix["ema."]?.name == "vq-diffusion-embeddings" && byPrefix["ema."]?.tensorNames == ["ema.empty_text_embed"])
        #expect(bundle.components.allSatisfy { $0.view != nil }, "\(bundle.components.compactMap(\.problem))")
        func kind(_ name: String) -> ExtraTensorRole.Kind? { bundle.extras.first { $0.tensor.name == name }?.role.kind }
        for buffer in VQDiffusionSchedule.bufferNames {
            #expect(kind("model.transformer." + buffer) == .table && kind("ema." + buffer) == .table, "\(buffer)")
        }
        #expect(kind("model.transformer.Lt_history") == .statistics && kind("ema.Lt_count") == .statistics)
        #expect(kind("model.transformer.condition_emb.token_embedding.weight") == .textEncoder)
        #expect(bundle.extras.filter { $0.role.kind == .optimizer }.count == 192)
        let optimizer = try #require(bundle.optimizers.first)
        #expect(optimizer.path == "optimizer_and_scheduler.none.optimizer.module" && optimizer.kind == "AdamW" && optimizer.stateTensors == 192)
        #expect(bundle.schedulers.first?.kind == "ReduceLROnPlateau with warmup")
        let values = Dictionary(bundle.trainingValues, uniquingKeysWith: { a, _ in a })
        #expect(values["last_epoch"] == "0" && values["last_iter"] == "0" && values["clip_grad_norm.max_norm"] == "0.5")
    }

    @Test("solver.pth → canonical folder → solver.pth: every tensor of the source bit-identical; the schedule checked and dropped",
          .enabled(if: exists(solver)))
    func roundTrip() throws {
        let source = try Checkpoint.open(Fixtures.path(Self.solver))
        let bundle = try ModelBundle.open(source)
        let dir = TemporaryDirectory()
        let written = try bundle.writeCanonical(to: dir.file("whole"))
        #expect(written.files.contains("vq-diffusion.safetensors") && written.files.contains("vq-diffusion.model.safetensors"))
        #expect(written.files.contains("vq-diffusion-embeddings.safetensors") && written.files.contains("extras.safetensors"))
        // The raw weights' buffers are the schedule bit for bit: dropped. Every non-weight tensor is accounted for.
        let manifest = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: dir.file("whole/bundle.json")))))
        let dropped = Set(manifest["dropped"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? [])
        #expect(VQDiffusionSchedule.bufferNames.allSatisfy { dropped.contains("model.transformer." + $0) })
        let extras = try Checkpoint.open(dir.file("whole/extras.safetensors"))
        #expect(extras.tensors.contains { $0.name == "model.transformer.Lt_history" })
        #expect(extras.tensors.contains { $0.name == "model.transformer.condition_emb.token_embedding.weight" })
        #expect(extras.tensors.allSatisfy { !dropped.contains($0.name) })
        #expect(written.notes.contains { $0.contains("dropped, recomputed when written back") })

        let back = try ModelBundle.openCanonicalFolder(dir.file("whole")).writeWhole(to: dir.file("solver.pth"))
        #expect(back.tensors == source.tensors.count)
        let rebuilt = try Checkpoint.open(dir.file("solver.pth"))
        #expect(rebuilt.tensors.map(\.name) == source.tensors.map(\.name))
        for tensor in source.tensors {
            let other = try #require(rebuilt.tensor(named: tensor.name))
            #expect(other.dtype == tensor.dtype && other.shape == tensor.shape, "\(tensor.name)")
            #expect(try other.contiguousBytes() == tensor.contiguousBytes(), "\(tensor.name)")
        }
    }

    @Test("solver.pth → a VQDiffusionPipeline folder: components, scheduler with the model's steps, the text tower named",
          .enabled(if: exists(solver)))
    func pipelineFromSolver() throws {
        let bundle = try ModelBundle.open(try Checkpoint.open(Fixtures.path(Self.solver)))
        let dir = TemporaryDirectory()
        let written = try bundle.writeDiffusers(to: dir.file("pipe"))
        let index = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: dir.file("pipe/model_index.json")))))
        #expect(index["_class_name"]?.stringValue == "VQDiffusionPipeline")
        #expect(index["learned_classifier_free_sampling_embeddings"] == .array([.string("diffusers"), .string("LearnedClassifierFreeSamplingEmbeddings")]))
        #expect(index["transformer"] == .array([.string("diffusers"), .string("Transformer2DModel")]))
        let scheduler = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: dir.file("pipe/scheduler/scheduler_config.json")))))
        #expect(scheduler["num_vec_classes"]?.intValue == 33 && scheduler["num_train_timesteps"]?.intValue == 10)
        #expect(written.notes.contains { $0.contains("was NOT converted") && $0.contains("model.transformer.condition_emb.") })
        // The transformer written is the EMA one: the same bytes diffusers' own conversion wrote; so is the VQ-VAE,
        // once its family reads the solver's content_codec (its quantizer EMA state dropped, each tensor named).
        var folders = ["transformer"]
        if bundle.components.contains(where: { $0.family == "vq-vae" }) {
            folders.append("vqvae")
            #expect(index["vqvae"] == .array([.string("diffusers"), .string("VQModel")]))
            #expect(written.notes.contains { $0.contains("quantize.cluster_size dropped: a diffusers pipeline does not store it") })
        }
        for folder in folders where Self.exists(Self.pipeline) {
            let ours = try Checkpoint.open(dir.file("pipe/" + folder))
            let theirs = try Checkpoint.open(Fixtures.path(Self.pipeline + "/" + folder))
            #expect(ours.tensors.count == theirs.tensors.count, "\(folder)")
            for tensor in theirs.tensors {
                #expect(try ours.tensor(named: tensor.name)?.contiguousBytes() == tensor.contiguousBytes(), "\(folder): \(tensor.name)")
            }
        }
    }

    @Test("a pipeline folder → canonical folder → pipeline keeps text_encoder/, tokenizer/, scheduler/ as they are",
          .enabled(if: exists(pipeline)))
    func pipelineRoundTrip() throws {
        let root = Fixtures.path(Self.pipeline)
        let bundle = try ModelBundle.open(try Checkpoint.open(root))
        #expect(bundle.extras.filter { $0.tensor.name.hasPrefix("text_encoder.") }.allSatisfy { $0.role.kind == .textEncoder })
        let dir = TemporaryDirectory()
        let canonical = try bundle.writeCanonical(to: dir.file("whole"))
        #expect(canonical.files.contains("pipeline/tokenizer/tokenizer.json") && canonical.files.contains("pipeline/text_encoder/model.safetensors"))
        let back = try ModelBundle.openCanonicalFolder(dir.file("whole")).writeDiffusers(to: dir.file("pipe"))
        for file in ["text_encoder/config.json", "text_encoder/model.safetensors", "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json",
                     "scheduler/scheduler_config.json"] {
            #expect(back.files.contains(file))
            #expect(FileManager.default.contents(atPath: dir.file("pipe/" + file)) == FileManager.default.contents(atPath: root + "/" + file), "\(file)")
        }
        let index = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: dir.file("pipe/model_index.json")))))
        #expect(index["text_encoder"] == .array([.string("transformers"), .string("CLIPTextModel")]))
        let source = try Checkpoint.open(root), rebuilt = try Checkpoint.open(dir.file("pipe"))
        for tensor in source.tensors where !tensor.name.hasPrefix("vqvae.") {
            #expect(try rebuilt.tensor(named: tensor.name)?.contiguousBytes() == tensor.contiguousBytes(), "\(tensor.name)")
        }
    }
}
