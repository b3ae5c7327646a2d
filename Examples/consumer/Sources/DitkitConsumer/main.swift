// Uses ditkit as a library user would: open a checkpoint, list and read tensors, map to canonical names, count a
// preset's parameters, run the reference forward, and compare two checkpoints. Every result is checked against a
// known value; any mismatch is printed and the program exits 1.
//
// Usage: DitkitConsumer [FIXTURES]   (default: the fixtures/ folder of the ditkit checkout this file is in)
import Checkpoints
import Foundation
import Models
import Reference
import Verification

let fixtures = CommandLine.arguments.dropFirst().first ?? URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().appendingPathComponent("../../../../fixtures").standardizedFileURL.path
var failures = 0

/// Prints one result, and counts it as a failure unless it is what we know it to be.
@MainActor func check<T: Equatable>(_ what: String, _ value: T, _ expected: T) {
    if value == expected {
        print("ok    \(what): \(value)")
    } else {
        print("FAIL  \(what): \(value), expected \(expected)")
        failures += 1
    }
}

do {
    // 1. Open a checkpoint (format sniffed from its bytes) and list its tensors; no tensor data is read yet.
    let path = fixtures + "/checkpoints/original/tiny-dit.pt"
    let checkpoint = try Checkpoint.open(path)
    check("tensors in tiny-dit.pt", checkpoint.tensors.count, 32)
    check("numbers in tiny-dit.pt", checkpoint.tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }, 51_680)
    if let first = checkpoint.tensors.first { check("first tensor", "\(first.name) \(first.dtype) \(first.shape)", "pos_embed f32 [1, 16, 32]") }

    // 2. Read one tensor as floats: the values torch loaded (fixtures/expected/manifest.json).
    let weight = try checkpoint.tensor(named: "x_embedder.proj.weight")?.float32() ?? []
    check("x_embedder.proj.weight count", weight.count, 512)
    check("x_embedder.proj.weight head", Array(weight.prefix(4)),
          [-0.05629199370741844, -0.05761801078915596, -0.012528928928077221, -0.021693941205739975].map { Float($0) })

    // 3. Map the model to canonical names (heads cannot be read from weights: 2 here). The registry finds the family;
    //    a view typed by its family gives the family's config.
    let opened = try ModelFamilies.open(checkpoint, options: ModelOptions(heads: 2))
    check("family", opened.familyName, "dit")
    let model = try ModelView<DiTFamily>.open(checkpoint, options: ModelOptions(heads: 2))
    check("layout", model.layout.rawValue, "original")
    check("canonical tensors", model.tensors.count, 32)
    check("x_embedder.proj.weight is", model.tensors.first { $0.shape == [32, 4, 2, 2] }?.name ?? "-", "patch_embed.weight")
    check("config", "D=\(model.config.hiddenSize) depth \(model.config.depth) patch \(model.config.patchSize) input \(model.config.inputSize)",
          "D=32 depth 2 patch 2 input 8")

    // 4. Count a preset's parameters (the DiT paper's XL/2, in the original layout).
    if let xl = Preset.named("DiT-XL/2") {
        check("DiT-XL/2 parameters", ParameterCount(config: xl.config, layout: .original).total, 675_129_632)
    } else {
        check("DiT-XL/2 preset found", false, true)
    }

    // 5. Run the reference forward on a tiny model, on the inputs of the trace PyTorch wrote for it, and compare the
    //    output with PyTorch's.
    let traced = try ModelView<DiTFamily>.open(try Checkpoint.open(fixtures + "/traces/orig-p2-s8/model.pt"), options: ModelOptions(heads: 2))
    let (trace, _) = try TraceFile.read(fixtures + "/traces/orig-p2-s8/trace.safetensors")
    if let inputs = TraceFile.inputs(of: trace), let expected = trace.layer("output") {
        let output = DiTForward(weights: try DiTWeights(traced)).run(inputs)
        var diff2 = 0.0, ref2 = 0.0
        for (u, v) in zip(output, expected.values) { diff2 += Double(u - v) * Double(u - v); ref2 += Double(v) * Double(v) }
        check("forward output size", output.count, expected.values.count)
        let relative = (diff2 / ref2).squareRoot()
        check("forward output within 1e-5 of PyTorch (rel L2 \(relative))", relative <= 1e-5, true)
    } else {
        check("trace holds inputs and output", false, true)
    }
    let againstTrace = try Verifier().compare(traced, againstTrace: fixtures + "/traces/orig-p2-s8/trace.safetensors")
    check("Verifier against PyTorch's trace passes", againstTrace.passed, true)

    // 6. Convert to the canonical form in a temporary folder and compare the two checkpoints with the Verifier.
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ditkit-consumer-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let canonicalPath = scratch + "/tiny-dit.safetensors"
    try Exporter.write(try model.plan(to: .canonical), to: canonicalPath)
    let canonical = try ModelView<DiTFamily>.open(try Checkpoint.open(canonicalPath))
    let report = try Verifier().compare(model, canonical)
    print(report.text)
    check("Verifier: tiny-dit.pt vs its canonical conversion passes", report.passed, true)
    check("layers compared", report.layers.count, 11)
    check("largest |a−b|", report.layers.map(\.maxAbs).max() ?? -1, 0)
    let diffusers = try ModelView<DiTFamily>.open(try Checkpoint.open(fixtures + "/checkpoints/diffusers/transformer"), options: ModelOptions(heads: 2))
    let differs = try Verifier().compareAny(opened, diffusers)
    check("Verifier: original vs diffusers numerics diverge at", differs.firstDivergence ?? "-", "t_embed")
    check("likely cause", differs.likelyCauses.first ?? "-", "t_embed: timestep frequency shift 0 vs 1")
} catch {
    print("FAIL  error: \(error)")
    failures += 1
}

if failures > 0 {
    print("\(failures) check(s) failed")
    exit(1)
}
print("all checks passed")
