import Checkpoints
import Tensors

/// The VQ-Diffusion transformer (Gu et al.): microsoft/VQ-Diffusion's `Text2ImageTransformer` and diffusers'
/// `Transformer2DModel` with vectorized (discrete-token) input. Its canonical names are in
/// `schemas/canonical-names.md`, its config in `schemas/model-config.schema.json` (family `vq-diffusion`).
public enum VQDiffusionFamily: ModelFamily {
    /// The transformer's config.
    public typealias Config = VQDiffusionConfig

    /// The family name in configs and on the command line.
    public static let name = "vq-diffusion"
    /// The family, for reports.
    public static let summary = "VQ-Diffusion transformer"

    /// The canonical VQ-Diffusion transformer scheme, in file order.
    public static let canonical: [CanonicalSpec<VQDiffusionConfig>] = {
        typealias Spec = CanonicalSpec<VQDiffusionConfig>
        func linear(_ name: String, _ rows: @escaping @Sendable (VQDiffusionConfig) -> Int, _ columns: @escaping @Sendable (VQDiffusionConfig) -> Int) -> [Spec] {
            [Spec(name + ".weight") { [rows($0), columns($0)] }, Spec(name + ".bias") { [rows($0)] }]
        }
        let d: @Sendable (VQDiffusionConfig) -> Int = { $0.hiddenSize }
        var specs: [Spec] = [
            Spec("latent_embed.tokens") { [$0.vectorEmbeds, $0.hiddenSize] },
            Spec("latent_embed.height") { [$0.height, $0.hiddenSize] },
            Spec("latent_embed.width") { [$0.width, $0.hiddenSize] },
        ]
        specs.append(Spec("blocks.{i}.norm1.table") { [$0.diffusionSteps, $0.hiddenSize] })
        specs += linear("blocks.{i}.norm1.linear", { 2 * $0.hiddenSize }, d)
        for p in ["q", "k", "v", "out"] { specs += linear("blocks.{i}.self_attn.\(p)", d, d) }
        specs.append(Spec("blocks.{i}.norm2.table") { [$0.diffusionSteps, $0.hiddenSize] })
        specs += linear("blocks.{i}.norm2.linear", { 2 * $0.hiddenSize }, d)
        specs += linear("blocks.{i}.cross_attn.q", d, d)
        specs += linear("blocks.{i}.cross_attn.k", d, { $0.contextDim })
        specs += linear("blocks.{i}.cross_attn.v", d, { $0.contextDim })
        specs += linear("blocks.{i}.cross_attn.out", d, d)
        specs += [Spec("blocks.{i}.norm3.weight") { [$0.hiddenSize] }, Spec("blocks.{i}.norm3.bias") { [$0.hiddenSize] }]
        specs += linear("blocks.{i}.mlp.fc1", { $0.mlpHidden }, d)
        specs += linear("blocks.{i}.mlp.fc2", d, { $0.mlpHidden })
        specs += [Spec("norm_out.weight") { [$0.hiddenSize] }, Spec("norm_out.bias") { [$0.hiddenSize] }]
        specs += linear("out", { $0.codes }, d)
        // The original's per-block causal mask buffer `attn2.mask`, never used by its forward: lower-triangular ones
        // (1, 1, L, L). Stored once here (one copy per block in the original), checked against the table and dropped
        // where a layout does not store it.
        specs.append(Spec("cross_attn.mask", trainable: false, optional: true) { [1, 1, $0.tokens, $0.tokens] })
        return specs
    }()

    /// original (microsoft/VQ-Diffusion), diffusers, in detection order.
    public static let layouts: [SourceLayout<VQDiffusionConfig>] = [original, diffusers]
    /// ITHQ and the tiny presets.
    public static var presets: [FamilyPreset<VQDiffusionConfig>] { VQDiffusionPresets.all }

    /// The attention mask table (`cross_attn.mask`): lower-triangular ones over the L latent tokens, as the original's
    /// `torch.tril(torch.ones(L, L))` makes it; nil for any other template.
    public static func recomputedTable(_ template: String, config: VQDiffusionConfig) -> [Float]? {
        guard template == "cross_attn.mask" else { return nil }
        let l = config.tokens
        var out = [Float](repeating: 0, count: l * l)
        for row in 0..<l { for column in 0...row { out[row * l + column] = 1 } }
        return out
    }

    /// The latent grid, for the mask table.
    public static func tableSizeSource(_ template: String, config: VQDiffusionConfig) -> String {
        "latent \(config.height)×\(config.width) (content_emb's height_emb and width_emb rows, diffusers' sample_size)"
    }

    /// Multiply-adds of one forward pass for one sample.
    public static func multiplyAdds(_ c: VQDiffusionConfig) -> Int {
        let l = c.tokens, d = c.hiddenSize, m = c.contextLength
        let perBlock = l * d * d * 4 + 2 * l * l * d          // self-attention projections, scores and values
            + l * d * d * 2 + m * c.contextDim * d * 2 + 2 * l * m * d  // cross-attention
            + 2 * l * d * c.mlpHidden                          // MLP
            + 2 * 2 * d * d                                    // two adaptive-norm linears (one timestep)
        return c.depth * perBlock + l * d * c.codes
    }

    /// `embeddings`, `blocks.N`, `head`, `attention masks`.
    public static func parameterGroup(_ canonicalName: String) -> String {
        if canonicalName.hasPrefix("latent_embed.") { return "embeddings" }
        if canonicalName == "cross_attn.mask" { return "attention masks" }
        if canonicalName.hasPrefix("blocks.") { return canonicalName.split(separator: ".").prefix(2).joined(separator: ".") }
        return "head"
    }
}
