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

    /// The forward with its buffers reused from `workspace`.
    public static func run(_ weights: DiTWeights, semantics: DiTConfig, inputs: DiTInputs, kernels: KernelChoice, workspace: Workspace) -> [Float] {
        DiTForward(weights: weights, semantics: semantics, kernels: kernels).run(inputs, workspace: workspace)
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

    /// Every matrix product `DiTForward.run` performs for a batch of `n`, in order (it mirrors `run`), for the GEMM
    /// floor of `ditkit bench forward`.
    public static func gemmShapes(_ c: DiTConfig, batch n: Int) -> [GEMMShape] {
        let d = c.hiddenSize, rows = n * c.tokens, t = c.tokens, hd = d / c.numHeads
        func linear(_ m: Int, _ k: Int, _ out: Int, _ weight: String) -> GEMMShape {
            GEMMShape.linear(rows: m, inFeatures: k, outFeatures: out, weight: weight)
        }
        var shapes = [
            linear(rows, c.inChannels * c.patchSize * c.patchSize, d, "patch_embed.weight"),
            linear(n, c.frequencyEmbeddingSize, d, "t_embed.fc1.weight"), linear(n, d, d, "t_embed.fc2.weight"),
        ]
        for i in 0..<c.depth {
            let b = "blocks.\(i)."
            shapes += [
                linear(n, d, 6 * d, b + "modulation.weight"), linear(rows, d, 3 * d, b + "attn.qkv.weight"),
                GEMMShape(m: t, n: t, k: hd, transposeB: true, lda: 3 * d, ldb: 3 * d, ldc: t, count: n * c.numHeads,
                          operand: .selfAttention(batch: n, tokens: t, dim: d, heads: c.numHeads)),
                GEMMShape(m: t, n: hd, k: t, transposeB: false, lda: t, ldb: 3 * d, ldc: d, count: n * c.numHeads, operand: .attentionValues),
                linear(rows, d, d, b + "attn.out.weight"), linear(rows, d, c.mlpHidden, b + "mlp.fc1.weight"),
                linear(rows, c.mlpHidden, d, b + "mlp.fc2.weight"),
            ]
        }
        shapes += [linear(n, d, 2 * d, "final.modulation.weight"), linear(rows, d, c.patchSize * c.patchSize * c.outChannels, "final.linear.weight")]
        return shapes
    }
}
