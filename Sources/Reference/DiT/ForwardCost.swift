import Models
import Tensors

/// The memory and work of one forward pass, estimated from the config and batch before anything is allocated,
/// so that a config or option asking for more than a machine should give (an input size of 4096 on a tiny model)
/// is refused at once with what it would need, instead of aborting gigabytes later.
///
/// Computed in float64, so no size can overflow.
public struct ForwardCost: Sendable, Equatable {
    /// The config the pass runs.
    public let config: DiTConfig
    /// Samples in the batch.
    public let batch: Int
    /// Whether every layer is recorded (a trace keeps each layer's activations).
    public let tracing: Bool
    /// Bytes of the activations `DiTForward.run` allocates (inputs, patches, the residual stream, q/k/v, the MLP's
    /// inner layer, attention scratch, head and output), of recomputed tables (position, timestep), and with a
    /// trace, of every recorded layer.
    public let activationBytes: Double
    /// Multiply-adds of the pass (`ParameterCount.multiplyAdds` per sample).
    public let multiplyAdds: Double

    /// Activation memory a forward pass may take by default: 4 GiB. DiT-XL/2 at 512 px, batch 2, traced needs
    /// about 0.4 GiB; a batch of 16 of it still fits.
    public static let defaultMemoryBudget = 4.0 * 1024 * 1024 * 1024
    /// Multiply-adds a forward pass may take by default: 10^13 (DiT-XL/2 at 512 px is 5.2·10^11 per sample, so a
    /// batch of up to 19 fits; about ten minutes of this machine's float32 GEMM).
    public static let defaultWorkBudget = 1e13

    /// The cost of running `config` (validated) on `batch` samples, recording a trace when `tracing`. `kernels`
    /// decides the attention scratch, as in `run`.
    public init(config c: DiTConfig, batch: Int, tracing: Bool, kernels: KernelChoice = .automatic) {
        config = c
        self.batch = batch
        self.tracing = tracing
        let n = Double(batch), d = Double(c.hiddenSize), t = Double(c.tokens), rows = n * t
        let patch = Double(c.patchSize) * Double(c.patchSize)
        let sample = Double(c.inChannels) * Double(c.inputSize) * Double(c.inputSize)
        let outputs = Double(c.outChannels) * Double(c.inputSize) * Double(c.inputSize)
        let head = patch * Double(c.outChannels)
        let headDim = max(c.hiddenSize / max(c.numHeads, 1), 1)
        let scratch = c.tokens <= 1 << 20 ? Double(Attention.scratchCount(tokens: c.tokens, headDim: headDim, kernels: kernels)) : t * t
        var floats = n * sample  // x
        floats += rows * Double(c.inChannels) * patch  // patches
        floats += rows * d * 6  // residual stream, h, q/k/v (3), attention
        floats += rows * d  // projected
        floats += rows * Double(c.mlpHidden)  // MLP inner
        floats += n * d * 12  // embeddings, cond, modulation
        floats += scratch
        floats += rows * head + n * outputs  // final, output
        floats += t * d + Double(c.diffusionSteps) * Double(c.frequencyEmbeddingSize)  // recomputed position and timestep tables
        if tracing {
            floats += n * (sample + 2) + n * d * 3 + rows * d * Double(c.depth + 1) + rows * head + n * outputs
        }
        activationBytes = floats * 4
        multiplyAdds = n * Double(ParameterCount.multiplyAdds(c))
    }

    /// Throws `ModelError.overBudget` when this pass needs more than `memoryBudget` bytes of activations or
    /// `workBudget` multiply-adds, saying what it needs, what one sample needs and how to proceed.
    public func check(memoryBudget: Double = defaultMemoryBudget, workBudget: Double = defaultWorkBudget) throws {
        guard activationBytes > memoryBudget || multiplyAdds > workBudget else { return }
        let perSample = ForwardCost(config: config, batch: 1, tracing: tracing)
        let fitting = min(memoryBudget / perSample.activationBytes, workBudget / perSample.multiplyAdds).rounded(.down)
        let gib = 1024.0 * 1024 * 1024
        var message = "a forward pass of this model (\(config.inputSize)×\(config.inputSize) input, patch \(config.patchSize): "
            + "\(config.tokens) tokens of width \(config.hiddenSize), \(config.depth) blocks) at batch \(batch) needs about "
            + "\(Self.format(activationBytes / gib)) GiB of activations and \(Self.format(multiplyAdds)) multiply-adds; "
            + "the budget is \(Self.format(memoryBudget / gib)) GiB and \(Self.format(workBudget)) multiply-adds. "
        if fitting >= 1 {
            message += "Run at most \(Int(min(fitting, 1e9))) samples, or raise the budget"
        } else {
            message += "One sample alone needs \(Self.format(perSample.activationBytes / gib)) GiB and \(Self.format(perSample.multiplyAdds)) "
                + "multiply-adds: check the input size (diffusers' sample_size, input_size), or raise the budget"
        }
        throw ModelError.overBudget(message: message, fittingBatch: fitting >= 1 ? Int(min(fitting, 1e9)) : nil)
    }

    /// Two decimals (trailing zeros dropped), in scientific notation past 10^6.
    static func format(_ v: Double) -> String {
        v < 1e6 ? NumberFormat.fixed(v, fractionDigits: 2, trimmingZeros: true) : NumberFormat.scientific(v, trimmingZeros: true)
    }
}
