import Checkpoints
import Tensors

extension VQDiffusionFamily {
    /// microsoft/VQ-Diffusion's `Text2ImageTransformer` (REFERENCE §4): found under `transformer.transformer.` in a
    /// bare DALLE state dict, under `model.transformer.transformer.` and `ema.transformer.` in a solver checkpoint.
    /// Every block stores the unused causal mask `attn2.mask` (one copy per block). Written as a bare state dict under
    /// `transformer.transformer.`, the names the original's DALLE loads.
    static let original: SourceLayout<VQDiffusionConfig> = {
        let b = "blocks.{i}."
        func linear(_ canonical: String, _ stored: String) -> [(String, SourceForm)] {
            [(canonical + ".weight", .same(stored + ".weight")), (canonical + ".bias", .same(stored + ".bias"))]
        }
        var forms: [(String, SourceForm)] = [
            ("latent_embed.tokens", .same("content_emb.emb.weight")),
            ("latent_embed.height", .same("content_emb.height_emb.weight")),
            ("latent_embed.width", .same("content_emb.width_emb.weight")),
            ("blocks.{i}.norm1.table", .same(b + "ln1.emb.weight")),
            ("blocks.{i}.norm2.table", .same(b + "ln1_1.emb.weight")),
            ("blocks.{i}.norm3.weight", .same(b + "ln2.weight")), ("blocks.{i}.norm3.bias", .same(b + "ln2.bias")),
            ("norm_out.weight", .same("to_logits.0.weight")), ("norm_out.bias", .same("to_logits.0.bias")),
            ("cross_attn.mask", .copies("blocks.{j}.attn2.mask")),
        ]
        forms += linear("blocks.{i}.norm1.linear", b + "ln1.linear")
        forms += linear("blocks.{i}.norm2.linear", b + "ln1_1.linear")
        for (attention, stored) in [("self_attn", "attn1"), ("cross_attn", "attn2")] {
            for (p, name) in [("q", "query"), ("k", "key"), ("v", "value"), ("out", "proj")] {
                forms += linear("blocks.{i}.\(attention).\(p)", b + "\(stored).\(name)")
            }
        }
        forms += linear("blocks.{i}.mlp.fc1", b + "mlp.0")
        forms += linear("blocks.{i}.mlp.fc2", b + "mlp.2")
        forms += linear("out", "to_logits.1")
        return SourceLayout(
            id: .original, summary: "original VQ-Diffusion transformer (microsoft Text2ImageTransformer)",
            forms: Dictionary(uniqueKeysWithValues: forms),
            signature: ["latent_embed.tokens", "latent_embed.height", "blocks.{i}.norm1.table", "out.weight"],
            depthProbe: "blocks.{i}.self_attn.q.weight",
            writer: .stateDict(nestedUnder: [], namePrefix: "transformer.transformer.", safetensors: true),
            prepare: { config, _ in
                // The original's MLP is mlp_hidden_times × D.
                guard config.mlpHidden % config.hiddenSize == 0 else {
                    throw ModelError.lossy("the original VQ-Diffusion MLP is an integer multiple of D = \(config.hiddenSize) wide; this model's is \(config.mlpHidden)")
                }
                return (config, [])
            })
    }()

    /// diffusers' `Transformer2DModel` with vectorized input (`num_vector_embeds`): a `transformer/` component of a
    /// `VQDiffusionPipeline`.
    static let diffusers: SourceLayout<VQDiffusionConfig> = {
        let b = "transformer_blocks.{i}."
        func linear(_ canonical: String, _ stored: String) -> [(String, SourceForm)] {
            [(canonical + ".weight", .same(stored + ".weight")), (canonical + ".bias", .same(stored + ".bias"))]
        }
        var forms: [(String, SourceForm)] = [
            ("latent_embed.tokens", .same("latent_image_embedding.emb.weight")),
            ("latent_embed.height", .same("latent_image_embedding.height_emb.weight")),
            ("latent_embed.width", .same("latent_image_embedding.width_emb.weight")),
            ("blocks.{i}.norm1.table", .same(b + "norm1.emb.weight")),
            ("blocks.{i}.norm2.table", .same(b + "norm2.emb.weight")),
            ("blocks.{i}.norm3.weight", .same(b + "norm3.weight")), ("blocks.{i}.norm3.bias", .same(b + "norm3.bias")),
            ("norm_out.weight", .same("norm_out.weight")), ("norm_out.bias", .same("norm_out.bias")),
        ]
        forms += linear("blocks.{i}.norm1.linear", b + "norm1.linear")
        forms += linear("blocks.{i}.norm2.linear", b + "norm2.linear")
        for (attention, stored) in [("self_attn", "attn1"), ("cross_attn", "attn2")] {
            for (p, name) in [("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("out", "to_out.0")] {
                forms += linear("blocks.{i}.\(attention).\(p)", b + "\(stored).\(name)")
            }
        }
        forms += linear("blocks.{i}.mlp.fc1", b + "ff.net.0.proj")
        forms += linear("blocks.{i}.mlp.fc2", b + "ff.net.2")
        forms += linear("out", "out")
        return SourceLayout(
            id: .diffusers, summary: "diffusers VQ-Diffusion transformer (vectorized Transformer2DModel)",
            forms: Dictionary(uniqueKeysWithValues: forms),
            signature: ["latent_embed.tokens", "latent_embed.height", "blocks.{i}.norm1.table", "out.weight"],
            depthProbe: "blocks.{i}.self_attn.q.weight",
            writer: .diffusers(DiffusersWriter(
                component: "transformer", componentClass: "Transformer2DModel", componentConfig: diffusersConfig,
                pipelineClass: "VQDiffusionPipeline")),
            prepare: { config, _ in
                var problems: [String] = []
                // diffusers' vectorized input has one sample_size for both sides, and FeedForward is 4·D wide.
                if config.height != config.width {
                    problems.append("diffusers' vectorized Transformer2DModel has a square latent (sample_size); this model's is \(config.height)×\(config.width)")
                }
                if config.mlpHidden != 4 * config.hiddenSize {
                    problems.append("diffusers' FeedForward is 4·D = \(4 * config.hiddenSize) wide; this model's MLP is \(config.mlpHidden)")
                }
                guard problems.isEmpty else { throw ModelError.lossy(problems.joined(separator: "; ")) }
                return (config, [])
            })
    }()

    /// `transformer/config.json` for the vectorized `Transformer2DModel`, as diffusers 0.42 saves the model diffusers'
    /// own conversion script builds (every key of `save_pretrained`, defaults included). `norm_type` stays
    /// "layer_norm" as the script leaves it: diffusers switches to `ada_norm` because `num_embeds_ada_norm` is set.
    package static func diffusersConfig(_ c: VQDiffusionConfig) -> JSONValue {
        let activation: String
        switch c.activation {
        case .sigmoidGELU: activation = "geglu-approximate"
        case .erfGELU: activation = "gelu"
        case .tanhGELU: activation = "gelu-approximate"
        }
        return .object([
            ("_class_name", .string("Transformer2DModel")), ("_diffusers_version", .string("0.42.1")),
            ("activation_fn", .string(activation)), ("attention_bias", .bool(true)), ("attention_head_dim", .int(c.headDim)),
            ("attention_type", .string("default")), ("caption_channels", .null), ("cross_attention_dim", .int(c.contextDim)),
            ("double_self_attention", .bool(false)), ("dropout", .double(0)), ("in_channels", .null),
            ("interpolation_scale", .null), ("norm_elementwise_affine", .bool(true)), ("norm_eps", .double(c.ffNormEps)),
            ("norm_num_groups", .int(32)), ("norm_type", .string("layer_norm")), ("num_attention_heads", .int(c.numHeads)),
            ("num_embeds_ada_norm", .int(c.diffusionSteps)), ("num_layers", .int(c.depth)), ("num_vector_embeds", .int(c.vectorEmbeds)),
            ("only_cross_attention", .bool(false)), ("out_channels", .null), ("patch_size", .null), ("sample_size", .int(c.height)),
            ("upcast_attention", .bool(false)), ("use_additional_conditions", .null), ("use_linear_projection", .bool(false)),
        ])
    }

    /// What the target layout's code computes differently from this model's config (the weights convert exactly).
    public static func semanticNotes(from c: VQDiffusionConfig, to layout: Layout) -> [String] {
        var out: [String] = []
        switch layout {
        case .diffusers:
            if c.output == .logProbsMaskRow {
                out.append("diffusers' Transformer2DModel returns log-probabilities over the \(c.codes) codes only: no mask row of −70 and no clamp to [−70, 0] (the original's predict_start adds both)")
            }
            if c.lateTimesteps == .meanEmbedding {
                out.append("diffusers refuses timesteps ≥ \(c.diffusionSteps) (it indexes its tables); when a batch's first timestep is ≥ \(c.diffusionSteps), the original uses the mean of each norm's table for the whole batch")
            }
            if c.output == .logProbsMaskRow || c.lateTimesteps == .meanEmbedding {
                out.append("diffusers takes one timestep for the whole batch (a per-sample timestep fails in its AdaLayerNorm); the original takes one per sample")
            }
            if c.adaNormEps != 1e-5 { out.append("diffusers' adaptive norms use eps 1e-5, this model used \(c.adaNormEps)") }
            if c.outNormEps != 1e-5 { out.append("diffusers' output norm uses eps 1e-5, this model used \(c.outNormEps)") }
        case .original:
            if c.output == .logProbs {
                out.append("the original's predict_start appends a row of −70 for the mask class and clamps to [−70, 0]; diffusers' output has neither")
            }
            if c.lateTimesteps == .refuse {
                out.append("the original uses the mean of each adaptive norm's table for the whole batch when its first timestep is ≥ \(c.diffusionSteps), which diffusers refuses")
            }
            if c.activation != .sigmoidGELU { out.append("the original's MLP activation is x·sigmoid(1.702x) (GELU2), this model used \(c.activation.rawValue)") }
            for (what, eps) in [("adaptive norms", c.adaNormEps), ("MLP norm (ln2)", c.ffNormEps), ("output norm", c.outNormEps)] where eps != 1e-5 {
                out.append("the original's \(what) use eps 1e-5, this model used \(eps)")
            }
        default: break
        }
        return out
    }

    /// Synthetic weights include the attention mask table (the original layout stores it).
    public static func synthesizedOptional(_ config: VQDiffusionConfig) -> Set<String> { ["cross_attn.mask"] }

    /// Heads cannot be read from the original's weights.
    public static let modelOptions: Set<String> = ["heads"]

    /// The head count, which the original's weights cannot give.
    public static func options(reproducing config: VQDiffusionConfig) -> ModelOptions { ModelOptions(heads: config.numHeads) }

    /// diffusers for a preset in the original layout (no attention masks).
    public static func comparisonLayout(for preset: FamilyPreset<VQDiffusionConfig>) -> Layout? {
        preset.layout == .original ? .diffusers : nil
    }

    /// Latent side × 8 (the ITHQ VQ-VAE's downsampling: 32×32 tokens for 256 px).
    public static func imageSize(_ config: VQDiffusionConfig) -> Int? { config.height == config.width ? config.height * 8 : nil }

    /// Checks that the token table is D wide.
    public static func canonicalProblems(_ config: VQDiffusionConfig, tensor: (String) -> TensorInfo?) -> [String] {
        if let t = tensor("latent_embed.tokens"), t.shape.count == 2, t.shape[1] != config.hiddenSize {
            return ["hidden_size = \(config.hiddenSize) but latent_embed.tokens has shape \(t.shape)"]
        }
        return []
    }
}
