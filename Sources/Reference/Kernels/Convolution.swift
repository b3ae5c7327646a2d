import CDitkitKernels
import Dispatch

/// A 2-D convolution's geometry: square kernel, stride and zero padding (top, left, bottom, right), as PyTorch's
/// `Conv2d` (symmetric padding) or a `F.pad` before it (diffusers' `Downsample2D` pads (0, 1, 0, 1)).
public struct Conv2DGeometry: Sendable, Equatable {
    /// Input channels.
    public var inChannels: Int
    /// Output channels.
    public var outChannels: Int
    /// Kernel side (1 or 3 in the VQ-VAE).
    public var kernel: Int
    /// Stride along both axes.
    public var stride: Int
    /// Zero padding on each side.
    public var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int

    /// A convolution with `padding` on every side.
    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
        self.init(inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride,
                  padTop: padding, padLeft: padding, padBottom: padding, padRight: padding)
    }

    /// A convolution with its own padding on each side.
    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padTop: Int, padLeft: Int, padBottom: Int, padRight: Int) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padTop = padTop
        self.padLeft = padLeft
        self.padBottom = padBottom
        self.padRight = padRight
    }

    /// Output height for an input of `height` rows.
    public func outputHeight(_ height: Int) -> Int { (height + padTop + padBottom - kernel) / stride + 1 }
    /// Output width for an input of `width` columns.
    public func outputWidth(_ width: Int) -> Int { (width + padLeft + padRight - kernel) / stride + 1 }
    /// Rows of the im2col matrix (the GEMM's shared dimension): Cin·kernel².
    public var patchSize: Int { inChannels * kernel * kernel }
    /// Whether the input is the GEMM's B operand as it is (1×1, stride 1, no padding): no im2col.
    public var isPointwise: Bool { kernel == 1 && stride == 1 && padTop == 0 && padLeft == 0 && padBottom == 0 && padRight == 0 }
}

/// 2-D convolutions of NCHW float32 activations as matrix products through the same BLAS as every linear layer: per
/// sample, out (Cout × Ho·Wo) = W (Cout × Cin·k²) · im2col(x) (Cin·k² × Ho·Wo), the im2col matrix built a band of
/// output rows at a time (at most `bandFloats` floats) so that its memory stays bounded whatever the image size.
/// 1×1 convolutions multiply the input directly.
public enum Convolution {
    /// The largest im2col band, in floats (8 MiB), unless a single output row needs more.
    public static let bandFloats = 1 << 21

    /// Output rows per im2col band for `geometry` at output width `outWidth`.
    static func bandRows(_ g: Conv2DGeometry, outWidth: Int, outHeight: Int) -> Int {
        max(1, min(outHeight, bandFloats / max(1, g.patchSize * outWidth)))
    }

    /// Floats of scratch `run` needs for one input of `height` × `width` (0 for a pointwise convolution).
    public static func scratchCount(_ g: Conv2DGeometry, height: Int, width: Int) -> Int {
        if g.isPointwise { return 0 }
        if Winograd.applies(g) { return Winograd.scratchCount(g, height: height, width: width) }
        let ho = g.outputHeight(height), wo = g.outputWidth(width)
        return g.patchSize * wo * bandRows(g, outWidth: wo, outHeight: ho)
    }

    /// Convolves `batch` samples x (Cin × H × W each) with `weight` (Cout, Cin, k, k) as PyTorch stores it and `bias`
    /// (Cout, or nil) into `out` (Cout × Ho × Wo each). With `accumulate`, `out` already holds values of the output's
    /// shape (a residual) and the convolution is added to them. `scratch` holds `scratchCount` floats.
    public static func run(
        _ x: UnsafePointer<Float>, batch: Int, height: Int, width: Int, geometry g: Conv2DGeometry,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, into out: UnsafeMutablePointer<Float>,
        accumulate: Bool = false, scratch: UnsafeMutablePointer<Float>?, level: KernelLevel = .best
    ) {
        let ho = g.outputHeight(height), wo = g.outputWidth(width), spatial = ho * wo, k = g.patchSize
        let inPlane = g.inChannels * height * width, outPlane = g.outChannels * spatial
        for b in 0..<batch {
            let xb = x + b * inPlane, ob = out + b * outPlane
            // The bias first (added to the residual, or as the initial value), then the products accumulate.
            if let bias {
                channelBias(accumulate ? UnsafePointer(ob) : nil, into: ob, channels: g.outChannels, spatial: spatial, bias: bias, level: level)
            }
            let beta: Float = bias != nil || accumulate ? 1 : 0
            if g.isPointwise {
                GEMM.multiply(weight, xb, into: ob, m: g.outChannels, n: spatial, k: k, beta: beta)
                continue
            }
            guard let scratch else { preconditionFailure("a convolution with im2col needs scratch") }
            if Winograd.applies(g) {
                if beta == 0 { ob.update(repeating: 0, count: outPlane) }
                Winograd.run(xb, height: height, width: width, geometry: g, weight: weight, into: ob, scratch: scratch,
                             weightsTransformed: b > 0)
                continue
            }
            let band = bandRows(g, outWidth: wo, outHeight: ho)
            var row0 = 0
            while row0 < ho {
                let row1 = min(ho, row0 + band), columns = (row1 - row0) * wo
                im2col(xb, height: height, width: width, geometry: g, outWidth: wo, rows: row0..<row1, into: scratch, level: level)
                GEMM.multiply(weight, scratch, into: ob + row0 * wo, m: g.outChannels, n: columns, k: k, beta: beta, ldb: columns, ldc: spatial)
                row0 = row1
            }
        }
    }

    /// The im2col rows of output rows `rows`, split over the cores by matrix rows.
    static func im2col(
        _ x: UnsafePointer<Float>, height: Int, width: Int, geometry g: Conv2DGeometry, outWidth: Int, rows: Range<Int>,
        into cols: UnsafeMutablePointer<Float>, level: KernelLevel
    ) {
        let columns = rows.count * outWidth
        nonisolated(unsafe) let cols = cols
        Kernels.parallelRows(g.patchSize, minimumRowsPerChunk: max(1, 65536 / max(columns, 1))) { range in
            ditkit_im2col(x, height, width, g.kernel, g.stride, g.padTop, g.padLeft, outWidth, rows.lowerBound, rows.upperBound,
                          range.lowerBound, range.upperBound, cols + range.lowerBound * columns, level.c)
        }
    }

    /// out[c, j] = src[c, j] + bias[c] over `channels` planes of `spatial` (src nil: bias[c]); src may be out.
    public static func channelBias(
        _ src: UnsafePointer<Float>?, into out: UnsafeMutablePointer<Float>, channels: Int, spatial: Int, bias: UnsafePointer<Float>,
        level: KernelLevel = .best
    ) {
        nonisolated(unsafe) let out = out
        Kernels.parallelRows(channels, minimumRowsPerChunk: max(1, 65536 / max(spatial, 1))) { range in
            ditkit_channel_bias(src, out, range.lowerBound, range.upperBound, spatial, bias, level.c)
        }
    }

    /// Nearest-neighbour ×2 upsampling of `planes` planes of height × width into planes of 2·height × 2·width.
    public static func upsampleNearest2(
        _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, planes: Int, height: Int, width: Int, level: KernelLevel = .best
    ) {
        nonisolated(unsafe) let out = out
        Kernels.parallelRows(planes, minimumRowsPerChunk: max(1, 65536 / max(height * width, 1))) { range in
            ditkit_upsample_nearest2(x, out, range.lowerBound, range.upperBound, height, width, level.c)
        }
    }
}
