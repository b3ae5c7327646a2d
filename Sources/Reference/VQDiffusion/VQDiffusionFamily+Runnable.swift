import Checkpoints
import Models
import Tensors

extension VQDiffusionFamily: RunnableFamily {
    /// The transformer's float32 weights.
    public typealias Weights = VQDiffusionWeights
    /// Token ids, timesteps and context.
    public typealias Inputs = VQDiffusionInputs

    /// Reads the canonical weights (f32 tensors in place).
    public static func loadWeights(_ view: ModelView<VQDiffusionFamily>) throws -> VQDiffusionWeights { try VQDiffusionWeights(view) }

    /// Deterministic inputs (``VQDiffusionInputs/make(config:batch:seed:timesteps:)``); `spec.classes` is not used.
    public static func makeInputs(_ spec: InputSpec, config: VQDiffusionConfig) -> VQDiffusionInputs {
        VQDiffusionInputs.make(config: config, batch: spec.batch, seed: spec.seed, timesteps: spec.timesteps)
    }

    /// The samples in a batch.
    public static func batch(of inputs: VQDiffusionInputs) -> Int { inputs.batch }

    /// ``VQDiffusionInputs/problems(for:)``.
    public static func inputProblems(_ inputs: VQDiffusionInputs, config: VQDiffusionConfig) -> [String] { inputs.problems(for: config) }

    /// ``VQDiffusionForward/run(_:trace:workspace:)`` with the numerics of `semantics`.
    public static func run(
        _ weights: VQDiffusionWeights, semantics: VQDiffusionConfig, inputs: VQDiffusionInputs, kernels: KernelChoice, trace: Trace?
    ) -> [Float] {
        VQDiffusionForward(weights: weights, semantics: semantics, kernels: kernels).run(inputs, trace: trace)
    }

    /// The forward with its buffers reused from `workspace`.
    public static func run(_ weights: VQDiffusionWeights, semantics: VQDiffusionConfig, inputs: VQDiffusionInputs, kernels: KernelChoice, workspace: Workspace) -> [Float] {
        VQDiffusionForward(weights: weights, semantics: semantics, kernels: kernels).run(inputs, workspace: workspace)
    }

    /// Bytes of the activations a pass allocates (every buffer of `run`, and with a trace every recorded layer), in
    /// float64 so that no size overflows.
    public static func activationBytes(_ c: VQDiffusionConfig, batch: Int, tracing: Bool, kernels: KernelChoice) -> Double {
        let n = Double(batch), d = Double(c.hiddenSize), l = Double(c.tokens), rows = n * l, m = Double(c.contextLength)
        let codes = Double(c.codes), hd = max(c.hiddenSize / max(c.numHeads, 1), 1)
        let attention = c.tokens <= 1 << 20 ? Double(Attention.scratchCount(tokens: c.tokens, headDim: hd, kernels: kernels)) : l * l
        var floats = rows * d * 6  // x, h, q/k/v (3), attention
        floats += rows * d + rows * Double(c.mlpHidden)  // projected, MLP inner
        floats += n * m * 2 * d + max(attention, l * m)  // context k/v, scores
        floats += rows * codes + n * (codes + 1) * l  // logits, output
        floats += n * (m * Double(c.contextDim) + 2 * l + 4 * d)  // inputs, modulation
        floats += Double(c.depth) * 2 * d  // mean tables
        if tracing { floats += n * (m * Double(c.contextDim) + 2 * l + 1) + rows * d * Double(c.depth + 1) + n * (codes + 1) * l }
        return floats * 4
    }

    /// Throws `ModelError.overBudget` when a pass of `batch` samples needs more activation memory or multiply-adds than
    /// allowed, saying what one sample needs and how many samples fit.
    public static func checkBudget(
        _ config: VQDiffusionConfig, batch: Int, tracing: Bool, kernels: KernelChoice, memoryBudget: Double, workBudget: Double
    ) throws {
        let bytes = activationBytes(config, batch: batch, tracing: tracing, kernels: kernels)
        let work = Double(batch) * Double(multiplyAdds(config))
        guard bytes > memoryBudget || work > workBudget else { return }
        let oneBytes = activationBytes(config, batch: 1, tracing: tracing, kernels: kernels), oneWork = Double(multiplyAdds(config))
        let fitting = min(memoryBudget / oneBytes, workBudget / oneWork).rounded(.down)
        let gib = 1024.0 * 1024 * 1024
        func format(_ v: Double) -> String {
            v < 1e6 ? NumberFormat.fixed(v, fractionDigits: 2, trimmingZeros: true) : NumberFormat.scientific(v, trimmingZeros: true)
        }
        var message = "a forward pass of this model (\(config.height)×\(config.width) latent tokens of width \(config.hiddenSize), "
            + "\(config.depth) blocks, \(config.codes) codes) at batch \(batch) needs about \(format(bytes / gib)) GiB of activations and "
            + "\(format(work)) multiply-adds; the budget is \(format(memoryBudget / gib)) GiB and \(format(workBudget)) multiply-adds. "
        if fitting >= 1 {
            message += "Run at most \(Int(min(fitting, 1e9))) samples, or raise the budget"
        } else {
            message += "One sample alone needs \(format(oneBytes / gib)) GiB and \(format(oneWork)) multiply-adds: check the latent size "
                + "and the codes, or raise the budget"
        }
        throw ModelError.overBudget(message: message, fittingBatch: fitting >= 1 ? Int(min(fitting, 1e9)) : nil)
    }

    /// Inputs, the latent embedding, every block, the output.
    public static func traceOrder(_ names: [String]) -> [String] {
        func rank(_ name: String) -> (Int, Int) {
            switch name {
            case "input.tokens": return (0, 0)
            case "input.t": return (0, 1)
            case "input.context": return (0, 2)
            case "latent_embed": return (1, 0)
            case "output": return (3, 0)
            default:
                if name.hasPrefix("blocks."), let i = Int(name.dropFirst("blocks.".count)) { return (2, i) }
                return (4, 0)
            }
        }
        return names.sorted { rank($0) < rank($1) }
    }

    /// `input.tokens` (N, L), `input.t` (N), `input.context` (N, M, C), `latent_embed` and `blocks.{i}` (N, L, D),
    /// `output` (N, codes, L), or (N, codes + 1, L) under the original's output form.
    public static func traceShape(_ name: String, config c: VQDiffusionConfig, batch n: Int) -> [Int]? {
        switch name {
        case "input.tokens": return [n, c.tokens]
        case "input.t": return [n]
        case "input.context": return [n, c.contextLength, c.contextDim]
        case "latent_embed": return [n, c.tokens, c.hiddenSize]
        case "output": return [n, c.outputRows, c.tokens]
        default:
            guard name.hasPrefix("blocks."), let i = Int(name.dropFirst("blocks.".count)), i >= 0, i < c.depth,
                name == "blocks.\(i)" else { return nil }
            return [n, c.tokens, c.hiddenSize]
        }
    }

    /// The three input layers.
    public static let traceInputLayers = ["input.tokens", "input.t", "input.context"]
    /// One timestep per sample.
    public static let traceBatchLayer = "input.t"

    /// Token ids (integers that fit an Int32, never converted by a trapping `Int(_:)`), timesteps and context.
    public static func inputs(fromTrace trace: Trace) -> Result<VQDiffusionInputs, TraceInputsProblem> {
        guard let tokens = trace.layer("input.tokens"), let t = trace.layer("input.t"), let context = trace.layer("input.context") else {
            return .failure(TraceInputsProblem("it has no input.tokens, input.t and input.context to run on"))
        }
        var ids: [Int] = []
        ids.reserveCapacity(tokens.values.count)
        for (i, v) in tokens.values.enumerated() {
            guard v.rounded() == v, abs(v) < 0x1p31 else { return .failure(TraceInputsProblem("input.tokens[\(i)] = \(v) is not an integer token id")) }
            ids.append(Int(v))
        }
        return .success(VQDiffusionInputs(tokens: ids, t: t.values, context: context.values))
    }

    /// The original's numerics (mask row and clamp, mean table for late timesteps) or diffusers'.
    public static func semantics(_ layout: Layout, of config: VQDiffusionConfig) -> VQDiffusionConfig? {
        switch layout {
        case .original: return config.withOriginalSemantics()
        case .diffusers: return config.withDiffusersSemantics()
        default: return nil
        }
    }

    /// `config`'s sizes with `other`'s numerics.
    public static func withNumerics(_ config: VQDiffusionConfig, of other: VQDiffusionConfig) -> VQDiffusionConfig { config.withNumerics(of: other) }

    /// `32×32 tokens, 77×512 context`.
    public static func inputSignature(_ c: VQDiffusionConfig) -> String {
        "\(c.height)×\(c.width) tokens of \(c.codes) codes, \(c.contextLength)×\(c.contextDim) context"
    }

    /// Every matrix product of ``VQDiffusionForward/run(_:trace:workspace:)``, in order.
    public static func gemmShapes(_ c: VQDiffusionConfig, batch n: Int) -> [GEMMShape] {
        let d = c.hiddenSize, l = c.tokens, rows = n * l, m = c.contextLength, hd = d / c.numHeads
        func linear(_ r: Int, _ k: Int, _ out: Int, _ weight: String) -> GEMMShape {
            GEMMShape.linear(rows: r, inFeatures: k, outFeatures: out, weight: weight)
        }
        var shapes: [GEMMShape] = []
        for i in 0..<c.depth {
            let b = "blocks.\(i)."
            shapes += [
                linear(n, d, 2 * d, b + "norm1.linear.weight"),
                linear(rows, d, d, b + "self_attn.q.weight"), linear(rows, d, d, b + "self_attn.k.weight"), linear(rows, d, d, b + "self_attn.v.weight"),
                GEMMShape(m: l, n: l, k: hd, transposeB: true, lda: 3 * d, ldb: 3 * d, ldc: l, count: n * c.numHeads,
                          operand: .selfAttention(batch: n, tokens: l, dim: d, heads: c.numHeads)),
                GEMMShape(m: l, n: hd, k: l, transposeB: false, lda: l, ldb: 3 * d, ldc: d, count: n * c.numHeads, operand: .attentionValues),
                linear(rows, d, d, b + "self_attn.out.weight"),
                linear(n, d, 2 * d, b + "norm2.linear.weight"),
                linear(rows, d, d, b + "cross_attn.q.weight"),
                linear(n * m, c.contextDim, d, b + "cross_attn.k.weight"), linear(n * m, c.contextDim, d, b + "cross_attn.v.weight"),
                GEMMShape(m: l, n: m, k: hd, transposeB: true, lda: d, ldb: 2 * d, ldc: m, count: n * c.numHeads),
                GEMMShape(m: l, n: hd, k: m, transposeB: false, lda: m, ldb: 2 * d, ldc: d, count: n * c.numHeads),
                linear(rows, d, d, b + "cross_attn.out.weight"),
                linear(rows, d, c.mlpHidden, b + "mlp.fc1.weight"), linear(rows, c.mlpHidden, d, b + "mlp.fc2.weight"),
            ]
        }
        shapes.append(linear(rows, d, c.codes, "out.weight"))
        return shapes
    }
}
