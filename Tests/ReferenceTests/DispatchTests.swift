#if canImport(Glibc)
import Glibc
#endif
import Checkpoints
import DitkitTestSupport
import Models
import Reference
import Tensors
import Testing

/// The run-time kernel levels: one exp polynomial (Swift and C bit-identical at every level the CPU runs), each
/// element-wise kernel at each level against float64 definitions, the forward at each forced level against PyTorch,
/// and no process-wide side effect unless asked.
@Suite("kernel levels (run-time dispatch)")
struct DispatchTests {
    static let supported = KernelLevel.allCases.filter(\.isSupported)

    /// Dense float32 inputs: every 1021st bit pattern over all 2^32 (both signs, denormals, NaN payloads), every 509th
    /// float in [−2, 2], 128 neighbours of each clamp edge and of other edges, and the specials.
    static let sweep: [Float] = {
        var values: [Float] = []
        var bits: UInt64 = 0
        while bits < 1 << 32 { values.append(Float(bitPattern: UInt32(bits))); bits += 1021 }
        for bits in stride(from: UInt32(0), to: Float(2).bitPattern, by: 509) {
            values.append(Float(bitPattern: bits)); values.append(-Float(bitPattern: bits))
        }
        for edge: Float in [-87.33654, 88.72283, -87.3365, 88.7228, -88.7228, -103.97, -126, 0, 1, -1] {
            var v = edge
            for _ in 0..<64 { v = v.nextDown }
            for _ in 0..<129 { values.append(v); v = v.nextUp }
        }
        values += [0, -0, .infinity, -.infinity, .nan, -.nan, Float(bitPattern: 0x7FA0_0001), Float(bitPattern: 0xFFC0_1234),
                   .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
                   .leastNormalMagnitude, -.leastNormalMagnitude, 88.72284, 89, 1000, -87.33655, -88, -1000]
        return values
    }()

    @Test("Swift's exp (scalar and SIMD8) and the C kernels' exp at every level give the same bits on a dense sweep and the specials")
    func expBitIdentical() {
        let inputs = Self.sweep
        let swiftScalar = inputs.map { Vector.exp($0).bitPattern }
        var swiftVector = [UInt32](repeating: 0, count: inputs.count)
        var i = 0
        while i + 8 <= inputs.count {  // SIMD8 on one chunk of 8 in 16 (the Swift debug build runs SIMD code slowly)
            let v = Vector.exp(Vector.V(inputs[i..<(i + 8)]))
            for l in 0..<8 { swiftVector[i + l] = v[l].bitPattern }
            for l in 8..<16 where i + l < inputs.count { swiftVector[i + l] = swiftScalar[i + l] }
            i += 16
        }
        while i < inputs.count { swiftVector[i] = Vector.exp(inputs[i]).bitPattern; i += 1 }
        let scalarMismatch = zip(inputs.indices, zip(swiftScalar, swiftVector)).first { $0.1.0 != $0.1.1 }
        #expect(scalarMismatch == nil, "Swift scalar vs SIMD8 at x = \(scalarMismatch.map { inputs[$0.0] } ?? 0)")
        for level in KernelLevel.allCases {
            guard level.isSupported else {
                print("exp bit identity: skipped \(level): this CPU runs up to \(KernelLevel.best)")
                continue
            }
            var c = [Float](repeating: 0, count: inputs.count)
            inputs.withUnsafeBufferPointer { x in Kernels.exp(x.baseAddress!, into: &c, count: x.count, level: level) }
            var mismatches = 0, first: (Float, UInt32, UInt32)?
            for k in inputs.indices where c[k].bitPattern != swiftScalar[k] {
                mismatches += 1
                if first == nil { first = (inputs[k], c[k].bitPattern, swiftScalar[k]) }
            }
            #expect(mismatches == 0, "\(level): \(mismatches) of \(inputs.count) differ; first x = \(first.map { "\($0.0) (C \(String($0.1, radix: 16)), Swift \(String($0.2, radix: 16)))" } ?? "")")
        }
        // Every tail length takes the same path to the same bits.
        for level in Self.supported {
            for count in 1...33 {
                let x = (0..<count).map { Float($0) * 0.731 - 9 }
                var y = [Float](repeating: 0, count: count)
                Kernels.exp(x, into: &y, count: count, level: level)
                #expect(y.map(\.bitPattern) == x.map { Vector.exp($0).bitPattern }, "\(level), \(count) values")
            }
        }
    }

    /// Deterministic values in [−1, 1).
    static func values(_ count: Int, seed: UInt64) -> [Float] { TestValues.uniform(count, seed: seed) }

    @Test("each element-wise kernel at each level matches its float64 definition (rel 2e-6 of the magnitudes), on widths with tails",
          arguments: KernelLevel.allCases, [1, 7, 8, 17, 72, 1152 + 13])
    func elementwise(_ level: KernelLevel, _ dim: Int) throws {
        guard level.isSupported else { print("skipped \(level): this CPU runs up to \(KernelLevel.best)"); return }
        let tokens = 3, rows = 2 * tokens
        let x = Self.values(rows * dim, seed: UInt64(dim)).map { $0 * 4 }, bias = Self.values(dim, seed: 7)
        let mod = Self.values(2 * 3 * dim, seed: 11)  // two samples: shift, scale, gate at strides of 3·dim
        func close(_ ours: [Float], _ reference: [Double], _ magnitude: [Double], _ what: String) {
            let worst = zip(zip(ours, reference), magnitude).map { abs(Double($0.0) - $0.1) / max($1, 1e-30) }.max() ?? 0
            #expect(worst <= 2e-6, "\(what) at \(level), dim \(dim): worst error \(worst)")
        }
        // LayerNorm + modulation.
        var out = [Float](repeating: .nan, count: rows * dim)
        mod.withUnsafeBufferPointer { m in
            Kernels.layerNormModulate(x, into: &out, rows: rows, dim: dim, eps: 1e-6, tokens: tokens, shift: m.baseAddress!,
                                      scale: m.baseAddress! + dim, stride: 3 * dim, level: level)
        }
        var expected: [Double] = [], magnitude: [Double] = []
        for r in 0..<rows {
            let row = (0..<dim).map { Double(x[r * dim + $0]) }
            let mean = row.reduce(0, +) / Double(dim)
            let inverse = 1 / (row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(dim) + 1e-6).squareRoot()
            let s = r / tokens
            for j in 0..<dim {
                let sh = Double(mod[s * 3 * dim + j]), sc = Double(mod[s * 3 * dim + dim + j])
                expected.append((row[j] - mean) * inverse * (1 + sc) + sh)
                magnitude.append(abs((row[j] - mean) * inverse * (1 + sc)) + abs(sh) + 1e-3)
            }
        }
        close(out, expected, magnitude, "LayerNorm·(1+scale)+shift")
        // Gated residual and bias.
        var residual = x
        mod.withUnsafeBufferPointer { m in
            Kernels.gatedResidual(&residual, out, bias: bias, rows: rows, dim: dim, tokens: tokens, gate: m.baseAddress! + 2 * dim,
                                  stride: 3 * dim, level: level)
        }
        expected = []; magnitude = []
        for r in 0..<rows { for j in 0..<dim {
            let g = Double(mod[(r / tokens) * 3 * dim + 2 * dim + j]), y = Double(out[r * dim + j]) + Double(bias[j])
            expected.append(Double(x[r * dim + j]) + g * y)
            magnitude.append(abs(Double(x[r * dim + j])) + abs(g * y))
        } }
        close(residual, expected, magnitude, "x + gate·(y + bias)")
        var biased = x
        Kernels.addBias(&biased, rows: rows, dim: dim, bias: bias, level: level)
        #expect(biased == (0..<(rows * dim)).map { x[$0] + bias[$0 % dim] }, "bias at \(level), dim \(dim)")
        // GELU, both forms, with bias.
        for exact in [false, true] {
            var g = x
            Kernels.biasGELU(&g, rows: rows, dim: dim, bias: bias, exact: exact, level: level)
            let reference = (0..<(rows * dim)).map { k -> Double in
                let v = Double(x[k] + bias[k % dim])
                return exact ? 0.5 * v * (1 + erf(v / 2.0.squareRoot())) : 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
            }
            // Relative to |v|/2 (1 + erf and 1 + tanh cancel for negative v: float32 keeps their absolute error).
            let scale = (0..<(rows * dim)).map { k in 0.5 * abs(Double(x[k] + bias[k % dim])) + 1e-3 }
            close(g, reference, scale, exact ? "GELU (erf)" : "GELU (tanh)")
        }
        // Softmax of scaled rows.
        var soft = x
        Kernels.softmaxRows(&soft, rows: rows, cols: dim, ld: dim, scale: 0.7, level: level)
        expected = []
        for r in 0..<rows {
            let row = (0..<dim).map { Double(x[r * dim + $0]) }, top = row.max()!
            let e = row.map { exp(($0 - top) * 0.7) }, total = e.reduce(0, +)
            expected += e.map { $0 / total }
        }
        close(soft, expected, expected.map { $0 + 1e-7 }, "softmax")
    }

    /// The forward at one forced level against every PyTorch trace, each layer within rel 1e-5 (as TorchTraceTests).
    static func forward(at level: KernelLevel, _ c: TorchTraceTests.Case) throws {
        let view = try TorchTraceTests.view(c.model, heads: c.entry["config"]?["heads"]?.intValue ?? 2)
        for choice in [try KernelChoice(level: level), try KernelChoice(level: level, blasProducts: true)] {
            #expect(choice.level == level)
            let report = try TorchTraceTests.report(view, against: c.trace, kernels: choice)
            #expect(report.passed, "\(choice): \(report.text)")
        }
    }

    @Test("the forward with dispatch forced to baseline matches every PyTorch trace", arguments: TorchTraceTests.cases)
    func forwardBaseline(_ c: TorchTraceTests.Case) throws { try Self.forward(at: .baseline, c) }

    @Test("the forward with dispatch forced to AVX2 matches every PyTorch trace", .enabled(if: KernelLevel.avx2.isSupported, "this CPU has no AVX2 + FMA"),
          arguments: TorchTraceTests.cases)
    func forwardAVX2(_ c: TorchTraceTests.Case) throws { try Self.forward(at: .avx2, c) }

    @Test("the forward with dispatch forced to AVX-512 matches every PyTorch trace", .enabled(if: KernelLevel.avx512.isSupported, "this CPU has no AVX-512"),
          arguments: TorchTraceTests.cases)
    func forwardAVX512(_ c: TorchTraceTests.Case) throws { try Self.forward(at: .avx512, c) }

    @Test("a level the CPU lacks is refused with the best level it runs; levels parse by name")
    func refusal() throws {
        for level in KernelLevel.allCases {
            #expect(KernelLevel(name: level.description) == level)
            if level.isSupported {
                #expect(try KernelChoice(level: level).level == level)
            } else {
                #expect(throws: UnsupportedKernelLevel(level: level, best: .best)) { try KernelChoice(level: level) }
            }
        }
        #expect(KernelLevel(name: "avx3") == nil)
        #expect(KernelChoice.automatic.level == .best && KernelLevel.best.isSupported)
        let error = UnsupportedKernelLevel(level: .avx512, best: .avx2)
        #expect(error.description.contains("avx512") && error.description.contains("avx2") && error.kind == .usage)
    }

    @Test("matrix products and a forward pass leave OPENBLAS_THREAD_TIMEOUT alone (the spin-wait setting is opt-in)")
    func noSideEffects() throws {
        guard getenv("OPENBLAS_THREAD_TIMEOUT") == nil else { print("skipped: OPENBLAS_THREAD_TIMEOUT is set in this environment"); return }
        var c = [Float](repeating: 0, count: 64 * 64)
        GEMM.multiply([Float](repeating: 1, count: 64 * 64), [Float](repeating: 1, count: 64 * 64), into: &c, m: 64, n: 64, k: 64)
        let view = try TorchTraceTests.view(Fixtures.path("traces/orig-p2-s8/model.pt"), heads: 2)
        _ = DiTForward(weights: try DiTWeights(view)).run(DiTInputs.make(config: view.config, batch: 2, seed: 1))
        #expect(getenv("OPENBLAS_THREAD_TIMEOUT") == nil)
    }
}
