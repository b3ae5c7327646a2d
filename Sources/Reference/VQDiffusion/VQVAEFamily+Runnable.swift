import Checkpoints
import Models

extension VQVAEFamily: RunnableFamily {
    /// The VQ-VAE's weights in float32.
    public typealias Weights = VQVAEWeights
    /// Tokens for the decoder and an image for the encoder.
    public typealias Inputs = VQVAEInputs

    /// Loads the canonical tensors of `view` (``VQVAEWeights/init(_:)``).
    public static func loadWeights(_ view: ModelView<VQVAEFamily>) throws -> VQVAEWeights { try VQVAEWeights(view) }

    /// Tokens uniform over the codes and an N(0, 1) image clamped to [−1, 1] from the seed (timesteps and classes unused).
    public static func makeInputs(_ spec: InputSpec, config: VQVAEConfig) -> VQVAEInputs {
        VQVAEInputs.make(config: config, batch: spec.batch, seed: spec.seed)
    }

    /// N.
    public static func batch(of inputs: VQVAEInputs) -> Int { inputs.batch }

    /// ``VQVAEInputs/problems(for:)``.
    public static func inputProblems(_ inputs: VQVAEInputs, config: VQVAEConfig) -> [String] { inputs.problems(for: config) }

    /// Decoder and encoder, both chains recorded; returns the decoded image.
    public static func run(_ weights: VQVAEWeights, semantics: VQVAEConfig, inputs: VQVAEInputs, kernels: KernelChoice, trace: Trace?) -> [Float] {
        VQVAEForward(weights: weights, semantics: semantics, kernels: kernels).run(inputs, trace: trace)
    }

    /// ``VQVAECost/check(memoryBudget:workBudget:)``.
    public static func checkBudget(
        _ config: VQVAEConfig, batch: Int, tracing: Bool, kernels: KernelChoice, memoryBudget: Double, workBudget: Double
    ) throws {
        try VQVAECost(config: config, batch: batch, tracing: tracing, kernels: kernels).check(memoryBudget: memoryBudget, workBudget: workBudget)
    }

    /// Inputs, then the decoder chain (`quantized` … `output`), then the encoder chain (`encoder.conv_in` … `quant_conv`).
    public static func traceOrder(_ names: [String]) -> [String] {
        func rank(_ name: String) -> (Int, Int) {
            func index(_ prefix: String) -> Int? { name.hasPrefix(prefix) ? Int(name.dropFirst(prefix.count)) : nil }
            switch name {
            case "input.tokens": return (0, 0)
            case "input.image": return (0, 1)
            case "quantized": return (1, 0)
            case "post_quant_conv": return (2, 0)
            case "decoder.conv_in": return (3, 0)
            case "decoder.mid": return (4, 0)
            case "output": return (6, 0)
            case "encoder.conv_in": return (7, 0)
            case "encoder.mid": return (9, 0)
            case "encoder.conv_out": return (10, 0)
            case "quant_conv": return (11, 0)
            default:
                if let k = index("decoder.up.") { return (5, k) }
                if let i = index("encoder.down.") { return (8, i) }
                return (12, 0)
            }
        }
        return names.sorted { rank($0) < rank($1) }
    }

    /// The shapes at the config's `sample_size` (image) and `latentSize` (tokens).
    public static func traceShape(_ name: String, config c: VQVAEConfig, batch n: Int) -> [Int]? {
        let s = c.sampleSize, l = c.latentSize, levels = c.blockOutChannels, depth = c.depth
        func index(_ prefix: String) -> Int? {
            guard name.hasPrefix(prefix), let i = Int(name.dropFirst(prefix.count)), i >= 0, i < depth, name == prefix + "\(i)" else { return nil }
            return i
        }
        switch name {
        case "input.tokens": return [n, l, l]
        case "input.image": return [n, c.inChannels, s, s]
        case "quantized", "quant_conv": return [n, c.embedDim, l, l]
        case "post_quant_conv", "encoder.conv_out": return [n, c.latentChannels, l, l]
        case "decoder.conv_in", "decoder.mid", "encoder.mid": return [n, levels[depth - 1], l, l]
        case "output": return [n, c.outChannels, s, s]
        case "encoder.conv_in": return [n, levels[0], s, s]
        default:
            if let k = index("decoder.up.") {
                let side = k < depth - 1 ? l << (k + 1) : s
                return [n, levels[depth - 1 - k], side, side]
            }
            if let i = index("encoder.down.") {
                let side = s >> min(i + 1, depth - 1)
                return [n, levels[i], side, side]
            }
            return nil
        }
    }

    /// `input.tokens` (N, h, w) and `input.image` (N, C, H, W).
    public static let traceInputLayers = ["input.tokens", "input.image"]
    /// `input.tokens`: its first axis is N.
    public static let traceBatchLayer = "input.tokens"

    /// Token ids (integers, never converted by a trapping `Int(_:)`) and the image.
    public static func inputs(fromTrace trace: Trace) -> Result<VQVAEInputs, TraceInputsProblem> {
        guard let tokens = trace.layer("input.tokens"), let image = trace.layer("input.image") else {
            return .failure(TraceInputsProblem("it has no input.tokens and input.image to run on"))
        }
        guard tokens.shape.count == 3, image.shape.count == 4, tokens.shape[0] == image.shape[0] else {
            return .failure(TraceInputsProblem("input.tokens \(tokens.shape) and input.image \(image.shape) are not (N, h, w) and (N, C, H, W)"))
        }
        var ids: [Int] = []
        ids.reserveCapacity(tokens.values.count)
        for (i, v) in tokens.values.enumerated() {
            guard v.rounded() == v, abs(v) < 0x1p31 else { return .failure(TraceInputsProblem("input.tokens[\(i)] = \(v) is not an integer code")) }
            ids.append(Int(v))
        }
        return .success(VQVAEInputs(tokens: ids, tokenHeight: tokens.shape[1], tokenWidth: tokens.shape[2], image: image.values,
                                    imageHeight: image.shape[2], imageWidth: image.shape[3], batch: tokens.shape[0]))
    }

    /// The original `PatchVQGAN` and diffusers' `VQModel` compute the same function (GroupNorm eps 1e-6, swish, single-head
    /// attention scaled by C^−0.5, nearest ×2 then conv, pad (0, 1, 0, 1) then stride-2 conv): both are the config itself.
    public static func semantics(_ layout: Layout, of config: VQVAEConfig) -> VQVAEConfig? {
        switch layout {
        case .original, .diffusers: return config
        default: return nil
        }
    }

    /// `config`'s sizes with `other`'s GroupNorm groups and eps.
    public static func withNumerics(_ config: VQVAEConfig, of other: VQVAEConfig) -> VQVAEConfig {
        var c = config
        c.normGroups = other.normGroups
        c.normEps = other.normEps
        return c
    }

    /// `3×256², 32²` (image channels and side, token grid side).
    public static func inputSignature(_ config: VQVAEConfig) -> String {
        "\(config.inChannels)×\(config.sampleSize)², \(config.latentSize)²"
    }
}
