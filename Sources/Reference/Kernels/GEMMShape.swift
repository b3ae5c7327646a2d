/// One matrix product of a forward pass, as the pass issues it to `cblas_sgemm` (or to ditkit's attention kernel):
/// what `ditkit bench forward` runs alone for the GEMM floor (``GEMMFloor``).
public struct GEMMShape: Sendable, Equatable {
    /// What B is.
    public enum Operand: Sendable, Equatable {
        /// A model weight, by canonical name (the floor reads the model's own matrix, paying its memory traffic).
        case weight(String)
        /// Activations (attention's keys and values).
        case activation
        /// The two products of self-attention on fused (rows × 3·dim) q/k/v, run by `Attention.run` without the
        /// softmax; this shape is the scores product, the next one (`.attentionValues`) its partner.
        case selfAttention(batch: Int, tokens: Int, dim: Int, heads: Int)
        /// The values product of the preceding `.selfAttention` shape (run with it).
        case attentionValues
    }

    /// Rows of A and C, columns of B and C, and the shared dimension.
    public let m: Int, n: Int, k: Int
    /// Whether B is read transposed (weights stored (out, in)).
    public let transposeB: Bool
    /// Leading dimensions of A, B and C.
    public let lda: Int, ldb: Int, ldc: Int
    /// How many times the product runs (once per sample and head for attention).
    public let count: Int
    /// What B is.
    public let operand: Operand
    /// Multiply-adds of all `count` products.
    public var multiplyAdds: Int { m * n * k * count }

    /// A product of these sizes and leading dimensions, run `count` times.
    public init(m: Int, n: Int, k: Int, transposeB: Bool, lda: Int, ldb: Int, ldc: Int, count: Int, operand: Operand = .activation) {
        self.m = m
        self.n = n
        self.k = k
        self.transposeB = transposeB
        self.lda = lda
        self.ldb = ldb
        self.ldc = ldc
        self.count = count
        self.operand = operand
    }

    /// y (rows × out) = x (rows × in) · Wᵀ with W the canonical weight `weight` (out × in): a linear layer.
    public static func linear(rows: Int, inFeatures: Int, outFeatures: Int, weight: String) -> GEMMShape {
        GEMMShape(m: rows, n: outFeatures, k: inFeatures, transposeB: true, lda: inFeatures, ldb: inFeatures, ldc: outFeatures,
                  count: 1, operand: .weight(weight))
    }
}

/// Runs exactly the matrix products of a forward pass (``GEMMShape``) and nothing else: weights as the B operands
/// where given (the same weight traffic from memory as a real pass), activation-sized scratch for the rest. The
/// floor a forward pass cannot beat with this BLAS.
public enum GEMMFloor {
    /// Floats of scratch `run` needs for `shapes` under `kernels`.
    public static func scratchCount(_ shapes: [GEMMShape], kernels: KernelChoice) -> Int {
        var a = 0, b = 0, c = 0, attention = 0
        for s in shapes {
            a = max(a, s.m * s.lda)
            c = max(c, s.m * s.ldc)
            if case .weight = s.operand {} else { b = max(b, (s.transposeB ? s.n : s.k) * s.ldb) }
            if case .selfAttention(let batch, let tokens, let dim, let heads) = s.operand {
                a = max(a, batch * tokens * 3 * dim)
                c = max(c, batch * tokens * dim)
                attention = max(attention, Attention.scratchCount(tokens: tokens, headDim: dim / heads, kernels: kernels))
            }
        }
        return a + b + c + attention
    }

    /// Runs `shapes` in order; `weight(name)` gives the float32 matrix of a canonical weight (nil: the product is
    /// skipped). Weights' linear products go through `GEMM.linear` (ditkit's matrix–vector kernel for few rows, as the
    /// forward does), self-attention through `Attention.run` without the softmax. `scratch` is grown as needed.
    public static func run(
        _ shapes: [GEMMShape], weight: (String) -> UnsafePointer<Float>?, kernels: KernelChoice, scratch: inout [Float]
    ) {
        let needed = scratchCount(shapes, kernels: kernels)
        if scratch.count < needed { scratch = [Float](repeating: 0.001, count: needed) }
        var a = 0, b = 0, c = 0
        for s in shapes {
            a = max(a, s.m * s.lda)
            c = max(c, s.m * s.ldc)
            if case .weight = s.operand {} else { b = max(b, (s.transposeB ? s.n : s.k) * s.ldb) }
            if case .selfAttention(let batch, let tokens, let dim, _) = s.operand {
                a = max(a, batch * tokens * 3 * dim)
                c = max(c, batch * tokens * dim)
            }
        }
        let (sizeA, sizeB, sizeC) = (a, b, c)
        scratch.withUnsafeMutableBufferPointer { buffer in
            let pa = buffer.baseAddress!, pb = pa + sizeA, pc = pb + sizeB, attention = pc + sizeC
            for s in shapes {
                switch s.operand {
                case .weight(let name):
                    guard let w = weight(name) else { continue }
                    GEMM.linear(pa, rows: s.m, inFeatures: s.k, weight: w, bias: nil, outFeatures: s.n, into: pc, kernels: kernels)
                case .activation:
                    for _ in 0..<s.count {
                        GEMM.multiply(pa, pb, into: pc, m: s.m, n: s.n, k: s.k, transposeB: s.transposeB, lda: s.lda, ldb: s.ldb, ldc: s.ldc)
                    }
                case .selfAttention(let batch, let tokens, let dim, let heads):
                    Attention.run(qkv: pa, into: pc, batch: batch, tokens: tokens, dim: dim, heads: heads, scale: 1,
                                  scratch: attention, kernels: kernels, softmax: false)
                case .attentionValues:
                    continue
                }
            }
        }
    }
}
