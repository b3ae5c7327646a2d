import Checkpoints
import Tensors

/// Deterministic random weights for any config, streamed in chunks (a 2B model never sits in memory).
///
/// Weights are uniform with the variance of a fan-in-scaled normal (std 1/√fan_in), biases and label rows
/// uniform with std 0.02, so activations stay finite and non-trivial; the adaLN modulation is random, not the
/// zero init of training, so every block contributes. Frozen tables are the real ones (position table,
/// timestep table, diffusion schedule).
public enum Synthetic {
    public static func canonicalOutputs(_ config: DiTConfig, seed: UInt64) -> [OutputTensor] {
        var include: Set<String> = ["pos_embed"]
        if config.timestepInput == .table { include.formUnion(["t_embed.table", "diffusion.sqrt_alphas_cumprod", "diffusion.sqrt_one_minus_alphas_cumprod"]) }
        return Schemes.canonicalTensors(config, includeOptional: include).enumerated().map { index, entry in
            let (name, spec) = entry
            let shape = spec.shape(config)
            switch spec.template {
            case "pos_embed":
                return table(name, shape, Tables.positionTable(hidden: config.hiddenSize, grid: config.gridSize))
            case "t_embed.table":
                return table(name, shape, Tables.timestepTable(dim: config.frequencyEmbeddingSize, maxPeriod: config.maxPeriod))
            case "diffusion.sqrt_alphas_cumprod": return table(name, shape, Tables.diffusionSchedule().sqrtAlphasCumprod)
            case "diffusion.sqrt_one_minus_alphas_cumprod": return table(name, shape, Tables.diffusionSchedule().sqrtOneMinus)
            case "final.linear.bias" where config.outputHead == .convTranspose:
                // A ConvTranspose head has one bias per channel, repeated over the p² patch positions.
                let perChannel = random(name, [config.outChannels], std: 0.02, seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
                return OutputTensor(name: name, dtype: .f32, shape: shape) { sink in
                    let bytes = try perChannel.contiguousBytes()
                    for _ in 0..<(config.patchSize * config.patchSize) { try sink.write(bytes) }
                }
            default:
                let isBias = name.hasSuffix(".bias") || name == "y_embed.table"
                let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
                let std = isBias ? 0.02 : 1 / Double(fanIn).squareRoot()
                return random(name, shape, std: Float(std), seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
            }
        }
    }

    static func table(_ name: String, _ shape: [Int], _ values: [Float]) -> OutputTensor {
        OutputTensor(name: name, dtype: .f32, shape: shape) { sink in try values.withUnsafeBytes { try sink.write($0) } }
    }

    /// Uniform in ±std·√3 from a splitmix64 stream, written 64 Ki values at a time.
    static func random(_ name: String, _ shape: [Int], std: Float, seed: UInt64) -> OutputTensor {
        let count = shape.reduce(1, *)
        return OutputTensor(name: name, dtype: .f32, shape: shape) { sink in
            var state = seed
            let half = std * Float(3.0.squareRoot())  // uniform on ±half has standard deviation std
            let scale = 2 * half / Float(1 << 24)
            var chunk = [Float](repeating: 0, count: 1 << 16)
            var done = 0
            while done < count {
                let n = min(chunk.count, count - done)
                for i in 0..<n {
                    state &+= 0x9E37_79B9_7F4A_7C15
                    var z = state
                    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                    z ^= z >> 31
                    chunk[i] = Float(z >> 40) * scale - half
                }
                try chunk.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0..<(n * 4)])) }
                done += n
            }
        }
    }
}
