import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("ditkit inspect (end to end)")
struct InspectCLITests {
    static let schema = SchemaValidator(
        schema: (try? JSONParser.parse([UInt8](FileManager.default.contents(atPath: Fixtures.packageRoot + "/schemas/inspect.schema.json") ?? Data())))
            ?? .null)

    @Test("text output of a training checkpoint shows format, both layouts, groups, tensors and the training arguments")
    func text() throws {
        let result = try DitkitBinary.run(["inspect", "fixtures/checkpoints/original/train-ckpt.pt"])
        #expect(result.status == 0, "\(result.stderr)")
        let out = result.stdout
        for expected in [
            "torch-zip", "original DiT (facebookresearch) under \"model.\": 2 blocks",
            "original DiT (facebookresearch) under \"ema.\": 2 blocks", "ema.blocks.0.attn.qkv.weight", "[96, 32]",
            "opt.state.3.exp_avg", "args.model", "'DiT-XL/2'", "argparse.Namespace (opaque, not executed)",
            "opt.param_groups.0.lr", "0.0001",
        ] {
            #expect(out.contains(expected), "missing \(expected)")
        }
        let groups = out.split(separator: "\n").filter { $0.hasPrefix("model ") || $0.hasPrefix("ema ") || $0.hasPrefix("opt ") }
        #expect(groups.count == 3)
    }

    @Test("--json is valid against schemas/inspect.schema.json", arguments: Fixtures.entries().filter { $0.entry["problem"] == nil })
    func json(_ fixture: FixtureCase) throws {
        var arguments = ["inspect", "--json", "fixtures/" + fixture.path]
        if let variant = fixture.entry["variant"]?.stringValue { arguments += ["--variant", variant] }
        arguments += fixture.allow.flatMap { ["--allow", $0] }
        let result = try DitkitBinary.run(arguments)
        #expect(result.status == 0, "\(result.stderr)")
        let value = try JSONParser.parse(result.stdout)
        let problems = Self.schema.validate(value)
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        #expect(value["totals"]?["tensors"]?.intValue == fixture.entry["tensors"]?.arrayValue?.count)
        #expect(value["layout"]?.stringValue == fixture.entry["layout"]?.stringValue)
    }

    @Test("the schema itself is one the validator fully understands, and rejects a broken report")
    func schemaChecks() throws {
        let result = try DitkitBinary.run(["inspect", "--json", "fixtures/checkpoints/original/tiny-dit.pt"])
        guard case .object(var pairs) = try JSONParser.parse(result.stdout) else { Issue.record("not an object"); return }
        #expect(Self.schema.validate(.object(pairs)).isEmpty)
        pairs.removeAll { $0.0 == "totals" }
        pairs.append(("surprise", .int(1)))
        let problems = Self.schema.validate(.object(pairs))
        #expect(problems.contains { $0.contains("totals") } && problems.contains { $0.contains("surprise") })
    }

    @Test("exit codes: 2 for usage, 3 for hostile or unreadable input, 4 for a missing file")
    func exitCodes() throws {
        #expect(try DitkitBinary.run(["inspect"]).status == 2)
        #expect(try DitkitBinary.run(["inspect", "--bogus", "x"]).status == 2)
        #expect(try DitkitBinary.run(["frobnicate"]).status == 2)
        #expect(try DitkitBinary.run(["inspect", "fixtures/checkpoints/hostile/truncated.pt"]).status == 3)
        #expect(try DitkitBinary.run(["inspect", "fixtures/checkpoints/original/torchscript.pt"]).status == 3)
        let missing = try DitkitBinary.run(["inspect", "no/such/file.pt"])
        #expect(missing.status == 4)
        #expect(missing.stderr.contains("no/such/file.pt"))
        #expect(try DitkitBinary.run(["inspect", "--strict", "fixtures/checkpoints/original/train-ckpt.pt"]).status == 3)
        #expect(try DitkitBinary.run(["--help"]).status == 0)
    }

    @Test("--variant selects diffusers variant weights")
    func variant() throws {
        let without = try DitkitBinary.run(["inspect", "fixtures/variants/transformer-two-variants"])
        #expect(without.status == 3)
        #expect(without.stderr.contains("--variant fp16"))
        let with = try DitkitBinary.run(["inspect", "--summary", "--variant", "fp16", "fixtures/checkpoints/diffusers/transformer-fp16-sharded"])
        #expect(with.status == 0)
        #expect(with.stdout.contains("f16 ×44"))
        #expect(with.stdout.contains("variant fp16"))
    }

    @Test("inspect reads no tensor data: an 8 GiB sparse safetensors file is inspected with a small peak RSS")
    func readsNoData() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("huge.safetensors")
        let n = 1 << 30  // 2^30 f64 = 8 GiB
        var header = Array(#"{"w":{"dtype":"F64","shape":[\#(n)],"data_offsets":[0,\#(n * 8)]}}"#.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var bytes = [UInt8]()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += header
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let fd = open(path, O_WRONLY)
        #expect(ftruncate(fd, off_t(bytes.count + n * 8)) == 0)
        close(fd)
        let result = try DitkitBinary.run(["inspect", path], environment: ["DITKIT_REPORT_PEAK_RSS": "1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("8,589,934,592"))
        let reported = result.stderr.split(separator: "\n").first { $0.hasPrefix("ditkit: peak RSS ") }
        let kib = try #require(reported.flatMap { Int($0.dropFirst("ditkit: peak RSS ".count).split(separator: " ")[0]) })
        #expect(kib < 64 * 1024, "peak RSS \(kib) KiB for an 8 GiB file")
    }
}
