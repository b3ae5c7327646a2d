import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element-wise float32 kernels of the DiT forward pass, written for the vectoriser (SIMD lanes, no branches in
/// the inner loops) and split over the machine's cores by rows.
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

    static let cores: Int = {
        #if canImport(Glibc)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 1
        #endif
    }()

    /// x·sigmoid(x), in place.
    public static func silu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = x[i] / (1 + expf(-x[i])) }
    }

    /// LayerNorm without affine over rows of `dim`, then `·(1 + scale) + shift` with per-sample vectors: row r
    /// belongs to sample r / tokens, whose scale and shift start at `scale + sample·stride` and `shift + sample·stride`.
    /// Mean and variance in float32 with a two-pass variance (as PyTorch's CPU kernel does within rounding).
    public static func layerNormModulate(
        _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, rows: Int, dim: Int, eps: Float,
        tokens: Int, shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, stride: Int
    ) {
        parallelRows(rows) { range in
            for r in range {
                let row = x + r * dim, o = out + r * dim
                var sum: Float = 0
                for j in 0..<dim { sum += row[j] }
                let mean = sum / Float(dim)
                var squares: Float = 0
                for j in 0..<dim { let d = row[j] - mean; squares += d * d }
                let inverse = 1 / (squares / Float(dim) + eps).squareRoot()
                let sample = r / tokens
                let sh = shift + sample * stride, sc = scale + sample * stride
                for j in 0..<dim { o[j] = (row[j] - mean) * inverse * (1 + sc[j]) + sh[j] }
            }
        }
    }

    /// x += gate ⊙ y, gate per sample (row r uses gate + (r / tokens)·stride).
    public static func gatedResidual(
        _ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, rows: Int, dim: Int, tokens: Int,
        gate: UnsafePointer<Float>, stride: Int
    ) {
        parallelRows(rows) { range in
            for r in range {
                let g = gate + (r / tokens) * stride, xr = x + r * dim, yr = y + r * dim
                for j in 0..<dim { xr[j] += g[j] * yr[j] }
            }
        }
    }

    /// GELU in place: the tanh approximation 0.5x(1+tanh(√(2/π)(x+0.044715x³))) or the exact 0.5x(1+erf(x/√2)).
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int, exact: Bool) {
        let rows = max(1, count / 4096)
        parallelRows(rows, minimumRowsPerChunk: 8) { range in
            let start = range.lowerBound * count / rows, end = range.upperBound * count / rows
            if exact {
                for i in start..<end { x[i] = 0.5 * x[i] * (1 + erff(x[i] * 0.70710678118654752)) }
            } else {
                for i in start..<end {
                    let v = x[i]
                    x[i] = 0.5 * v * (1 + tanhf(0.79788456080286536 * (v + 0.044715 * v * v * v)))
                }
            }
        }
    }

    /// Row-wise softmax of `rows`×`cols` (row stride `ld`), scaled by `scale` first; stable (max subtracted).
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, scale: Float) {
        for r in 0..<rows {
            let row = x + r * ld
            var maximum = -Float.infinity
            for j in 0..<cols { maximum = max(maximum, row[j]) }
            var sum: Float = 0
            for j in 0..<cols {
                let e = expf((row[j] - maximum) * scale)
                row[j] = e
                sum += e
            }
            let inverse = 1 / sum
            for j in 0..<cols { row[j] *= inverse }
        }
    }
}
