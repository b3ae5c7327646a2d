import Checkpoints
import Models
import Tensors

/// A VQ-VAE's weights in float32, by canonical name (diffusers 0.42 `VQModel` names with the new attention names and
/// 2-D attention weights), grouped as the forward reads them.
public struct VQVAEWeights: Sendable {
    /// A convolution's weight (Cout, Cin, k, k), bias (Cout) and geometry.
    public struct Conv: Sendable {
        /// (Cout, Cin, k, k) row-major: the GEMM's A operand (Cout × Cin·k²) as it is.
        public var weight: WeightArray
        /// (Cout).
        public var bias: WeightArray
        /// Channels, kernel, stride, padding.
        public var geometry: Conv2DGeometry
    }

    /// A GroupNorm's per-channel scale and shift.
    public struct Norm: Sendable {
        /// γ and β, (C) each.
        public var gamma: WeightArray, beta: WeightArray
    }

    /// A ResNet block: GN → swish → conv 3×3 → GN → swish → conv 3×3, plus a 1×1 shortcut when the channels change.
    public struct ResNet: Sendable {
        /// The two norms.
        public var norm1: Norm, norm2: Norm
        /// The two 3×3 convolutions.
        public var conv1: Conv, conv2: Conv
        /// The 1×1 shortcut (only when in ≠ out channels).
        public var shortcut: Conv?
    }

    /// Single-head self-attention over the pixels: GN → q, k, v (C, C) → softmax(q kᵀ/√C) v → out → + residual.
    public struct SelfAttention: Sendable {
        /// The GroupNorm before the projections.
        public var norm: Norm
        /// q, k and v weights stacked (3C, C) and their biases (3C).
        public var qkvW: WeightArray, qkvB: WeightArray
        /// The output projection (C, C) and its bias.
        public var outW: WeightArray, outB: WeightArray
        /// C.
        public var channels: Int
    }

    /// One resolution level: its ResNets (each followed by attention where the level has it), then the resampling
    /// convolution (stride-2 down in the encoder, after nearest ×2 in the decoder), absent at the last level.
    public struct Level: Sendable {
        /// ResNets in order.
        public var resnets: [ResNet]
        /// One per ResNet, or none.
        public var attentions: [SelfAttention]
        /// The down- or upsampling convolution.
        public var resample: Conv?
        /// Output channels.
        public var channels: Int
    }

    /// The middle block: ResNet, attention (optional), ResNet.
    public struct Mid: Sendable {
        /// First ResNet.
        public var resnet0: ResNet
        /// The attention between them, when the config has it.
        public var attention: SelfAttention?
        /// Second ResNet.
        public var resnet1: ResNet
    }

    /// The sizes (and numerics).
    public let config: VQVAEConfig
    /// Encoder: `encoder.conv_in`, levels in order, mid, `conv_norm_out`, `conv_out`, then `quant_conv`.
    public var encoderConvIn: Conv, encoderLevels: [Level], encoderMid: Mid, encoderNormOut: Norm, encoderConvOut: Conv, quantConv: Conv
    /// The codebook (codes, embed_dim).
    public var codebook: WeightArray
    /// Decoder: `post_quant_conv`, `decoder.conv_in`, mid, up levels in execution order, `conv_norm_out`, `conv_out`.
    public var postQuantConv: Conv, decoderConvIn: Conv, decoderMid: Mid, decoderLevels: [Level], decoderNormOut: Norm, decoderConvOut: Conv

    /// A canonical tensor by name: its shape and float32 values, or nil when the model has none of that name.
    public typealias Lookup = (String) throws -> (shape: [Int], values: [Float])?

    /// Loads the canonical tensors of `view` as float32.
    public init(_ view: ModelView<VQVAEFamily>) throws {
        let outputs = Dictionary(view.canonicalOutputs().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        try self.init(config: view.config) { name in
            guard let t = outputs[name] else { return nil }
            return (t.shape, try t.float32())
        }
    }

    /// Builds the weights from `lookup` (canonical names); every tensor's element count must be the config's.
    public init(config c: VQVAEConfig, lookup: Lookup) throws {
        try c.validate(origin: "the weights' config")
        try self.init(config: c) { name, shape in
            guard let (have, values) = try lookup(name) else { throw ModelError.config("the model has no \(name)") }
            let want = shape.reduce(1, *)
            guard values.count == want, (try? checkedElementCount(have)) == want else {
                throw ModelError.mapping(path: "weights", problems: ["shape: \(name) is \(have), expected \(shape) for this config"])
            }
            return WeightArray(values)
        }
    }

    /// Every tensor the forward reads for `config` (validated), in the order it reads them, with its canonical shape.
    public static func tensorShapes(_ config: VQVAEConfig) -> [(name: String, shape: [Int])] {
        var shapes: [(name: String, shape: [Int])] = []
        let placeholder = WeightArray([0])
        _ = try? VQVAEWeights(config: config) { name, shape in
            shapes.append((name, shape))
            return placeholder
        }
        return shapes
    }

    /// The weights from `load(name, shape)`, which checks the shape.
    private init(config c: VQVAEConfig, load: (String, [Int]) throws -> WeightArray) throws {
        config = c
        func conv(_ p: String, _ cin: Int, _ cout: Int, kernel: Int, geometry: Conv2DGeometry? = nil) throws -> Conv {
            Conv(weight: try load(p + ".weight", [cout, cin, kernel, kernel]), bias: try load(p + ".bias", [cout]),
                 geometry: geometry ?? Conv2DGeometry(inChannels: cin, outChannels: cout, kernel: kernel, padding: kernel / 2))
        }
        func norm(_ p: String, _ ch: Int) throws -> Norm { Norm(gamma: try load(p + ".weight", [ch]), beta: try load(p + ".bias", [ch])) }
        func resnet(_ p: String, _ cin: Int, _ cout: Int) throws -> ResNet {
            ResNet(norm1: try norm(p + ".norm1", cin), norm2: try norm(p + ".norm2", cout),
                   conv1: try conv(p + ".conv1", cin, cout, kernel: 3), conv2: try conv(p + ".conv2", cout, cout, kernel: 3),
                   shortcut: cin == cout ? nil : try conv(p + ".conv_shortcut", cin, cout, kernel: 1))
        }
        func attention(_ p: String, _ ch: Int) throws -> SelfAttention {
            let q = try load(p + ".to_q.weight", [ch, ch]), k = try load(p + ".to_k.weight", [ch, ch]), v = try load(p + ".to_v.weight", [ch, ch])
            let qb = try load(p + ".to_q.bias", [ch]), kb = try load(p + ".to_k.bias", [ch]), vb = try load(p + ".to_v.bias", [ch])
            func stacked(_ parts: [WeightArray]) -> WeightArray {
                WeightArray(parts.flatMap { Array(UnsafeBufferPointer(start: $0.base, count: $0.count)) })
            }
            return SelfAttention(norm: try norm(p + ".group_norm", ch), qkvW: stacked([q, k, v]), qkvB: stacked([qb, kb, vb]),
                                 outW: try load(p + ".to_out.0.weight", [ch, ch]), outB: try load(p + ".to_out.0.bias", [ch]), channels: ch)
        }
        func mid(_ p: String, _ ch: Int) throws -> Mid {
            Mid(resnet0: try resnet(p + ".resnets.0", ch, ch), attention: c.midAttention ? try attention(p + ".attentions.0", ch) : nil,
                resnet1: try resnet(p + ".resnets.1", ch, ch))
        }
        let levels = c.blockOutChannels, depth = c.depth, last = levels[depth - 1]

        encoderConvIn = try conv("encoder.conv_in", c.inChannels, levels[0], kernel: 3)
        var previous = levels[0]
        encoderLevels = try (0..<depth).map { i in
            let p = "encoder.down_blocks.\(i)", ch = levels[i]
            var resnets: [ResNet] = [], attentions: [SelfAttention] = []
            for j in 0..<c.layersPerBlock {
                resnets.append(try resnet(p + ".resnets.\(j)", j == 0 ? previous : ch, ch))
                if c.levelAttention[i] { attentions.append(try attention(p + ".attentions.\(j)", ch)) }
            }
            previous = ch
            let down = Conv2DGeometry(inChannels: ch, outChannels: ch, kernel: 3, stride: 2, padTop: 0, padLeft: 0, padBottom: 1, padRight: 1)
            return Level(resnets: resnets, attentions: attentions,
                         resample: i < depth - 1 ? try conv(p + ".downsamplers.0.conv", ch, ch, kernel: 3, geometry: down) : nil, channels: ch)
        }
        encoderMid = try mid("encoder.mid_block", last)
        encoderNormOut = try norm("encoder.conv_norm_out", last)
        encoderConvOut = try conv("encoder.conv_out", last, c.latentChannels, kernel: 3)
        quantConv = try conv("quant_conv", c.latentChannels, c.embedDim, kernel: 1)

        codebook = try load("quantize.embedding.weight", [c.numCodes, c.embedDim])
        postQuantConv = try conv("post_quant_conv", c.embedDim, c.latentChannels, kernel: 1)
        decoderConvIn = try conv("decoder.conv_in", c.latentChannels, last, kernel: 3)
        decoderMid = try mid("decoder.mid_block", last)
        previous = last
        decoderLevels = try (0..<depth).map { k in
            let p = "decoder.up_blocks.\(k)", ch = levels[depth - 1 - k], hasAttention = c.levelAttention[depth - 1 - k]
            var resnets: [ResNet] = [], attentions: [SelfAttention] = []
            for j in 0...c.layersPerBlock {
                resnets.append(try resnet(p + ".resnets.\(j)", j == 0 ? previous : ch, ch))
                if hasAttention { attentions.append(try attention(p + ".attentions.\(j)", ch)) }
            }
            previous = ch
            return Level(resnets: resnets, attentions: attentions,
                         resample: k < depth - 1 ? try conv(p + ".upsamplers.0.conv", ch, ch, kernel: 3) : nil, channels: ch)
        }
        decoderNormOut = try norm("decoder.conv_norm_out", levels[0])
        decoderConvOut = try conv("decoder.conv_out", levels[0], c.outChannels, kernel: 3)
    }
}

/// Inputs of one VQ-VAE pass: token ids for the decoder (N, h, w) and an image for the encoder (N, C, H, W).
public struct VQVAEInputs: Sendable {
    /// Codebook indices, (N, h, w) row-major.
    public var tokens: [Int]
    /// Latent grid rows and columns (h, w).
    public var tokenHeight: Int, tokenWidth: Int
    /// Image pixels in [−1, 1], (N, C, H, W) row-major.
    public var image: [Float]
    /// Image rows and columns (H, W).
    public var imageHeight: Int, imageWidth: Int
    /// Samples in the batch (N).
    public let batch: Int

    /// Inputs as given; check them with ``problems(for:)``.
    public init(tokens: [Int], tokenHeight: Int, tokenWidth: Int, image: [Float], imageHeight: Int, imageWidth: Int, batch: Int) {
        self.tokens = tokens
        self.tokenHeight = tokenHeight
        self.tokenWidth = tokenWidth
        self.image = image
        self.imageHeight = imageHeight
        self.imageWidth = imageWidth
        self.batch = batch
    }

    /// Most activations one sample's widest layer (im2col included) may hold (2^40, the config's limit).
    public static let maxActivations = 1 << 40
    /// Largest magnitude a pixel may have (10^6).
    public static let maxMagnitude: Float = 1e6

    /// What makes these inputs unusable for `config`: element counts, token ids outside the codebook, pixels that are
    /// not finite, an image side the levels do not halve evenly, sizes past the config's limits.
    public func problems(for c: VQVAEConfig) -> [String] {
        var out: [String] = []
        if batch < 1 { out.append("input.tokens is empty: the batch must hold at least one sample") }
        let limit = VQVAEInputs.maxActivations
        let sides = [tokenHeight, tokenWidth, imageHeight, imageWidth]
        if sides.contains(where: { $0 < 1 || $0 > 1 << 16 }) { out.append("input sides \(sides) must lie in 1…65536"); return out }
        let tokenCount = batch.multipliedReportingOverflow(by: tokenHeight * tokenWidth)
        if tokenCount.overflow || tokens.count != tokenCount.partialValue {
            out.append("input.tokens has \(tokens.count) elements, expected N·h·w = \(batch)·\(tokenHeight)·\(tokenWidth)")
        }
        let pixels = (batch * c.inChannels).multipliedReportingOverflow(by: imageHeight * imageWidth)
        if pixels.overflow || image.count != pixels.partialValue {
            out.append("input.image has \(image.count) elements, expected N·C·H·W = \(batch)·\(c.inChannels)·\(imageHeight)·\(imageWidth)")
        }
        let halvings = 1 << (c.depth - 1)
        if imageHeight % halvings != 0 || imageWidth % halvings != 0 {
            out.append("input.image is \(imageHeight)×\(imageWidth): each side must be divisible by 2^\(c.depth - 1) (one halving per level but the last)")
        }
        let widest = max(c.blockOutChannels.max() ?? 1, c.latentChannels, c.embedDim) * 9
        let upSide = tokenHeight * halvings, upWidth = tokenWidth * halvings
        if Double(upSide) * Double(upWidth) * Double(widest) > Double(limit)
            || Double(imageHeight) * Double(imageWidth) * Double(widest) > Double(limit) {
            out.append("the images are larger than the \(limit) activations a sample may hold")
        }
        for (i, v) in tokens.enumerated() where v < 0 || v >= c.numCodes {
            out.append("input.tokens[\(i)] = \(v) is outside the codebook (0…\(c.numCodes - 1))")
            if out.count > 12 { break }
        }
        if let i = image.firstIndex(where: { !$0.isFinite || abs($0) > VQVAEInputs.maxMagnitude }) {
            out.append("input.image[\(i)] = \(image[i]) is not a finite number within ±\(VQVAEInputs.maxMagnitude)")
        }
        return out
    }

    /// Deterministic inputs for `config`: tokens uniform over the codes, image N(0, 1) clamped to [−1, 1], from `seed`;
    /// the image side is `config.sampleSize`, the token grid side `config.latentSize`.
    public static func make(config c: VQVAEConfig, batch: Int, seed: UInt64) -> VQVAEInputs {
        var generator = SplitMix64(state: seed &* SplitMix64.golden &+ 1)
        let side = c.latentSize, pixels = batch * c.inChannels * c.sampleSize * c.sampleSize
        let tokens = (0..<(batch * side * side)).map { _ in min(c.numCodes - 1, Int(generator.nextUnit() * Double(c.numCodes))) }
        func uniform() -> Double { (Double(generator.next() >> 11) + 0.5) / Double(1 << 53) }
        var image = [Float](repeating: 0, count: pixels)
        var i = 0
        while i < pixels {  // Box–Muller
            let r = (-2 * Platform.log(uniform())).squareRoot(), angle = 2 * Double.pi * uniform()
            image[i] = Float(max(-1, min(1, r * Platform.cos(angle))))
            if i + 1 < pixels { image[i + 1] = Float(max(-1, min(1, r * Platform.sin(angle)))) }
            i += 2
        }
        return VQVAEInputs(tokens: tokens, tokenHeight: side, tokenWidth: side, image: image, imageHeight: c.sampleSize,
                           imageWidth: c.sampleSize, batch: batch)
    }
}
