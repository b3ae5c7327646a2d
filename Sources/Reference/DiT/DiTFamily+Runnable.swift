import Checkpoints
import Models

extension DiTFamily: RunnableFamily {
    public typealias Weights = DiTWeights
    public typealias Inputs = DiTInputs

    public static func loadWeights(_ view: ModelView<DiTFamily>) throws -> DiTWeights { try DiTWeights(view) }

    public static func makeInputs(_ spec: InputSpec, config: DiTConfig) -> DiTInputs {
        DiTInputs.make(config: config, batch: spec.batch, seed: spec.seed, timesteps: spec.timesteps, classes: spec.classes)
    }

    public static func batch(of inputs: DiTInputs) -> Int { inputs.batch }

    public static func inputProblems(_ inputs: DiTInputs, config: DiTConfig) -> [String] { inputs.problems(for: config) }

    public static func run(_ weights: DiTWeights, semantics: DiTConfig, inputs: DiTInputs, kernels: KernelChoice, trace: Trace?) -> [Float] {
        DiTForward(weights: weights, semantics: semantics, kernels: kernels).run(inputs, trace: trace)
    }

    public static func checkBudget(
        _ config: DiTConfig, batch: Int, tracing: Bool, kernels: KernelChoice, memoryBudget: Double, workBudget: Double
    ) throws {
        try ForwardCost(config: config, batch: batch, tracing: tracing, kernels: kernels).check(memoryBudget: memoryBudget, workBudget: workBudget)
    }

    /// Inputs, then the embeddings, the patch embedding, every block, the final layer and the output.
    public static func traceOrder(_ names: [String]) -> [String] {
        func rank(_ name: String) -> (Int, Int) {
            switch name {
            case "input.x": return (0, 0)
            case "input.t": return (0, 1)
            case "input.y": return (0, 2)
            case "t_embed": return (1, 0)
            case "y_embed": return (1, 1)
            case "cond": return (1, 2)
            case "patch_embed": return (2, 0)
            case "final": return (4, 0)
            case "output": return (5, 0)
            default:
                if name.hasPrefix("blocks."), let i = Int(name.dropFirst("blocks.".count)) { return (3, i) }
                return (6, 0)
            }
        }
        return names.sorted { rank($0) < rank($1) }
    }

    public static func traceShape(_ name: String, config c: DiTConfig, batch n: Int) -> [Int]? {
        let (d, t, s) = (c.hiddenSize, c.tokens, c.inputSize)
        switch name {
        case "input.x": return [n, c.inChannels, s, s]
        case "input.t", "input.y": return [n]
        case "t_embed", "y_embed", "cond": return [n, d]
        case "patch_embed": return [n, t, d]
        case "final": return [n, t, c.patchSize * c.patchSize * c.outChannels]
        case "output": return [n, c.outChannels, s, s]
        default:
            guard name.hasPrefix("blocks."), let i = Int(name.dropFirst("blocks.".count)), i >= 0, i < c.depth,
                name == "blocks.\(i)" else { return nil }
            return [n, t, d]
        }
    }

    public static let traceInputLayers = ["input.x", "input.t", "input.y"]
    public static let traceBatchLayer = "input.t"

    /// x, t and the class ids (which must be integers that fit an Int32, never converted by a trapping `Int(_:)`).
    public static func inputs(fromTrace trace: Trace) -> Result<DiTInputs, TraceInputsProblem> {
        guard let x = trace.layer("input.x"), let t = trace.layer("input.t"), let y = trace.layer("input.y") else {
            return .failure(TraceInputsProblem("it has no input.x, input.t and input.y to run on"))
        }
        var ids: [Int] = []
        for (i, v) in y.values.enumerated() {
            guard v.rounded() == v, abs(v) < 0x1p31 else { return .failure(TraceInputsProblem("input.y[\(i)] = \(v) is not an integer class id")) }
            ids.append(Int(v))
        }
        return .success(DiTInputs(x: x.values, t: t.values, y: ids))
    }

    public static func semantics(_ layout: Layout, of config: DiTConfig) -> DiTConfig? {
        switch layout {
        case .original: return config.withOriginalSemantics()
        case .diffusers: return config.withDiffusersSemantics()
        default: return nil
        }
    }

    public static func withNumerics(_ config: DiTConfig, of other: DiTConfig) -> DiTConfig { config.withNumerics(of: other) }

    public static func inputSignature(_ config: DiTConfig) -> String { "\(config.inChannels)×\(config.inputSize)²" }
}
