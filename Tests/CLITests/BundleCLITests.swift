import Checkpoints
import DitkitTestSupport
import Foundation
import Testing

@Suite("whole files: inspect, convert, params (end to end)")
struct BundleCLITests {
    static let solver = "fixtures/vq-diffusion/original/solver.pth"
    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: Fixtures.packageRoot + "/" + path) }

    @Test("inspect of a solver checkpoint shows every component, the extras by kind, the optimizer, scheduler and training state",
          .enabled(if: exists(solver)))
    func inspect() throws {
        let result = try DitkitBinary.run(["inspect", "--summary", Self.solver])
        #expect(result.status == 0, "\(result.stderr)")
        for expected in [
            "components (", "under \"model.transformer.transformer.\"", "under \"ema.transformer.\"", "EMA weights (read by default)",
            "under \"model.transformer.\": 1 tensors, raw weights", "VQ-Diffusion schedule buffer", "OpenAI CLIP text tower (condition_emb)",
            "VQ-Diffusion training statistics", "optimizer under \"optimizer_and_scheduler.none.optimizer.module\": AdamW",
            "scheduler under \"optimizer_and_scheduler.none.scheduler\": ReduceLROnPlateau with warmup", "last_epoch", "last_iter",
            "clip_grad_norm.max_norm",
        ] {
            #expect(result.stdout.contains(expected), "missing \(expected)")
        }
    }

    @Test("inspect --json of a whole file has a bundle valid against schemas/inspect.schema.json", .enabled(if: exists(solver)))
    func inspectJSON() throws {
        let schema = SchemaValidator(schema: try JSONParser.parse([UInt8](try #require(
            FileManager.default.contents(atPath: Fixtures.packageRoot + "/schemas/inspect.schema.json")))))
        for path in [Self.solver, "fixtures/checkpoints/original/train-ckpt.pt"] {
            let result = try DitkitBinary.run(["inspect", "--json", path])
            #expect(result.status == 0, "\(result.stderr)")
            let json = try JSONParser.parse(result.stdout)
            #expect(schema.validate(json).isEmpty, "\(schema.validate(json))")
            let bundle = try #require(json["bundle"])
            #expect((bundle["components"]?.arrayValue?.count ?? 0) >= 2)
            #expect(bundle["optimizers"]?.arrayValue?.first?["kind"]?.stringValue == "AdamW")
        }
        let single = try JSONParser.parse(try DitkitBinary.run(["inspect", "--json", "fixtures/checkpoints/original/tiny-dit.pt"]).stdout)
        #expect(single["bundle"] == nil, "a single model has no bundle")
    }

    @Test("a DiT training checkpoint: convert to a canonical folder and back, every tensor bit-identical; a .safetensors output stays one model")
    func ditRoundTrip() throws {
        let dir = TemporaryDirectory()
        let source = "fixtures/checkpoints/original/train-ckpt.pt"
        let whole = try DitkitBinary.run(["convert", source, "-o", dir.file("whole"), "--to", "canonical", "--heads", "2"])
        #expect(whole.status == 0, "\(whole.stderr)")
        #expect(whole.stdout.contains("canonical folder") && whole.stdout.contains("dit.model.safetensors") && whole.stdout.contains("extras.safetensors"))
        #expect(whole.stdout.contains("optimizer or scheduler state: 93 tensors"))
        let again = try DitkitBinary.run(["convert", source, "-o", dir.file("whole"), "--to", "canonical", "--heads", "2"])
        #expect(again.status == 4 && again.stderr.contains("--force"))
        let back = try DitkitBinary.run(["convert", dir.file("whole"), "-o", dir.file("back.pt"), "--to", "original"])
        #expect(back.status == 0, "\(back.stderr)")
        let a = try Checkpoint.open(Fixtures.path("checkpoints/original/train-ckpt.pt")), b = try Checkpoint.open(dir.file("back.pt"))
        #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
        for t in a.tensors { #expect(try b.tensor(named: t.name)?.contiguousBytes() == t.contiguousBytes(), "\(t.name)") }
        let wrong = try DitkitBinary.run(["convert", dir.file("whole"), "-o", dir.file("x"), "--to", "canonical"])
        #expect(wrong.status == 2 && wrong.stderr.contains("--to original"))
        let params = try DitkitBinary.run(["params", "--heads", "2", source])
        #expect(params.status == 0 && params.stdout.contains("under \"model.\"") && params.stdout.contains("under \"ema.\""))
    }

    @Test("convert solver.pth to a canonical folder, back, and to a pipeline folder; params per component", .enabled(if: exists(solver)))
    func solverFile() throws {
        let dir = TemporaryDirectory()
        let canonical = try DitkitBinary.run(["convert", Self.solver, "-o", dir.file("whole"), "--to", "canonical"])
        #expect(canonical.status == 0, "\(canonical.stderr)")
        #expect(canonical.stdout.contains("dropped, recomputed when written back"))
        #expect(canonical.stdout.contains("OpenAI CLIP text tower (condition_emb): 34 tensors"))
        let back = try DitkitBinary.run(["convert", dir.file("whole"), "-o", dir.file("solver.pth"), "--to", "original"])
        #expect(back.status == 0, "\(back.stderr)")
        let a = try Checkpoint.open(Fixtures.packageRoot + "/" + Self.solver), b = try Checkpoint.open(dir.file("solver.pth"))
        for t in a.tensors { #expect(try b.tensor(named: t.name)?.contiguousBytes() == t.contiguousBytes(), "\(t.name)") }
        let pipeline = try DitkitBinary.run(["convert", Self.solver, "-o", dir.file("pipe"), "--to", "diffusers"])
        #expect(pipeline.status == 0, "\(pipeline.stderr)")
        #expect(pipeline.stdout.contains("diffusers pipeline folder") && pipeline.stdout.contains("was NOT converted"))
        #expect(FileManager.default.fileExists(atPath: dir.file("pipe/scheduler/scheduler_config.json")))
        let params = try DitkitBinary.run(["params", Self.solver])
        #expect(params.status == 0, "\(params.stderr)")
        #expect(params.stdout.contains("under \"ema.transformer.\"") && params.stdout.contains("under \"model.transformer.transformer.\""))
        #expect(params.stdout.contains("39,424"))
    }
}
