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
    public static func multiplyAdds(_ c: DiTConfig) -> Int {
        let d = c.hiddenSize, t = c.tokens, n = c.depth, f = c.mlpHidden
        let block = t * d * (4 * d + 2 * f) + 6 * d * d + 2 * t * t * d + 2 * t * d
        let embed = c.frequencyEmbeddingSize * d + d * d
        let final = 2 * d * d
        let patchIO = c.inputSize * c.inputSize * (c.inChannels + c.outChannels) * d
        return n * block + embed + final + patchIO + t * d
    }
}
