import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

/// Hostile paths end to end (issue 8, class 8): `convert --force` never deletes or reads outside its input and
/// output, never destroys its input, never copies a secret; `inspect --json` prints only files the format names.
/// Symlinks cannot be committed as fixtures reliably, so every case is built here in a scratch folder.
@Suite("hostile paths through the CLI (symlinks, OUT vs input, names that escape)")
struct PathsCLITests {
    static let fm = FileManager.default

    /// A scratch folder with `src` (a copy of the fixture pipeline) and `victim/keep.txt` outside everything.
    struct Scene {
        let dir = TemporaryDirectory()
        var src: String { dir.file("src") }
        var victim: String { dir.file("victim") }
        var out: String { dir.file("out") }

        init() throws {
            try fm.copyItem(atPath: Fixtures.path("checkpoints/diffusers/pipeline"), toPath: dir.file("src"))
            try fm.createDirectory(atPath: dir.file("victim"), withIntermediateDirectories: true)
            try "precious".write(toFile: dir.file("victim/keep.txt"), atomically: true, encoding: .utf8)
        }

        var victimIntact: Bool { (try? String(contentsOfFile: victim + "/keep.txt", encoding: .utf8)) == "precious" }
        /// The source's files and their bytes, to prove the input was not touched.
        func snapshot(_ path: String) -> [String: Data] {
            var files: [String: Data] = [:]
            for name in (fm.subpaths(atPath: path) ?? []) { files[name] = fm.contents(atPath: path + "/" + name) }
            return files
        }
        /// Entries of the scratch folder that look like a temporary (`.out.tmp-…`).
        var temporaries: [String] { ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.contains(".tmp-") } }

        func convert(_ source: String, _ output: String, force: Bool = true) throws -> DitkitBinary.Result {
            try DitkitBinary.run(["convert", source, "-o", output, "--to", "diffusers"] + (force ? ["--force"] : []), timeout: 60)
        }
    }

    @Test("--force with a symlink inside OUT replaces OUT and leaves the link's target alone")
    func linkInsideOut() throws {
        let s = try Scene()
        try Self.fm.createDirectory(atPath: s.out, withIntermediateDirectories: true)
        try Self.fm.createSymbolicLink(atPath: s.out + "/vae", withDestinationPath: s.victim)
        try Self.fm.createSymbolicLink(atPath: s.out + "/keep.txt", withDestinationPath: s.victim + "/keep.txt")
        let result = try s.convert(s.src, s.out)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(s.victimIntact, "the victim folder was emptied through a symlink in OUT")
        #expect(FileSystem.isDirectory(s.out + "/transformer") && !FileSystem.exists(s.out + "/keep.txt"))
        #expect(s.temporaries.isEmpty, "\(s.temporaries)")
    }

    @Test("--force with OUT itself a symlink replaces the link, not the folder it points to")
    func outIsLink() throws {
        let s = try Scene()
        try Self.fm.createSymbolicLink(atPath: s.out, withDestinationPath: s.victim)
        let result = try s.convert(s.src, s.out)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(s.victimIntact)
        #expect(try Self.fm.contentsOfDirectory(atPath: s.victim) == ["keep.txt"], "nothing written into the link's target")
        #expect((try? Self.fm.destinationOfSymbolicLink(atPath: s.out)) == nil, "OUT is now the new folder")
        #expect(s.temporaries.isEmpty, "\(s.temporaries)")
    }

    @Test("an OUT that is, contains or lies inside the input is refused before any work (exit 2), input untouched",
          arguments: ["same", "input inside OUT", "OUT inside input", "OUT links to input"])
    func overlap(_ kind: String) throws {
        let s = try Scene()
        let before = s.snapshot(s.src)
        let (source, output): (String, String)
        switch kind {
        case "same": (source, output) = (s.src, s.src)
        case "input inside OUT": (source, output) = (s.src + "/transformer", s.src)
        case "OUT inside input": (source, output) = (s.src, s.src + "/transformer/converted")
        default:
            try Self.fm.createSymbolicLink(atPath: s.out, withDestinationPath: s.src)
            (source, output) = (s.src + "/transformer", s.out)
        }
        let result = try s.convert(source, output)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("input") && result.stderr.contains(output), "\(result.stderr)")
        #expect(s.snapshot(s.src) == before, "the input changed")
        #expect(s.temporaries.isEmpty && !FileSystem.exists(s.src + "/.transformer.tmp"))
    }

    @Test("an existing OUT without --force is refused before the source is read (exit 4, --force advised)")
    func existsBeforeWork() throws {
        let s = try Scene()
        try Self.fm.createDirectory(atPath: s.out, withIntermediateDirectories: true)
        let result = try s.convert(Fixtures.path("checkpoints/hostile/truncated.pt"), s.out, force: false)
        #expect(result.status == 4 && result.stderr.contains("--force") && result.stderr.contains(s.out), "\(result.stderr)")
    }

    @Test("a model_index.json component \"../x\" is refused (exit 3) and reads nothing outside the pipeline")
    func componentEscapes() throws {
        let s = try Scene()
        try Self.fm.copyItem(atPath: Fixtures.path("checkpoints/diffusers/transformer"), toPath: s.dir.file("x"))
        try #"{"_class_name": "DiTPipeline", "scheduler": ["diffusers", "DDIMScheduler"], "transformer": ["diffusers", "DiTTransformer2DModel"], "../x": ["diffusers", "DiTTransformer2DModel"]}"#
            .write(toFile: s.src + "/model_index.json", atomically: true, encoding: .utf8)
        for args in [["inspect", "--json", s.src], ["convert", s.src, "-o", s.out, "--to", "canonical"]] {
            let result = try DitkitBinary.run(args)
            #expect(result.status == 3, "\(args[0]): \(result.stderr)")
            #expect(result.stderr.contains("model_index.json") && result.stderr.contains("\"../x\""), "\(result.stderr)")
            #expect(!result.stdout.contains("../x."), "no tensor of ../x listed")
        }
        #expect(!FileSystem.exists(s.out))
    }

    @Test("a shard named \"../../secret\" is refused (exit 3) naming the index entry")
    func shardEscapes() throws {
        let s = try Scene()
        try "not a shard".write(toFile: s.dir.file("secret"), atomically: true, encoding: .utf8)
        try Self.fm.removeItem(atPath: s.src + "/transformer/diffusion_pytorch_model.safetensors")
        try #"{"metadata": {}, "weight_map": {"pos_embed.proj.weight": "../../secret"}}"#
            .write(toFile: s.src + "/transformer/diffusion_pytorch_model.safetensors.index.json", atomically: true, encoding: .utf8)
        let result = try DitkitBinary.run(["inspect", s.src])
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains("\"../../secret\"") && result.stderr.contains("weight_map[\"pos_embed.proj.weight\"]"), "\(result.stderr)")
    }

    @Test("inspect --json prints only the configs diffusers names: a token file beside them stays private")
    func tokenNotPrinted() throws {
        let s = try Scene()
        try #"{"token": "hf_SECRET_TOKEN"}"#.write(toFile: s.src + "/scheduler/token.json", atomically: true, encoding: .utf8)
        try #"{"token": "hf_SECRET_TOKEN"}"#.write(toFile: s.src + "/vae/hub_token.json", atomically: true, encoding: .utf8)
        let result = try DitkitBinary.run(["inspect", "--json", s.src])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.contains("hf_SECRET_TOKEN") && result.stdout.contains("scheduler_config.json"))
        let converted = try s.convert(s.src, s.out)
        #expect(converted.status == 0, "\(converted.stderr)")
        #expect(!FileSystem.exists(s.out + "/vae/hub_token.json"), "only files diffusers names are carried over")
    }

    @Test("a carried-over vae/ file linking out of the source refuses the conversion, leaving no OUT and no temporary")
    func vaeLinkOut() throws {
        let s = try Scene()
        try #"{"token": "hf_SECRET_TOKEN"}"#.write(toFile: s.dir.file("token.json"), atomically: true, encoding: .utf8)
        try Self.fm.removeItem(atPath: s.src + "/vae/config.json")
        try Self.fm.createSymbolicLink(atPath: s.src + "/vae/config.json", withDestinationPath: s.dir.file("token.json"))
        let result = try s.convert(s.src, s.out)
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains("vae/config.json") && result.stderr.contains("outside"), "\(result.stderr)")
        #expect(!FileSystem.exists(s.out) && s.temporaries.isEmpty, "\(s.temporaries)")
    }

    @Test("a carried-over vae/ file linking inside the source is copied by content")
    func vaeLinkInside() throws {
        let s = try Scene()
        try Self.fm.moveItem(atPath: s.src + "/vae/diffusion_pytorch_model.safetensors", toPath: s.src + "/vae-weights.safetensors")
        try Self.fm.createSymbolicLink(atPath: s.src + "/vae/diffusion_pytorch_model.safetensors", withDestinationPath: "../vae-weights.safetensors")
        let result = try s.convert(s.src, s.out)
        #expect(result.status == 0, "\(result.stderr)")
        let copied = s.out + "/vae/diffusion_pytorch_model.safetensors"
        #expect((try? Self.fm.destinationOfSymbolicLink(atPath: copied)) == nil, "a file, not a link")
        #expect(Self.fm.contents(atPath: copied) == Self.fm.contents(atPath: s.src + "/vae-weights.safetensors"))
    }

    @Test("a named pipe as config.json or weights file is refused at once (exit 3), never opened", arguments: [
        "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors", "model_index.json",
    ])
    func fifo(_ file: String) throws {
        let s = try Scene()
        try Self.fm.removeItem(atPath: s.src + "/" + file)
        #expect(mkfifo(s.src + "/" + file, 0o644) == 0)
        let result = try DitkitBinary.run(["inspect", s.src], timeout: 10)
        #expect(!result.timedOut, "blocked on the FIFO")
        #expect(result.status == 3 && result.stderr.contains(file) && result.stderr.contains("named pipe"), "\(result.stderr)")
    }
}
