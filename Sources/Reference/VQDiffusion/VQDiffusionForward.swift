import Checkpoints
import Dispatch
import Models
import Tensors

/// A VQ-Diffusion transformer's weights in float32, in canonical form (f32 tensors of a mapped checkpoint are read in
/// place), with the mean of every adaptive norm's timestep table (the original's row for late timesteps).
public struct VQDiffusionWeights: Sendable {
    /// One adaptive LayerNorm: its timestep table (steps, D), its linear (2D, D) and bias, and the table's mean row.
    public struct AdaNorm: Sendable {
        /// Timestep table (steps, D), its linear (2D, D: scale rows first, then shift) and the linear's bias.
        public var table: WeightArray, weight: WeightArray, bias: WeightArray
        /// The mean over the table's rows, computed as torch computes `emb.weight.mean(0)` in float32
        /// (``VQDiffusionWeights/torchColumnMean(_:rows:columns:)``).
        public var mean: [Float]
    }

    /// One transformer block's weights (row-major (out, in) matrices, as the canonical tensors).
    public struct Block: Sendable {
        /// The adaptive norms before self- and cross-attention.
        public var norm1: AdaNorm, norm2: AdaNorm
        /// Self-attention projections (D, D) and biases; `qkvBias` is q, k and v's biases end to end (3D).
        public var selfQ: WeightArray, selfK: WeightArray, selfV: WeightArray, selfOut: WeightArray, qkvBias: [Float], selfOutB: WeightArray
        /// Cross-attention: q (D, D), k and v (D, context dim), out (D, D); `crossQB`, `kvBias` (k then v, 2D), `crossOutB`.
        public var crossQ: WeightArray, crossK: WeightArray, crossV: WeightArray, crossOut: WeightArray
        /// Biases of the cross-attention projections.
        public var crossQB: WeightArray, kvBias: [Float], crossOutB: WeightArray
        /// The affine norm before the MLP.
        public var norm3W: WeightArray, norm3B: WeightArray
        /// MLP: fc1 (H, D), fc2 (D, H) and their biases.
        public var fc1W: WeightArray, fc1B: WeightArray, fc2W: WeightArray, fc2B: WeightArray
    }

    /// The sizes (and the weights' own numerics).
    public let config: VQDiffusionConfig
    /// Token embedding (codes + 1, D), row embedding (height, D), column embedding (width, D).
    public var tokenEmbed: WeightArray, heightEmbed: WeightArray, widthEmbed: WeightArray
    /// The blocks, in order.
    public var blocks: [Block]
    /// Output norm (affine) and the logits layer (codes, D) with its bias.
    public var normOutW: WeightArray, normOutB: WeightArray, outW: WeightArray, outB: WeightArray

    /// Loads the canonical tensors of `view` as float32.
    public init(_ view: ModelView<VQDiffusionFamily>) throws {
        try self.init(
            config: view.config, tensors: Dictionary(view.canonicalOutputs().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }),
            sources: view.sources)
    }

    /// Builds weights from canonical tensors by name; `sources` lets f32 tensors of a mapped checkpoint be read in place.
    public init(config: VQDiffusionConfig, tensors: [String: OutputTensor], sources: [String: CanonicalSource] = [:]) throws {
        try config.validate(origin: "the weights' config")
        let expected = Dictionary(
            VQDiffusionFamily.allCanonicalTensors(config).map { ($0.name, $0.spec.shape(config)) }, uniquingKeysWith: { a, _ in a })
        func load(_ name: String) throws -> WeightArray {
            guard let t = tensors[name] else { throw ModelError.config("the model has no \(name)") }
            let want = expected[name] ?? []
            guard let have = try? checkedElementCount(t.shape), have == (try? checkedElementCount(want)) else {
                throw ModelError.mapping(path: "weights", problems: ["shape: \(name) is \(t.shape), expected \(want) for this config"])
            }
            return try WeightArray(t, source: sources[name])
        }
        let d = config.hiddenSize, steps = config.diffusionSteps
        func ada(_ prefix: String) throws -> AdaNorm {
            let table = try load(prefix + ".table")
            return AdaNorm(table: table, weight: try load(prefix + ".linear.weight"), bias: try load(prefix + ".linear.bias"),
                           mean: Self.torchColumnMean(table.base, rows: steps, columns: d))
        }
        func values(_ w: WeightArray) -> [Float] { Array(UnsafeBufferPointer(start: w.base, count: w.count)) }
        self.config = config
        tokenEmbed = try load("latent_embed.tokens")
        heightEmbed = try load("latent_embed.height")
        widthEmbed = try load("latent_embed.width")
        blocks = try (0..<config.depth).map { i in
            let b = "blocks.\(i)."
            let qB = try load(b + "self_attn.q.bias"), kB = try load(b + "self_attn.k.bias"), vB = try load(b + "self_attn.v.bias")
            let ckB = try load(b + "cross_attn.k.bias"), cvB = try load(b + "cross_attn.v.bias")
            return Block(
                norm1: try ada(b + "norm1"), norm2: try ada(b + "norm2"),
                selfQ: try load(b + "self_attn.q.weight"), selfK: try load(b + "self_attn.k.weight"), selfV: try load(b + "self_attn.v.weight"),
                selfOut: try load(b + "self_attn.out.weight"), qkvBias: values(qB) + values(kB) + values(vB),
                selfOutB: try load(b + "self_attn.out.bias"),
                crossQ: try load(b + "cross_attn.q.weight"), crossK: try load(b + "cross_attn.k.weight"),
                crossV: try load(b + "cross_attn.v.weight"), crossOut: try load(b + "cross_attn.out.weight"),
                crossQB: try load(b + "cross_attn.q.bias"), kvBias: values(ckB) + values(cvB), crossOutB: try load(b + "cross_attn.out.bias"),
                norm3W: try load(b + "norm3.weight"), norm3B: try load(b + "norm3.bias"),
                fc1W: try load(b + "mlp.fc1.weight"), fc1B: try load(b + "mlp.fc1.bias"),
                fc2W: try load(b + "mlp.fc2.weight"), fc2B: try load(b + "mlp.fc2.bias"))
        }
        normOutW = try load("norm_out.weight"); normOutB = try load("norm_out.bias")
        outW = try load("out.weight"); outB = try load("out.bias")
    }

    /// The mean over the rows of a (rows, columns) row-major float32 matrix, in the order torch 2.x's CPU kernel sums
    /// dim 0 (`at::sum(...).div_(rows)`, SumKernel.cpp): the first ⌊columns/32⌋·32 columns (four 8-lane vectors at a
    /// time) by a cascade over all rows (`multi_row_sum`); the remaining columns as `row_sum`: four interleaved
    /// cascades over the rows taken four at a time, the leftover rows added to the first, then the four added in
    /// order. The cascade adds rows into level 0 in runs of 2^p rows (p = max(4, ⌈log2 n⌉/4)) and carries each run
    /// into higher levels; all levels are added into level 0 at the end. Checked bit for bit against
    /// `torch.Tensor.mean(0)` (torch 2.15, CPU) for 1…5000 rows and 5…1408 columns (more than one column).
    public static func torchColumnMean(_ x: UnsafePointer<Float>, rows: Int, columns: Int) -> [Float] {
        let vectorColumns = columns / 32 * 32
        var out = [Float](repeating: 0, count: columns)
        for j in 0..<columns {
            let sum = j < vectorColumns
                ? cascade(count: rows) { x[$0 * columns + j] }
                : rowSum(rows: rows) { x[$0 * columns + j] }
            out[j] = sum / Float(rows)
        }
        return out
    }

    /// torch's `multi_row_sum` for one lane: Σ value(i) for i < count, in its cascade order.
    static func cascade(count: Int, _ value: (Int) -> Float) -> Float {
        let levels = 4
        let ceilLog2 = count > 1 ? Int.bitWidth - (count - 1).leadingZeroBitCount : 0
        let power = max(4, ceilLog2 / levels), step = 1 << power, mask = step - 1
        var acc = [Float](repeating: 0, count: levels)
        var i = 0
        while i + step <= count {
            for _ in 0..<step { acc[0] += value(i); i += 1 }
            for j in 1..<levels {
                acc[j] += acc[j - 1]
                acc[j - 1] = 0
                if i & (mask << (j * power)) != 0 { break }
            }
        }
        while i < count { acc[0] += value(i); i += 1 }
        for j in 1..<levels { acc[0] += acc[j] }
        return acc[0]
    }

    /// torch's `row_sum` (four interleaved cascades) for one column.
    static func rowSum(rows: Int, _ value: (Int) -> Float) -> Float {
        let groups = rows / 4
        var partial = (0..<4).map { k in cascade(count: groups) { value($0 * 4 + k) } }
        for i in (groups * 4)..<rows { partial[0] += value(i) }
        for k in 1..<4 { partial[0] += partial[k] }
        return partial[0]
    }
}

/// Inputs of one forward pass: latent token ids (N, L) (`codes` is the mask token), one timestep per sample, and the
/// text context (N, context length, context dim).
public struct VQDiffusionInputs: Sendable {
    /// Token ids, (N, L) row-major, token n = row·W + col.
    public var tokens: [Int]
    /// Timesteps, one per sample (integers; rows of the adaptive norms' tables).
    public var t: [Float]
    /// Context (N, M, C) row-major.
    public var context: [Float]
    /// Samples in the batch (N).
    public var batch: Int { t.count }

    /// Inputs as given; check them with ``problems(for:)``.
    public init(tokens: [Int], t: [Float], context: [Float]) {
        self.tokens = tokens
        self.t = t
        self.context = context
    }

    /// Largest magnitude a context value may have (10^6).
    public static let maxMagnitude: Float = 1e6

    /// What makes these inputs unusable for `config`: counts that do not match the batch, a token id outside
    /// 0…codes, a timestep that is not an integer in 0…steps−1 (under `.meanEmbedding` late timesteps are allowed
    /// when the first one is late: the original then uses the mean tables for the whole batch), a non-finite context
    /// value. Each line names the input, the index and the value.
    public func problems(for config: VQDiffusionConfig) -> [String] {
        var out: [String] = []
        let n = batch
        if n < 1 { out.append("input.t is empty: the batch must hold at least one sample") }
        let (tokenCount, o1) = config.tokens.multipliedReportingOverflow(by: n)
        if o1 || tokens.count != tokenCount {
            out.append("input.tokens has \(tokens.count) elements, expected N·L = \(n)·\(config.tokens)")
        }
        let (contextCount, o2) = (config.contextLength * config.contextDim).multipliedReportingOverflow(by: n)
        if o2 || context.count != contextCount {
            out.append("input.context has \(context.count) elements, expected N·M·C = \(n)·\(config.contextLength)·\(config.contextDim)")
        }
        for (i, v) in tokens.enumerated() where v < 0 || v > config.codes {
            out.append("input.tokens[\(i)] = \(v) is outside the token ids (0…\(config.codes); \(config.codes) is the mask token)")
            if out.count > 12 { return out }
        }
        for (i, v) in t.enumerated() {
            if !v.isFinite || v.rounded() != v || v < 0 || v >= 0x1p31 {
                out.append("input.t[\(i)] = \(v) is not a timestep (an integer from 0)")
            } else if Int(v) >= config.diffusionSteps, config.lateTimesteps == .refuse {
                out.append("input.t[\(i)] = \(Int(v)) is outside the timestep tables (0…\(config.diffusionSteps - 1))")
            } else if Int(v) >= config.diffusionSteps, i > 0, let first = t.first, !(first >= Float(config.diffusionSteps)) {
                out.append("input.t[\(i)] = \(Int(v)) is outside the timestep tables (0…\(config.diffusionSteps - 1)); the original "
                    + "uses the mean tables only when the batch's first timestep is late")
            }
            if out.count > 12 { return out }
        }
        if let i = context.firstIndex(where: { !$0.isFinite || abs($0) > Self.maxMagnitude }) {
            out.append("input.context[\(i)] = \(context[i]) is not a finite number within ±\(Self.maxMagnitude)")
        }
        return out
    }

    /// Deterministic inputs: token ids uniform over 0…codes (the mask token included), timesteps cycling through
    /// `timesteps` (by default 0, steps − 1, steps / 2, steps / 4), context N(0, 1) divided by each token's norm (the
    /// pipeline divides CLIP's output by its norm).
    public static func make(config: VQDiffusionConfig, batch: Int, seed: UInt64, timesteps: [Float]? = nil) -> VQDiffusionInputs {
        let steps = config.diffusionSteps
        let ts = timesteps ?? [0, steps - 1, steps / 2, steps / 4].map(Float.init)
        var generator = SplitMix64(state: seed &* SplitMix64.golden &+ 3)
        let choices = UInt64(config.codes + 1)
        let tokens = (0..<(batch * config.tokens)).map { _ in Int(generator.next() % choices) }
        func uniform() -> Double { (Double(generator.next() >> 11) + 0.5) / Double(1 << 53) }
        let width = config.contextDim, count = batch * config.contextLength * width
        var context = [Float](repeating: 0, count: count)
        var i = 0
        while i < count {  // Box–Muller
            let r = (-2 * Platform.log(uniform())).squareRoot(), angle = 2 * Double.pi * uniform()
            context[i] = Float(r * Platform.cos(angle))
            if i + 1 < count { context[i + 1] = Float(r * Platform.sin(angle)) }
            i += 2
        }
        for row in 0..<(batch * config.contextLength) {
            var sum: Float = 0
            for j in 0..<width { sum += context[row * width + j] * context[row * width + j] }
            let norm = sum.squareRoot()
            for j in 0..<width { context[row * width + j] /= norm }
        }
        return VQDiffusionInputs(tokens: tokens, t: (0..<batch).map { ts[$0 % ts.count] }, context: context)
    }
}

/// The float32 reference forward pass of the VQ-Diffusion transformer, with the numerics of `semantics` (each norm's
/// eps, the activation, the output form, late timesteps); by default the weights' own config. Matrix products go
/// through `cblas_sgemm` (ditkit's AVX-512 kernels for the few-row adaptive-norm products and self-attention where
/// `kernels` allows); the log-softmax runs in float64 as both sources compute it.
public struct VQDiffusionForward: Sendable {
    /// The weights run.
    public let weights: VQDiffusionWeights
    /// The numerics run (the weights' sizes with the numerics chosen).
    public let semantics: VQDiffusionConfig
    /// Which kernels run.
    public let kernels: KernelChoice

    /// A forward of `weights` with the numerics of `semantics` (by default the weights' own) on `kernels`.
    public init(weights: VQDiffusionWeights, semantics: VQDiffusionConfig? = nil, kernels: KernelChoice = .automatic) {
        self.weights = weights
        self.semantics = semantics ?? weights.config
        self.kernels = kernels
    }

    /// Runs the model; returns the output (N, codes, L), or (N, codes + 1, L) under the original's output form. With
    /// a `trace`, records every layer of the trace format. `inputs` must fit the config (`problems(for:)` empty).
    public func run(_ inputs: VQDiffusionInputs, trace: Trace? = nil, workspace: Workspace = Workspace()) -> [Float] {
        let c = weights.config, s = semantics, level = kernels.level
        let n = inputs.batch, d = c.hiddenSize, l = c.tokens, rows = n * l
        let heads = s.hiddenSize == d && s.numHeads >= 1 && d % s.numHeads == 0 ? s.numHeads : c.numHeads
        let hd = d / heads, m = c.contextLength, cd = c.contextDim, mlp = c.mlpHidden, codes = c.codes
        trace?.append("input.tokens", [n, l], inputs.tokens.map(Float.init))
        trace?.append("input.t", [n], inputs.t)
        trace?.append("input.context", [n, m, cd], inputs.context)

        // h = tok[token] + (height[row] + width[col]).
        var x = workspace.take("x", rows * d)
        x.withUnsafeMutableBufferPointer { xb in
            let tok = weights.tokenEmbed.base, hgt = weights.heightEmbed.base, wid = weights.widthEmbed.base
            for r in 0..<rows {
                let token = max(0, min(codes, inputs.tokens[r])), position = r % l
                let tr = tok + token * d, hr = hgt + (position / c.width) * d, wr = wid + (position % c.width) * d
                for j in 0..<d { xb[r * d + j] = tr[j] + (hr[j] + wr[j]) }  // tok + (height + width), as both sources add them
            }
        }
        trace?.append("latent_embed", [n, l, d], x)

        // Each sample's timestep row (nil: the table's mean). The original tests `timestep[0] >= diffusion_step` once per
        // batch: when the first sample's t is late, every sample uses the mean tables.
        let steps = c.diffusionSteps
        let steps0 = inputs.t.first.map { $0.isNaN ? 0 : Int(max(0, min(Float(Int32.max), $0.rounded()))) } ?? 0
        let allMean = s.lateTimesteps == .meanEmbedding && steps0 >= steps
        let rowsOfT: [Int?] = inputs.t.map { v in
            let step = v.isNaN ? 0 : Int(max(0, min(Float(Int32.max), v.rounded())))
            return allMean ? nil : min(step, steps - 1)  // a late t elsewhere is refused first (`problems(for:)`)
        }
        var h = workspace.take("h", rows * d)
        var qkv = workspace.take("qkv", rows * 3 * d)
        var attention = workspace.take("attention", rows * d)
        var projected = workspace.take("projected", rows * d)
        var inner = workspace.take("inner", rows * mlp)
        var kv = workspace.take("kv", n * m * 2 * d)
        var scores = workspace.take("scores", max(Attention.scratchCount(tokens: l, headDim: hd, kernels: kernels), l * m))
        defer {
            workspace.give("x", x); workspace.give("h", h); workspace.give("qkv", qkv); workspace.give("attention", attention)
            workspace.give("projected", projected); workspace.give("inner", inner); workspace.give("kv", kv)
            workspace.give("scores", scores)
        }
        let ones = [Float](repeating: 1, count: d)
        var silu = [Float](repeating: 0, count: n * d), modulation = [Float](repeating: 0, count: n * 2 * d)
        let scale = 1 / Float(hd).squareRoot()

        /// a = LN(x)·(1 + scale) + shift with [scale | shift] = linear(SiLU(table[t])) per sample.
        func adaNorm(_ norm: VQDiffusionWeights.AdaNorm) {
            for b in 0..<n {
                for j in 0..<d { silu[b * d + j] = rowsOfT[b].map { norm.table[$0 * d + j] } ?? norm.mean[j] }
            }
            Kernels.silu(&silu, count: n * d)
            GEMM.linear(silu, rows: n, inFeatures: d, weight: norm.weight.base, bias: norm.bias.base, outFeatures: 2 * d, into: &modulation, kernels: kernels)
            modulation.withUnsafeBufferPointer { mod in
                Kernels.layerNormModulate(x, into: &h, rows: rows, dim: d, eps: Float(s.adaNormEps), tokens: l,
                                          shift: mod.baseAddress! + d, scale: mod.baseAddress!, stride: 2 * d, level: level)
            }
        }
        /// x += y + bias.
        func residual(_ y: UnsafePointer<Float>, bias: UnsafePointer<Float>) {
            ones.withUnsafeBufferPointer { g in
                Kernels.gatedResidual(&x, y, bias: bias, rows: rows, dim: d, tokens: rows, gate: g.baseAddress!, stride: 0, level: level)
            }
        }

        for (i, block) in weights.blocks.enumerated() {
            // Self-attention: q, k, v into one (rows × 3D) buffer, per-head softmax(q kᵀ/√hd) v, out projection.
            adaNorm(block.norm1)
            h.withUnsafeBufferPointer { hb in
                qkv.withUnsafeMutableBufferPointer { q in
                    for (p, w) in [block.selfQ, block.selfK, block.selfV].enumerated() {
                        GEMM.multiply(hb.baseAddress!, w.base, into: q.baseAddress! + p * d, m: rows, n: d, k: d, transposeB: true, lda: d, ldb: d, ldc: 3 * d)
                    }
                }
            }
            block.qkvBias.withUnsafeBufferPointer { Kernels.addBias(&qkv, rows: rows, dim: 3 * d, bias: $0.baseAddress!, level: level) }
            qkv.withUnsafeBufferPointer { q in
                attention.withUnsafeMutableBufferPointer { out in
                    scores.withUnsafeMutableBufferPointer { sc in
                        Attention.run(qkv: q.baseAddress!, into: out.baseAddress!, batch: n, tokens: l, dim: d, heads: heads,
                                      scale: scale, scratch: sc.baseAddress!, kernels: kernels)
                    }
                }
            }
            GEMM.linear(attention, rows: rows, inFeatures: d, weight: block.selfOut.base, bias: nil, outFeatures: d, into: &projected, kernels: kernels)
            residual(projected, bias: block.selfOutB.base)

            // Cross-attention: q from the modulated h, k and v from the context.
            adaNorm(block.norm2)
            GEMM.linear(h, rows: rows, inFeatures: d, weight: block.crossQ.base, bias: block.crossQB.base, outFeatures: d, into: &qkv, kernels: kernels)
            inputs.context.withUnsafeBufferPointer { ctx in
                kv.withUnsafeMutableBufferPointer { kvb in
                    for (p, w) in [block.crossK, block.crossV].enumerated() {
                        GEMM.multiply(ctx.baseAddress!, w.base, into: kvb.baseAddress! + p * d, m: n * m, n: d, k: cd, transposeB: true, lda: cd, ldb: cd, ldc: 2 * d)
                    }
                }
            }
            block.kvBias.withUnsafeBufferPointer { Kernels.addBias(&kv, rows: n * m, dim: 2 * d, bias: $0.baseAddress!, level: level) }
            qkv.withUnsafeBufferPointer { q in
                kv.withUnsafeBufferPointer { kvb in
                    attention.withUnsafeMutableBufferPointer { out in
                        scores.withUnsafeMutableBufferPointer { sc in
                            for b in 0..<n { for head in 0..<heads {
                                let qh = q.baseAddress! + b * l * d + head * hd, kh = kvb.baseAddress! + b * m * 2 * d + head * hd
                                GEMM.multiply(qh, kh, into: sc.baseAddress!, m: l, n: m, k: hd, transposeB: true, lda: d, ldb: 2 * d, ldc: m)
                                Kernels.softmaxRows(sc.baseAddress!, rows: l, cols: m, ld: m, scale: scale, level: level)
                                GEMM.multiply(sc.baseAddress!, kh + d, into: out.baseAddress! + b * l * d + head * hd, m: l, n: hd, k: m,
                                              lda: m, ldb: 2 * d, ldc: d)
                            } }
                        }
                    }
                }
            }
            GEMM.linear(attention, rows: rows, inFeatures: d, weight: block.crossOut.base, bias: nil, outFeatures: d, into: &projected, kernels: kernels)
            residual(projected, bias: block.crossOutB.base)

            // MLP: affine LN → fc1 → activation → fc2.
            Kernels.layerNormAffine(x, into: &h, rows: rows, dim: d, eps: Float(s.ffNormEps), weight: block.norm3W.base, bias: block.norm3B.base, level: level)
            GEMM.linear(h, rows: rows, inFeatures: d, weight: block.fc1W.base, bias: nil, outFeatures: mlp, into: &inner, kernels: kernels)
            switch s.activation {
            case .sigmoidGELU: Kernels.biasSigmoidGELU(&inner, rows: rows, dim: mlp, bias: block.fc1B.base, level: level)
            case .erfGELU: Kernels.biasGELU(&inner, rows: rows, dim: mlp, bias: block.fc1B.base, exact: true, level: level)
            case .tanhGELU: Kernels.biasGELU(&inner, rows: rows, dim: mlp, bias: block.fc1B.base, exact: false, level: level)
            }
            GEMM.linear(inner, rows: rows, inFeatures: mlp, weight: block.fc2W.base, bias: nil, outFeatures: d, into: &projected, kernels: kernels)
            residual(projected, bias: block.fc2B.base)
            trace?.append("blocks.\(i)", [n, l, d], x)
        }

        // Head: affine LN → logits (rows × codes) → log-softmax over the codes in float64, stored (N, codes, L).
        Kernels.layerNormAffine(x, into: &h, rows: rows, dim: d, eps: Float(s.outNormEps), weight: weights.normOutW.base, bias: weights.normOutB.base, level: level)
        var logits = workspace.take("logits", rows * codes)
        defer { workspace.give("logits", logits) }
        GEMM.linear(h, rows: rows, inFeatures: d, weight: weights.outW.base, bias: weights.outB.base, outFeatures: codes, into: &logits, kernels: kernels)
        let maskRow = s.output == .logProbsMaskRow
        let outRows = codes + (maskRow ? 1 : 0)
        var output = [Float](repeating: 0, count: n * outRows * l)
        logits.withUnsafeBufferPointer { lg in
            output.withUnsafeMutableBufferPointer { out in
                for b in 0..<n {
                    let sample = out.baseAddress! + b * outRows * l
                    Kernels.logSoftmaxFloat64(lg.baseAddress! + b * l * codes, rows: l, cols: codes, into: sample, rowStride: 1, columnStride: l,
                                              low: maskRow ? -70 : -.infinity, high: maskRow ? 0 : .infinity)
                    if maskRow { for j in 0..<l { sample[codes * l + j] = -70 } }
                }
            }
        }
        trace?.append("output", [n, outRows, l], output)
        return output
    }
}
