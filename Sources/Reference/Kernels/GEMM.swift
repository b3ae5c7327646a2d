import CDitkitBLAS
import CDitkitKernels
import Dispatch

/// Float32 matrix products: OpenBLAS `cblas_sgemm` (row-major), and ditkit's AVX-512 kernels where they win.
public enum GEMM {
    /// The CPU runs ditkit's AVX-512 kernels (`KernelLevel.best == .avx512`).
    public static var avx512Available: Bool { KernelLevel.best == .avx512 }

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

    /// At most this many rows go through the matrix–vector kernel, which reads each weight once per 4 rows;
    /// `sgemm` packs the whole weight matrix first, 3× the memory traffic of these memory-bound products.
    static let vectorRows = 8

    /// y (rows×out) = x (rows×in) · Wᵀ + bias, W (out×in) as PyTorch's Linear stores it. Without `bias` the caller
    /// adds it, fused into the next element-wise kernel (one pass over y instead of a pre-fill and a β pass).
    public static func linear(
        _ x: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        outFeatures: Int, into y: UnsafeMutablePointer<Float>, kernels: KernelChoice = .automatic
    ) {
        if rows <= vectorRows, kernels.usesAVX512 {
            nonisolated(unsafe) let y = y
            Kernels.parallelRows(outFeatures, minimumRowsPerChunk: 256) { range in
                ditkit_gemv_avx512(
                    weight, inFeatures, range.lowerBound, range.upperBound, inFeatures, x, inFeatures, rows, bias, y, outFeatures)
            }
            return
        }
        multiply(x, weight, into: y, m: rows, n: outFeatures, k: inFeatures, transposeB: true)
        if let bias { Kernels.addBias(y, rows: rows, dim: outFeatures, bias: bias, level: kernels.level) }
    }
}

/// Multi-head attention of a batch: for every sample and head, out = softmax(q kᵀ · scale) v on strided views of
/// the fused (rows × 3·dim) q/k/v activations, written into (rows × dim).
public enum Attention {
    /// Floats of scratch `run` needs (per-core buffers for the AVX-512 kernel, or one score matrix for OpenBLAS).
    public static func scratchCount(tokens: Int, headDim: Int, kernels: KernelChoice) -> Int {
        kernels.usesAVX512 ? ditkit_attention_scratch(tokens, headDim) * Kernels.cores : tokens * tokens
    }

    /// With `softmax: false` only the two matrix products run (the benchmark's floor).
    public static func run(
        qkv: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int, tokens: Int, dim: Int, heads: Int,
        scale: Float, scratch: UnsafeMutablePointer<Float>, kernels: KernelChoice, softmax: Bool = true
    ) {
        let hd = dim / heads, ld = 3 * dim
        if kernels.usesAVX512 {
            // One head per call, on one core: its K, V and a block of scores stay in L1/L2; heads split over cores.
            let pairs = batch * heads, chunks = min(Kernels.cores, pairs), each = ditkit_attention_scratch(tokens, hd)
            nonisolated(unsafe) let qkv = qkv, out = out, scratch = scratch
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                for pair in (pairs * c / chunks)..<(pairs * (c + 1) / chunks) {
                    let b = pair / heads, head = pair % heads
                    let q = qkv + b * tokens * ld + head * hd
                    ditkit_attention_avx512(
                        q, q + dim, q + 2 * dim, ld, tokens, hd, scale, out + b * tokens * dim + head * hd, dim,
                        scratch + c * each, softmax ? 1 : 0)
                }
            }
            return
        }
        for b in 0..<batch { for head in 0..<heads {
            let q = qkv + b * tokens * ld + head * hd
            GEMM.multiply(q, q + dim, into: scratch, m: tokens, n: tokens, k: hd, transposeB: true, lda: ld, ldb: ld, ldc: tokens)
            if softmax { Kernels.softmaxRows(scratch, rows: tokens, cols: tokens, ld: tokens, scale: scale, level: kernels.level) }
            GEMM.multiply(scratch, q + 2 * dim, into: out + b * tokens * dim + head * hd, m: tokens, n: hd, k: tokens,
                          lda: tokens, ldb: ld, ldc: dim)
        } }
    }
}

/// OpenBLAS's thread pool, tuned for the forward pass: an explicit opt-in, since it changes the process.
public enum OpenBLASThreads {
    /// OpenBLAS's worker threads spin (sched_yield) for 2^28 cycles, about 0.1 s, after every call before they
    /// sleep, taking a core from the forward pass's own threads (attention, norms, GELU) that run between the GEMMs:
    /// the attention kernel measured 9.3 ms instead of 5.7 ms per DiT-XL/2 block next to a spinning worker.
    ///
    /// Unless `OPENBLAS_THREAD_TIMEOUT` is already set, this sets it in the process environment to OpenBLAS's
    /// minimum (2^4 cycles) and restarts OpenBLAS's thread pool through its internal symbols `openblas_read_env`,
    /// `blas_thread_shutdown_` and `blas_thread_init` so that it takes effect; the workers then sleep between calls
    /// and are woken per call, which costs microseconds. The symbols are looked up at run time: with another BLAS
    /// (or an OpenBLAS without them) nothing happens. Call it once, before the first matrix product (later calls do
    /// nothing); the library never calls it by itself (the `ditkit` command does, at startup).
    public static func shortenSpinWait() { _ = once }

    private static let once: Void = {
        guard Platform.environment("OPENBLAS_THREAD_TIMEOUT") == nil,
              let readEnvironment = Platform.processSymbol("openblas_read_env"),
              let shutdown = Platform.processSymbol("blas_thread_shutdown_"),
              let start = Platform.processSymbol("blas_thread_init")
        else { return }
        typealias Function = @convention(c) () -> Int32
        typealias Procedure = @convention(c) () -> Void
        Platform.setEnvironmentIfUnset("OPENBLAS_THREAD_TIMEOUT", "4")
        unsafeBitCast(readEnvironment, to: Procedure.self)()
        _ = unsafeBitCast(shutdown, to: Function.self)()
        _ = unsafeBitCast(start, to: Function.self)()
    }()
}
