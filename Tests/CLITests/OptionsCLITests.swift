import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

/// Options that say one thing each: closed choices listed in help and completion, `--variant` for the input in
/// every command, `--to` for the layout in convert and synth, the old spellings still accepted.
@Suite("ditkit options (end to end)")
struct OptionsCLITests {
    @Test("convert and synth --help list exactly the accepted layouts and dtypes; verify and trace list the semantics",
          arguments: ["convert", "synth"])
    func helpListsChoices(_ command: String) throws {
        // Help text wraps at any space: compare with every run of white space as one space.
        func words(_ text: String) -> String { text.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ") }
        let help = try DitkitBinary.run([command, "--help"])
        #expect(help.status == 0)
        #expect(words(help.stdout).contains("(values: canonical, original, diffusers, cerebras)"), "\(help.stdout)")
        #expect(words(help.stdout).contains("(values: f32, f16, bf16)"))
        #expect(!help.stdout.contains("i8") && !help.stdout.contains("--layout <"), "no other dtype, no deprecated option")
        #expect(help.stdout.contains("--output-variant") && help.stdout.contains("--to <layout>"))
        for other in ["verify", "trace"] {
            #expect(words(try DitkitBinary.run([other, "--help"]).stdout).contains("(values: original, diffusers, a, b)"))
        }
    }

    @Test("the bash completion script offers the layouts, dtypes and semantics as words")
    func completion() throws {
        let script = try DitkitBinary.run(["--generate-completion-script", "bash"])
        #expect(script.status == 0)
        for values in [["canonical", "original", "diffusers", "cerebras"], ["f32", "f16", "bf16"], ["original", "diffusers", "a", "b"]] {
            // The script's word list: 'canonical'$'\n''original'…
            let list = values.map { "'\($0)'" }.joined(separator: "$'\\n'")
            #expect(script.stdout.contains(list), "\(list)")
        }
    }

    @Test("convert --variant reads the source's variant, like every other command")
    func convertReadsVariant() throws {
        let dir = TemporaryDirectory()
        let source = "fixtures/checkpoints/diffusers/transformer-fp16-sharded"
        let result = try DitkitBinary.run(["convert", source, "--variant", "fp16", "-o", dir.file("c.safetensors"), "--to", "canonical"])
        #expect(result.status == 0, "\(result.stderr)")
        let written = try Checkpoint.open(dir.file("c.safetensors"))
        #expect(!written.tensors.isEmpty && written.tensors.allSatisfy { $0.dtype == .f16 })
        // The old spelling of the same option still works.
        let old = try DitkitBinary.run(["convert", source, "--source-variant", "fp16", "-o", dir.file("d.safetensors"), "--to", "canonical"])
        #expect(old.status == 0, "\(old.stderr)")
        let disagree = try DitkitBinary.run(["convert", source, "--variant", "fp16", "--source-variant", "bf16", "-o", dir.file("e"), "--to", "canonical"])
        #expect(disagree.status == 2 && disagree.stderr.contains("--source-variant"))
    }

    @Test("convert --variant V on a source without variant V is a usage error pointing to --output-variant",
          arguments: [
              ("fixtures/checkpoints/original/tiny-dit.pt", "fp16"),
              ("fixtures/checkpoints/diffusers/transformer", "fp16"),
              ("fixtures/checkpoints/diffusers/transformer-fp16-sharded", "bf16"),
          ])
    func convertVariantMissing(_ c: (source: String, variant: String)) throws {
        let dir = TemporaryDirectory()
        let result = try DitkitBinary.run(["convert", c.source, "-o", dir.file("x"), "--to", "diffusers", "--variant", c.variant, "--heads", "2"])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("--output-variant \(c.variant)") && result.stderr.contains(c.source))
        #expect(!FileManager.default.fileExists(atPath: dir.file("x")))
    }

    @Test("convert --output-variant names the written weights; it applies to --to diffusers only")
    func convertOutputVariant() throws {
        let dir = TemporaryDirectory()
        let out = dir.file("p")
        let result = try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", out, "--to", "diffusers",
                                           "--component-only", "--output-variant", "fp16", "--heads", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: out + "/diffusion_pytorch_model.fp16.safetensors"))
        #expect(try DitkitBinary.run(["inspect", "--summary", "--variant", "fp16", out]).status == 0)
        let canonical = try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("c"), "--to", "canonical",
                                              "--output-variant", "fp16", "--heads", "2"])
        #expect(canonical.status == 2 && canonical.stderr.contains("--output-variant"))
        let escape = try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("e"), "--to", "diffusers",
                                           "--output-variant", "a/b", "--heads", "2"])
        #expect(escape.status == 2 && escape.stderr.contains("a/b"))
    }

    @Test("synth takes --to, and --layout (its old spelling) writes the same bytes with a note on stderr")
    func synthLayoutAlias() throws {
        let dir = TemporaryDirectory()
        let new = try DitkitBinary.run(["synth", "DiT-S/8", "--to", "canonical", "--dtype", "bf16", "-o", dir.file("a.safetensors")])
        #expect(new.status == 0, "\(new.stderr)")
        let old = try DitkitBinary.run(["synth", "DiT-S/8", "--layout=canonical", "--dtype", "bf16", "-o", dir.file("b.safetensors")])
        #expect(old.status == 0, "\(old.stderr)")
        #expect(old.stderr.contains("--layout is deprecated; use --to"))
        #expect(FileManager.default.contents(atPath: dir.file("a.safetensors")) == FileManager.default.contents(atPath: dir.file("b.safetensors")))
        // Not an alias anywhere else, and a value is never rewritten.
        let convert = try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("x"), "--layout", "canonical"])
        #expect(convert.status == 2)
        let bad = try DitkitBinary.run(["synth", "DiT-S/8", "--to", "onnx", "-o", dir.file("y")])
        #expect(bad.status == 2 && bad.stderr.contains("--to") && bad.stderr.contains("canonical"))
    }
}
