@testable import Checkpoints
import Foundation
import DitkitTestSupport
import Tensors
import Testing

/// `--to cerebras --container mdl|pt --compression lz4|none` end to end: what file each spelling writes, what is
/// refused, the Model Zoo structure with its diffusion buffers, and the round trip through `.mdl` bit for bit.
@Suite("ditkit convert/synth --container mdl (end to end)")
struct MDLWriteCLITests {
    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]

    static func head(_ path: String) -> [UInt8] {
        Array((FileManager.default.contents(atPath: path) ?? Data()).prefix(8))
    }

    static func contains(_ path: String, _ text: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: path) else { return false }
        return data.range(of: Data(text.utf8)) != nil
    }

    @Test("a 16-step Model Zoo DiT: diffusion_steps read from its tables, written to the canonical config, verified after a round trip")
    func diffusionSteps() throws {
        let dir = TemporaryDirectory()
        let source = "fixtures/cerebras-mdl/dit-tiny-0.5-bf16-lz4.mdl"
        let canonical = try DitkitBinary.run(["convert", source, "--to", "canonical", "-o", dir.file("c.safetensors"), "--verify"])
        #expect(canonical.status == 0 && canonical.stdout.contains("16 diffusion steps"), "\(canonical.stderr)")
        let config = try Checkpoint.open(dir.file("c.safetensors")).metadata.first { $0.0 == "ditkit.config" }?.1 ?? ""
        #expect(config.contains("\"diffusion_steps\":16"), "\(config)")
        let back = try DitkitBinary.run(["convert", dir.file("c.safetensors"), "--to", "cerebras", "-o", dir.file("back.mdl")])
        #expect(back.status == 0, "\(back.stderr)")
        let verify = try DitkitBinary.run(["verify", source, dir.file("back.mdl")])
        #expect(verify.status == 0, "\(verify.stdout.suffix(400)) \(verify.stderr)")
        // The source's trainer params give no num_classes (assumed from the label rows); the written file records
        // the model's parameters, so nothing about it is assumed any more.
        #expect(verify.stdout.contains("a: num_classes = 10 + null row (assumed"), "\(verify.stdout.prefix(600))")
        #expect(!verify.stdout.contains("b: num_classes"), "\(verify.stdout.prefix(600))")
        let diff = try DitkitBinary.run(["diff", source, dir.file("back.mdl")])
        #expect(diff.status == 0 && diff.stdout.contains("identical"), "\(diff.stdout.suffix(300))")
    }

    @Test("a whole .mdl training file → canonical folder → .mdl: every tensor and value comes back, bit for bit")
    func wholeFileRoundTrip() throws {
        let dir = TemporaryDirectory()
        let source = "fixtures/cerebras-mdl/dit-tiny-0.5-f32-lz4.mdl"
        let toFolder = try DitkitBinary.run(["convert", source, "--to", "canonical", "-o", dir.file("whole")])
        #expect(toFolder.status == 0, "\(toFolder.stderr)")
        let back = try DitkitBinary.run(["convert", dir.file("whole"), "--to", "cerebras", "-o", dir.file("back.mdl")])
        #expect(back.status == 0, "\(back.stderr)")
        #expect(Self.head(dir.file("back.mdl")) == Self.hdf5Signature)
        let a = try Checkpoint.open(Fixtures.packageRoot + "/" + source), b = try Checkpoint.open(dir.file("back.mdl"))
        #expect(Set(a.tensors.map(\.name)) == Set(b.tensors.map(\.name)))
        for tensor in a.tensors {
            guard let other = b.tensor(named: tensor.name) else { continue }
            #expect(other.dtype == tensor.dtype && other.shape == tensor.shape, "\(tensor.name)")
            var x: [UInt8] = [], y: [UInt8] = []
            try tensor.stream { x.append(contentsOf: $0) }
            try other.stream { y.append(contentsOf: $0) }
            #expect(x == y, "\(tensor.name) bytes differ")
        }
        let values = Dictionary(b.values.map { ($0.path, $0.text) }, uniquingKeysWith: { first, _ in first })
        for value in a.values where !value.isOpaqueObject {
            #expect(values[value.path] == value.text, "value \(value.path)")
        }
        // --compression without a .mdl output is refused.
        let pt = try DitkitBinary.run(["convert", dir.file("whole"), "--to", "original", "-o", dir.file("back.pt"), "--compression", "none"])
        #expect(pt.status == 2, "\(pt.stderr)")
    }

    @Test("--container mdl, -o X.mdl alone, and --compression none write HDF5; -o X.pt stays a torch zip")
    func containers() throws {
        let dir = TemporaryDirectory()
        let cases: [([String], String, Bool)] = [
            (["--container", "mdl"], "a.bin", true),
            ([], "b.mdl", true),
            ([], "c.MDL", true),
            (["--container", "mdl", "--compression", "none"], "d.mdl", true),
            (["--compression", "lz4"], "e.mdl", true),
            ([], "f.pt", false),
            (["--container", "pt"], "g.mdl", false),
        ]
        // synth of the smallest preset once (the synth path), the tiny fixture converted for every spelling.
        let synth = try DitkitBinary.run(["synth", "cerebras-dit-small", "--layout", "cerebras", "--container", "mdl", "--dtype", "bf16", "-o", dir.file("s.mdl")])
        #expect(synth.status == 0 && Self.head(dir.file("s.mdl")) == Self.hdf5Signature, "\(synth.stderr)")
        #expect(Self.contains(dir.file("s.mdl"), "model.model.gaussian_diffusion.sqrt_alphas_cum_prod.__metadata__"))
        for (extra, name, hdf5) in cases {
            let r = try DitkitBinary.run(["convert", "fixtures/checkpoints/cerebras/tiny-cerebras-bf16.pt", "--to", "cerebras", "--heads", "2", "-o", dir.file(name)] + extra)
            #expect(r.status == 0, "\(extra) \(name): \(r.stderr)")
            #expect((Self.head(dir.file(name)) == Self.hdf5Signature) == hdf5, "\(extra) \(name)")
            if hdf5 {
                // The Model Zoo structure, its diffusion buffers included (per-leaf metadata attributes).
                for key in ["model.model.gaussian_diffusion.sqrt_alphas_cum_prod.__metadata__",
                            "model.model.gaussian_diffusion.sqrt_one_minus_alphas_cum_prod.__metadata__",
                            "model.model.patch_embedding_layer.linear_proj.weight.__metadata__", "torch.bfloat16"] {
                    #expect(Self.contains(dir.file(name), key), "\(name): \(key)")
                }
            }
        }
        let lz4 = try FileManager.default.attributesOfItem(atPath: dir.file("b.mdl"))[.size] as? Int ?? 0
        let none = try FileManager.default.attributesOfItem(atPath: dir.file("d.mdl"))[.size] as? Int ?? 0
        #expect(lz4 > 0 && none > 0 && Self.contains(dir.file("b.mdl"), "HDF5 lz4 filter") && !Self.contains(dir.file("d.mdl"), "HDF5 lz4 filter"))
    }

    @Test("--container and --compression are refused where they do not apply, before anything is written")
    func refusals() throws {
        let dir = TemporaryDirectory()
        let cases: [[String]] = [
            ["--to", "original", "--container", "mdl"],
            ["--to", "canonical", "--container", "pt"],
            ["--to", "cerebras", "--container", "pt", "--compression", "none"],
            ["--to", "original", "--compression", "lz4"],
            ["--to", "cerebras", "--container", "zip"],
            ["--to", "cerebras", "--container", "mdl", "--compression", "gzip"],
        ]
        for extra in cases {
            let r = try DitkitBinary.run(["convert", "fixtures/checkpoints/cerebras/tiny-cerebras.pt", "--heads", "2", "-o", dir.file("x.mdl")] + extra)
            #expect(r.status == 2, "\(extra): \(r.status) \(r.stderr)")
        }
        // --compression with a .pt output chosen by its name: the library refuses it rather than ignore it.
        let r = try DitkitBinary.run(["convert", "fixtures/checkpoints/cerebras/tiny-cerebras.pt", "--heads", "2", "--to", "cerebras", "--compression", "none", "-o", dir.file("x.pt")])
        #expect(r.status != 0 && r.stderr.contains("compression"), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test("from an original DiT (no diffusion buffers) the .mdl still holds gaussian_diffusion.*, recomputed as the Model Zoo does")
    func diffusionBuffers() throws {
        let dir = TemporaryDirectory()
        let source = "fixtures/checkpoints/cerebras/tiny-cerebras.pt"
        let original = dir.file("o.pt"), mdl = dir.file("o.mdl")
        #expect(try DitkitBinary.run(["convert", source, "--to", "original", "-o", original, "--heads", "2"]).status == 0)
        let r = try DitkitBinary.run(["convert", original, "--to", "cerebras", "-o", mdl, "--heads", "2"])
        #expect(r.status == 0 && r.stdout.contains("gaussian_diffusion.sqrt_alphas_cum_prod recomputed"), "\(r.stdout) \(r.stderr)")
        let file = try HDF5File(file: try MappedFile(path: mdl))
        let want = try Checkpoint.open(Fixtures.path("checkpoints/cerebras/tiny-cerebras.pt"))
        for name in ["gaussian_diffusion.sqrt_alphas_cum_prod", "gaussian_diffusion.sqrt_one_minus_alphas_cum_prod"] {
            let dataset = try #require(file.root.dataset(at: "model.model." + name), "\(name)")
            let source = try file.source(of: dataset)
            let got = CollectingSinkForTests(), expected = CollectingSinkForTests()
            try source.stream(0..<source.byteCount, chunkSize: 1 << 16, to: got)
            try #require(want.tensor(named: "model.model." + name)).write(to: expected)
            let floats = { (b: [UInt8]) in stride(from: 0, to: b.count, by: 4).map { i in
                Float(bitPattern: UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24) } }
            let a = floats(got.bytes), b = floats(expected.bytes)
            #expect(a.count == 1000 && b.count == 1000)
            // rtol 0, atol 1e-6: the table the Model Zoo computes (float64 then float32), as the .pt fixture holds it.
            #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 }, "\(name)")
        }
    }

    @Test("convert tiny-cerebras.pt → .mdl → canonical equals the direct canonical conversion bit for bit",
          arguments: ["tiny-cerebras.pt", "tiny-cerebras-bf16.pt"])
    func roundTrip(_ fixture: String) throws {
        let dir = TemporaryDirectory()
        let source = "fixtures/checkpoints/cerebras/" + fixture
        for extra in [[], ["--compression", "none"]] {
            let mdl = dir.file("y\(extra.count).mdl")
            let toMDL = try DitkitBinary.run(["convert", source, "--to", "cerebras", "--container", "mdl", "-o", mdl, "--heads", "2"] + extra)
            #expect(toMDL.status == 0, "\(toMDL.stderr)")
            let back = dir.file("back\(extra.count).safetensors"), direct = dir.file("direct.safetensors")
            let viaMDL = try DitkitBinary.run(["convert", mdl, "--to", "canonical", "-o", back, "--heads", "2", "--force"])
            #expect(viaMDL.status == 0, "\(viaMDL.stderr)")
            let straight = try DitkitBinary.run(["convert", source, "--to", "canonical", "-o", direct, "--heads", "2", "--force"])
            #expect(straight.status == 0, "\(straight.stderr)")
            let a = try Checkpoint.open(back), b = try Checkpoint.open(direct)
            #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
            for (x, y) in zip(a.tensors, b.tensors) {
                let sx = CollectingSinkForTests(), sy = CollectingSinkForTests()
                try x.write(to: sx)
                try y.write(to: sy)
                #expect(x.dtype == y.dtype && x.shape == y.shape && sx.bytes == sy.bytes, "\(x.name)")
            }
        }
    }
}

/// Collects a tensor's bytes.
final class CollectingSinkForTests: ByteSink {
    var bytes: [UInt8] = []
    func write(_ chunk: UnsafeRawBufferPointer) throws { bytes += chunk }
}
