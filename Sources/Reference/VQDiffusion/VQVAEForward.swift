import Models
import Tensors

/// Reusable activation buffers of VQ-VAE passes (a benchmark, a sampling loop): freed buffers are kept and handed
/// out again, so a pass does not fault in fresh pages. Not for two passes at once.
public final class VQVAEWorkspace: @unchecked Sendable {
    final class Buffer {
        let pointer: UnsafeMutablePointer<Float>
        let capacity: Int
        init(_ capacity: Int) {
            self.capacity = max(capacity, 1)
            pointer = .allocate(capacity: self.capacity)
        }
        deinit { pointer.deallocate() }
    }

    private var free: [Buffer] = []

    /// An empty workspace.
    public init() {}

    /// The smallest free buffer of at least `count` floats, or a new one (contents undefined).
    func take(_ count: Int) -> Buffer {
        if let i = free.indices.filter({ free[$0].capacity >= count }).min(by: { free[$0].capacity < free[$1].capacity }) {
            return free.remove(at: i)
        }
        return Buffer(count)
    }

    func give(_ buffer: Buffer) { free.append(buffer) }
}

/// The float32 reference forward of VQ-Diffusion's VQ-VAE as diffusers 0.42's `VQModel` computes it (the original
/// `PatchVQGAN` computes the same function): the decoder from codebook indices (`get_codebook_entry` then
/// `decode(force_not_quantize=True)`) and the encoder from an image (`encoder` then `quant_conv`). NCHW activations;
/// convolutions as GEMMs (``Convolution``), GroupNorm and swish in ditkit's C kernels (``GroupNorm``), attention
/// through ``Attention``.
public struct VQVAEForward: Sendable {
    /// The weights run.
    public let weights: VQVAEWeights
    /// The numerics run: GroupNorm groups and eps (the weights' sizes otherwise).
    public let semantics: VQVAEConfig
    /// Which kernels run.
    public let kernels: KernelChoice

    /// A forward of `weights` with the numerics of `semantics` (by default the weights' config) on `kernels`.
    public init(weights: VQVAEWeights, semantics: VQVAEConfig? = nil, kernels: KernelChoice = .automatic) {
        self.weights = weights
        self.semantics = semantics ?? weights.config
        self.kernels = kernels
    }

    /// An activation of the batch: a buffer of N × c × h × w floats.
    struct Activation {
        let buffer: VQVAEWorkspace.Buffer
        let c: Int, h: Int, w: Int
        var pointer: UnsafeMutablePointer<Float> { buffer.pointer }
        var spatial: Int { h * w }
    }

    /// Runs the decoder on `inputs.tokens` and the encoder on `inputs.image`, recording both chains into `trace`;
    /// returns the decoded image (N, out_channels, H, W), before any clamp. `inputs` must fit the config
    /// (`VQVAEInputs.problems(for:)` empty).
    public func run(_ inputs: VQVAEInputs, trace: Trace? = nil, workspace: VQVAEWorkspace = VQVAEWorkspace()) -> [Float] {
        // Inputs first, as `traceOrder` puts them.
        trace?.append("input.tokens", [inputs.batch, inputs.tokenHeight, inputs.tokenWidth], inputs.tokens.map(Float.init))
        trace?.append("input.image", [inputs.batch, weights.config.inChannels, inputs.imageHeight, inputs.imageWidth], inputs.image)
        let output = decode(inputs, trace: trace, workspace: workspace, recordInputs: false)
        encode(inputs, trace: trace, workspace: workspace, recordInputs: false)
        return output
    }

    /// The decoder alone: tokens → codebook rows → `post_quant_conv` → decoder; returns (N, out_channels, H, W).
    public func decode(_ inputs: VQVAEInputs, trace: Trace? = nil, workspace: VQVAEWorkspace = VQVAEWorkspace()) -> [Float] {
        decode(inputs, trace: trace, workspace: workspace, recordInputs: true)
    }

    func decode(_ inputs: VQVAEInputs, trace: Trace?, workspace: VQVAEWorkspace, recordInputs: Bool) -> [Float] {
        let c = weights.config, n = inputs.batch, h = inputs.tokenHeight, w = inputs.tokenWidth, e = c.embedDim
        let pass = Pass(forward: self, batch: n, workspace: workspace)
        if recordInputs { trace?.append("input.tokens", [n, h, w], inputs.tokens.map(Float.init)) }
        // Codebook rows as (N, embed_dim, h, w).
        let quantized = pass.allocate(c: e, h: h, w: w)
        let book = weights.codebook.base
        for b in 0..<n { for p in 0..<(h * w) {
            let row = book + inputs.tokens[b * h * w + p] * e, out = quantized.pointer + b * e * h * w + p
            for j in 0..<e { out[j * h * w] = row[j] }
        } }
        pass.record(trace, "quantized", quantized)
        var x = pass.conv(quantized, weights.postQuantConv, release: true)
        pass.record(trace, "post_quant_conv", x)
        x = pass.conv(x, weights.decoderConvIn, release: true)
        pass.record(trace, "decoder.conv_in", x)
        x = pass.mid(x, weights.decoderMid)
        pass.record(trace, "decoder.mid", x)
        for (k, level) in weights.decoderLevels.enumerated() {
            for (j, resnet) in level.resnets.enumerated() {
                x = pass.resnet(x, resnet)
                if j < level.attentions.count { pass.attention(x, level.attentions[j]) }
            }
            if let up = level.resample {
                let big = pass.allocate(c: x.c, h: 2 * x.h, w: 2 * x.w)
                Convolution.upsampleNearest2(x.pointer, into: big.pointer, planes: n * x.c, height: x.h, width: x.w, level: kernels.level)
                pass.release(x)
                x = pass.conv(big, up, release: true)
            }
            pass.record(trace, "decoder.up.\(k)", x)
        }
        x = pass.norm(x, weights.decoderNormOut, swish: true, release: true)
        x = pass.conv(x, weights.decoderConvOut, release: true)
        pass.record(trace, "output", x)
        let result = Array(UnsafeBufferPointer(start: x.pointer, count: n * x.c * x.spatial))
        pass.release(x)
        return result
    }

    /// The encoder alone: image → encoder → `quant_conv`; returns (N, embed_dim, h, w).
    @discardableResult
    public func encode(_ inputs: VQVAEInputs, trace: Trace? = nil, workspace: VQVAEWorkspace = VQVAEWorkspace()) -> [Float] {
        encode(inputs, trace: trace, workspace: workspace, recordInputs: true)
    }

    @discardableResult
    func encode(_ inputs: VQVAEInputs, trace: Trace?, workspace: VQVAEWorkspace, recordInputs: Bool) -> [Float] {
        let c = weights.config, n = inputs.batch
        let pass = Pass(forward: self, batch: n, workspace: workspace)
        let image = pass.allocate(c: c.inChannels, h: inputs.imageHeight, w: inputs.imageWidth)
        inputs.image.withUnsafeBufferPointer { image.pointer.update(from: $0.baseAddress!, count: $0.count) }
        if recordInputs { pass.record(trace, "input.image", image) }
        var x = pass.conv(image, weights.encoderConvIn, release: true)
        pass.record(trace, "encoder.conv_in", x)
        for (i, level) in weights.encoderLevels.enumerated() {
            for (j, resnet) in level.resnets.enumerated() {
                x = pass.resnet(x, resnet)
                if j < level.attentions.count { pass.attention(x, level.attentions[j]) }
            }
            if let down = level.resample { x = pass.conv(x, down, release: true) }
            pass.record(trace, "encoder.down.\(i)", x)
        }
        x = pass.mid(x, weights.encoderMid)
        pass.record(trace, "encoder.mid", x)
        x = pass.norm(x, weights.encoderNormOut, swish: true, release: true)
        x = pass.conv(x, weights.encoderConvOut, release: true)
        pass.record(trace, "encoder.conv_out", x)
        x = pass.conv(x, weights.quantConv, release: true)
        pass.record(trace, "quant_conv", x)
        let result = Array(UnsafeBufferPointer(start: x.pointer, count: n * x.c * x.spatial))
        pass.release(x)
        return result
    }

    /// The operations of one pass over a batch, drawing buffers from a workspace.
    final class Pass {
        let forward: VQVAEForward
        let n: Int
        let workspace: VQVAEWorkspace
        var level: KernelLevel { forward.kernels.level }
        var groups: Int { forward.semantics.normGroups }
        var eps: Float { Float(forward.semantics.normEps) }

        init(forward: VQVAEForward, batch: Int, workspace: VQVAEWorkspace) {
            self.forward = forward
            n = batch
            self.workspace = workspace
        }

        func allocate(c: Int, h: Int, w: Int) -> Activation {
            Activation(buffer: workspace.take(n * c * h * w), c: c, h: h, w: w)
        }

        func release(_ x: Activation) { workspace.give(x.buffer) }

        func record(_ trace: Trace?, _ name: String, _ x: Activation) {
            trace?.append(name, [n, x.c, x.h, x.w], Array(UnsafeBufferPointer(start: x.pointer, count: n * x.c * x.spatial)))
        }

        /// conv(x), or with `into` x + conv(x) accumulated in place there.
        func conv(_ x: Activation, _ conv: VQVAEWeights.Conv, release: Bool, into residual: Activation? = nil) -> Activation {
            let g = conv.geometry
            let out = residual ?? allocate(c: g.outChannels, h: g.outputHeight(x.h), w: g.outputWidth(x.w))
            let scratchCount = Convolution.scratchCount(g, height: x.h, width: x.w)
            let scratch = scratchCount > 0 ? workspace.take(scratchCount) : nil
            Convolution.run(x.pointer, batch: n, height: x.h, width: x.w, geometry: g, weight: conv.weight.base, bias: conv.bias.base,
                            into: out.pointer, accumulate: residual != nil, scratch: scratch?.pointer, level: level)
            if let scratch { workspace.give(scratch) }
            if release { self.release(x) }
            return out
        }

        func norm(_ x: Activation, _ norm: VQVAEWeights.Norm, swish: Bool, release: Bool) -> Activation {
            let out = allocate(c: x.c, h: x.h, w: x.w)
            GroupNorm.run(x.pointer, into: out.pointer, batch: n, channels: x.c, spatial: x.spatial, groups: groups, eps: eps,
                          gamma: norm.gamma.base, beta: norm.beta.base, swish: swish, level: level)
            if release { self.release(x) }
            return out
        }

        /// x + conv2(swish(GN(conv1(swish(GN(x)))))), the sum in x's buffer (or the shortcut's); x is consumed.
        func resnet(_ x: Activation, _ r: VQVAEWeights.ResNet) -> Activation {
            var h = norm(x, r.norm1, swish: true, release: false)
            h = conv(h, r.conv1, release: true)
            h = norm(h, r.norm2, swish: true, release: true)
            let residual = r.shortcut.map { conv(x, $0, release: true) } ?? x
            let out = conv(h, r.conv2, release: true, into: residual)
            return out
        }

        /// x += out(softmax(q kᵀ/√C) v) with q, k, v from GN(x), in place.
        func attention(_ x: Activation, _ a: VQVAEWeights.SelfAttention) {
            let ch = x.c, tokens = x.spatial
            let normed = norm(x, a.norm, swish: false, release: false)
            let qkv = workspace.take(tokens * 3 * ch), attended = workspace.take(tokens * ch)
            let scratch = workspace.take(Attention.scratchCount(tokens: tokens, headDim: ch, kernels: forward.kernels))
            for b in 0..<n {
                let xb = x.pointer + b * ch * tokens
                // qkv (tokens × 3C) = GN(x)ᵀ · Wqkvᵀ + b.
                GEMM.multiply(normed.pointer + b * ch * tokens, a.qkvW.base, into: qkv.pointer, m: tokens, n: 3 * ch, k: ch,
                              transposeA: true, transposeB: true)
                Kernels.addBias(qkv.pointer, rows: tokens, dim: 3 * ch, bias: a.qkvB.base, level: level)
                Attention.run(qkv: qkv.pointer, into: attended.pointer, batch: 1, tokens: tokens, dim: ch, heads: 1,
                              scale: 1 / Float(ch).squareRoot(), scratch: scratch.pointer, kernels: forward.kernels)
                // x (C × tokens) += Wo · attendedᵀ + bo.
                Convolution.channelBias(xb, into: xb, channels: ch, spatial: tokens, bias: a.outB.base, level: level)
                GEMM.multiply(a.outW.base, attended.pointer, into: xb, m: ch, n: tokens, k: ch, transposeB: true, beta: 1)
            }
            workspace.give(qkv); workspace.give(attended); workspace.give(scratch)
            release(normed)
        }

        func mid(_ x: Activation, _ m: VQVAEWeights.Mid) -> Activation {
            var x = resnet(x, m.resnet0)
            if let a = m.attention { attention(x, a) }
            x = resnet(x, m.resnet1)
            return x
        }
    }
}
