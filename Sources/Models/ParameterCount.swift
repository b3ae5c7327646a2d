/// Parameter and FLOP counts of a config in a layout.
public struct ParameterCount: Sendable, Equatable {
    public let total: Int
    public let trainable: Int
    public var frozen: Int { total - trainable }
    /// Multiply-adds of one forward pass at the config's input size, in units of 10^9 (the DiT paper's "Gflops").
    public let gflops: Double

    /// Counts the tensors `layout` stores for `config` (diffusers' per-block embedder copies included; its
    /// recomputed pos_embed excluded).
    public init(config: DiTConfig, layout: Layout) {
        let tensors = Schemes.sourceTensors(layout, config: config)
        var total = 0, trainable = 0
        for t in tensors {
            let n = t.shape.reduce(1, *)
            total += n
            if t.trainable { trainable += n }
        }
        self.total = total
        self.trainable = trainable
        gflops = Double(ParameterCount.multiplyAdds(config)) / 1e9
    }

    /// Multiply-adds per image, as the DiT paper counts them: per block the four attention projections and the
    /// MLP over T tokens, the adaLN modulation, QKᵀ and AV, and the modulation; plus the embedders, the final
    /// layer, the patch embedding and the output projection. Reproduces the paper's table (XL/2: 118.64).
    /// Computed in float64 (exact below 2^53, every real model), saturating at `Int.max` for configs past that.
    public static func multiplyAdds(_ c: DiTConfig) -> Int {
        let d = Double(c.hiddenSize), t = Double(c.tokens), n = Double(c.depth), f = Double(c.mlpHidden)
        let block = t * d * (4 * d + 2 * f) + 6 * d * d + 2 * t * t * d + 2 * t * d
        let embed = Double(c.frequencyEmbeddingSize) * d + d * d
        let final = 2 * d * d
        let side = Double(c.inputSize)
        let patchIO = side * side * Double(c.inChannels + c.outChannels) * d
        let total = n * block + embed + final + patchIO + t * d
        return total < 0x1p63 ? Int(total) : Int.max
    }
}
