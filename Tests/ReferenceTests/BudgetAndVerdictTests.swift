import Checkpoints
import Models
import Reference
import DitkitTestSupport
import Testing
import Verification

/// The forward budget, the input ranges, and the rule that a verify comparing nothing beyond the inputs never passes.
@Suite("forward budget, input ranges, vacuous verdicts")
struct BudgetAndVerdictTests {
    static let tiny: DiTConfig = {
        var c = DiTConfig(hiddenSize: 8, depth: 1, numHeads: 2, patchSize: 2, numClasses: 2, mlpHidden: 32, inputSize: 4)
        c.frequencyEmbeddingSize = 16
        return c
    }()

    @Test("DiT-XL/2 at 512 px, batch 2, traced, fits the default budget; a tiny model at input 4096 does not")
    func budget() throws {
        let xl = try #require(Preset.named("DiT-XL/2-512")).config
        let cost = ForwardCost(config: xl, batch: 2, tracing: true)
        #expect(cost.activationBytes < 1.0 * 1024 * 1024 * 1024, "\(cost.activationBytes)")
        try cost.check()
        var huge = Self.tiny
        huge.inputSize = 4096
        #expect(huge.problems().isEmpty)
        #expect(throws: ModelError.self) { try ForwardCost(config: huge, batch: 4, tracing: true).check() }
        do {
            try ForwardCost(config: huge, batch: 1, tracing: false).check()
        } catch {
            #expect("\(error)".contains("One sample alone needs"), "\(error)")
        }
        do {
            try ForwardCost(config: Self.tiny, batch: 100_000_000, tracing: true).check()
            Issue.record("a batch of 10^8 was accepted")
        } catch {
            #expect("\(error)".contains("Run at most"), "\(error)")
        }
    }

    @Test("ForwardOptions: the CLI's defaults, ForwardCost's budget, and inputs checked where they enter")
    func forwardOptions() throws {
        let defaults = ForwardOptions()
        #expect(defaults.batch == 4 && defaults.seed == 0 && defaults.kernels == .automatic)
        #expect(defaults.memoryBudget == ForwardCost.defaultMemoryBudget && defaults.workBudget == ForwardCost.defaultWorkBudget)
        let xl = try #require(Preset.named("DiT-XL/2-512")).config
        try ForwardOptions(batch: 2).checkBudget(xl, tracing: true)
        #expect(throws: ModelError.self) { try ForwardOptions(batch: 2, memoryBudget: 0.1 * 1024 * 1024 * 1024).checkBudget(xl, tracing: true) }
        #expect(throws: ModelError.self) { try ForwardOptions().checkBudget(Self.tiny, batch: 100_000_000, tracing: true) }
        let made = try ForwardOptions(batch: 2, seed: 3, timesteps: [7], classes: [1]).inputs(for: Self.tiny)
        let direct = DiTInputs.make(config: Self.tiny, batch: 2, seed: 3, timesteps: [7], classes: [1])
        #expect(made.x == direct.x && made.t == [7, 7] && made.y == [1, 1])
        #expect(try ForwardOptions(batch: 4).inputs(for: Self.tiny).y == [0, 2, 1, 2], "0, the null class, 1, 2 (capped at the table)")
        #expect(throws: VerificationError.invalidInputs(problems: ["input.y[0] = 3 is outside the label table (0…2; 2 is the null class)"])) {
            try ForwardOptions(batch: 1, classes: [3]).inputs(for: Self.tiny)
        }
    }

    @Test("inputs: counts, finiteness, magnitude, table timesteps and class ids are checked")
    func inputs() {
        let good = DiTInputs.make(config: Self.tiny, batch: 2, seed: 0, timesteps: [0, 999], classes: [0, 2])
        #expect(good.problems(for: Self.tiny).isEmpty)
        var bad = good
        bad.x[3] = .nan
        #expect(bad.problems(for: Self.tiny) == ["input.x[3] = nan is not a finite number within ±1000000.0"])
        bad = good
        bad.x.removeLast()
        #expect(bad.problems(for: Self.tiny).first?.hasPrefix("input.x has 127 elements") == true)
        bad = good
        bad.y = [0, 3]
        #expect(bad.problems(for: Self.tiny).first?.hasPrefix("input.y[1] = 3 is outside the label table (0…2") == true)
        bad = good
        bad.t = [0, 1000]
        #expect(bad.problems(for: Self.tiny).isEmpty, "sinusoid timesteps may be any finite number")
        var table = Self.tiny
        table.timestepInput = .table
        #expect(bad.problems(for: table) == ["input.t[1] = 1000.0 is outside the timestep table (0…999)"])
    }

    @Test("a trace's class ids that are not integers give no inputs (no Int conversion trap)")
    func traceInputs() {
        for y: Float in [1e30, .nan, 0.5, -.infinity] {
            let trace = Trace()
            trace.append("input.x", [1, 4, 4, 4], [Float](repeating: 0, count: 64))
            trace.append("input.t", [1], [0])
            trace.append("input.y", [1], [y])
            #expect(TraceFile.inputs(of: trace) == nil, "\(y)")
        }
    }

    static func trace(_ layers: [(String, [Int])]) -> Trace {
        let t = Trace()
        for (name, shape) in layers { t.append(name, shape, [Float](repeating: 1, count: shape.reduce(1, *))) }
        return t
    }

    static func compare(_ a: Trace, _ b: Trace) -> VerificationReport {
        VerificationReport.compare(a, b, tolerance: Tolerance(rtol: 1e-5, atol: 0), configA: nil, configB: nil, semanticsA: nil,
                                   semanticsB: nil, labelA: "a", labelB: "b")
    }

    @Test("nothing compared beyond the inputs never passes; one compared layer can")
    func vacuous() {
        let inputs: [(String, [Int])] = [("input.x", [1, 4, 4, 4]), ("input.t", [1]), ("input.y", [1])]
        let only = Self.compare(Self.trace(inputs), Self.trace(inputs))
        #expect(only.isVacuous && !only.passed && only.firstDivergence == nil)
        #expect(only.text.contains("FAIL: nothing beyond the inputs was compared"))
        #expect(only.json["passed"] == .bool(false))
        let mismatched = Self.compare(Self.trace(inputs + [("t_embed", [1, 8])]), Self.trace(inputs + [("t_embed", [1, 16])]))
        #expect(mismatched.isVacuous && !mismatched.passed)
        let oneSide = Self.compare(Self.trace(inputs + [("output", [1, 8, 4, 4])]), Self.trace(inputs))
        #expect(oneSide.isVacuous, "a layer only one side has is not a comparison")
        let real = Self.compare(Self.trace(inputs + [("output", [1, 8, 4, 4])]), Self.trace(inputs + [("output", [1, 8, 4, 4])]))
        #expect(!real.isVacuous && real.passed && real.comparedLayers == ["output"])
    }
}
