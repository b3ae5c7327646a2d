import Models
import Tensors

/// The memory and work of one VQ-VAE pass (decoder and encoder), estimated from the config and batch before anything
/// is allocated, in float64 so that no size overflows.
public struct VQVAECost: Sendable, Equatable {
    /// The config the pass runs.
    public let config: VQVAEConfig
    /// Samples in the batch.
    public let batch: Int
    /// Whether every layer is recorded.
    public let tracing: Bool
    /// Bytes of activations at the peak (a few buffers of the widest layer, the im2col band, the attention's q/k/v and
    /// scores), plus every recorded layer when tracing.
    public let activationBytes: Double
    /// Multiply-adds of decoder and encoder.
    public let multiplyAdds: Double

    /// One convolution or matrix product of the pass, in execution order, per sample.
    struct Step {
        var macs: Double
        var floats: Double
    }

    /// The cost of running `config` (validated) on `batch` samples, recording a trace when `tracing`.
    public init(config c: VQVAEConfig, batch: Int, tracing: Bool, kernels: KernelChoice = .automatic) {
        config = c
        self.batch = batch
        self.tracing = tracing
        let walk = VQVAECost.walk(c, kernels: kernels)
        let n = Double(batch)
        activationBytes = 4 * (n * walk.peakFloats + walk.scratchFloats + (tracing ? n * walk.tracedFloats : 0))
        multiplyAdds = n * (walk.decoderMACs + walk.encoderMACs)
    }

    /// Per sample: decoder and encoder multiply-adds, the widest activation times the buffers alive at once, the
    /// largest scratch (im2col band, attention), and the floats of every trace layer.
    static func walk(_ c: VQVAEConfig, kernels: KernelChoice) -> (decoderMACs: Double, encoderMACs: Double, peakFloats: Double, scratchFloats: Double, tracedFloats: Double) {
        var widest = 0.0, scratch = 0.0, traced = 0.0
        func conv(_ cin: Int, _ cout: Int, _ kernel: Int, _ side: Int, outSide: Int) -> Double {
            let g = Conv2DGeometry(inChannels: cin, outChannels: cout, kernel: kernel, padding: kernel / 2)
            widest = max(widest, Double(cin) * Double(side) * Double(side), Double(cout) * Double(outSide) * Double(outSide))
            if kernel == 3 && outSide == side {
                // Winograd: the transformed weights and one band of transformed input and products (in Double: no overflow).
                let tw = Double((side + 1) / 2), th = Double((side + 1) / 2), wide = Double(max(cin, cout))
                let rows = max(1, min(th, (Double(Winograd.bandFloats) / max(1, 16 * wide * tw)).rounded(.down)))
                scratch = max(scratch, 16 * Double(cout) * Double(cin) + 16 * rows * tw * Double(cin + cout))
            } else if !g.isPointwise {
                scratch = max(scratch, Double(g.patchSize) * Double(outSide) * Double(max(1, min(outSide, Convolution.bandFloats / max(1, g.patchSize * outSide)))))
            }
            return Double(cout) * Double(cin) * Double(kernel * kernel) * Double(outSide) * Double(outSide)
        }
        func resnet(_ cin: Int, _ cout: Int, _ side: Int) -> Double {
            conv(cin, cout, 3, side, outSide: side) + conv(cout, cout, 3, side, outSide: side) + (cin != cout ? conv(cin, cout, 1, side, outSide: side) : 0)
        }
        func attention(_ ch: Int, _ side: Int) -> Double {
            let t = Double(side * side), cc = Double(ch)
            let attentionScratch = side * side <= 1 << 20 ? Double(Attention.scratchCount(tokens: side * side, headDim: ch, kernels: kernels)) : t * t
            scratch = max(scratch, 4 * t * cc + attentionScratch)
            return 4 * t * cc * cc + 2 * t * t * cc
        }
        let levels = c.blockOutChannels, depth = c.depth, last = levels[depth - 1], l = c.latentSize, s = c.sampleSize
        func mid(_ side: Int) -> Double { resnet(last, last, side) * 2 + (c.midAttention ? attention(last, side) : 0) }
        // Decoder.
        var dec = conv(c.embedDim, c.latentChannels, 1, l, outSide: l) + conv(c.latentChannels, last, 3, l, outSide: l) + mid(l)
        traced += Double(l * l) * (1 + Double(c.embedDim + c.latentChannels + 2 * last))
        var side = l, previous = last
        for k in 0..<depth {
            let ch = levels[depth - 1 - k]
            for j in 0...c.layersPerBlock {
                dec += resnet(j == 0 ? previous : ch, ch, side)
                if c.levelAttention[depth - 1 - k] { dec += attention(ch, side) }
            }
            previous = ch
            if k < depth - 1 { dec += conv(ch, ch, 3, 2 * side, outSide: 2 * side); side *= 2 }
            traced += Double(ch * side * side)
        }
        dec += conv(levels[0], c.outChannels, 3, s, outSide: s)
        traced += Double(c.outChannels * s * s)
        // Encoder.
        var enc = conv(c.inChannels, levels[0], 3, s, outSide: s)
        traced += Double((c.inChannels + levels[0]) * s * s)
        side = s
        previous = levels[0]
        for i in 0..<depth {
            let ch = levels[i]
            for j in 0..<c.layersPerBlock {
                enc += resnet(j == 0 ? previous : ch, ch, side)
                if c.levelAttention[i] { enc += attention(ch, side) }
            }
            previous = ch
            if i < depth - 1 { enc += conv(ch, ch, 3, side, outSide: side / 2); side /= 2 }
            traced += Double(ch * side * side)
        }
        enc += mid(side) + conv(last, c.latentChannels, 3, side, outSide: side) + conv(c.latentChannels, c.embedDim, 1, side, outSide: side)
        traced += Double(side * side * (last + c.latentChannels + c.embedDim))
        // x, h, the conv's output, a shortcut, and an upsampled copy (4× a quarter-size input) at most at once.
        return (dec, enc, 5 * widest, scratch, traced)
    }

    /// Activation memory a pass may take by default: 4 GiB.
    public static let defaultMemoryBudget = 4.0 * 1024 * 1024 * 1024
    /// Multiply-adds a pass may take by default: 10^13.
    public static let defaultWorkBudget = 1e13

    /// Throws `ModelError.overBudget` when this pass needs more than `memoryBudget` bytes or `workBudget` multiply-adds.
    public func check(memoryBudget: Double = defaultMemoryBudget, workBudget: Double = defaultWorkBudget) throws {
        guard activationBytes > memoryBudget || multiplyAdds > workBudget else { return }
        let perSample = VQVAECost(config: config, batch: 1, tracing: tracing)
        let fitting = min(memoryBudget / perSample.activationBytes, workBudget / perSample.multiplyAdds).rounded(.down)
        let gib = 1024.0 * 1024 * 1024
        func format(_ v: Double) -> String {
            v < 1e6 ? NumberFormat.fixed(v, fractionDigits: 2, trimmingZeros: true) : NumberFormat.scientific(v, trimmingZeros: true)
        }
        var message = "a VQ-VAE pass (\(config.sampleSize)×\(config.sampleSize) image, \(config.latentSize)×\(config.latentSize) tokens, "
            + "channels \(config.blockOutChannels.map(String.init).joined(separator: ","))) at batch \(batch) needs about "
            + "\(format(activationBytes / gib)) GiB of activations and \(format(multiplyAdds)) multiply-adds; "
            + "the budget is \(format(memoryBudget / gib)) GiB and \(format(workBudget)) multiply-adds. "
        if fitting >= 1 {
            message += "Run at most \(Int(min(fitting, 1e9))) samples, or raise the budget"
        } else {
            message += "One sample alone needs \(format(perSample.activationBytes / gib)) GiB and \(format(perSample.multiplyAdds)) "
                + "multiply-adds: check the image size (sample_size), or raise the budget"
        }
        throw ModelError.overBudget(message: message, fittingBatch: fitting >= 1 ? Int(min(fitting, 1e9)) : nil)
    }
}

extension VQVAEFamily {
    /// Multiply-adds of one decode (tokens → image) of `config`, per sample.
    public static func decoderMultiplyAdds(_ config: VQVAEConfig) -> Int { Int(VQVAECost.walk(config, kernels: .automatic).decoderMACs) }
    /// Multiply-adds of one encode (image → `quant_conv`) of `config`, per sample.
    public static func encoderMultiplyAdds(_ config: VQVAEConfig) -> Int { Int(VQVAECost.walk(config, kernels: .automatic).encoderMACs) }
}
