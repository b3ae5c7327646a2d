import CBLAS

/// Float32 matrix products through OpenBLAS `cblas_sgemm` (row-major).
public enum GEMM {
    /// C (m×n) = alpha · op(A) · op(B) + beta · C, with A (m×k, or k×m when `transposeA`) and
    /// B (k×n, or n×k when `transposeB`), all row-major and densely packed.
    public static func multiply(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into c: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false,
        alpha: Float = 1, beta: Float = 0
    ) {
        let lda = transposeA ? m : k
        let ldb = transposeB ? k : n
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(n))
    }
}
