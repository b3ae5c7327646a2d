import CDitkitKernels
import Dispatch

/// Element-wise float32 kernels of the DiT forward pass: ditkit's C kernels at the given instruction-set level
/// (by default the best this CPU runs), split over the machine's cores by rows.
public enum Kernels {
    /// Runs `body(rowRange)` over `rows` in as many chunks as there are cores (serially when the work is small).
    static func parallelRows(_ rows: Int, minimumRowsPerChunk: Int = 16, _ body: (Range<Int>) -> Void) {
        let cores = max(1, Kernels.cores)
        let chunks = min(cores, max(1, rows / minimumRowsPerChunk))
        if chunks <= 1 { body(0..<rows); return }
        withoutActuallyEscaping(body) { body in
            // The chunks touch disjoint rows; the closure is only shared for the duration of this call.
            nonisolated(unsafe) let work = body
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let start = rows * c / chunks, end = rows * (c + 1) / chunks
                work(start..<end)
            }
        }
    }

    /// Online processors (`sysconf`), read once.
    static let cores: Int = Platform.onlineProcessors

    /// x·sigmoid(x), in place (libm's expf; the same at every level).
    public static func silu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        ditkit_silu(x, count)
    }

    /// LayerNorm without affine over rows of `dim`, then `·(1 + scale) + shift` with per-sample vectors: row r
    /// belongs to sample r / tokens, whose scale and shift start at `scale + sample·stride` and `shift + sample·stride`.
    /// Mean and variance in float32 with a two-pass variance (as PyTorch's CPU kernel does within rounding).
    public static func layerNormModulate(
        _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, rows: Int, dim: Int, eps: Float,
        tokens: Int, shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, stride: Int, level: KernelLevel = .best
    ) {
        parallelRows(rows) { range in
            ditkit_layernorm_modulate(x, out, range.lowerBound, range.upperBound, dim, eps, tokens, shift, scale, stride, level.c)
        }
    }

    /// x += gate ⊙ (y + bias), gate per sample (row r uses gate + (r / tokens)·stride): a linear layer's bias and
    /// the gated residual in one pass.
    public static func gatedResidual(
        _ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, bias: UnsafePointer<Float>, rows: Int, dim: Int, tokens: Int,
        gate: UnsafePointer<Float>, stride: Int, level: KernelLevel = .best
    ) {
        parallelRows(rows) { range in
            ditkit_gated_residual(x, y, bias, range.lowerBound, range.upperBound, dim, tokens, gate, stride, level.c)
        }
    }

    /// y[r, j] += bias[j].
    public static func addBias(_ y: UnsafeMutablePointer<Float>, rows: Int, dim: Int, bias: UnsafePointer<Float>, level: KernelLevel = .best) {
        parallelRows(rows) { range in ditkit_add_bias(y, range.lowerBound, range.upperBound, dim, bias, level.c) }
    }

    /// GELU of (x + bias) in place, rows of `dim`: the tanh approximation 0.5u(1+tanh(√(2/π)(u+0.044715u³))) or
    /// the exact 0.5u(1+erf(u/√2)).
    public static func biasGELU(
        _ x: UnsafeMutablePointer<Float>, rows: Int, dim: Int, bias: UnsafePointer<Float>, exact: Bool, level: KernelLevel = .best
    ) {
        parallelRows(rows) { range in ditkit_bias_gelu(x, range.lowerBound, range.upperBound, dim, bias, exact ? 1 : 0, level.c) }
    }

    /// GELU in place (no bias).
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int, exact: Bool, level: KernelLevel = .best) {
        parallelRows(count, minimumRowsPerChunk: 4096) { range in
            ditkit_bias_gelu(x + range.lowerBound, 0, 1, range.count, nil, exact ? 1 : 0, level.c)
        }
    }

    /// Affine LayerNorm over rows of `dim`: (x − mean)/√(var + eps)·weight + bias, mean and variance in float32 over
    /// 16 fixed partial sums (the same bits at every level).
    public static func layerNormAffine(
        _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, rows: Int, dim: Int, eps: Float,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, level: KernelLevel = .best
    ) {
        parallelRows(rows) { range in
            ditkit_layernorm_affine(x, out, range.lowerBound, range.upperBound, dim, eps, weight, bias, level.c)
        }
    }

    /// u·σ(1.702·u) of u = x + bias in place, rows of `dim` (diffusers' `ApproximateGELU`, the original's `GELU2`);
    /// the same bits at every level.
    public static func biasSigmoidGELU(
        _ x: UnsafeMutablePointer<Float>, rows: Int, dim: Int, bias: UnsafePointer<Float>?, level: KernelLevel = .best
    ) {
        parallelRows(rows) { range in ditkit_bias_gelu_sigmoid(x, range.lowerBound, range.upperBound, dim, bias, level.c) }
    }

    /// Row-wise log-softmax computed in float64, rounded to float32 and clamped to [low, high]: row r of `x` (`rows`
    /// rows of `cols`) is written to out[r·rowStride + j·columnStride] (a transposed store when columnStride > 1).
    public static func logSoftmaxFloat64(
        _ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>, rowStride: Int, columnStride: Int,
        low: Float = -.infinity, high: Float = .infinity
    ) {
        parallelRows(rows) { range in
            ditkit_log_softmax_f64(x, range.lowerBound, range.upperBound, cols, out, rowStride, columnStride, low, high)
        }
    }

    /// Row-wise softmax of `rows`×`cols` (row stride `ld`), scaled by `scale` first; stable (max subtracted).
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, scale: Float, level: KernelLevel = .best) {
        parallelRows(rows, minimumRowsPerChunk: 32) { range in
            ditkit_softmax_rows(x + range.lowerBound * ld, range.count, cols, ld, scale, level.c)
        }
    }

    /// y[i] = e^x[i] at `level` (x and y may be the same): the C kernels' exp, bit-identical to `Vector.exp` at
    /// every level.
    public static func exp(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int, level: KernelLevel = .best) {
        ditkit_exp(x, y, count, level.c)
    }
}
