import Checkpoints
import Models
import Reference
import Tensors
import DitkitTestSupport
import Testing
import Verification

/// The library `Verifier` and `Tracer`: what `ditkit verify` and `ditkit trace` do, called without the CLI.
@Suite("Verifier and Tracer (library)")
struct VerifierTests {
    static func view(_ relative: String, heads: Int = 2) throws -> ModelView<DiTFamily> {
        try ModelView<DiTFamily>.open(try Checkpoint.open(Fixtures.path(relative)), options: ModelOptions(heads: heads))
    }

    static let original = "checkpoints/original/tiny-dit.pt"
    static let diffusers = "checkpoints/diffusers/transformer"

    @Test("original vs its diffusers form: diverges at t_embed naming the shift and the MLP eps; passes in original semantics")
    func twoCheckpoints() throws {
        let a = try Self.view(Self.original), b = try Self.view(Self.diffusers)
        let own = try Verifier().compare(a, b)
        #expect(!own.passed && own.firstDivergence == "t_embed")
        #expect(own.likelyCauses.first == "t_embed: timestep frequency shift 0 vs 1")
        #expect(own.likelyCauses.contains("blocks.*: MLP norm eps 1e-6 vs 1e-5 (also)"))
        #expect(own.labelA == "\(Fixtures.path(Self.original)) (original DiT (facebookresearch), own semantics)")
        #expect(own.layers.count == 11 && own.traceFile == nil)
        #expect(throws: VerificationError.diverged(layer: "t_embed", trace: nil)) { try own.requirePassed() }
        #expect((try? own.requirePassed()) == nil)
        do { try own.requirePassed() } catch let error as any DitkitError {
            #expect(error.kind == .verification && error.kind.exitCode == 1 && error.location == "t_embed")
        }

        let forced = try Verifier(options: VerificationOptions(semantics: .original)).compare(a, b, names: ("A", "B"))
        #expect(forced.passed, "\(forced.text)")
        #expect(forced.labelA == "A (original DiT (facebookresearch), original semantics)")
        try forced.requirePassed()
        // Either side's numerics work as well as a named source's.
        #expect(try Verifier(options: VerificationOptions(semantics: .a)).compare(a, b).passed)
        #expect(try Verifier(options: VerificationOptions(semantics: .b)).compare(a, b).firstDivergence == nil)
    }

    @Test("a loose enough tolerance passes what the default fails; the OpenBLAS-only kernels give the same verdicts")
    func toleranceAndKernels() throws {
        let a = try Self.view(Self.original), b = try Self.view(Self.diffusers)
        #expect(try Verifier(options: VerificationOptions(rtol: 1)).compare(a, b).passed)
        #expect(try Verifier(options: VerificationOptions(atol: 1)).compare(a, b).passed)
        let blas = VerificationOptions(semantics: .diffusers, forward: ForwardOptions(batch: 3, seed: 5, kernels: .blas))
        let report = try Verifier(options: blas).compare(a, b)
        #expect(report.passed, "\(report.text)")
        #expect(report.layers.first { $0.name == "input.t" }?.shape == [3])
    }

    @Test("against PyTorch's trace: passes in the model's own semantics and names the trace in its errors")
    func againstTrace() throws {
        let model = try Self.view("traces/orig-p2-s8/model.pt")
        let tracePath = Fixtures.path("traces/orig-p2-s8/trace.safetensors")
        for kernels: KernelChoice in GEMM.avx512Available ? [.automatic, .blas] : [.blas] {
            let report = try Verifier(options: VerificationOptions(forward: ForwardOptions(kernels: kernels))).compare(model, againstTrace: tracePath)
            #expect(report.passed, "\(report.text)")
            #expect(report.traceFile == tracePath && report.labelB.hasPrefix(tracePath + " (trace"))
            #expect(report.layers.count == 11)
        }
        // The diffusers-made trace of the same weights: diverges in the model's own numerics, passes in diffusers'.
        let other = Fixtures.path("traces/diffusers-from-orig-p2-s8/trace.safetensors")
        let own = try Verifier().compare(model, againstTrace: other, name: "m")
        #expect(own.firstDivergence == "t_embed" && own.labelA == "m (ditkit reference, original semantics)")
        #expect(throws: VerificationError.diverged(layer: "t_embed", trace: other)) { try own.requirePassed() }
        #expect(try Verifier(options: VerificationOptions(semantics: .diffusers)).compare(model, againstTrace: other).passed)
    }

    @Test("models taking different inputs, inputs a model cannot take and a pass past its budget are typed errors")
    func errors() throws {
        let small = try Self.view(Self.original), large = try Self.view("traces/orig-p4-s16/model.pt")
        #expect(throws: VerificationError.differentInputs(a: "4×8²", b: "4×16²")) {
            try Verifier().compare(small, large)
        }
        #expect("\(VerificationError.differentInputs(a: "4×8²", b: "4×16²"))"
                == "the models take different inputs (4×8² vs 4×16²)")
        #expect(VerificationError.differentInputs(a: "4×8²", b: "4×16²").kind.exitCode == 3)

        let badClass = VerificationOptions(forward: ForwardOptions(classes: [11]))
        do {
            _ = try Verifier(options: badClass).compare(small, small)
            Issue.record("class 11 of a 10-class model was accepted")
        } catch let error as VerificationError {
            guard case .invalidInputs(let problems) = error else { Issue.record("\(error)"); return }
            #expect(problems.first?.hasPrefix("input.y[0] = 11 is outside the label table") == true, "\(problems)")
            #expect(error.kind == .usage && !error.description.contains("--"), "the library names no CLI flag")
        }
        #expect(throws: VerificationError.self) { try Tracer(forward: ForwardOptions(timesteps: [.infinity])).record(small) }

        let tight = VerificationOptions(forward: ForwardOptions(memoryBudget: 1024))
        do {
            _ = try Verifier(options: tight).compare(small, small)
            Issue.record("a 1 KiB budget was accepted")
        } catch let error as ModelError {
            #expect("\(error)".contains("GiB of activations"), "\(error)")
        }
        #expect(throws: ModelError.self) { try Verifier(options: tight).compare(small, againstTrace: Fixtures.path("traces/orig-p2-s8/trace.safetensors")) }
        #expect(throws: ModelError.self) { try Tracer(forward: ForwardOptions(workBudget: 1)).record(small) }
    }

    @Test("Tracer writes the trace format with its semantics; the trace verifies its model; a trace of inputs only proves nothing")
    func tracer() throws {
        let dir = TemporaryDirectory()
        let model = try Self.view(Self.original)
        let options = ForwardOptions(batch: 3, seed: 2, timesteps: [0, 999, 10], classes: [10, 0, 3])
        let recorded = try Tracer(semantics: .diffusers, forward: options).write(model, to: dir.file("t.safetensors"), sourceName: "tiny")
        #expect(recorded.batch == 3 && recorded.semanticsName == "diffusers" && recorded.semantics.timestepShift == 1)
        let (trace, metadata) = try TraceFile.read(dir.file("t.safetensors"))
        #expect(trace.layers.map(\.name) == ["input.x", "input.t", "input.y", "t_embed", "y_embed", "cond", "patch_embed", "blocks.0", "blocks.1", "final", "output"])
        #expect(trace.layer("input.y")?.values == [10, 0, 3])
        let meta = Dictionary(metadata, uniquingKeysWith: { a, _ in a })
        #expect(meta["ditkit.trace.semantics"] == "diffusers" && meta["ditkit.trace.source"] == "ditkit reference forward of tiny")
        // Against its own trace, in the semantics the trace records (b), the model passes; in its own it does not.
        #expect(try Verifier(options: VerificationOptions(semantics: .b)).compare(model, againstTrace: dir.file("t.safetensors")).passed)
        #expect(try Verifier().compare(model, againstTrace: dir.file("t.safetensors")).firstDivergence == "t_embed")

        // Refused before any work: the model's own file, an existing output without overwrite.
        #expect(throws: VerificationError.self) { try Tracer().write(model, to: Fixtures.path(Self.original), overwrite: true) }
        do {
            try TraceFile.checkDestination(Fixtures.path(Self.original), input: Fixtures.path(Self.original), overwrite: true)
        } catch let error as VerificationError {
            #expect(error.kind == .usage && error.description.contains("is the input") && error.file == Fixtures.path(Self.original))
        }
        #expect {
            try Tracer().write(model, to: dir.file("t.safetensors"))
        } throws: { error in
            if case CheckpointError.outputExists(let path)? = error as? CheckpointError { return path == dir.file("t.safetensors") }
            return false
        }
        try Tracer().write(model, to: dir.file("t.safetensors"), overwrite: true)

        let inputsOnly = Trace()
        for layer in recorded.trace.layers where layer.name.hasPrefix("input.") { inputsOnly.append(layer.name, layer.shape, layer.values) }
        try TraceFile.write(inputsOnly, to: dir.file("io.safetensors"), metadata: [], overwrite: false)
        let vacuous = try Verifier().compare(model, againstTrace: dir.file("io.safetensors"))
        #expect(vacuous.isVacuous && !vacuous.passed)
        let expected = VerificationError.nothingCompared(trace: dir.file("io.safetensors"), compared: ["input.x", "input.t", "input.y"])
        #expect(throws: expected) { try vacuous.requirePassed() }
        #expect(expected.kind.exitCode == 3 && "\(expected)".hasSuffix("so nothing was verified"))
    }

    @Test("a conversion checked through the library: exact to canonical, within the scaled tolerance through f16")
    func conversion() throws {
        let dir = TemporaryDirectory()
        let source = try Self.view(Self.original)
        for (name, dtype) in [("c.safetensors", nil), ("h.safetensors", DType.f16)] as [(String, DType?)] {
            try Exporter.write(try source.plan(to: .canonical, options: ConversionOptions(dtype: dtype)), to: dir.file(name))
            let written = try ModelView<DiTFamily>.open(try Checkpoint.open(dir.file(name)))
            let (report, skipped) = try Verifier().compareConversion(source: source, written: written)
            #expect(report.passed && skipped.isEmpty, "\(report.text)")
            #expect(report.tolerance.rtol == (dtype == nil ? 1e-5 : 2e-3))
            if dtype == nil { #expect(report.layers.allSatisfy { $0.maxAbs == 0 }, "\(report.text)") }
        }
    }

    @Test("the SVG chart is written atomically and replaces a file only when told to")
    func svg() throws {
        let dir = TemporaryDirectory()
        let a = try Self.view(Self.original)
        let report = try Verifier().compare(a, a)
        try report.writeSVG(to: dir.file("p.svg"))
        #expect(throws: CheckpointError.self) { try report.writeSVG(to: dir.file("p.svg")) }
        try report.writeSVG(to: dir.file("p.svg"), overwrite: true)
        let bytes = try MappedFile(path: dir.file("p.svg"))
        let text = String(decoding: bytes.bytes, as: UTF8.self)
        #expect(text == report.svg)
    }
}
