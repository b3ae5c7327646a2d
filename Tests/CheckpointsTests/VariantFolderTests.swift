import Checkpoints
import DitkitTestSupport
import Foundation
import Testing

/// Folders written by real diffusers `save_pretrained(variant=…)` (fixtures/generate/make_variants.py and
/// make_fixtures.py): with one variant and no default weights the folder opens as that variant and says so.
@Suite("variant-only diffusers folders")
struct VariantFolderTests {
    @Test("a folder holding only one variant opens as that variant, with a note naming it", arguments: [
        "checkpoints/diffusers/transformer-fp16", "checkpoints/diffusers/transformer-fp16-sharded",
        "checkpoints/diffusers/transformer-fp16-sharded-old", "variants/pipeline-fp16",
    ])
    func singleVariant(_ folder: String) throws {
        let checkpoint = try Checkpoint.open(Fixtures.path(folder))
        #expect(checkpoint.variant == "fp16")
        #expect(checkpoint.assumed.count == (folder.contains("pipeline") ? 2 : 1))  // a pipeline: transformer and vae
        #expect(checkpoint.assumed.allSatisfy { $0.contains("variant fp16") && $0.contains("only weight variant present") })
        #expect(checkpoint.assumed.allSatisfy { checkpoint.notes.contains($0) })
        let dit = checkpoint.tensors.filter { !$0.name.hasPrefix("vae.") }
        #expect(dit.count == 44 && dit.allSatisfy { $0.dtype == .f16 })
        // The same tensors as when the variant is asked for (then nothing is assumed).
        let asked = try Checkpoint.open(Fixtures.path(folder), options: OpenOptions(variant: "fp16"))
        #expect(asked.tensors.map(\.name) == checkpoint.tensors.map(\.name) && asked.assumed.isEmpty)
    }

    @Test("several variants and no default: the error lists them; asking for one reads it")
    func severalVariants() throws {
        let folder = Fixtures.path("variants/transformer-two-variants")
        #expect {
            try Checkpoint.open(folder)
        } throws: { error in
            guard case .variantNeeded(_, let variants)? = error as? CheckpointError else { return false }
            return variants == ["bf16", "fp16"]
        }
        #expect(try Checkpoint.open(folder, options: OpenOptions(variant: "bf16")).tensors.allSatisfy { $0.dtype == .bf16 })
        #expect(try Checkpoint.open(folder, options: OpenOptions(variant: "fp16")).tensors.allSatisfy { $0.dtype == .f16 })
    }

    @Test("default weights beside a variant: the default is read, nothing assumed")
    func defaultWins() throws {
        let dir = TemporaryDirectory()
        let folder = dir.file("t")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in ["config.json", "diffusion_pytorch_model.safetensors"] {
            try FileManager.default.copyItem(atPath: Fixtures.path("checkpoints/diffusers/transformer/" + name), toPath: folder + "/" + name)
        }
        try FileManager.default.copyItem(
            atPath: Fixtures.path("checkpoints/diffusers/transformer-fp16/diffusion_pytorch_model.fp16.safetensors"),
            toPath: folder + "/diffusion_pytorch_model.fp16.safetensors")
        let checkpoint = try Checkpoint.open(folder)
        #expect(checkpoint.variant == nil && checkpoint.assumed.isEmpty)
        #expect(checkpoint.tensors.allSatisfy { $0.dtype == .f32 })
    }

    @Test("inspect, params, convert and verify of a variant-only folder work without --variant and show the note")
    func commands() throws {
        let folder = "fixtures/variants/pipeline-fp16"
        let inspect = try DitkitBinary.run(["inspect", "--summary", folder])
        #expect(inspect.status == 0 && inspect.stdout.contains("variant fp16") && inspect.stdout.contains("only weight variant present"))
        let json = try DitkitBinary.run(["inspect", "--json", folder])
        #expect(try JSONParser.parse(json.stdout)["variant"]?.stringValue == "fp16")
        let params = try DitkitBinary.run(["params", "--heads", "2", folder])
        #expect(params.status == 0 && params.stdout.contains("only weight variant present"))
        let dir = TemporaryDirectory()
        let convert = try DitkitBinary.run(["convert", folder, "-o", dir.file("o.pt"), "--to", "original", "--heads", "2"])
        #expect(convert.status == 0, "\(convert.stderr)")
        #expect(convert.stdout.contains("only weight variant present"))
        let component = try DitkitBinary.run(["convert", "fixtures/checkpoints/diffusers/transformer-fp16", "-o", dir.file("c.safetensors"), "--to", "canonical", "--heads", "2"])
        #expect(component.status == 0, "\(component.stderr)")
        let verify = try DitkitBinary.run(["verify", folder, dir.file("o.pt"), "--heads", "2", "--semantics", "a"])
        #expect(verify.status == 0 && verify.stderr.contains("only weight variant present"), "\(verify.stdout)\(verify.stderr)")
        let several = try DitkitBinary.run(["inspect", "fixtures/variants/transformer-two-variants"])
        #expect(several.status == 3 && several.stderr.contains("bf16, fp16") && several.stderr.contains("--variant bf16"))
        // convert --variant V of a folder holding only another variant names what it has.
        let wrong = try DitkitBinary.run(["convert", "fixtures/checkpoints/diffusers/transformer-fp16", "-o", dir.file("x"), "--to", "diffusers", "--variant", "bf16", "--heads", "2"])
        #expect(wrong.status == 2 && wrong.stderr.contains("it has: fp16"), "\(wrong.stderr)")
    }
}
