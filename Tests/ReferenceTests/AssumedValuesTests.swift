import Checkpoints
import DitkitTestSupport
import Foundation
import Models
import Reference
import Testing
import Verification

/// Issue 10's first case: a D = 64, 4-head DiT (no preset has D = 64, so its weights alone give an assumed head count of
/// 1), as facebookresearch's `.pt`, as diffusers' folder (config: 4 heads) and as a PyTorch trace
/// (`fixtures/generate/make_assumed_heads.py`). An assumed value must be visible and must never silently win.
@Suite("assumed values are visible and never silently win")
struct AssumedValuesTests {
    static let folder = Fixtures.path("assumed-heads")

    static func open(_ path: String) throws -> ModelView<DiTFamily> {
        try ModelView<DiTFamily>.open(try Checkpoint.open(path))
    }

    /// The trace without its recorded model sizes (as traces written before they were recorded).
    static func traceWithoutModel(in dir: TemporaryDirectory) throws -> String {
        let (trace, metadata) = try TraceFile.read(folder + "/trace.safetensors")
        let path = dir.file("t.safetensors")
        try TraceFile.write(trace, to: path, metadata: metadata.filter { $0.0 != "ditkit.trace.model" && $0.0 != "ditkit.trace" }, overwrite: false)
        return path
    }

    @Test("the head count read from weights alone is reported as assumed, with its basis")
    func recorded() throws {
        let model = try Self.open(Self.folder + "/model.pt")
        #expect(model.config.numHeads == 1)
        #expect(model.assumptions.contains(Assumption(field: "num_heads", value: "1", basis: "head dimension 64")))
        let diffusers = try Self.open(Self.folder + "/diffusers")
        #expect(diffusers.config.numHeads == 4 && !diffusers.assumptions.contains { $0.field == "num_heads" })
    }

    @Test("verify .pt diffusers --semantics original: both sides run with the read head count and pass, and the report says so")
    func reconciled() throws {
        let a = try Self.open(Self.folder + "/model.pt"), b = try Self.open(Self.folder + "/diffusers")
        let report = try Verifier(options: VerificationOptions(semantics: .original)).compare(a, b)
        #expect(report.passed, "\(report.text)")
        #expect(report.notes.contains("a's head count 1 was assumed; b's 4 was read: both run with 4 heads"))
        #expect(report.notes.contains("a: num_heads = 1 (assumed: head dimension 64)"))
    }

    @Test("verify .pt --against its PyTorch trace: the trace's recorded sizes give the head count, and it passes")
    func traceConfig() throws {
        let report = try Verifier().compare(try Self.open(Self.folder + "/model.pt"), againstTrace: Self.folder + "/trace.safetensors")
        #expect(report.passed, "\(report.text)")
        #expect(report.notes.contains("the model's assumed values give way to the trace's recorded config"))
    }

    @Test("against a trace without sizes: the failure at the first attention names the head count that passes, never the weights")
    func searched() throws {
        let dir = TemporaryDirectory()
        let trace = try Self.traceWithoutModel(in: dir)
        let model = try Self.open(Self.folder + "/model.pt")
        let report = try Verifier().compare(model, againstTrace: trace)
        #expect(!report.passed && report.firstDivergence == "blocks.0")
        #expect(report.likelyCauses.first == "with num_heads = 4 instead of the assumed value, every layer is within tolerance")
        #expect(!report.likelyCauses.contains { $0.contains("weights themselves differ") })
        var options = VerificationOptions()
        options.searchAssumed = true
        let auto = try Verifier(options: options).compare(model, againstTrace: trace)
        #expect(auto.passed, "\(auto.text)")
        #expect(auto.notes.contains { $0.hasPrefix("searched num_heads = 2, num_heads = 4") && $0.hasSuffix("num_heads = 4 reproduces the trace and is used") })
    }

    @Test("the cause finder names a head-count difference, and assumptions instead of blaming the weights")
    func causes() throws {
        var a = try #require(Preset.named("DiT-S/2")).config
        var b = a
        b.numHeads = 3
        #expect(DiTFamily.likelyCauses(layer: "blocks.0", a, b, configA: a, configB: b) == ["blocks.*: attention heads 6 vs 3"])
        a.numHeads = 3
        let traceA = Trace(), traceB = Trace()
        traceA.append("blocks.0", [1, 2], [1, 2])
        traceB.append("blocks.0", [1, 2], [1, 3])
        let report = VerificationReport.compare(
            traceA, traceB, tolerance: Tolerance(rtol: 1e-5, atol: 0), family: DiTFamily.self, configA: a, configB: b,
            semanticsA: a, semanticsB: b, labelA: "a", labelB: "b",
            assumedA: [Assumption(field: "num_heads", value: "3", basis: "head dimension 64")])
        #expect(report.likelyCauses.first?.contains("a's num_heads = 3 (assumed: head dimension 64)") == true)
        #expect(report.likelyCauses.first?.contains("weights themselves differ") == false)
    }

    @Test("the CLI: params --json lists what was assumed; verify --heads auto needs --against")
    func cli() throws {
        let params = try DitkitBinary.run(["params", "--json", Self.folder + "/model.pt"])
        #expect(params.status == 0)
        let json = try JSONParser.parse(params.stdout)
        let assumed = json["checkpoints"]?.arrayValue?.first?["assumed"]?.arrayValue ?? []
        #expect(assumed.contains { $0["field"]?.stringValue == "num_heads" && $0["value"]?.stringValue == "1" })
        let auto = try DitkitBinary.run(["verify", Self.folder + "/model.pt", Self.folder + "/diffusers", "--heads", "auto"])
        #expect(auto.status == 2 && auto.stderr.contains("--against"))
        let trace = try DitkitBinary.run(["verify", Self.folder + "/model.pt", "--against", Self.folder + "/trace.safetensors", "--heads", "auto"])
        #expect(trace.status == 0, "\(trace.stdout)\(trace.stderr)")
    }
}
