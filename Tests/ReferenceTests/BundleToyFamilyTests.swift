import Checkpoints
import Foundation
import DitkitTestSupport
import Models
import Tensors
import Testing

// The whole-file machinery (ModelBundle) through the throwaway family of ThrowawayFamilyTests.swift: the family
// only declares which tensors beside its weights its code makes (the two hooks below), and a training checkpoint
// of it goes to a canonical folder and back with every tensor bit-identical.

extension ToyFamily {
    /// `sched` is a frozen table (0, 1, …, width − 1); `stats` training statistics.
    static func extraTensorRole(_ name: String) -> ExtraTensorRole? {
        if name.hasSuffix(".sched") { return ExtraTensorRole(kind: .table, description: "toy schedule", family: "toy", table: "sched") }
        if name.hasSuffix(".stats") { return ExtraTensorRole(kind: .statistics, description: "toy statistics", family: "toy") }
        return nil
    }

    static func extraTable(_ table: String, config: ToyConfig) -> (values: [Float], basis: String)? {
        table == "sched" ? ((0..<config.width).map(Float.init), "the toy schedule of width \(config.width)") : nil
    }
}

@Suite("ModelBundle with a throwaway family")
struct BundleToyFamilyTests {
    static let config = ToyConfig(width: 4, depth: 2, channels: 3)

    /// A toy training checkpoint: raw and EMA weights, a schedule and statistics beside the raw weights, Adam state.
    static func trainingCheckpoint(_ path: String, schedule: [Float] = [0, 1, 2, 3]) throws {
        func weights(_ seed: UInt64) throws -> [(String, TorchSaveValue)] {
            let plan = try ConversionPlan<ToyFamily>.make(
                canonical: Synthetic.canonicalOutputs(config, seed: seed), sources: [:], config: config, to: .original)
            return plan.outputs.map { ($0.name, .tensor($0)) }
        }
        func floats(_ name: String, _ values: [Float]) -> TorchSaveValue {
            .tensor(OutputTensor(name: name, dtype: .f32, shape: [values.count]) { sink in try values.withUnsafeBytes { try sink.write($0) } })
        }
        let model = try weights(1) + [("sched", floats("sched", schedule)), ("stats", floats("stats", [5, 6, 7, 8]))]
        let opt: TorchSaveValue = .dict([
            ("state", .dict([("0", .dict([("exp_avg", floats("a", [1, 2])), ("exp_avg_sq", floats("b", [3, 4]))]))])),
            ("param_groups", .dict([("0", .dict([("lr", .string("1e-4"))]))])),
        ])
        try TorchWriter.write(.dict([("step", .int(7)), ("model", .dict(model)), ("ema", .dict(try weights(2))), ("opt", opt)]), to: path)
    }

    @Test("components (EMA read by default, raw kept), extras classified by the family and the bundle")
    func components() throws {
        let dir = TemporaryDirectory()
        try Self.trainingCheckpoint(dir.file("train.pt"))
        let bundle = try ModelBundle.open(try Checkpoint.open(dir.file("train.pt")), families: [ToyFamily.self])
        #expect(bundle.components.map(\.name) == ["toy.model", "toy"])
        #expect(bundle.components.map(\.weights) == [.raw, .ema])
        #expect(bundle.selected.map(\.match.prefix) == ["ema."])
        #expect(bundle.components.allSatisfy { $0.view != nil && $0.tensorNames.count == 6 })
        #expect(bundle.extras.map(\.tensor.name) == ["model.sched", "model.stats", "opt.state.0.exp_avg", "opt.state.0.exp_avg_sq"])
        #expect(bundle.extras.map(\.role.kind) == [.table, .statistics, .optimizer, .optimizer])
        #expect(bundle.optimizers.count == 1 && bundle.optimizers[0].kind == "Adam" && bundle.optimizers[0].stateTensors == 2)
        #expect(bundle.trainingValues.map(\.0) == ["step"])
        let raw = try ModelBundle.open(try Checkpoint.open(dir.file("train.pt")), options: ModelOptions(key: "model"), families: [ToyFamily.self])
        #expect(raw.selected.map(\.match.prefix) == ["model."] && raw.components.map(\.name) == ["toy", "toy.ema"])
    }

    @Test("original → canonical folder → original: every tensor bit-identical, the schedule checked, dropped and recomputed")
    func roundTrip() throws {
        let dir = TemporaryDirectory()
        try Self.trainingCheckpoint(dir.file("train.pt"))
        let source = try Checkpoint.open(dir.file("train.pt"))
        let bundle = try ModelBundle.open(source, families: [ToyFamily.self])
        let written = try bundle.writeCanonical(to: dir.file("folder"))
        #expect(written.files == ["bundle.json", "toy.model.safetensors", "toy.safetensors", "extras.safetensors"])
        #expect(written.notes.contains { $0.contains("dropped, recomputed when written back") && $0.contains("sched") })
        #expect(written.notes.contains { $0.hasPrefix("toy statistics: 1 tensor") })
        let extras = try Checkpoint.open(dir.file("folder/extras.safetensors"))
        #expect(extras.tensors.map(\.name) == ["model.stats", "opt.state.0.exp_avg", "opt.state.0.exp_avg_sq"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["folder", "train.pt"], "no temporary left")

        let folder = try ModelBundle.openCanonicalFolder(dir.file("folder"), families: [ToyFamily.self])
        #expect(folder.components.map(\.name) == ["toy.model", "toy"])
        let back = try folder.writeWhole(to: dir.file("back.pt"))
        #expect(back.notes.contains { $0.contains("recomputed") && $0.contains("model.sched") })
        let rebuilt = try Checkpoint.open(dir.file("back.pt"))
        #expect(rebuilt.tensors.map(\.name) == source.tensors.map(\.name), "the source's order")
        for tensor in source.tensors {
            let other = try #require(rebuilt.tensor(named: tensor.name))
            #expect(try other.contiguousBytes() == tensor.contiguousBytes(), "\(tensor.name)")
            #expect(other.dtype == tensor.dtype && other.shape == tensor.shape)
        }
        #expect(rebuilt.values.contains { $0.path == "step" && $0.text == "7" })
    }

    @Test("a schedule buffer that is not the recomputed one stops the conversion, naming the buffer, index and values")
    func scheduleMismatch() throws {
        let dir = TemporaryDirectory()
        try Self.trainingCheckpoint(dir.file("train.pt"), schedule: [0, 1, 2.5, 3])
        let bundle = try ModelBundle.open(try Checkpoint.open(dir.file("train.pt")), families: [ToyFamily.self])
        #expect { try bundle.writeCanonical(to: dir.file("folder")) } throws: { error in
            guard case .bufferDiffers(let name, let index, let stored, let expected, _)? = error as? ModelError else { return false }
            return name == "model.sched" && index == 2 && stored == 2.5 && expected == 2
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("folder")))
    }
}
