import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

@Suite("ditkit trace and verify (end to end)")
struct VerifyCLITests {
    @Test("verify of an original checkpoint against its diffusers conversion reports exactly the shift divergence, and passes under --semantics original")
    func shift() throws {
        let dir = TemporaryDirectory()
        #expect(try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("d"), "--to", "diffusers", "--heads", "2"]).status == 0)
        let own = try DitkitBinary.run(["verify", "fixtures/checkpoints/original/tiny-dit.pt", dir.file("d"), "--heads", "2", "--plot", dir.file("p.svg")])
        #expect(own.status == 1)
        #expect(own.stdout.contains("FAIL: first divergence at t_embed"))
        #expect(own.stdout.contains("likely cause: t_embed: timestep frequency shift 0 vs 1"))
        #expect(!own.stdout.contains("MLP norm eps"), "the conversion keeps eps 1e-6: only the shift differs")
        let svg = try String(contentsOfFile: dir.file("p.svg"), encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n") && svg.components(separatedBy: "<circle").count == 12)
        let forced = try DitkitBinary.run(["verify", "fixtures/checkpoints/original/tiny-dit.pt", dir.file("d"), "--heads", "2", "--semantics", "original"])
        #expect(forced.status == 0 && forced.stdout.contains("PASS"))
    }

    @Test("against the diffusers-made fixture both the shift and the MLP eps are named; --json is valid against the schema")
    func json() throws {
        let result = try DitkitBinary.run(["verify", "fixtures/checkpoints/original/tiny-dit.pt", "fixtures/checkpoints/diffusers/transformer", "--heads", "2", "--json"])
        #expect(result.status == 1)
        let json = try JSONParser.parse(result.stdout)
        let schema = SchemaValidator(schema: try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: Fixtures.packageRoot + "/schemas/verify.schema.json")))))
        #expect(schema.validate(json).isEmpty, "\(schema.validate(json))")
        #expect(json["first_divergence"]?.stringValue == "t_embed")
        let causes = json["likely_causes"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(causes.first == "t_embed: timestep frequency shift 0 vs 1")
        #expect(causes.contains("blocks.*: MLP norm eps 1e-6 vs 1e-5 (also)"))
    }

    @Test("trace writes the layers input.x … output; verify --against a trace with only inputs and output compares those")
    func traceAndAgainst() throws {
        let dir = TemporaryDirectory()
        let traced = try DitkitBinary.run(["trace", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("t.safetensors"), "--heads", "2", "--batch", "3", "--timesteps", "0,999,10", "--classes", "10,0,3"])
        #expect(traced.status == 0, "\(traced.stderr)")
        let trace = try Checkpoint.open(dir.file("t.safetensors"))
        #expect(trace.tensors.map(\.name).sorted() == ["blocks.0", "blocks.1", "cond", "final", "input.t", "input.x", "input.y", "output", "patch_embed", "t_embed", "y_embed"])
        #expect(try trace.tensor(named: "input.t")!.float32() == [0, 999, 10])
        #expect(try trace.tensor(named: "input.y")!.float32() == [10, 0, 3])
        // Keep only inputs and output, as a user's trace might.
        let partial = trace.tensors.filter { $0.name.hasPrefix("input.") || $0.name == "output" }
        try SafetensorsWriter.write(partial.map { OutputTensor(name: $0.name, tensor: $0) }, to: dir.file("io.safetensors"))
        let against = try DitkitBinary.run(["verify", "fixtures/checkpoints/diffusers/transformer", "--against", dir.file("io.safetensors"), "--semantics", "original"])
        #expect(against.status == 0, "\(against.stdout)\(against.stderr)")
        #expect(against.stdout.contains("PASS: all 4 layers"))
        let own = try DitkitBinary.run(["verify", "fixtures/checkpoints/diffusers/transformer", "--against", dir.file("io.safetensors")])
        #expect(own.status == 1 && own.stdout.contains("first divergence at output"))
    }

    @Test("convert --verify passes for exact conversions and for casts within the scaled tolerance; usage errors exit 2")
    func convertVerify() throws {
        let dir = TemporaryDirectory()
        let exact = try DitkitBinary.run(["convert", "fixtures/checkpoints/cerebras/tiny-cerebras.pt", "-o", dir.file("o.pt"), "--to", "original", "--heads", "2", "--verify"])
        #expect(exact.status == 0 && exact.stdout.contains("PASS"), "\(exact.stdout)\(exact.stderr)")
        let cast = try DitkitBinary.run(["convert", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("b.safetensors"), "--to", "canonical", "--heads", "2", "--dtype", "f16", "--verify"])
        #expect(cast.status == 0, "\(cast.stdout)")
        #expect(try DitkitBinary.run(["verify", "fixtures/checkpoints/original/tiny-dit.pt"]).status == 2)
        #expect(try DitkitBinary.run(["trace", "fixtures/checkpoints/original/tiny-dit.pt", "-o", dir.file("x"), "--heads", "2", "--classes", "11"]).status == 2)
    }

    @Test("--metric chooses the statistic the verdict is taken on: cosine with --rtol 0.1 passes what rel-l2 fails; an unknown metric is a usage error")
    func metric() throws {
        let args = ["verify", "fixtures/checkpoints/original/tiny-dit.pt", "fixtures/checkpoints/diffusers/transformer", "--heads", "2"]
        let cosine = try DitkitBinary.run(args + ["--metric", "cosine", "--rtol", "0.1", "--json"])
        #expect(cosine.status == 0, "t_embed's 1 − cos is 7.9e-2: \(cosine.stdout)\(cosine.stderr)")
        let json = try JSONParser.parse(cosine.stdout)
        let schema = SchemaValidator(schema: try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: Fixtures.packageRoot + "/schemas/verify.schema.json")))))
        #expect(schema.validate(json).isEmpty, "\(schema.validate(json))")
        #expect(json["tolerance"]?["metric"]?.stringValue == "cosine")
        let relative = try DitkitBinary.run(args + ["--rtol", "0.1"])
        #expect(relative.status == 1 && relative.stdout.contains("first divergence at t_embed"), "t_embed's rel L2 is 0.40")
        let p99 = try DitkitBinary.run(args + ["--metric", "p99"])
        #expect(p99.status == 1 && p99.stdout.contains("tolerance: p99 |a−b| / max |b| ≤ 1.00e-05"))
        #expect(try DitkitBinary.run(args + ["--metric", "l1"]).status == 2)
    }
}
