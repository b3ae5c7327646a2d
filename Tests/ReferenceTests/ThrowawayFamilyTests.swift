import Checkpoints
import DitkitTestSupport
import Models
import Reference
import Tensors
import Testing
import Verification

// A throwaway family, added by following docs/adding-a-family.md step by step, to prove the seam: nothing outside
// this file knows it, and every generic path (detection, strict mapping, inference, conversion both ways, writers,
// counts, synthetic weights, the forward, traces and the verifier with its cause rules) works for it.
//
// "Toy" is a residual MLP: h = x·Eᵀ; per block h += relu(h·Wᵢᵀ + bᵢ); y = h·Hᵀ. Two source layouts: "original"
// (its own names) and "diffusers" (each block's weight stored as two row halves, the head copied into every block).

// MARK: Step 1 — the config (Models/<Family>/<Family>Config.swift)

struct ToyConfig: FamilyConfig {
    typealias Family = ToyFamily
    var width: Int
    var depth: Int
    var channels: Int
    /// The one numeric choice: relu's negative slope (0 in "original", 0.01 in "diffusers").
    var slope: Double
    var sourceLayout: Layout?

    var summary: String { "W=\(width), depth \(depth), \(channels) channels" }

    var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("family", .string("toy")), ("width", .int(width)), ("depth", .int(depth)), ("channels", .int(channels)),
            ("slope", .double(slope)),
        ]
        if let sourceLayout { pairs.append(("source_layout", .string(sourceLayout.rawValue))) }
        return .object(pairs)
    }

    init(width: Int, depth: Int, channels: Int, slope: Double = 0) {
        self.width = width
        self.depth = depth
        self.channels = channels
        self.slope = slope
    }

    init(json: JSONValue, origin: String) throws {
        guard let w = json["width"]?.intValue, let d = json["depth"]?.intValue, let c = json["channels"]?.intValue,
            let s = json["slope"]?.doubleValue
        else { throw ModelError.invalidConfig(origin: origin, problems: ["width, depth, channels and slope are required"]) }
        self.init(width: w, depth: d, channels: c, slope: s)
        sourceLayout = json["source_layout"]?.stringValue.map(Layout.init(rawValue:))
        try validate(origin: origin)
    }

    func problems(names: [String: String]) -> [String] {
        var out: [String] = []
        for (key, value) in [("width", width), ("depth", depth), ("channels", channels)] where value < 1 || value > 4096 {
            out.append("\(names[key] ?? key) = \(value) is outside 1…4096")
        }
        if width % 2 != 0 { out.append("width = \(width) must be even (the diffusers layout stores two row halves)") }
        return out
    }
}

// MARK: Step 2 — the family: canonical specs, naming tables, presets, inference, counts (Models/<Family>/)

enum ToyFamily: ModelFamily {
    typealias Config = ToyConfig
    static let name = "toy"
    static let summary = "toy MLP"

    static let canonical: [CanonicalSpec<ToyConfig>] = [
        CanonicalSpec("embed.weight") { [$0.width, $0.channels] },
        CanonicalSpec("blocks.{i}.fc.weight") { [$0.width, $0.width] },
        CanonicalSpec("blocks.{i}.fc.bias") { [$0.width] },
        CanonicalSpec("head.weight") { [$0.channels, $0.width] },
    ]

    static let layouts: [SourceLayout<ToyConfig>] = [
        SourceLayout(
            id: .original, summary: "toy original",
            forms: [
                "embed.weight": .same("inp.w"), "blocks.{i}.fc.weight": .same("layers.{i}.lin.weight"),
                "blocks.{i}.fc.bias": .same("layers.{i}.lin.bias"), "head.weight": .same("out.w"),
            ],
            signature: ["embed.weight", "head.weight"], depthProbe: "blocks.{i}.fc.weight",
            writer: .stateDict(nestedUnder: [], namePrefix: "", safetensors: true)),
        SourceLayout(
            id: .diffusers, summary: "toy diffusers",
            forms: [
                "embed.weight": .same("proj_in.weight"),
                "blocks.{i}.fc.weight": .rows(["mlp.{i}.top.weight", "mlp.{i}.bottom.weight"]),
                "blocks.{i}.fc.bias": .same("mlp.{i}.bias"), "head.weight": .copies("mlp.{j}.head.weight"),
            ],
            signature: ["embed.weight"], depthProbe: "blocks.{i}.fc.weight",
            writer: .diffusers(DiffusersWriter(
                component: "transformer", componentClass: "ToyModel",
                componentConfig: { .object([("_class_name", .string("ToyModel")), ("width", .int($0.width))]) },
                pipelineClass: "ToyPipeline"))),
    ]

    static let presets = [FamilyPreset(name: "toy-small", layout: .original, config: ToyConfig(width: 8, depth: 3, channels: 4))]

    static func inferConfig(_ context: inout InferenceContext<ToyFamily>) throws -> ToyConfig {
        var config = ToyConfig(
            width: try context.dim("embed.weight", 0, rank: 2), depth: context.depth, channels: try context.dim("embed.weight", 1, rank: 2),
            slope: context.layout.id == .diffusers ? 0.01 : 0)
        config.sourceLayout = context.layout.id
        try config.validate(origin: context.checkpoint.path)
        return config
    }

    static func recomputedTable(_ template: String, config: ToyConfig) -> [Float]? { nil }
    static func multiplyAdds(_ c: ToyConfig) -> Int { 2 * c.width * c.channels + c.depth * c.width * c.width }
    static func parameterGroup(_ name: String) -> String { name.hasPrefix("blocks.") ? "blocks" : "ends" }
}

// MARK: Step 4 — the reference forward (Reference/<Family>/)

extension ToyFamily: RunnableFamily {
    struct Weights: Sendable { let tensors: [String: [Float]] }
    struct Inputs: Sendable { let x: [Float]; let batch: Int }

    static func loadWeights(_ view: ModelView<ToyFamily>) throws -> Weights {
        Weights(tensors: Dictionary(uniqueKeysWithValues: try view.canonicalOutputs().map { ($0.name, try $0.float32()) }))
    }
    static func makeInputs(_ spec: InputSpec, config: ToyConfig) -> Inputs {
        var random = SplitMix64(state: spec.seed)
        return Inputs(x: (0..<(spec.batch * config.channels)).map { _ in Float(random.nextUnit() * 2 - 1) }, batch: spec.batch)
    }
    static func batch(of inputs: Inputs) -> Int { inputs.batch }
    static func inputProblems(_ inputs: Inputs, config: ToyConfig) -> [String] {
        inputs.x.count == inputs.batch * config.channels ? [] : ["input.x has \(inputs.x.count) values"]
    }
    static func run(_ weights: Weights, semantics c: ToyConfig, inputs: Inputs, kernels: KernelChoice, trace: Trace?) -> [Float] {
        func linear(_ x: [Float], _ w: [Float], _ out: Int, _ bias: [Float]? = nil) -> [Float] {
            let k = x.count / inputs.batch
            return (0..<(inputs.batch * out)).map { index in
                let (n, o) = (index / out, index % out)
                return (0..<k).reduce(bias?[o] ?? 0) { $0 + x[n * k + $1] * w[o * k + $1] }
            }
        }
        trace?.append("input.x", [inputs.batch, c.channels], inputs.x)
        var h = linear(inputs.x, weights.tensors["embed.weight"]!, c.width)
        trace?.append("embed", [inputs.batch, c.width], h)
        for i in 0..<c.depth {
            let f = linear(h, weights.tensors["blocks.\(i).fc.weight"]!, c.width, weights.tensors["blocks.\(i).fc.bias"]!)
            h = zip(h, f).map { $0 + ($1 > 0 ? $1 : Float(c.slope) * $1) }
            trace?.append("blocks.\(i)", [inputs.batch, c.width], h)
        }
        let y = linear(h, weights.tensors["head.weight"]!, c.channels)
        trace?.append("output", [inputs.batch, c.channels], y)
        return y
    }
    static func checkBudget(_ config: ToyConfig, batch: Int, tracing: Bool, kernels: KernelChoice, memoryBudget: Double, workBudget: Double) throws {
        if Double(multiplyAdds(config) * batch) > workBudget { throw ModelError.budget("too much work") }
    }
    static func traceOrder(_ names: [String]) -> [String] {
        func rank(_ n: String) -> Int { n == "input.x" ? -2 : n == "embed" ? -1 : n == "output" ? 1 << 20 : Int(n.dropFirst(7)) ?? 1 << 21 }
        return names.sorted { rank($0) < rank($1) }
    }
    static func traceShape(_ layer: String, config c: ToyConfig, batch: Int) -> [Int]? {
        layer == "input.x" || layer == "output" ? [batch, c.channels] : [batch, c.width]
    }
    static let traceInputLayers = ["input.x"]
    static let traceBatchLayer = "input.x"
    static func inputs(fromTrace trace: Trace) -> Result<Inputs, TraceInputsProblem> {
        guard let x = trace.layer("input.x"), x.shape.count == 2 else { return .failure(TraceInputsProblem("no input.x")) }
        return .success(Inputs(x: x.values, batch: x.shape[0]))
    }
    static func semantics(_ layout: Layout, of config: ToyConfig) -> ToyConfig? {
        var c = config
        switch layout {
        case .original: c.slope = 0
        case .diffusers: c.slope = 0.01
        default: return nil
        }
        return c
    }
    static func withNumerics(_ config: ToyConfig, of other: ToyConfig) -> ToyConfig {
        var c = config
        c.slope = other.slope
        return c
    }
    static func inputSignature(_ config: ToyConfig) -> String { "\(config.channels)" }
}

// MARK: Step 5 — the likely-cause rules (Verification/<Family>/)

extension ToyFamily: VerifiableFamily {
    static func likelyCauses(layer: String, _ a: ToyConfig, _ b: ToyConfig, configA: ToyConfig?, configB: ToyConfig?) -> [String] {
        layer.hasPrefix("blocks.") && a.slope != b.slope ? ["blocks.*: relu slope \(a.slope) vs \(b.slope)"] : []
    }
    static let causeFollowUps = ["blocks.0"]
}

// MARK: Step 6 — tests

@Suite("a throwaway family through the seam (docs/adding-a-family.md)")
struct ThrowawayFamilyTests {
    /// Step 3 is the registry line; a test cannot edit `ModelFamilies.all`, so it passes the list with its family added.
    static let families: [any ModelFamily.Type] = ModelFamilies.all + [ToyFamily.self]

    static func open(_ path: String) throws -> any AnyModelView {
        try ModelFamilies.open(try Checkpoint.open(path), families: families)
    }

    @Test("synthetic → original → canonical → diffusers → canonical → original is bit-identical; params and verify work")
    func roundTrips() throws {
        let dir = TemporaryDirectory()
        let preset = try #require(ToyFamily.preset(named: "TOY_small"))
        // Synthetic weights of the preset, written in its layout by the generic writer.
        try Exporter.write(
            try ConversionPlan<ToyFamily>.make(canonical: Synthetic.canonicalOutputs(preset.config, seed: 7), sources: [:], config: preset.config, to: .original),
            to: dir.file("a.pt"))
        let names = try Checkpoint.open(dir.file("a.pt")).tensors.map(\.name)
        #expect(names == ["inp.w", "layers.0.lin.weight", "layers.0.lin.bias", "layers.1.lin.weight", "layers.1.lin.bias",
                          "layers.2.lin.weight", "layers.2.lin.bias", "out.w"])
        // The registry (with the toy family added) detects it and opens it through its naming table.
        let a = try Self.open(dir.file("a.pt"))
        #expect(a.familyName == "toy" && a.layout == .original && a.configSummary == "W=8, depth 3, 4 channels")
        #expect(LayoutDetector.detect(names, families: Self.families).map(\.summary) == ["toy original"])
        _ = try a.erasedPlan(to: .canonical).write(to: dir.file("c.safetensors"), options: ExportOptions())
        let c = try Self.open(dir.file("c.safetensors"))
        #expect(c.familyName == "toy" && c.layout == .original)
        _ = try c.erasedPlan(to: .diffusers).write(to: dir.file("d"), options: ExportOptions())
        let dNames = Set(try Checkpoint.open(dir.file("d")).tensors.map(\.name))
        #expect(dNames.contains("transformer.mlp.2.head.weight") && dNames.contains("transformer.mlp.0.bottom.weight"))
        let d = try Self.open(dir.file("d"))
        #expect(d.layout == .diffusers && d.prefix == "transformer.")
        _ = try d.erasedPlan(to: .original).write(to: dir.file("b.pt"), options: ExportOptions())
        let before = try Checkpoint.open(dir.file("a.pt")), after = try Checkpoint.open(dir.file("b.pt"))
        #expect(before.tensors.map(\.name) == after.tensors.map(\.name))
        for t in before.tensors { #expect(try t.contiguousBytes() == after.tensor(named: t.name)!.contiguousBytes(), "\(t.name)") }

        // Counts: the diffusers layout stores the head once per block.
        let count = ParameterCount(config: preset.config, layout: .original)
        #expect(count.total == 8 * 4 + 3 * (64 + 8) + 4 * 8)
        #expect(ParameterCount(config: preset.config, layout: .diffusers).total == count.total + 2 * 32)

        // The verifier, through the erased entry points: the same weights in two layouts pass under one semantics,
        // and in their own the cause is the family's rule.
        let same = try Verifier(options: VerificationOptions(semantics: .original)).compareAny(a, d)
        #expect(same.passed, "\(same.text)")
        let own = try Verifier().compareAny(a, d)
        #expect(!own.passed && own.firstDivergence == "blocks.0" && own.likelyCauses.first == "blocks.*: relu slope 0.0 vs 0.01")
        let againstItself = try Verifier().compareAny(a, c)
        #expect(againstItself.passed && againstItself.layers.allSatisfy { $0.maxAbs == 0 })
        // A DiT and a toy are different families.
        let dit = try ModelFamilies.open(try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.pt")), options: ModelOptions(heads: 2))
        #expect(throws: VerificationError.differentFamilies(a: "toy", b: "dit")) { try Verifier().compareAny(a, dit) }
        // An option the family has no use for is refused, not ignored.
        #expect { try ModelFamilies.open(try Checkpoint.open(dir.file("a.pt")), options: ModelOptions(heads: 2), families: Self.families) } throws: {
            guard case ModelError.invalidOption("heads option", _) = $0 else { return false }
            return true
        }
    }

    @Test("a changed weight is blamed on the weights at the first layer it reaches")
    func blame() throws {
        let dir = TemporaryDirectory()
        let config = ToyConfig(width: 4, depth: 2, channels: 2)
        let outputs = Synthetic.canonicalOutputs(config, seed: 1)
        try Exporter.write(try ConversionPlan<ToyFamily>.make(canonical: outputs, sources: [:], config: config, to: .original), to: dir.file("a.pt"))
        let changed = outputs.map { output in
            output.name != "blocks.1.fc.bias" ? output : OutputTensor(name: output.name, dtype: .f32, shape: output.shape) { sink in
                try [Float](repeating: 1, count: 4).withUnsafeBytes { try sink.write($0) }
            }
        }
        try Exporter.write(try ConversionPlan<ToyFamily>.make(canonical: changed, sources: [:], config: config, to: .original), to: dir.file("b.pt"))
        let report = try Verifier().compareAny(try Self.open(dir.file("a.pt")), try Self.open(dir.file("b.pt")))
        #expect(report.firstDivergence == "blocks.1")
        #expect(report.likelyCauses == ["the configs agree on every numeric choice here, so the weights themselves differ at blocks.1 (a mapping or data error)"])
    }
}
