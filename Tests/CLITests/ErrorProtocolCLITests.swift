import Checkpoints
import Foundation
import Models
import Tensors
import DitkitTestSupport
import Testing

/// One error protocol (issue 8, class 9): every error has a kind that maps to the exit code README's "Exit codes" gives and a message
/// naming the file. One bad input of each kind, through the CLI.
@Suite("error kinds → exit codes (DitkitError)")
struct ErrorProtocolCLITests {
    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let args: [String]
        let exit: Int32
        let mentions: [String]
        /// Files this case writes into its scratch folder before running (`{tmp}` in args).
        var setup: @Sendable (String) throws -> Void = { _ in }
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "usage: unknown layout", args: ["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", "{tmp}/x", "--to", "onnx"],
             exit: 2, mentions: ["--to"]),
        Case(name: "usage: unknown preset", args: ["synth", "NoSuchPreset", "--layout", "canonical", "-o", "{tmp}/x"],
             exit: 2, mentions: ["NoSuchPreset"]),
        Case(name: "usage: output is the input", args: ["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o",
             "fixtures/checkpoints/original/tiny-dit.pt", "--to", "original", "--heads", "2"], exit: 2, mentions: ["tiny-dit.pt", "is the input"]),
        Case(name: "unreadable: truncated zip", args: ["inspect", "fixtures/checkpoints/hostile/truncated.pt"],
             exit: 3, mentions: ["truncated.pt"]),
        Case(name: "unreadable: malformed config.json", args: ["inspect", "{tmp}/c"], exit: 3,
             mentions: ["{tmp}/c/config.json", "byte"],
             setup: { tmp in
                 try FileManager.default.createDirectory(atPath: tmp + "/c", withIntermediateDirectories: true)
                 try #"{"num_layers": "#.write(toFile: tmp + "/c/config.json", atomically: true, encoding: .utf8)
                 try FileManager.default.copyItem(
                     atPath: Fixtures.path("checkpoints/diffusers/transformer/diffusion_pytorch_model.safetensors"),
                     toPath: tmp + "/c/diffusion_pytorch_model.safetensors")
             }),
        Case(name: "hostile: pickle calls os.system", args: ["inspect", "fixtures/checkpoints/hostile/reduce-os-system.pt"],
             exit: 3, mentions: ["reduce-os-system.pt", "HOSTILE", "os.system"]),
        Case(name: "hostile: component escapes the pipeline", args: ["inspect", "{tmp}/p"], exit: 3,
             mentions: ["{tmp}/p/model_index.json", "HOSTILE", "\"../x\""],
             setup: { tmp in
                 try FileManager.default.createDirectory(atPath: tmp + "/p", withIntermediateDirectories: true)
                 try #"{"_class_name": "DiTPipeline", "../x": ["diffusers", "DiTTransformer2DModel"]}"#
                     .write(toFile: tmp + "/p/model_index.json", atomically: true, encoding: .utf8)
             }),
        Case(name: "I/O: missing file", args: ["inspect", "{tmp}/does-not-exist.safetensors"], exit: 4,
             mentions: ["{tmp}/does-not-exist.safetensors", "no such file"]),
        Case(name: "I/O: output folder cannot be created (its parent is a file)",
             args: ["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", "{tmp}/file/out.safetensors", "--to", "canonical", "--heads", "2"],
             exit: 4, mentions: ["{tmp}/file/out.safetensors", "Not a directory"],
             setup: { tmp in try "x".write(toFile: tmp + "/file", atomically: true, encoding: .utf8) }),
        Case(name: "I/O: output exists", args: ["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", "{tmp}/file", "--to", "canonical", "--heads", "2"],
             exit: 4, mentions: ["{tmp}/file", "--force"],
             setup: { tmp in try "x".write(toFile: tmp + "/file", atomically: true, encoding: .utf8) }),
        Case(name: "verification: two models that compute differently",
             args: ["verify", "fixtures/checkpoints/original/tiny-dit.pt", "fixtures/checkpoints/diffusers/transformer", "--heads", "2"],
             exit: 1, mentions: ["verification failed"]),
    ]

    @Test("each kind of bad input exits with its code and a message naming the cause", arguments: cases)
    func kinds(_ c: Case) throws {
        let scratch = TemporaryDirectory()
        try c.setup(scratch.path)
        let expand = { (text: String) in text.replacingOccurrences(of: "{tmp}", with: scratch.path) }
        let result = try DitkitBinary.run(c.args.map(expand), timeout: 60)
        #expect(!result.signaled && !result.timedOut)
        #expect(result.status == c.exit, "exit \(result.status), expected \(c.exit): \(result.stderr)")
        for text in c.mentions.map(expand) { #expect(result.stderr.contains(text), "stderr lacks \"\(text)\": \(result.stderr)") }
        #expect(!result.stderr.contains("internal error"))
    }

    @Test("every error type conforms and maps its kinds to the documented exit codes")
    func library() {
        #expect(ErrorKind.allCases.map(\.exitCode) == [1, 2, 3, 3, 4])
        let errors: [(any DitkitError, Int32)] = [
            (TensorsError.mapFailed(path: "/x", operation: "open", errno: 2), 4),
            (TensorsError.sizeOverflow(shape: [1 << 40, 1 << 40], dtype: .f32), 3),
            (CheckpointError.notFound(path: "/x"), 4), (CheckpointError.outputExists(path: "/x"), 4),
            (CheckpointError.malformed(path: "/x", location: "header", reason: "r"), 3),
            (CheckpointError.escapes(path: "/x", location: "component", reason: "r"), 3),
            (CheckpointError.hostile(path: "/x", location: "pickle", reason: "r"), 3),
            (PickleError.truncated(offset: 9, opcode: "BINUNICODE"), 3),
            (ModelError.unknownPreset("X", nearest: []), 2), (ModelError.config("c"), 3), (ModelError.mapping(path: "/x", problems: []), 3),
        ]
        for (error, code) in errors { #expect(error.kind.exitCode == code, "\(error)") }
        #expect {
            try JSONParser.parse("{\"a\": ")
        } throws: { error in
            (error as? any DitkitError)?.kind == .input && (error as? any DitkitError)?.location == "JSON byte 6"
        }
        #expect(CheckpointError.escapes(path: "/x", location: "component", reason: "r").kind == .hostile)
        #expect(CheckpointError.malformed(path: "/p", location: "entry a", reason: "r").file == "/p")
        #expect(PickleError.truncated(offset: 9, opcode: "X").location == "pickle byte 9")
        #expect(!"\(CheckpointError.outputExists(path: "/x"))".contains("--"), "the library names no CLI flag")
    }
}
