import Reference
import DitkitTestSupport
import Testing

/// ditkit's AVX-512 kernels against float64 evaluations of their definitions (float32 rounding of scores of size ~30
/// bounds attention at ~1e-5, OpenBLAS's path included), on shapes that exercise every tail
/// (rows not a multiple of 4, lengths not a multiple of 16, token counts not a multiple of the query block).
@Suite("AVX-512 kernels", .enabled(if: GEMM.avx512Available, "this CPU has no AVX-512; the OpenBLAS path runs instead"))
struct AVX512Tests {
    /// Deterministic values in [−1, 1).
    static func values(_ count: Int, seed: UInt64) -> [Float] { TestValues.uniform(count, seed: seed) }

    @Test("matrix–vector products of 1–8 samples equal float64 sums, with and without bias",
          arguments: [(1, 1, 3), (2, 5, 16), (3, 37, 17), (4, 260, 1152), (5, 7, 100), (8, 513, 33)])
    func matrixVector(_ shape: (rows: Int, out: Int, inFeatures: Int)) {
        let (rows, out, k) = shape
        let x = Self.values(rows * k, seed: 1), w = Self.values(out * k, seed: 2), bias = Self.values(out, seed: 3)
        for withBias in [false, true] {
            var y = [Float](repeating: .nan, count: rows * out)
            bias.withUnsafeBufferPointer { b in
                GEMM.linear(x, rows: rows, inFeatures: k, weight: w, bias: withBias ? b.baseAddress : nil, outFeatures: out, into: &y)
            }
            var worst = 0.0
            for r in 0..<rows { for n in 0..<out {
                var sum = withBias ? Double(bias[n]) : 0, magnitude = withBias ? abs(Double(bias[n])) : 0
                for p in 0..<k { sum += Double(x[r * k + p]) * Double(w[n * k + p]); magnitude += abs(Double(x[r * k + p]) * Double(w[n * k + p])) }
                worst = max(worst, abs(Double(y[r * out + n]) - sum) / max(magnitude, 1e-30))
            } }
            #expect(worst < 1e-6, "rows \(rows) out \(out) in \(k) bias \(withBias): worst error \(worst) of Σ|w·x|")
        }
    }

    @Test("attention per head equals softmax(q·kᵀ·scale)·v in float64, on either kernel set",
          arguments: [(1, 8), (4, 72), (13, 16), (25, 100), (144, 72), (257, 16)])
    func attention(_ shape: (tokens: Int, headDim: Int)) {
        let (tokens, hd) = shape, heads = 3, batch = 2, dim = heads * hd
        let qkv = Self.values(batch * tokens * 3 * dim, seed: UInt64(tokens * 1000 + hd)).map { $0 * 3 }
        let scale = 1 / Float(hd).squareRoot()
        // float64 reference
        var expected = [Double](repeating: 0, count: batch * tokens * dim)
        for b in 0..<batch { for h in 0..<heads { for i in 0..<tokens {
            func at(_ row: Int, _ part: Int, _ c: Int) -> Double { Double(qkv[(b * tokens + row) * 3 * dim + part * dim + h * hd + c]) }
            let scores = (0..<tokens).map { j in (0..<hd).reduce(0.0) { $0 + at(i, 0, $1) * at(j, 1, $1) } * Double(scale) }
            let top = scores.max()!, e = scores.map { Foundation_exp($0 - top) }, total = e.reduce(0, +)
            for c in 0..<hd { expected[(b * tokens + i) * dim + h * hd + c] = (0..<tokens).reduce(0.0) { $0 + e[$1] / total * at($1, 2, c) } }
        } } }
        for kernels in [KernelChoice.automatic, .blas] {
            var out = [Float](repeating: .nan, count: batch * tokens * dim)
            var scratch = [Float](repeating: 0, count: Attention.scratchCount(tokens: tokens, headDim: hd, kernels: kernels))
            qkv.withUnsafeBufferPointer { q in
                Attention.run(qkv: q.baseAddress!, into: &out, batch: batch, tokens: tokens, dim: dim, heads: heads, scale: scale,
                              scratch: &scratch, kernels: kernels)
            }
            let worst = zip(out, expected).map { abs(Double($0) - $1) }.max()!
            #expect(worst < 2e-5, "\(kernels): tokens \(tokens) head dim \(hd): worst |error| \(worst)")
        }
    }

    @Test("without softmax the attention kernel computes (q·kᵀ)·v, the products the benchmark's floor times")
    func productsOnly() {
        let tokens = 19, hd = 24, dim = hd
        let qkv = Self.values(tokens * 3 * dim, seed: 9)
        var out = [Float](repeating: .nan, count: tokens * dim)
        var scratch = [Float](repeating: 0, count: Attention.scratchCount(tokens: tokens, headDim: hd, kernels: .automatic))
        qkv.withUnsafeBufferPointer { q in
            Attention.run(qkv: q.baseAddress!, into: &out, batch: 1, tokens: tokens, dim: dim, heads: 1, scale: 1, scratch: &scratch,
                          kernels: .automatic, softmax: false)
        }
        var worst = 0.0
        for i in 0..<tokens { for c in 0..<hd {
            var sum = 0.0
            for j in 0..<tokens {
                let s = (0..<hd).reduce(0.0) { $0 + Double(qkv[i * 3 * dim + $1]) * Double(qkv[j * 3 * dim + dim + $1]) }
                sum += s * Double(qkv[j * 3 * dim + 2 * dim + c])
            }
            worst = max(worst, abs(Double(out[i * dim + c]) - sum))
        } }
        #expect(worst < 1e-4, "worst |error| \(worst)")
    }
}

#if canImport(Glibc)
import Glibc
private func Foundation_exp(_ x: Double) -> Double { Glibc.exp(x) }
#endif
