import Checkpoints
import Models
import Tensors

/// float32 elements of one weight: a view of the mapped checkpoint when the tensor is stored as contiguous,
/// aligned little-endian f32 (no copy; the mapping stays alive with this value), or an owned array otherwise
/// (widened from another dtype, gathered from parts, or recomputed).
public struct WeightArray: @unchecked Sendable {
    /// The first element. Valid while this value (or a copy) lives.
    package let base: UnsafePointer<Float>
    /// Number of elements.
    public let count: Int
    private let owner: AnyObject

    final class Owned {
        let values: UnsafeMutableBufferPointer<Float>
        init(_ array: [Float]) {
            values = .allocate(capacity: max(array.count, 1))
            _ = values.initialize(from: array)
        }
        deinit { values.deallocate() }
    }

    /// Owns a copy of `values`.
    public init(_ values: [Float]) {
        let owned = Owned(values)
        self.init(base: UnsafePointer(owned.values.baseAddress!), count: values.count, owner: owned)
    }

    private init(base: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        self.base = base
        self.count = count
        self.owner = owner
    }

    /// Loads `tensor`: zero-copy from the mapping when possible, else through `float32()`.
    init(_ tensor: OutputTensor, source: CanonicalSource?) throws {
        if case .tensor(let t)? = source, let view = t.mappedFloat32Storage(), let address = view.baseAddress {
            self.init(base: address, count: view.count, owner: view)
            return
        }
        self.init(try tensor.float32())
    }

    /// Element `i` (`0 ..< count`, unchecked).
    public subscript(i: Int) -> Float { base[i] }
}

/// A DiT's weights in float32 (non-f32 checkpoints are widened once; f32 ones are read in place), in canonical form.
public struct DiTWeights: Sendable {
    /// One transformer block's weights (row-major (out, in) matrices, as the canonical tensors).
    public struct Block: Sendable {
        /// Attention: fused q/k/v projection (3D, D) and its bias, output projection (D, D) and its bias.
        public var qkvW: WeightArray, qkvB: WeightArray, outW: WeightArray, outB: WeightArray
        /// MLP: fc1 (H, D), fc2 (D, H) and their biases (H = `mlpHidden`).
        public var fc1W: WeightArray, fc1B: WeightArray, fc2W: WeightArray, fc2B: WeightArray
        /// adaLN modulation (6D, D) and its bias: shift, scale and gate for attention and MLP.
        public var modW: WeightArray, modB: WeightArray
    }

    /// The sizes (and the weights' own numerics).
    public let config: DiTConfig
    /// Patch embedding: the p×p convolution as a (D, C·p·p) matrix, and its bias.
    public var patchW: WeightArray, patchB: WeightArray
    /// (T, D): the stored table, or the 2-D sin-cos table computed for the grid.
    public var posEmbed: WeightArray
    /// (T, F) when timesteps index a table (Cerebras; T = `diffusionSteps`, 1000 in every published config).
    public var tTable: WeightArray?
    /// Timestep embedder MLP: fc1 (D, F) with F = `frequencyEmbeddingSize`, fc2 (D, D), and their biases.
    public var tFc1W: WeightArray, tFc1B: WeightArray, tFc2W: WeightArray, tFc2B: WeightArray
    /// Label table (`labelRows`, D).
    public var yTable: WeightArray
    /// The transformer blocks, in order.
    public var blocks: [Block]
    /// Final layer: adaLN modulation (2D, D) and bias, linear head (p²·Cout, D) and bias.
    public var finalModW: WeightArray, finalModB: WeightArray, finalW: WeightArray, finalB: WeightArray

    /// Loads the canonical tensors of `view` as float32.
    public init(_ view: ModelView<DiTFamily>) throws {
        try self.init(
            config: view.config, tensors: Dictionary(view.canonicalOutputs().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }),
            sources: view.sources)
    }

    /// Builds weights from canonical tensors (e.g. synthetic ones) by name; `sources` lets f32 tensors of a mapped
    /// checkpoint be read in place.
    public init(config: DiTConfig, tensors: [String: OutputTensor], sources: [String: CanonicalSource] = [:]) throws {
        try config.validate(origin: "the weights' config")
        let expected = Dictionary(
            DiTFamily.allCanonicalTensors(config).map { ($0.name, $0.spec.shape(config)) },
            uniquingKeysWith: { a, _ in a })
        // The forward reads each weight through a raw pointer: its element count must be the config's.
        func checked(_ name: String, _ t: OutputTensor) throws -> OutputTensor {
            let want = expected[name] ?? []
            guard let have = try? checkedElementCount(t.shape), have == (try? checkedElementCount(want)) else {
                throw ModelError.mapping(path: "weights", problems: ["shape: \(name) is \(t.shape), expected \(want) for this config"])
            }
            return t
        }
        func load(_ name: String) throws -> WeightArray {
            guard let t = tensors[name] else { throw ModelError.config("the model has no \(name)") }
            return try WeightArray(try checked(name, t), source: sources[name])
        }
        self.config = config
        patchW = try load("patch_embed.weight"); patchB = try load("patch_embed.bias")
        if let stored = tensors["pos_embed"], stored.shape == [1, config.tokens, config.hiddenSize] {
            posEmbed = try WeightArray(stored, source: sources["pos_embed"])
        } else {
            posEmbed = WeightArray(DiTFamily.recomputedTable("pos_embed", config: config)!)
        }
        tTable = config.timestepInput == .table
            ? (try tensors["t_embed.table"].map { try WeightArray(try checked("t_embed.table", $0), source: sources["t_embed.table"]) }
                ?? WeightArray(DiTFamily.recomputedTable("t_embed.table", config: config)!))
            : nil
        tFc1W = try load("t_embed.fc1.weight"); tFc1B = try load("t_embed.fc1.bias")
        tFc2W = try load("t_embed.fc2.weight"); tFc2B = try load("t_embed.fc2.bias")
        yTable = try load("y_embed.table")
        blocks = try (0..<config.depth).map { i in
            let b = "blocks.\(i)."
            return Block(
                qkvW: try load(b + "attn.qkv.weight"), qkvB: try load(b + "attn.qkv.bias"),
                outW: try load(b + "attn.out.weight"), outB: try load(b + "attn.out.bias"),
                fc1W: try load(b + "mlp.fc1.weight"), fc1B: try load(b + "mlp.fc1.bias"),
                fc2W: try load(b + "mlp.fc2.weight"), fc2B: try load(b + "mlp.fc2.bias"),
                modW: try load(b + "modulation.weight"), modB: try load(b + "modulation.bias"))
        }
        finalModW = try load("final.modulation.weight"); finalModB = try load("final.modulation.bias")
        finalW = try load("final.linear.weight"); finalB = try load("final.linear.bias")
    }
}

/// Inputs of one forward pass: latents (N, C, S, S), timesteps and class ids (the null class is K).
public struct DiTInputs: Sendable {
    /// Latents, (N, C, S, S) row-major.
    public var x: [Float]
    /// Timesteps, one per sample (integers 0…999 when the model indexes a timestep table).
    public var t: [Float]
    /// Class ids, one per sample (`numClasses` is the null class).
    public var y: [Int]
    /// Samples in the batch (N).
    public var batch: Int { t.count }

    /// Inputs as given; check them with ``problems(for:)``.
    public init(x: [Float], t: [Float], y: [Int]) {
        self.x = x
        self.t = t
        self.y = y
    }

    /// Largest magnitude a latent value or a timestep may have (10^6): real latents are O(1) and timesteps below
    /// 1000; past this LayerNorm's float32 variance overflows and the pass is all NaN.
    public static let maxMagnitude: Float = 1e6

    /// What makes these inputs unusable for `config`: element counts that do not match the batch, values that are
    /// not finite or past `maxMagnitude`, a timestep outside the table (table timesteps), a class id that is not a
    /// row of the label table (0…K, K the null class). Each line names the input, the index and the value.
    public func problems(for config: DiTConfig) -> [String] {
        var out: [String] = []
        let n = batch
        let sample = config.inChannels * config.inputSize * config.inputSize  // validated config: ≤ 2^60
        if n < 1 { out.append("input.t is empty: the batch must hold at least one sample") }
        if y.count != n { out.append("input.y has \(y.count) elements, input.t \(n): one class id per sample") }
        let (needed, overflow) = sample.multipliedReportingOverflow(by: n)
        if overflow || x.count != needed {
            out.append("input.x has \(x.count) elements, expected N·C·S·S = \(n)·\(config.inChannels)·\(config.inputSize)·\(config.inputSize)")
        }
        if let i = x.firstIndex(where: { !$0.isFinite || abs($0) > DiTInputs.maxMagnitude }) {
            out.append("input.x[\(i)] = \(x[i]) is not a finite number within ±\(DiTInputs.maxMagnitude)")
        }
        for (i, v) in t.enumerated() {
            if !v.isFinite || abs(v) > DiTInputs.maxMagnitude {
                out.append("input.t[\(i)] = \(v) is not a finite timestep within ±\(DiTInputs.maxMagnitude)")
            } else if config.timestepInput == .table, v.rounded() < 0 || v.rounded() >= Float(config.diffusionSteps) {
                out.append("input.t[\(i)] = \(v) is outside the timestep table (0…\(config.diffusionSteps - 1))")
            }
            if out.count > 12 { break }
        }
        for (i, v) in y.enumerated() where v < 0 || v >= config.labelRows {
            out.append("input.y[\(i)] = \(v) is outside the label table (0…\(config.labelRows - 1)\(config.hasNullClass ? "; \(config.numClasses) is the null class" : ""))")
            if out.count > 12 { break }
        }
        return out
    }

    /// Deterministic inputs: x ~ N(0, 1) from `seed`; timesteps and classes cycle through the given lists
    /// (by default t = 0, 999, 500, 250 — each at most T − 1 — and y = 0, the null class, 1, 2 — each at most the table's last row — so t = 0,
    /// 999 and the null class are covered).
    public static func make(config: DiTConfig, batch: Int, seed: UInt64, timesteps: [Float]? = nil, classes: [Int]? = nil) -> DiTInputs {
        let last = Float(config.diffusionSteps - 1)
        let ts = timesteps ?? [0, 999, 500, 250].map { min($0, last) }
        let ys = classes ?? [0, config.numClasses, 1, 2].map { min($0, config.labelRows - 1) }  // within a small table
        let count = batch * config.inChannels * config.inputSize * config.inputSize
        var generator = SplitMix64(state: seed &* SplitMix64.golden &+ 1)
        func uniform() -> Double { (Double(generator.next() >> 11) + 0.5) / Double(1 << 53) }  // in (0, 1): log is finite
        var x = [Float](repeating: 0, count: count)
        var i = 0
        while i < count {  // Box–Muller
            let r = (-2 * Platform.log(uniform())).squareRoot(), angle = 2 * Double.pi * uniform()
            x[i] = Float(r * Platform.cos(angle))
            if i + 1 < count { x[i + 1] = Float(r * Platform.sin(angle)) }
            i += 2
        }
        return DiTInputs(x: x, t: (0..<batch).map { ts[$0 % ts.count] }, y: (0..<batch).map { ys[$0 % ys.count] })
    }
}

/// Activations recorded during a forward pass, by layer name in the family's trace format (for DiT: `input.x`,
/// `input.t`, `input.y`, `t_embed`, `y_embed`, `cond`, `patch_embed`, `blocks.N`, `final`, `output`; README,
/// "`ditkit verify` and `ditkit trace`").
public final class Trace: @unchecked Sendable {
    /// The layers in the order recorded: name, shape and row-major float32 values.
    public private(set) var layers: [(name: String, shape: [Int], values: [Float])] = []
    /// An empty trace.
    public init() {}
    func record(_ name: String, _ shape: [Int], _ pointer: UnsafePointer<Float>, count: Int) {
        layers.append((name, shape, Array(UnsafeBufferPointer(start: pointer, count: count))))
    }
    /// Records a layer (row-major values of `shape`).
    public func append(_ name: String, _ shape: [Int], _ values: [Float]) { layers.append((name, shape, values)) }
    /// The first layer named `name`, or nil.
    public func layer(_ name: String) -> (shape: [Int], values: [Float])? {
        layers.first { $0.name == name }.map { ($0.shape, $0.values) }
    }
}

/// Activation buffers of a forward pass, reusable across passes of the same batch size (a sampling loop, a
/// benchmark) so that every pass does not fault in fresh pages. Not for two passes at once.
public final class Workspace: @unchecked Sendable {
    var buffers: [String: [Float]] = [:]
    /// An empty workspace; buffers are allocated by the first pass.
    public init() {}

    /// A buffer of `count` floats; its contents are whatever the last pass left (every use overwrites it).
    func take(_ name: String, _ count: Int) -> [Float] {
        if let buffer = buffers.removeValue(forKey: name), buffer.count == count { return buffer }
        return [Float](repeating: 0, count: count)
    }

    func give(_ name: String, _ buffer: [Float]) { buffers[name] = buffer }
}

/// The float32 reference forward pass of the DiT family, with the numerics of `semantics` (shift, max period,
/// each norm's eps, GELU form, timestep input); by default the weights' own config. Matrix products go through
/// `cblas_sgemm`, except those `kernels` gives to ditkit's AVX-512 kernels (few-sample matrix–vector products,
/// attention); everything else runs in ditkit's C kernels at `kernels.level`, split over the cores.
public struct DiTForward: Sendable {
    /// The weights run.
    public let weights: DiTWeights
    /// The numerics run (the weights' sizes with the numerics chosen).
    public let semantics: DiTConfig
    /// Which kernels the matrix products and attention use.
    public let kernels: KernelChoice

    /// A forward of `weights` with the numerics of `semantics` (sizes are the weights'; by default the weights' own
    /// config) on `kernels`.
    public init(weights: DiTWeights, semantics: DiTConfig? = nil, kernels: KernelChoice = .automatic) {
        self.weights = weights
        self.semantics = semantics ?? weights.config
        self.kernels = kernels
    }

    /// Runs the model; returns the output (N, Cout, S, S). With a `trace`, records every layer of the trace format.
    /// `inputs` must fit the config (`DiTInputs.problems(for:)` empty) and the pass its budget (`ForwardCost.check`):
    /// callers validate where the inputs enter.
    public func run(_ inputs: DiTInputs, trace: Trace? = nil, workspace: Workspace = Workspace()) -> [Float] {
        let c = weights.config, s = semantics
        let n = inputs.batch, d = c.hiddenSize, p = c.patchSize, ch = c.inChannels, cout = c.outChannels
        let side = c.inputSize, grid = c.gridSize, tokens = c.tokens, rows = n * tokens
        // Heads are not fixed by the weights: the semantics say how D splits (the weights' own count by default).
        let heads = s.hiddenSize == d && s.numHeads >= 1 && d % s.numHeads == 0 ? s.numHeads : c.numHeads
        let f = c.frequencyEmbeddingSize, mlp = c.mlpHidden, hd = d / heads
        trace?.append("input.x", [n, ch, side, side], inputs.x)
        trace?.append("input.t", [n], inputs.t)
        trace?.append("input.y", [n], inputs.y.map(Float.init))

        // Patchify: each token's C·p·p values in (c, pi, qi) order, then one GEMM with the conv weight.
        let patchLength = ch * p * p
        var patches = [Float](repeating: 0, count: rows * patchLength)
        for b in 0..<n { for gi in 0..<grid { for gj in 0..<grid {
            let row = (b * tokens + gi * grid + gj) * patchLength
            for cc in 0..<ch { for pi in 0..<p { for qi in 0..<p {
                patches[row + (cc * p + pi) * p + qi] = inputs.x[((b * ch + cc) * side + gi * p + pi) * side + gj * p + qi]
            } } }
        } } }
        var x = [Float](repeating: 0, count: rows * d)
        GEMM.linear(patches, rows: rows, inFeatures: patchLength, weight: weights.patchW.base, bias: weights.patchB.base, outFeatures: d, into: &x, kernels: kernels)
        x.withUnsafeMutableBufferPointer { xb in
            let pos = weights.posEmbed.base
            for b in 0..<n { for i in 0..<(tokens * d) { xb[b * tokens * d + i] += pos[i] } }
        }
        trace?.append("patch_embed", [n, tokens, d], x)

        // Timestep embedding: sinusoid [cos, sin] with frequencies exp(−ln(max_period)·k/(half − shift)), or a
        // table row for integer timesteps; then Linear → SiLU → Linear.
        let half = f / 2
        var sinusoid = [Float](repeating: 0, count: n * f)
        for b in 0..<n {
            if let table = weights.tTable, s.timestepInput == .table {
                let step = inputs.t[b].rounded()  // NaN reads row 0 rather than trapping; `DiTInputs.problems` refuses it first
                let row = step.isNaN ? 0 : Int(max(0, min(Float(s.diffusionSteps - 1), step)))
                for k in 0..<f { sinusoid[b * f + k] = table[row * f + k] }
            } else {
                for k in 0..<half {
                    // In float32, as both reference implementations compute it (exp(−ln(P)·arange(half)/(half − shift)));
                    // in float64 the frequencies differ by an ulp, which t = 999 turns into 1e-5 of t_embed.
                    let frequency = Platform.exp(Float(-Platform.log(s.maxPeriod)) * Float(k) / Float(half - s.timestepShift))
                    let angle = inputs.t[b] * frequency
                    sinusoid[b * f + k] = Platform.cos(angle)
                    sinusoid[b * f + half + k] = Platform.sin(angle)
                }
            }
        }
        var hidden = [Float](repeating: 0, count: n * d)
        GEMM.linear(sinusoid, rows: n, inFeatures: f, weight: weights.tFc1W.base, bias: weights.tFc1B.base, outFeatures: d, into: &hidden, kernels: kernels)
        Kernels.silu(&hidden, count: n * d)
        var tEmbed = [Float](repeating: 0, count: n * d)
        GEMM.linear(hidden, rows: n, inFeatures: d, weight: weights.tFc2W.base, bias: weights.tFc2B.base, outFeatures: d, into: &tEmbed, kernels: kernels)
        trace?.append("t_embed", [n, d], tEmbed)
        var yEmbed = [Float](repeating: 0, count: n * d)
        for b in 0..<n {
            let row = max(0, min(c.labelRows - 1, inputs.y[b]))
            for j in 0..<d { yEmbed[b * d + j] = weights.yTable[row * d + j] }
        }
        trace?.append("y_embed", [n, d], yEmbed)
        var cond = zip(tEmbed, yEmbed).map { $0 + $1 }
        trace?.append("cond", [n, d], cond)
        Kernels.silu(&cond, count: n * d)  // every modulation reads SiLU(c)

        var h = workspace.take("h", rows * d)
        var qkv = workspace.take("qkv", rows * 3 * d)
        var attention = workspace.take("attention", rows * d)
        var projected = workspace.take("projected", rows * d)
        var inner = workspace.take("inner", rows * mlp)
        var modulation = workspace.take("modulation", n * 6 * d)
        var scores = workspace.take("scores", Attention.scratchCount(tokens: tokens, headDim: hd, kernels: kernels))
        defer {
            workspace.give("h", h); workspace.give("qkv", qkv); workspace.give("attention", attention)
            workspace.give("projected", projected); workspace.give("inner", inner); workspace.give("modulation", modulation)
            workspace.give("scores", scores)
        }
        let scale = 1 / Float(hd).squareRoot()
        for (i, block) in weights.blocks.enumerated() {
            GEMM.linear(cond, rows: n, inFeatures: d, weight: block.modW.base, bias: block.modB.base, outFeatures: 6 * d, into: &modulation, kernels: kernels)
            modulation.withUnsafeBufferPointer { m in
                let base = m.baseAddress!
                // Attention: h = LN(x)·(1+scale_msa)+shift_msa → qkv → per-head softmax(q kᵀ/√hd) v → proj.
                Kernels.layerNormModulate(x, into: &h, rows: rows, dim: d, eps: Float(s.attentionNormEps), tokens: tokens,
                                          shift: base, scale: base + d, stride: 6 * d, level: kernels.level)
                GEMM.linear(h, rows: rows, inFeatures: d, weight: block.qkvW.base, bias: block.qkvB.base, outFeatures: 3 * d, into: &qkv, kernels: kernels)
                qkv.withUnsafeBufferPointer { q in
                    attention.withUnsafeMutableBufferPointer { out in
                        scores.withUnsafeMutableBufferPointer { sc in
                            Attention.run(qkv: q.baseAddress!, into: out.baseAddress!, batch: n, tokens: tokens, dim: d, heads: heads,
                                          scale: scale, scratch: sc.baseAddress!, kernels: kernels)
                        }
                    }
                }
                GEMM.linear(attention, rows: rows, inFeatures: d, weight: block.outW.base, bias: nil, outFeatures: d, into: &projected, kernels: kernels)
                Kernels.gatedResidual(&x, projected, bias: block.outB.base, rows: rows, dim: d, tokens: tokens, gate: base + 2 * d, stride: 6 * d, level: kernels.level)
                // MLP: h = LN(x)·(1+scale_mlp)+shift_mlp → fc1 → GELU → fc2.
                Kernels.layerNormModulate(x, into: &h, rows: rows, dim: d, eps: Float(s.mlpNormEps), tokens: tokens,
                                          shift: base + 3 * d, scale: base + 4 * d, stride: 6 * d, level: kernels.level)
                GEMM.linear(h, rows: rows, inFeatures: d, weight: block.fc1W.base, bias: nil, outFeatures: mlp, into: &inner, kernels: kernels)
                Kernels.biasGELU(&inner, rows: rows, dim: mlp, bias: block.fc1B.base, exact: s.gelu == .erf, level: kernels.level)
                GEMM.linear(inner, rows: rows, inFeatures: mlp, weight: block.fc2W.base, bias: nil, outFeatures: d, into: &projected, kernels: kernels)
                Kernels.gatedResidual(&x, projected, bias: block.fc2B.base, rows: rows, dim: d, tokens: tokens, gate: base + 5 * d, stride: 6 * d, level: kernels.level)
            }
            trace?.append("blocks.\(i)", [n, tokens, d], x)
        }

        // Final layer: (shift, scale) from SiLU(c), LN·(1+scale)+shift, linear head.
        var finalMod = [Float](repeating: 0, count: n * 2 * d)
        GEMM.linear(cond, rows: n, inFeatures: d, weight: weights.finalModW.base, bias: weights.finalModB.base, outFeatures: 2 * d, into: &finalMod, kernels: kernels)
        finalMod.withUnsafeBufferPointer { m in
            Kernels.layerNormModulate(x, into: &h, rows: rows, dim: d, eps: Float(s.finalNormEps), tokens: tokens,
                                      shift: m.baseAddress!, scale: m.baseAddress! + d, stride: 2 * d, level: kernels.level)
        }
        let headWidth = p * p * cout
        var final = [Float](repeating: 0, count: rows * headWidth)
        GEMM.linear(h, rows: rows, inFeatures: d, weight: weights.finalW.base, bias: weights.finalB.base, outFeatures: headWidth, into: &final, kernels: kernels)
        trace?.append("final", [n, tokens, headWidth], final)

        // Unpatchify: (N, h, w, p, p, Cout) → (N, Cout, h·p, w·p).
        var output = [Float](repeating: 0, count: n * cout * side * side)
        for b in 0..<n { for gi in 0..<grid { for gj in 0..<grid {
            let token = (b * tokens + gi * grid + gj) * headWidth
            for pi in 0..<p { for qi in 0..<p { for cc in 0..<cout {
                output[((b * cout + cc) * side + gi * p + pi) * side + gj * p + qi] = final[token + (pi * p + qi) * cout + cc]
            } } }
        } } }
        trace?.append("output", [n, cout, side, side], output)
        return output
    }

    /// Classifier-free guidance: eps = uncond + scale·(cond − uncond). The original DiT guides the first 3
    /// channels only (`channels: 3`), diffusers' DiTPipeline all latent channels (`channels: C`); the rest of each
    /// sample (e.g. the learned sigma) is taken from the conditional prediction.
    public static func guide(conditional: [Float], unconditional: [Float], scale: Float, batch: Int, channels: Int, guided: Int, side: Int) -> [Float] {
        var out = conditional
        let plane = side * side
        for b in 0..<batch { for c in 0..<min(guided, channels) {
            let base = (b * channels + c) * plane
            for i in 0..<plane { out[base + i] = unconditional[base + i] + scale * (conditional[base + i] - unconditional[base + i]) }
        } }
        return out
    }
}
