import Checkpoints
@testable import DitkitFuzzTargets
import Foundation
import DitkitTestSupport
import Tensors
import Testing

/// Every input the fuzzer ever found (`fuzz/regressions/<target>/`) replayed in this process through its target,
/// without sanitizers: a trap crashes the test runner, which is the failure we want to see. Inputs listed in
/// `fuzz/regressions/KNOWN-OPEN.txt` (found, reported, not fixed yet) are skipped; fixing one means deleting its line.
@Suite("Fuzz regressions (fuzz/regressions)")
struct FuzzRegressionTests {
    struct Input: CustomStringConvertible, Sendable {
        let target: String
        let file: String
        var description: String { "\(target)/\(file)" }
        var path: String { FuzzRegressionTests.root + "/" + description }
    }

    static let root = Fixtures.packageRoot + "/fuzz/regressions"

    /// `target/file` entries of KNOWN-OPEN.txt (a line's first word; `#` starts a comment).
    static let knownOpen: Set<String> = {
        let text = (try? String(contentsOfFile: root + "/KNOWN-OPEN.txt", encoding: .utf8)) ?? ""
        return Set(text.split(separator: "\n").compactMap { line in
            line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?
                .split(separator: " ").first.map(String.init)
        })
    }()

    static let inputs: [Input] = {
        let manager = FileManager.default
        let folders = ((try? manager.contentsOfDirectory(atPath: root)) ?? []).filter { manager.isDirectory(root + "/" + $0) }
        return folders.sorted().flatMap { folder in
            ((try? manager.contentsOfDirectory(atPath: root + "/" + folder)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
                .map { Input(target: folder, file: $0) }
        }
    }()

    @Test("every regression folder is a fuzz target")
    func folders() {
        for input in FuzzRegressionTests.inputs { #expect(FuzzTarget(rawValue: input.target) != nil, "\(input)") }
    }

    @Test("every KNOWN-OPEN.txt entry names a committed input")
    func knownOpenEntriesExist() {
        let committed = Set(FuzzRegressionTests.inputs.map(\.description))
        for entry in FuzzRegressionTests.knownOpen { #expect(committed.contains(entry), "\(entry) is listed but not in fuzz/regressions") }
    }

    @Test("replays without a trap", arguments: inputs.filter { !knownOpen.contains($0.description) })
    func replay(_ input: Input) throws {
        let target = try #require(FuzzTarget(rawValue: input.target))
        let bytes = try #require(FileManager.default.contents(atPath: input.path))
        target.run([UInt8](bytes))
    }
}

/// The harness itself: each target must reach the deep code with a valid input (a target that refuses everything
/// fuzzes nothing), and its builders must make what the readers accept.
@Suite("Fuzz targets reach the readers")
struct FuzzTargetTests {
    static func fixture(_ path: String) throws -> [UInt8] {
        [UInt8](try #require(FileManager.default.contents(atPath: Fixtures.path(path))))
    }

    /// `data.pkl` of a committed torch.save file.
    static func dataPickle(_ path: String) throws -> [UInt8] {
        let file = try MappedFile(path: Fixtures.path(path))
        let directory = try ZipDirectory(file: file)
        let entry = try #require(directory.entries.first { $0.name.hasSuffix("/data.pkl") })
        #expect(entry.isStored)
        return [UInt8](file.bytes[entry.dataOffset..<(entry.dataOffset + entry.compressedSize)])
    }

    @Test("valid inputs are accepted by every target")
    func accepted() throws {
        #expect(FuzzTarget.safetensors.run(try Self.fixture("checkpoints/original/tiny-dit.safetensors")) == .accepted)
        #expect(FuzzTarget.zip.run(try Self.fixture("checkpoints/original/tiny-dit.pt")) == .accepted)
        #expect(FuzzTarget.legacy.run(try Self.fixture("checkpoints/original/tiny-dit-legacy.pt")) == .accepted)
        #expect(FuzzTarget.legacy.run(Array(try Self.fixture("checkpoints/original/tiny-dit-legacy.pt").dropFirst(14))) == .accepted)
        // The pickle alone, with its storages rebuilt by the harness at the sizes the pickle declares.
        #expect(FuzzTarget.pickle.run(try Self.dataPickle("checkpoints/original/tiny-dit.pt")) == .accepted)
        #expect(FuzzTarget.trace.run(try Self.fixture("traces/orig-p2-s8/trace.safetensors")) == .accepted)
        #expect(FuzzTarget.hdf5.run(try Self.fixture("cerebras-mdl/dit-tiny-0.4-bf16.mdl")) == .accepted)
        #expect(FuzzTarget.hdf5.run(try Self.fixture("cerebras-mdl/object-0.5-benign.mdl")) == .accepted)
        let index = try Self.fixture("checkpoints/original/tiny-dit-sharded/model.safetensors.index.json")
        let config = Array(#"{"_class_name": "DiTTransformer2DModel", "sample_size": 8}"#.utf8)
        #expect(FuzzTarget.diffusers.run([] + FolderTargets.separator + config + FolderTargets.separator + index) == .accepted)
    }

    @Test("a listing claiming huge shapes becomes a small file that reaches config inference")
    func listing() throws {
        let listing = """
            x_embedder.proj.weight f32 64 4 2 2
            t_embedder.mlp.0.weight f32 64 256
            final_layer.linear.weight f32 32 64
            y_embedder.embedding_table.weight f32 1001 64
            blocks.0.attn.qkv.weight f32 192 64
            blocks.0.mlp.fc1.weight f32 4611686018427387904 64
            """
        guard case .refused(let reason) = FuzzTarget.listing.run(Array(listing.utf8)) else {
            Issue.record("an incomplete model was accepted")
            return
        }
        #expect(reason.contains("4611686018427387904") || reason.contains("missing"), "\(reason)")
    }

    @Test("a canonical config of a small model is opened and run forward")
    func canonical() throws {
        let config = """
            {"family": "dit", "hidden_size": 32, "depth": 2, "num_heads": 2, "patch_size": 2, "in_channels": 4,
             "out_channels": 8, "num_classes": 10, "null_class_row": true, "mlp_hidden": 128, "input_size": 8,
             "timestep_shift": 0, "gelu": "tanh", "output_head": "linear", "pos_embed": "stored"}
            """
        #expect(FuzzTarget.canonical.run(Array(config.utf8)) == .accepted)
    }

    @Test("the in-memory zip and state-dict pickle are what the readers expect")
    func builders() throws {
        // A stride-0 view may claim up to the expansion limit (16 × the file + 64 MiB of logical bytes) ...
        let pickle = TorchZip.stateDictPickle([("w", .f32, [2, 3], [3, 1], 6), ("big", .f32, [1 << 12, 1 << 12], [0, 0], 6)])
        let zip = TorchZip.archive(pickle: pickle, storages: [(TorchZip.storageKey(.f32), 24)])
        let checkpoint = try Checkpoint.open(Scratch.store("builders.pt", zip))
        #expect(checkpoint.tensors.map(\.name) == ["w", "big"])
        #expect(checkpoint.tensors.map(\.shape) == [[2, 3], [1 << 12, 1 << 12]])
        // ... and past it the file is an expansion bomb, refused when opened.
        let bomb = TorchZip.stateDictPickle([("big", .f32, [1 << 30, 1 << 30], [0, 0], 6)])
        let bombPath = Scratch.store("bomb.pt", TorchZip.archive(pickle: bomb, storages: [(TorchZip.storageKey(.f32), 24)]))
        #expect(throws: CheckpointError.self) { try Checkpoint.open(bombPath) }
        #expect(FolderTargets.split(Array("a\n@@\nb\n@@\nc\n@@\nd".utf8), separator: FolderTargets.separator, maxParts: 3)
            == [Array("a".utf8), Array("b".utf8), Array("c\n@@\nd".utf8)])
    }
}

extension FileManager {
    fileprivate func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
