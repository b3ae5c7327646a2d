import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

/// Every hostile or broken file is refused with exit code 3 and a message naming what is wrong; nothing
/// in a pickle is ever executed.
@Suite("Hostile and broken files")
struct HostileTests {
    struct Case: CustomStringConvertible, Sendable {
        let file: String
        /// Substrings the message must contain.
        let mentions: [String]
        /// Marker file the pickle would create if it were executed.
        let marker: String?
        var description: String { file }
    }

    static let cases: [Case] = [
        Case(file: "reduce-os-system.pt", mentions: ["HOSTILE", "os.system", "touch /tmp/ditkit-pwned-os", "data.pkl", "byte"], marker: "/tmp/ditkit-pwned-os"),
        Case(file: "reduce-eval.pt", mentions: ["HOSTILE", "builtins.eval", "nothing was executed"], marker: "/tmp/ditkit-pwned-eval"),
        Case(file: "reduce-subprocess.pt", mentions: ["HOSTILE", "subprocess.check_call"], marker: "/tmp/ditkit-pwned-subprocess"),
        Case(file: "reduce-os-system.pkl", mentions: ["HOSTILE", "os.system"], marker: "/tmp/ditkit-pwned-os"),
        Case(file: "reduce-legacy.pt", mentions: ["HOSTILE", "os.system", "legacy"], marker: "/tmp/ditkit-pwned-os"),
        Case(file: "truncated.pt", mentions: ["truncated", "end-of-central-directory"], marker: nil),
        Case(file: "entry-size-mismatch.pt", mentions: ["data/0", "64 bytes", "128 bytes"], marker: nil),
        Case(file: "view-past-storage.pt", mentions: ["tensor weight", "offset 12", "16 elements"], marker: nil),
        Case(file: "header-2e63.safetensors", mentions: ["9223372036854775808", "limit"], marker: nil),
        Case(file: "overlapping.safetensors", mentions: ["tensor b", "overlap", "[8, 24)"], marker: nil),
        Case(file: "duplicate-names.safetensors", mentions: ["\"a\"", "twice"], marker: nil),
        Case(file: "trailing-bytes.safetensors", mentions: ["16 trailing bytes"], marker: nil),
        Case(file: "size-mismatch.safetensors", mentions: ["tensor a", "20 bytes", "needs 24"], marker: nil),
        Case(file: "header-not-json.safetensors", mentions: ["header", "not valid JSON"], marker: nil),
        Case(file: "lfs-pointer.pt", mentions: ["git-lfs pointer", "2700000000", "git lfs pull"], marker: nil),
        Case(file: "empty.pt", mentions: ["empty file", "0 bytes"], marker: nil),
    ]

    @Test("every hostile fixture is covered by a case here")
    func allCovered() {
        let hostile = Fixtures.entries(kinds: ["hostile"]).map { $0.path.split(separator: "/").last.map(String.init)! }
        let covered = Set(Self.cases.map(\.file))
        #expect(Set(hostile).subtracting(covered).isEmpty, "uncovered: \(Set(hostile).subtracting(covered))")
    }

    @Test("refused with exit code 3 and a message naming the problem", arguments: cases)
    func refused(_ c: Case) throws {
        if let marker = c.marker { try? FileManager.default.removeItem(atPath: marker) }
        let path = Fixtures.path("checkpoints/hostile/" + c.file)
        for strict in [false, true] {
            #expect {
                try Checkpoint.open(path, options: OpenOptions(strict: strict))
            } throws: { error in
                guard let error = error as? CheckpointError else { return false }
                let text = error.description
                let missing = c.mentions.filter { !text.contains($0) }
                if !missing.isEmpty { Issue.record("message \"\(text)\" lacks \(missing)") }
                return error.exitCode == 3 && text.contains(path) && missing.isEmpty
            }
        }
        if let marker = c.marker {
            #expect(!FileManager.default.fileExists(atPath: marker), "the pickle's command ran")
        }
    }

    @Test("the CLI exits 3 with the message on stderr and executes nothing", arguments: cases.filter { $0.marker != nil })
    func cliRefuses(_ c: Case) throws {
        try? FileManager.default.removeItem(atPath: c.marker!)
        let result = try DitkitBinary.run(["inspect", "fixtures/checkpoints/hostile/" + c.file])
        #expect(result.status == 3)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("HOSTILE"))
        #expect(!FileManager.default.fileExists(atPath: c.marker!))
    }

    @Test("a whole pickled nn.Module is refused by default with advice, opens with --allow, is refused under --strict")
    func wholeModule() throws {
        let path = Fixtures.path("checkpoints/original/whole-module.pt")
        #expect {
            try Checkpoint.open(path)
        } throws: { error in
            guard let error = error as? CheckpointError, case .notAllowed(_, _, _, let callables, false) = error else { return false }
            let text = error.description
            // The library names the callable to allow in the error's payload; the CLI turns it into `--allow NAME`
            // (fixtures/hostile/pickle/cases.json, "whole module needs --allow").
            return error.exitCode == 3 && text.contains("unknown callable dit_original.DiT")
                && callables == ["dit_original.DiT"] && !text.contains("--") && text.contains("byte") && !text.contains("kept as")
        }
        let checkpoint = try Checkpoint.open(path, options: OpenOptions(allow: ["dit_original.DiT"]))
        #expect(checkpoint.tensor(named: "blocks.1.mlp.fc2.weight")?.shape == [32, 128])
        #expect(checkpoint.tensor(named: "pos_embed")?.shape == [1, 16, 32])
        #expect(checkpoint.values.first { $0.path == "(root)" }?.kind == "dit_original.DiT")
        #expect {
            try Checkpoint.open(path, options: OpenOptions(strict: true, allow: ["dit_original.DiT"]))
        } throws: { error in
            (error as? CheckpointError)?.description.contains("dit_original.DiT") == true
        }
    }

    @Test("_rebuild_from_type_v2's inner function goes through the policy in plain pickles and zips, under --strict too",
          arguments: ["rebuild-from-type-os-system.pkl", "rebuild-from-type-os-system.pt"])
    func rebuildFromType(_ file: String) throws {
        for strict in [false, true] {
            #expect {
                try Checkpoint.open(Fixtures.packageRoot + "/fixtures/hostile/pickle/" + file, options: OpenOptions(strict: strict))
            } throws: { error in
                guard let error = error as? CheckpointError, case .hostile = error else { return false }
                return error.description.contains("os.system") && error.description.contains("_rebuild_from_type_v2")
            }
        }
    }

    @Test("shared containers are walked once; later references name the first path")
    func sharedContainers() throws {
        let checkpoint = try Checkpoint.open(Fixtures.packageRoot + "/fixtures/hostile/pickle/dag-list.pt")
        #expect(checkpoint.values.count < 200)
        #expect(checkpoint.values.contains { $0.kind == "reference" && $0.text.contains("<the object at 0>") })
    }

    @Test("TorchScript archives get their own message")
    func torchScript() throws {
        #expect {
            try Checkpoint.open(Fixtures.path("checkpoints/original/torchscript.pt"))
        } throws: { error in
            guard let error = error as? CheckpointError else { return false }
            return error.exitCode == 3 && error.description.contains("TorchScript") && error.description.contains("state_dict()")
        }
    }

    @Test("a missing path is an I/O error (exit 4)")
    func missing() throws {
        #expect {
            try Checkpoint.open("/nonexistent/ditkit/file.pt")
        } throws: { error in
            (error as? CheckpointError)?.exitCode == 4
        }
    }
}
