import Checkpoints
import DitkitTestSupport
import Foundation
import Models
import Reference
import Tensors
import Testing

/// The VQ-Diffusion transformer's reference forward on synthetic canonical weights, against a direct float64
/// re-implementation of the function (REFERENCE §4) at every kernel level, both semantics, per-sample timesteps, late
/// timesteps, each activation; its shared kernels against their float64 definitions, bit-identical across levels.
@Suite("VQ-Diffusion transformer forward")
struct VQDiffusionForwardTests {
    static let supported = KernelLevel.allCases.filter(\.isSupported)

    /// A tiny config: 2 blocks, D 32 in 4 heads, a 3×4 latent, 20 codes, 10 steps, an 8×16 context.
    static func tiny(contextDim: Int = 16) -> VQDiffusionConfig {
        VQDiffusionConfig(depth: 2, hiddenSize: 32, numHeads: 4, contextDim: contextDim, contextLength: 8, codes: 20, height: 3, width: 4,
                          diffusionSteps: 10, mlpHidden: 64)
    }

    /// Synthetic canonical weights of `config`, written to a canonical file and opened through the registry.
    static func model(_ config: VQDiffusionConfig, seed: UInt64 = 5, in dir: TemporaryDirectory, name: String = "vq.safetensors") throws -> ModelView<VQDiffusionFamily> {
        try Exporter.write(
            try ConversionPlan<VQDiffusionFamily>.make(canonical: Synthetic.canonicalOutputs(config, seed: seed), sources: [:], config: config, to: .canonical),
            to: dir.file(name))
        let view = try ModelFamilies.open(try Checkpoint.open(dir.file(name)))
        return try #require(view as? ModelView<VQDiffusionFamily>)
    }

    /// The canonical tensors of a view as float64 arrays.
    static func tensors(_ view: ModelView<VQDiffusionFamily>) throws -> [String: [Double]] {
        Dictionary(uniqueKeysWithValues: try view.canonicalOutputs().map { ($0.name, try $0.float32().map(Double.init)) })
    }

    /// The function, directly, in float64: every layer of the trace format.
    static func reference(_ w: [String: [Double]], _ c: VQDiffusionConfig, _ inputs: VQDiffusionInputs) -> [String: [Double]] {
        let n = inputs.batch, d = c.hiddenSize, l = c.tokens, m = c.contextLength, cd = c.contextDim, hd = d / c.numHeads
        func linear(_ x: [Double], rows: Int, _ name: String, _ out: Int, _ k: Int) -> [Double] {
            let wt = w[name + ".weight"]!, b = w[name + ".bias"]!
            var y = [Double](repeating: 0, count: rows * out)
            for r in 0..<rows { for o in 0..<out {
                var s = b[o]
                for p in 0..<k { s += x[r * k + p] * wt[o * k + p] }
                y[r * out + o] = s
            } }
            return y
        }
        func layerNorm(_ x: [Double], rows: Int, eps: Double) -> [Double] {
            var y = x
            for r in 0..<rows {
                let row = x[(r * d)..<((r + 1) * d)]
                let mean = row.reduce(0, +) / Double(d)
                let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
                for j in 0..<d { y[r * d + j] = (x[r * d + j] - mean) / (variance + eps).squareRoot() }
            }
            return y
        }
        func attention(_ q: [Double], _ k: [Double], _ v: [Double], keys: Int) -> [Double] {
            var out = [Double](repeating: 0, count: n * l * d)
            for b in 0..<n { for h in 0..<c.numHeads { for i in 0..<l {
                var scores = (0..<keys).map { j in
                    (0..<hd).reduce(0.0) { $0 + q[(b * l + i) * d + h * hd + $1] * k[(b * keys + j) * d + h * hd + $1] } / Double(hd).squareRoot()
                }
                let top = scores.max()!
                scores = scores.map { exp($0 - top) }
                let total = scores.reduce(0, +)
                for e in 0..<hd {
                    out[(b * l + i) * d + h * hd + e] = (0..<keys).reduce(0.0) { $0 + scores[$1] / total * v[(b * keys + $1) * d + h * hd + e] }
                }
            } } }
            return out
        }
        var layers: [String: [Double]] = [:]
        var x = [Double](repeating: 0, count: n * l * d)
        for r in 0..<(n * l) {
            let p = r % l, token = inputs.tokens[r]
            for j in 0..<d {
                x[r * d + j] = w["latent_embed.tokens"]![token * d + j] + w["latent_embed.height"]![(p / c.width) * d + j] + w["latent_embed.width"]![(p % c.width) * d + j]
            }
        }
        layers["latent_embed"] = x
        let context = inputs.context.map(Double.init)
        for i in 0..<c.depth {
            let b = "blocks.\(i)."
            func modulate(_ norm: String) -> [Double] {
                let table = w[b + norm + ".table"]!
                var e = [Double](repeating: 0, count: n * d)
                let allMean = c.lateTimesteps == .meanEmbedding && Int(inputs.t[0]) >= c.diffusionSteps  // the original decides by t[0]
                for s in 0..<n {
                    let t = Int(inputs.t[s])
                    for j in 0..<d {
                        e[s * d + j] = !allMean ? table[t * d + j]
                            : (0..<c.diffusionSteps).reduce(0.0) { $0 + table[$1 * d + j] } / Double(c.diffusionSteps)
                    }
                }
                e = e.map { $0 / (1 + exp(-$0)) }
                let mod = linear(e, rows: n, b + norm + ".linear", 2 * d, d)
                var a = layerNorm(x, rows: n * l, eps: c.adaNormEps)
                for r in 0..<(n * l) { for j in 0..<d {
                    let s = r / l
                    a[r * d + j] = a[r * d + j] * (1 + mod[s * 2 * d + j]) + mod[s * 2 * d + d + j]
                } }
                return a
            }
            var a = modulate("norm1")
            let selfOut = linear(attention(linear(a, rows: n * l, b + "self_attn.q", d, d), linear(a, rows: n * l, b + "self_attn.k", d, d),
                                           linear(a, rows: n * l, b + "self_attn.v", d, d), keys: l), rows: n * l, b + "self_attn.out", d, d)
            x = zip(x, selfOut).map { $0 + $1 }
            a = modulate("norm2")
            let crossOut = linear(attention(linear(a, rows: n * l, b + "cross_attn.q", d, d), linear(context, rows: n * m, b + "cross_attn.k", d, cd),
                                            linear(context, rows: n * m, b + "cross_attn.v", d, cd), keys: m), rows: n * l, b + "cross_attn.out", d, d)
            x = zip(x, crossOut).map { $0 + $1 }
            var f = layerNorm(x, rows: n * l, eps: c.ffNormEps)
            for r in 0..<(n * l) { for j in 0..<d { f[r * d + j] = f[r * d + j] * w[b + "norm3.weight"]![j] + w[b + "norm3.bias"]![j] } }
            var inner = linear(f, rows: n * l, b + "mlp.fc1", c.mlpHidden, d)
            inner = inner.map { u in
                switch c.activation {
                case .sigmoidGELU: return u / (1 + exp(-1.702 * u))
                case .erfGELU: return 0.5 * u * (1 + erf(u / 2.0.squareRoot()))
                case .tanhGELU: return 0.5 * u * (1 + tanh((2 / Double.pi).squareRoot() * (u + 0.044715 * u * u * u)))
                }
            }
            x = zip(x, linear(inner, rows: n * l, b + "mlp.fc2", d, c.mlpHidden)).map { $0 + $1 }
            layers["blocks.\(i)"] = x
        }
        var f = layerNorm(x, rows: n * l, eps: c.outNormEps)
        for r in 0..<(n * l) { for j in 0..<d { f[r * d + j] = f[r * d + j] * w["norm_out.weight"]![j] + w["norm_out.bias"]![j] } }
        let logits = linear(f, rows: n * l, "out", c.codes, d)
        let rowsOut = c.outputRows
        var output = [Double](repeating: -70, count: n * rowsOut * l)
        for r in 0..<(n * l) {
            let s = r / l, p = r % l
            let row = logits[(r * c.codes)..<((r + 1) * c.codes)]
            let top = row.max()!, lse = top + log(row.reduce(0) { $0 + exp($1 - top) })
            for k in 0..<c.codes {
                var v = logits[r * c.codes + k] - lse
                if c.output == .logProbsMaskRow { v = min(0, max(-70, v)) }
                output[(s * rowsOut + k) * l + p] = v
            }
        }
        layers["output"] = output
        return layers
    }

    static func relative(_ a: [Float], _ b: [Double]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += (Double(x) - y) * (Double(x) - y); den += y * y }
        return (num / max(den, 1e-300)).squareRoot()
    }

    /// Runs `config`'s numerics on `inputs` at `kernels`, and checks every layer against the float64 function.
    static func check(_ view: ModelView<VQDiffusionFamily>, semantics: VQDiffusionConfig, inputs: VQDiffusionInputs, kernels: KernelChoice,
                      tolerance: Double = 1e-5, label: String) throws {
        #expect(VQDiffusionFamily.inputProblems(inputs, config: semantics).isEmpty, "\(label): inputs")
        let weights = try VQDiffusionFamily.loadWeights(view)
        let trace = Trace()
        let output = VQDiffusionFamily.run(weights, semantics: semantics, inputs: inputs, kernels: kernels, trace: trace)
        let expected = reference(try tensors(view), semantics, inputs)
        #expect(trace.layers.map(\.name) == ["input.tokens", "input.t", "input.context", "latent_embed"] + (0..<semantics.depth).map { "blocks.\($0)" } + ["output"])
        for layer in trace.layers where !layer.name.hasPrefix("input.") {
            #expect(layer.shape == VQDiffusionFamily.traceShape(layer.name, config: semantics, batch: inputs.batch), "\(label) \(layer.name) shape")
            let e = try #require(expected[layer.name])
            #expect(layer.values.count == e.count)
            let rel = relative(layer.values, e)
            #expect(rel <= tolerance, "\(label) \(layer.name): relative L2 \(rel)")
        }
        #expect(output == trace.layer("output")?.values)
    }

    @Test("the forward matches a float64 re-implementation layer by layer (rel ≤ 1e-5) at every kernel level, both semantics, one t per sample")
    func matchesFloat64() throws {
        let dir = TemporaryDirectory()
        let config = Self.tiny()
        let view = try Self.model(config, in: dir)
        let inputs = VQDiffusionInputs.make(config: config, batch: 3, seed: 4, timesteps: [0, 9, 4])
        #expect(inputs.tokens.contains(config.codes), "the mask token is among the inputs")
        for level in Self.supported {
            let kernels = try KernelChoice(level: level)
            try Self.check(view, semantics: config.withDiffusersSemantics(), inputs: inputs, kernels: kernels, label: "diffusers \(level)")
            try Self.check(view, semantics: config.withOriginalSemantics(), inputs: inputs, kernels: kernels, label: "original \(level)")
        }
        try Self.check(view, semantics: config, inputs: inputs, kernels: .blas, label: "blas")
        // Late timesteps (t ≥ steps) under the original's numerics: when the first is late, every sample of the batch
        // uses each table's mean (the original tests timestep[0] once per batch); a late t after an early first is refused.
        let late = VQDiffusionInputs.make(config: config, batch: 2, seed: 9, timesteps: [10, 3])
        #expect(VQDiffusionFamily.inputProblems(late, config: config) == ["input.t[0] = 10 is outside the timestep tables (0…9)"])
        let lateSecond = VQDiffusionInputs.make(config: config, batch: 2, seed: 9, timesteps: [3, 10])
        #expect(VQDiffusionFamily.inputProblems(lateSecond, config: config.withOriginalSemantics()) == [
            "input.t[1] = 10 is outside the timestep tables (0…9); the original uses the mean tables only when the batch's first timestep is late",
        ])
        for level in Self.supported {
            try Self.check(view, semantics: config.withOriginalSemantics(), inputs: late, kernels: try KernelChoice(level: level), label: "late \(level)")
        }
    }

    @Test("each activation (x·σ(1.702x), erf and tanh GELU) and each eps reaches its layer")
    func activationsAndEps() throws {
        let dir = TemporaryDirectory()
        let view = try Self.model(Self.tiny(), in: dir)
        let inputs = VQDiffusionInputs.make(config: Self.tiny(), batch: 2, seed: 1)
        for activation in [VQDiffusionConfig.Activation.erfGELU, .tanhGELU] {
            var s = Self.tiny()
            s.activation = activation
            try Self.check(view, semantics: s, inputs: inputs, kernels: .automatic, label: activation.rawValue)
        }
        var s = Self.tiny()
        s.adaNormEps = 0.5
        s.ffNormEps = 0.25
        s.outNormEps = 0.125
        try Self.check(view, semantics: s, inputs: inputs, kernels: .automatic, label: "eps")
    }

    @Test("the original's output: a −70 mask row, everything clamped to [−70, 0]; diffusers': log-probabilities over the codes")
    func outputForms() throws {
        let dir = TemporaryDirectory()
        let config = Self.tiny()
        let weights = try VQDiffusionFamily.loadWeights(try Self.model(config, in: dir))
        let inputs = VQDiffusionInputs.make(config: config, batch: 2, seed: 3)
        let (l, codes) = (config.tokens, config.codes)
        let diffusers = VQDiffusionFamily.run(weights, semantics: config.withDiffusersSemantics(), inputs: inputs, kernels: .automatic, trace: nil)
        let original = VQDiffusionFamily.run(weights, semantics: config.withOriginalSemantics(), inputs: inputs, kernels: .automatic, trace: nil)
        #expect(diffusers.count == 2 * codes * l && original.count == 2 * (codes + 1) * l)
        for b in 0..<2 { for p in 0..<l {
            let probabilities = (0..<codes).map { Foundation.exp(Double(diffusers[(b * codes + $0) * l + p])) }
            #expect(abs(probabilities.reduce(0, +) - 1) < 1e-5)
            #expect(original[(b * (codes + 1) + codes) * l + p] == -70)
            for k in 0..<codes { #expect(original[(b * (codes + 1) + k) * l + p] == min(0, max(-70, diffusers[(b * codes + k) * l + p]))) }
        } }
    }

    @Test("a table's mean is torch's emb.weight.mean(0) bit for bit (its cascade and 8-lane column split)")
    func torchMean() {
        let (n, d) = (100, 40)
        var x = [Float](repeating: 0, count: n * d)
        for i in 0..<n { for j in 0..<d {
            let v = Float((i * 37 + j * 11) % 101) / 7 + 0.1
            x[i * d + j] = (i + j) % 3 == 0 ? v * -1.3 : v
        } }
        // torch 2.15 (CPU): torch.from_numpy(x).mean(0), scripted beside this test's formula.
        let expected: [UInt32] = [
            0x3FD3BDC5, 0x3FE70D85, 0x3FA51D53, 0x3FF38EF7, 0x3FFCBD5D, 0x3FE54773, 0x3FA66936, 0x3FAB00A6, 0x40097CD1, 0x3FC63A68,
            0x3FD8B2D3, 0x3FC13CEC, 0x3FBB914D, 0x400C6E7A, 0x3FAC7276, 0x3FC36025, 0x3FC7203F, 0x40024F77, 0x3FE33156, 0x3F9FDDD4,
            0x3FDD5C84, 0x3FAE0DEE, 0x401A7E46, 0x3FC8920D, 0x3FB5DCC6, 0x3FE33FD7, 0x3FCBC9EF, 0x40001421, 0x3F918322, 0x3FF97C1D,
            0x3FCB04DC, 0x3FFC278F, 0x3FE4B1A8, 0x3F7BBE3C, 0x3FFF5F71, 0x3FE7E989, 0x3FF2A4E6, 0x3FADA2BC, 0x3FC0A71F, 0x3FE7FBCA,
        ]
        let mean = x.withUnsafeBufferPointer { VQDiffusionWeights.torchColumnMean($0.baseAddress!, rows: n, columns: d) }
        #expect(mean.map(\.bitPattern) == expected)
        var naive = [Float](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { naive[j] += x[i * d + j] } }
        #expect(naive.map { ($0 / Float(n)).bitPattern } != expected, "the order matters for these values")
    }

    @Test("inputs: deterministic, tokens 0…codes, context rows of norm 1; problems name the input, index and value")
    func inputs() {
        let config = Self.tiny()
        let a = VQDiffusionInputs.make(config: config, batch: 4, seed: 2), b = VQDiffusionInputs.make(config: config, batch: 4, seed: 2)
        #expect(a.tokens == b.tokens && a.context == b.context && a.t == [0, 9, 5, 2])
        #expect(a.tokens.allSatisfy { (0...config.codes).contains($0) })
        for row in 0..<(4 * config.contextLength) {
            let norm = (0..<config.contextDim).reduce(Float(0)) { $0 + a.context[row * config.contextDim + $1] * a.context[row * config.contextDim + $1] }
            #expect(abs(norm - 1) < 1e-5)
        }
        let spec = VQDiffusionFamily.makeInputs(InputSpec(batch: 3, seed: 2, timesteps: [7]), config: config)
        #expect(spec.t == [7, 7, 7])
        var bad = a
        bad.tokens[3] = config.codes + 1
        bad.t[1] = 2.5
        bad.context[5] = .nan
        #expect(bad.problems(for: config) == [
            "input.tokens[3] = 21 is outside the token ids (0…20; 20 is the mask token)",
            "input.t[1] = 2.5 is not a timestep (an integer from 0)",
            "input.context[5] = nan is not a finite number within ±1000000.0",
        ])
    }

    @Test("the budget refuses before allocating; ITHQ at batch 1 fits the default budget")
    func budget() throws {
        let ithq = try #require(VQDiffusionFamily.preset(named: "ITHQ")).config
        try VQDiffusionFamily.checkBudget(ithq, batch: 1, tracing: true, kernels: .automatic,
                                          memoryBudget: ForwardCost.defaultMemoryBudget, workBudget: ForwardCost.defaultWorkBudget)
        #expect(throws: ModelError.self) {
            try VQDiffusionFamily.checkBudget(ithq, batch: 64, tracing: false, kernels: .automatic,
                                              memoryBudget: ForwardCost.defaultMemoryBudget, workBudget: ForwardCost.defaultWorkBudget)
        }
        var huge = ithq
        huge.height = 512
        huge.width = 512
        #expect(throws: ModelError.self) {
            try VQDiffusionFamily.checkBudget(huge, batch: 1, tracing: false, kernels: .automatic,
                                              memoryBudget: ForwardCost.defaultMemoryBudget, workBudget: ForwardCost.defaultWorkBudget)
        }
    }

    @Test("the GEMM floor's shapes cover the forward's products and name canonical weights")
    func gemmShapes() {
        let config = Self.tiny()
        let shapes = VQDiffusionFamily.gemmShapes(config, batch: 2)
        let names = Set(VQDiffusionFamily.allCanonicalTensors(config).map(\.name))
        for shape in shapes { if case .weight(let name) = shape.operand { #expect(names.contains(name), "\(name)") } }
        #expect(shapes.count == config.depth * 16 + 1)
        let products = shapes.reduce(0) { $0 + $1.multiplyAdds }
        #expect(products == 2 * VQDiffusionFamily.multiplyAdds(config))
    }
}

/// The shared kernels the VQ-Diffusion forward added: each against its float64 definition and bit-identical at every level.
@Suite("VQ-Diffusion kernels")
struct VQDiffusionKernelTests {
    @Test("affine LayerNorm, x·σ(1.702x) and the float64 log-softmax: float64 definitions, the same bits at every level, every tail length")
    func kernels() throws {
        let levels = KernelLevel.allCases.filter(\.isSupported)
        for dim in [1, 3, 8, 15, 16, 17, 33, 64, 100] {
            let rows = 5
            let x = TestValues.uniform(rows * dim, seed: UInt64(dim)).map { $0 * 3 + 0.5 }
            let weight = TestValues.uniform(dim, seed: 99).map { $0 + 1 }, bias = TestValues.uniform(dim, seed: 98)
            var first: [UInt32]?
            for level in levels {
                var out = [Float](repeating: 0, count: rows * dim)
                Kernels.layerNormAffine(x, into: &out, rows: rows, dim: dim, eps: 1e-5, weight: weight, bias: bias, level: level)
                for r in 0..<rows {
                    let row = x[(r * dim)..<((r + 1) * dim)].map(Double.init)
                    let mean = row.reduce(0, +) / Double(dim)
                    let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(dim)
                    for j in 0..<dim {
                        let e = (row[j] - mean) / (variance + 1e-5).squareRoot() * Double(weight[j]) + Double(bias[j])
                        #expect(abs(Double(out[r * dim + j]) - e) <= 1e-5 * max(1, abs(e)), "layer norm \(level) dim \(dim)")
                    }
                }
                if let first { #expect(out.map(\.bitPattern) == first, "layer norm bits \(level) dim \(dim)") } else { first = out.map(\.bitPattern) }
            }
            first = nil
            for level in levels {
                var y = x
                Kernels.biasSigmoidGELU(&y, rows: rows, dim: dim, bias: bias, level: level)
                for i in 0..<(rows * dim) {
                    let u = Double(x[i]) + Double(bias[i % dim]), e = u / (1 + Foundation.exp(-1.702 * u))
                    #expect(abs(Double(y[i]) - e) <= 2e-6 * max(1, abs(e)), "sigmoid GELU \(level) at \(u)")
                }
                if let first { #expect(y.map(\.bitPattern) == first, "sigmoid GELU bits \(level) dim \(dim)") } else { first = y.map(\.bitPattern) }
            }
            // log-softmax of rows of `dim`, stored transposed; clamped to [−2, 0].
            var out = [Float](repeating: 0, count: rows * dim), clamped = out
            Kernels.logSoftmaxFloat64(x, rows: rows, cols: dim, into: &out, rowStride: 1, columnStride: rows)
            Kernels.logSoftmaxFloat64(x, rows: rows, cols: dim, into: &clamped, rowStride: 1, columnStride: rows, low: -2, high: 0)
            for r in 0..<rows {
                let row = x[(r * dim)..<((r + 1) * dim)].map(Double.init)
                let top = row.max()!, lse = top + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - top) })
                for j in 0..<dim {
                    #expect(out[j * rows + r] == Float(row[j] - lse))
                    #expect(clamped[j * rows + r] == min(0, max(-2, Float(row[j] - lse))))
                }
            }
        }
    }
}
