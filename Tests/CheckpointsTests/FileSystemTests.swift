import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

/// The path rules: plain names, no symlink out of a checkpoint folder, no FIFO, removal that never follows a
/// link, an output swapped in whole, an output that overlaps its input refused.
@Suite("file system rules for hostile paths")
struct FileSystemTests {
    static let fm = FileManager.default

    /// A victim folder holding one file, to check that nothing reached it.
    static func victim(in dir: TemporaryDirectory) throws -> String {
        try fm.createDirectory(atPath: dir.file("victim"), withIntermediateDirectories: true)
        try "precious".write(toFile: dir.file("victim/keep.txt"), atomically: true, encoding: .utf8)
        return dir.file("victim")
    }

    static func intact(_ victim: String) -> Bool {
        (try? String(contentsOfFile: victim + "/keep.txt", encoding: .utf8)) == "precious"
    }

    @Test("plain names: no separator, no dot entries, not empty, no NUL", arguments: [
        ("transformer", true), ("diffusion_pytorch_model-00001-of-00002.safetensors", true), (".hidden", true),
        ("../x", false), ("..", false), (".", false), ("", false), ("a/b", false), ("/etc/passwd", false),
        ("x\0/../y", false), ("..\\x", true),
    ])
    func plainNames(_ c: (String, Bool)) {
        #expect(FileSystem.isPlainName(c.0) == c.1, "\(c.0.debugDescription)")
    }

    @Test("removeTree removes a symlink itself, never what it points to, and never recurses through one")
    func removeTreeKeepsLinkTargets() throws {
        let dir = TemporaryDirectory()
        let victim = try Self.victim(in: dir)
        let out = dir.file("out")
        try Self.fm.createDirectory(atPath: out + "/sub", withIntermediateDirectories: true)
        try Self.fm.createSymbolicLink(atPath: out + "/link-to-folder", withDestinationPath: victim)
        try Self.fm.createSymbolicLink(atPath: out + "/sub/link-to-file", withDestinationPath: victim + "/keep.txt")
        try "x".write(toFile: out + "/sub/own.txt", atomically: true, encoding: .utf8)
        FileSystem.removeTree(out)
        #expect(!FileSystem.exists(out))
        #expect(Self.intact(victim))

        try Self.fm.createSymbolicLink(atPath: dir.file("as-link"), withDestinationPath: victim)
        FileSystem.removeTree(dir.file("as-link"))
        #expect(!FileSystem.exists(dir.file("as-link")) && Self.intact(victim), "a link given as the tree is unlinked, not emptied")
    }

    @Test("replaceFolder swaps a complete folder in, replaces a symlink destination itself, leaves no temporary")
    func replaceFolder() throws {
        let dir = TemporaryDirectory()
        let victim = try Self.victim(in: dir)
        for destinationIsLink in [false, true] {
            let out = dir.file("out")
            if destinationIsLink {
                try Self.fm.createSymbolicLink(atPath: out, withDestinationPath: victim)
            } else {
                try Self.fm.createDirectory(atPath: out, withIntermediateDirectories: true)
                try Self.fm.createSymbolicLink(atPath: out + "/inner-link", withDestinationPath: victim)
            }
            let staged = try FileSystem.temporaryDirectory(beside: out)
            try "new".write(toFile: staged + "/model_index.json", atomically: true, encoding: .utf8)
            #expect(throws: CheckpointError.self) { try FileSystem.replaceFolder(out, with: staged, overwrite: false) }
            #expect(!FileSystem.exists(staged), "the staged folder is removed when refused")
            let again = try FileSystem.temporaryDirectory(beside: out)
            try "new".write(toFile: again + "/model_index.json", atomically: true, encoding: .utf8)
            try FileSystem.replaceFolder(out, with: again, overwrite: true)
            #expect(try String(contentsOfFile: out + "/model_index.json", encoding: .utf8) == "new")
            #expect(Self.intact(victim), destinationIsLink ? "OUT as a symlink" : "a symlink inside OUT")
            #expect(try Self.fm.contentsOfDirectory(atPath: dir.path).sorted() == ["out", "victim"], "no temporary left")
            FileSystem.removeTree(out)
        }
    }

    @Test("realPath resolves the existing part and appends the rest; overlap refuses same, containing, inside")
    func overlap() throws {
        let dir = TemporaryDirectory()
        try Self.fm.createDirectory(atPath: dir.file("src/transformer"), withIntermediateDirectories: true)
        try Self.fm.createSymbolicLink(atPath: dir.file("alias"), withDestinationPath: dir.file("src"))
        let real = FileSystem.realPath(dir.path)
        #expect(FileSystem.realPath(dir.file("alias/transformer")) == real + "/src/transformer")
        #expect(FileSystem.realPath(dir.file("alias/new/../other")) == real + "/src/other")
        #expect(FileSystem.overlap(output: dir.file("alias"), input: dir.file("src"))?.contains("is the input") == true)
        #expect(FileSystem.overlap(output: dir.file("alias"), input: dir.file("src/transformer"))?.contains("contains the input") == true)
        #expect(FileSystem.overlap(output: dir.file("src/transformer/out"), input: dir.file("alias"))?.contains("inside the input") == true)
        #expect(FileSystem.overlap(output: "/", input: dir.file("src")) != nil)
        #expect(FileSystem.overlap(output: dir.file("srcx"), input: dir.file("src")) == nil, "a shared name prefix is not containment")
        #expect(FileSystem.overlap(output: dir.file("out"), input: dir.file("src")) == nil)
    }

    @Test("entry: a link inside the folder is followed, one out of it is refused, a FIFO is refused without opening it")
    func entries() throws {
        let dir = TemporaryDirectory()
        let victim = try Self.victim(in: dir)
        let root = dir.file("ckpt")
        try Self.fm.createDirectory(atPath: root + "/sub", withIntermediateDirectories: true)
        try "{}".write(toFile: root + "/sub/real.json", atomically: true, encoding: .utf8)
        try Self.fm.createSymbolicLink(atPath: root + "/inside.json", withDestinationPath: "sub/real.json")
        try Self.fm.createSymbolicLink(atPath: root + "/outside.json", withDestinationPath: victim + "/keep.txt")
        try Self.fm.createSymbolicLink(atPath: root + "/dangling.json", withDestinationPath: "nowhere")
        #expect(mkfifo(root + "/fifo.json", 0o644) == 0)
        #expect(try FileSystem.entry(root + "/inside.json", root: root) == .file)
        #expect(try FileSystem.entry(root + "/sub", root: root) == .directory)
        #expect(try FileSystem.entry(root + "/missing.json", root: root) == nil)
        #expect(try FileSystem.entry(root + "/dangling.json", root: root) == nil)
        #expect {
            try FileSystem.entry(root + "/outside.json", root: root)
        } throws: { error in
            guard let error = error as? CheckpointError, case .escapes = error else { return false }
            return error.kind == .hostile && "\(error)".contains("outside.json") && "\(error)".contains("keep.txt")
        }
        #expect {
            try FileSystem.entry(root + "/fifo.json", root: root)
        } throws: { error in
            "\(error)".contains("named pipe") && (error as? CheckpointError)?.exitCode == 3
        }
    }

    @Test("a Hugging Face cache snapshot may link into its own repository's blobs/, not further")
    func huggingFaceCache() throws {
        let dir = TemporaryDirectory()
        let repo = dir.file("hub/models--org--dit")
        try Self.fm.createDirectory(atPath: repo + "/blobs", withIntermediateDirectories: true)
        try Self.fm.createDirectory(atPath: repo + "/snapshots/abc123/vae", withIntermediateDirectories: true)
        try "{}".write(toFile: repo + "/blobs/0123", atomically: true, encoding: .utf8)
        try "{}".write(toFile: dir.file("hub/token"), atomically: true, encoding: .utf8)
        try Self.fm.createSymbolicLink(atPath: repo + "/snapshots/abc123/vae/config.json", withDestinationPath: "../../../blobs/0123")
        try Self.fm.createSymbolicLink(atPath: repo + "/snapshots/abc123/vae/token.json", withDestinationPath: "../../../../token")
        for root in [repo + "/snapshots/abc123", repo + "/snapshots/abc123/vae"] {
            #expect(try FileSystem.entry(repo + "/snapshots/abc123/vae/config.json", root: root) == .file)
            #expect(throws: CheckpointError.self) { try FileSystem.entry(repo + "/snapshots/abc123/vae/token.json", root: root) }
        }
    }
}
