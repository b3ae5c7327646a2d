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
                let mean = Vector.sum(row, dim) / Float(dim)
                let inverse = 1 / (Vector.sumSquaredDeviations(row, dim, mean: mean) / Float(dim) + eps).squareRoot()
                let sample = r / tokens
                let sh = shift + sample * stride, sc = scale + sample * stride
                let vm = Vector.V(repeating: mean), vi = Vector.V(repeating: inverse)
                var j = 0
                while j + 8 <= dim {
                    let v = (Vector.load(row + j) - vm) * vi * (1 + Vector.load(sc + j)) + Vector.load(sh + j)
                    Vector.store(v, o + j)
                    j += 8
                }
                while j < dim { o[j] = (row[j] - mean) * inverse * (1 + sc[j]) + sh[j]; j += 1 }
            }
        }
    }

    /// x += gate ⊙ (y + bias), gate per sample (row r uses gate + (r / tokens)·stride): a linear layer's bias and
    /// the gated residual in one pass.
    public static func gatedResidual(
        _ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, bias: UnsafePointer<Float>, rows: Int, dim: Int, tokens: Int,
        gate: UnsafePointer<Float>, stride: Int
    ) {
        parallelRows(rows) { range in
            for r in range {
                let g = gate + (r / tokens) * stride, xr = x + r * dim, yr = y + r * dim
                for j in 0..<dim { xr[j] += g[j] * (yr[j] + bias[j]) }
            }
        }
    }

    /// y[r, j] += bias[j].
    public static func addBias(_ y: UnsafeMutablePointer<Float>, rows: Int, dim: Int, bias: UnsafePointer<Float>) {
        parallelRows(rows) { range in
            for r in range {
                let row = y + r * dim
                for j in 0..<dim { row[j] += bias[j] }
            }
        }
    }

    /// GELU of (x + bias) in place, rows of `dim`: the tanh approximation 0.5u(1+tanh(√(2/π)(u+0.044715u³))) or
    /// the exact 0.5u(1+erf(u/√2)).
    public static func biasGELU(_ x: UnsafeMutablePointer<Float>, rows: Int, dim: Int, bias: UnsafePointer<Float>, exact: Bool) {
        parallelRows(rows) { range in
            for r in range {
                let row = x + r * dim
                if exact {
                    for j in 0..<dim { let v = row[j] + bias[j]; row[j] = 0.5 * v * (1 + erff(v * 0.70710678118654752)) }
                } else {
                    // 0.5·v·(1 + tanh(u)) = v·σ(2u) = v / (1 + e^(−2u)): the same function without tanh's cancellation.
                    var j = 0
                    while j + 8 <= dim {
                        let v = Vector.load(row + j) + Vector.load(bias + j)
                        Vector.store(v / (1 + Vector.exp((v + 0.044715 * v * v * v) * -1.5957691216057308)), row + j)
                        j += 8
                    }
                    while j < dim {
                        let v = row[j] + bias[j]
                        row[j] = v / (1 + Vector.exp(-1.5957691216057308 * (v + 0.044715 * v * v * v)))
                        j += 1
                    }
                }
            }
        }
    }

    /// GELU in place (no bias).
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int, exact: Bool) {
        parallelRows(count, minimumRowsPerChunk: 4096) { range in
            for i in range {
                let v = x[i]
                x[i] = exact ? 0.5 * v * (1 + erff(v * 0.70710678118654752))
                    : v / (1 + Vector.exp(-1.5957691216057308 * (v + 0.044715 * v * v * v)))
            }
        }
    }

    /// Row-wise softmax of `rows`×`cols` (row stride `ld`), scaled by `scale` first; stable (max subtracted).
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, scale: Float) {
        parallelRows(rows, minimumRowsPerChunk: 32) { range in
            for r in range {
                let row = x + r * ld
                let maximum = Vector.max(row, cols)
                let vmax = Vector.V(repeating: maximum), vscale = Vector.V(repeating: scale)
                var j = 0
                while j + 8 <= cols { Vector.store(Vector.exp((Vector.load(row + j) - vmax) * vscale), row + j); j += 8 }
                while j < cols { row[j] = Vector.exp((row[j] - maximum) * scale); j += 1 }
                let inverse = 1 / Vector.sum(row, cols)
                for j in 0..<cols { row[j] *= inverse }
            }
        }
    }
}
