import CBLAS

/// Float32 matrix products through OpenBLAS `cblas_sgemm` (row-major).
public enum GEMM {
    /// C (m×n) = alpha · op(A) · op(B) + beta · C, row-major, with leading dimensions (row strides) that default to
    /// dense packing: A is m×k (k×m when `transposeA`), B is k×n (n×k when `transposeB`).
    public static func multiply(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into c: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false,
        alpha: Float = 1, beta: Float = 0, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil
    ) {
        let lda = lda ?? (transposeA ? m : k)
        let ldb = ldb ?? (transposeB ? k : n)
        let ldc = ldc ?? n
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// y (rows×out) = x (rows×in) · Wᵀ + bias, W (out×in) as PyTorch's Linear stores it. Without `bias` the caller
    /// adds it, fused into the next element-wise kernel (one pass over y instead of a pre-fill and a β pass).
    public static func linear(
        _ x: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        outFeatures: Int, into y: UnsafeMutablePointer<Float>
    ) {
        multiply(x, weight, into: y, m: rows, n: outFeatures, k: inFeatures, transposeB: true)
        if let bias { Kernels.addBias(y, rows: rows, dim: outFeatures, bias: bias) }
    }
}
