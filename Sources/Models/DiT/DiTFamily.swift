import Checkpoints
import Tensors

/// The Diffusion Transformer family (Peebles & Xie): facebookresearch/DiT, diffusers' `DiTTransformer2DModel`, and the
/// Cerebras Model Zoo DiT. Its canonical names are in `schemas/canonical-names.md`, its config in
/// `schemas/model-config.schema.json`.
public enum DiTFamily: ModelFamily {
    /// DiT's config.
    public typealias Config = DiTConfig

    /// The family name in configs and on the command line.
    public static let name = "dit"
    /// The family, for reports.
    public static let summary = "DiT"

    /// The canonical DiT scheme, in file order.
    public static let canonical: [CanonicalSpec<DiTConfig>] = {
        typealias Spec = CanonicalSpec<DiTConfig>
        return [
            Spec("pos_embed", trainable: false, optional: true) { [1, $0.tokens, $0.hiddenSize] },
            Spec("patch_embed.weight") { [$0.hiddenSize, $0.inChannels, $0.patchSize, $0.patchSize] },
            Spec("patch_embed.bias") { [$0.hiddenSize] },
            Spec("t_embed.table", trainable: false, optional: true) { [$0.diffusionSteps, $0.frequencyEmbeddingSize] },
            Spec("t_embed.fc1.weight") { [$0.hiddenSize, $0.frequencyEmbeddingSize] },
            Spec("t_embed.fc1.bias") { [$0.hiddenSize] },
            Spec("t_embed.fc2.weight") { [$0.hiddenSize, $0.hiddenSize] },
            Spec("t_embed.fc2.bias") { [$0.hiddenSize] },
            Spec("y_embed.table") { [$0.labelRows, $0.hiddenSize] },
            Spec("blocks.{i}.attn.qkv.weight") { [3 * $0.hiddenSize, $0.hiddenSize] },
            Spec("blocks.{i}.attn.qkv.bias") { [3 * $0.hiddenSize] },
            Spec("blocks.{i}.attn.out.weight") { [$0.hiddenSize, $0.hiddenSize] },
            Spec("blocks.{i}.attn.out.bias") { [$0.hiddenSize] },
            Spec("blocks.{i}.mlp.fc1.weight") { [$0.mlpHidden, $0.hiddenSize] },
            Spec("blocks.{i}.mlp.fc1.bias") { [$0.mlpHidden] },
            Spec("blocks.{i}.mlp.fc2.weight") { [$0.hiddenSize, $0.mlpHidden] },
            Spec("blocks.{i}.mlp.fc2.bias") { [$0.hiddenSize] },
            Spec("blocks.{i}.modulation.weight") { [6 * $0.hiddenSize, $0.hiddenSize] },
            Spec("blocks.{i}.modulation.bias") { [6 * $0.hiddenSize] },
            Spec("final.linear.weight") { [$0.patchSize * $0.patchSize * $0.outChannels, $0.hiddenSize] },
            Spec("final.linear.bias") { [$0.patchSize * $0.patchSize * $0.outChannels] },
            Spec("final.modulation.weight") { [2 * $0.hiddenSize, $0.hiddenSize] },
            Spec("final.modulation.bias") { [2 * $0.hiddenSize] },
            Spec("diffusion.sqrt_alphas_cumprod", trainable: false, optional: true) { [$0.diffusionSteps] },
            Spec("diffusion.sqrt_one_minus_alphas_cumprod", trainable: false, optional: true) { [$0.diffusionSteps] },
        ]
    }()

    /// original (facebookresearch), diffusers, Cerebras, in detection order.
    public static let layouts: [SourceLayout<DiTConfig>] = [original, diffusers, cerebras]

    /// facebookresearch/DiT `models.py`.
    static let original = SourceLayout<DiTConfig>(
        id: .original, summary: "original DiT (facebookresearch)",
        forms: [
            "pos_embed": .same("pos_embed"),
            "patch_embed.weight": .same("x_embedder.proj.weight"), "patch_embed.bias": .same("x_embedder.proj.bias"),
            "t_embed.fc1.weight": .same("t_embedder.mlp.0.weight"), "t_embed.fc1.bias": .same("t_embedder.mlp.0.bias"),
            "t_embed.fc2.weight": .same("t_embedder.mlp.2.weight"), "t_embed.fc2.bias": .same("t_embedder.mlp.2.bias"),
            "y_embed.table": .same("y_embedder.embedding_table.weight"),
            "blocks.{i}.modulation.weight": .same("blocks.{i}.adaLN_modulation.1.weight"),
            "blocks.{i}.modulation.bias": .same("blocks.{i}.adaLN_modulation.1.bias"),
            "blocks.{i}.attn.qkv.weight": .same("blocks.{i}.attn.qkv.weight"),
            "blocks.{i}.attn.qkv.bias": .same("blocks.{i}.attn.qkv.bias"),
            "blocks.{i}.attn.out.weight": .same("blocks.{i}.attn.proj.weight"),
            "blocks.{i}.attn.out.bias": .same("blocks.{i}.attn.proj.bias"),
            "blocks.{i}.mlp.fc1.weight": .same("blocks.{i}.mlp.fc1.weight"), "blocks.{i}.mlp.fc1.bias": .same("blocks.{i}.mlp.fc1.bias"),
            "blocks.{i}.mlp.fc2.weight": .same("blocks.{i}.mlp.fc2.weight"), "blocks.{i}.mlp.fc2.bias": .same("blocks.{i}.mlp.fc2.bias"),
            "final.modulation.weight": .same("final_layer.adaLN_modulation.1.weight"),
            "final.modulation.bias": .same("final_layer.adaLN_modulation.1.bias"),
            "final.linear.weight": .same("final_layer.linear.weight"), "final.linear.bias": .same("final_layer.linear.bias"),
        ],
        signature: ["patch_embed.weight", "t_embed.fc1.weight", "final.linear.weight"], depthProbe: "blocks.{i}.attn.qkv.weight",
        writer: .stateDict(nestedUnder: [], namePrefix: "", safetensors: true))

    /// diffusers `DiTTransformer2DModel` (or the legacy `Transformer2DModel` with `ada_norm_zero`): q, k, v apart, the
    /// embedders copied into every block.
    static let diffusers: SourceLayout<DiTConfig> = {
        let b = "transformer_blocks.{i}."
        let e = "transformer_blocks.{j}.norm1.emb."
        return SourceLayout(
            id: .diffusers, summary: "diffusers DiT",
            forms: [
                "patch_embed.weight": .same("pos_embed.proj.weight"), "patch_embed.bias": .same("pos_embed.proj.bias"),
                "t_embed.fc1.weight": .copies(e + "timestep_embedder.linear_1.weight"),
                "t_embed.fc1.bias": .copies(e + "timestep_embedder.linear_1.bias"),
                "t_embed.fc2.weight": .copies(e + "timestep_embedder.linear_2.weight"),
                "t_embed.fc2.bias": .copies(e + "timestep_embedder.linear_2.bias"),
                "y_embed.table": .copies(e + "class_embedder.embedding_table.weight"),
                "blocks.{i}.modulation.weight": .same(b + "norm1.linear.weight"),
                "blocks.{i}.modulation.bias": .same(b + "norm1.linear.bias"),
                "blocks.{i}.attn.qkv.weight": .rows([b + "attn1.to_q.weight", b + "attn1.to_k.weight", b + "attn1.to_v.weight"]),
                "blocks.{i}.attn.qkv.bias": .rows([b + "attn1.to_q.bias", b + "attn1.to_k.bias", b + "attn1.to_v.bias"]),
                "blocks.{i}.attn.out.weight": .same(b + "attn1.to_out.0.weight"),
                "blocks.{i}.attn.out.bias": .same(b + "attn1.to_out.0.bias"),
                "blocks.{i}.mlp.fc1.weight": .same(b + "ff.net.0.proj.weight"), "blocks.{i}.mlp.fc1.bias": .same(b + "ff.net.0.proj.bias"),
                "blocks.{i}.mlp.fc2.weight": .same(b + "ff.net.2.weight"), "blocks.{i}.mlp.fc2.bias": .same(b + "ff.net.2.bias"),
                "final.modulation.weight": .same("proj_out_1.weight"), "final.modulation.bias": .same("proj_out_1.bias"),
                "final.linear.weight": .same("proj_out_2.weight"), "final.linear.bias": .same("proj_out_2.bias"),
            ],
            signature: ["patch_embed.weight", "final.modulation.weight", "final.linear.weight"], depthProbe: "blocks.{i}.attn.qkv.weight",
            writer: .diffusers(DiffusersWriter(
                component: "transformer", componentClass: "DiTTransformer2DModel", componentConfig: diffusersConfig,
                pipelineClass: "DiTPipeline",
                extraComponents: [(folder: "scheduler", className: "DDIMScheduler", file: "scheduler_config.json", json: schedulerConfig)],
                carriedComponents: ["vae"], carriedIndexKeys: ["id2label"])),
            prepare: { config, _ in
                // diffusers' label table always has the null-class row.
                guard config.hasNullClass else {
                    throw ModelError.lossy("diffusers' label table always has a null-class row (\(config.numClasses)+1 rows); this model's has \(config.labelRows) rows")
                }
                return (config, [])
            })
    }()

    /// Cerebras Model Zoo DiT: fused adaLN chunks as separate linears, a ConvTranspose head, frozen tables stored,
    /// every name under `model.model.` in a `{"model": …}` dict.
    static let cerebras: SourceLayout<DiTConfig> = {
        let l = "transformer_decoder.layers.{i}."
        func both(_ stems: [String]) -> ([String], [String]) { (stems.map { $0 + ".weight" }, stems.map { $0 + ".bias" }) }
        let modulation = both(["norm1.shift_linear.1", "norm1.scale_linear.1", "gate_msa.1", "norm3.shift_linear.1", "norm3.scale_linear.1", "gate_mlp.1"].map { l + $0 })
        let qkv = both(["self_attn.proj_q_dense_layer", "self_attn.proj_k_dense_layer", "self_attn.proj_v_dense_layer"].map { l + $0 })
        let final = both(["final_norm.shift_linear.1", "final_norm.scale_linear.1"])
        return SourceLayout(
            id: .cerebras, summary: "Cerebras Model Zoo DiT",
            forms: [
                "pos_embed": .same("patch_embedding_layer.position_embeddings"),
                "patch_embed.weight": .same("patch_embedding_layer.linear_proj.weight"),
                "patch_embed.bias": .same("patch_embedding_layer.linear_proj.bias"),
                "t_embed.table": .same("timestep_embedding_layer.timestep_embedding"),
                "t_embed.fc1.weight": .same("timestep_embedding_layer.ffn.ffn.0.linear_layer.weight"),
                "t_embed.fc1.bias": .same("timestep_embedding_layer.ffn.ffn.0.linear_layer.bias"),
                "t_embed.fc2.weight": .same("timestep_embedding_layer.ffn.ffn.1.linear_layer.weight"),
                "t_embed.fc2.bias": .same("timestep_embedding_layer.ffn.ffn.1.linear_layer.bias"),
                "y_embed.table": .same("label_embedding_layer.weight"),
                "blocks.{i}.modulation.weight": .rows(modulation.0), "blocks.{i}.modulation.bias": .rows(modulation.1),
                "blocks.{i}.attn.qkv.weight": .rows(qkv.0), "blocks.{i}.attn.qkv.bias": .rows(qkv.1),
                "blocks.{i}.attn.out.weight": .same(l + "self_attn.proj_output_dense_layer.weight"),
                "blocks.{i}.attn.out.bias": .same(l + "self_attn.proj_output_dense_layer.bias"),
                "blocks.{i}.mlp.fc1.weight": .same(l + "ffn.ffn.0.linear_layer.weight"), "blocks.{i}.mlp.fc1.bias": .same(l + "ffn.ffn.0.linear_layer.bias"),
                "blocks.{i}.mlp.fc2.weight": .same(l + "ffn.ffn.1.linear_layer.weight"), "blocks.{i}.mlp.fc2.bias": .same(l + "ffn.ffn.1.linear_layer.bias"),
                "final.modulation.weight": .rows(final.0), "final.modulation.bias": .rows(final.1),
                "final.linear.weight": .transformed(ConvTransposeHead.weight("noise_head.conv_transpose.weight")),
                "final.linear.bias": .transformed(ConvTransposeHead.bias("noise_head.conv_transpose.bias")),
                "diffusion.sqrt_alphas_cumprod": .same("gaussian_diffusion.sqrt_alphas_cum_prod"),
                "diffusion.sqrt_one_minus_alphas_cumprod": .same("gaussian_diffusion.sqrt_one_minus_alphas_cum_prod"),
            ],
            signature: ["patch_embed.weight", "t_embed.fc1.weight"], depthProbe: "blocks.{i}.attn.qkv.weight",
            storedShapes: ["pos_embed": { [$0.tokens, $0.hiddenSize] }],
            writer: .stateDict(nestedUnder: ["model"], namePrefix: "model.", safetensors: false),
            prepare: { config, options in
                // A ConvTranspose head predicts the input channels only: no learned sigma.
                guard config.outputHead == .linear, config.outChannels != config.inChannels else { return (config, []) }
                guard config.outChannels == 2 * config.inChannels else {
                    throw ModelError.lossy("a Cerebras head predicts \(config.inChannels) channels; this model predicts \(config.outChannels)")
                }
                guard options.dropSigma else {
                    throw ModelError.sigmaChannels(target: .cerebras, modelChannels: config.outChannels, targetChannels: config.inChannels)
                }
                var written = config
                written.outChannels = config.inChannels
                return (written, ["dropped the \(config.outChannels - config.inChannels) learned-sigma channels of final.linear (sigma channels allowed to drop)"])
            })
    }()

    /// The 12 DiT presets at 256 and 512 px, then the five Cerebras ones.
    public static var presets: [FamilyPreset<DiTConfig>] { Preset.dit + Preset.cerebras }

    // MARK: tables, counts, reports

    /// The position table (2-D sin-cos), the timestep table and the two diffusion schedule tables, as the source code
    /// computes them; nil for any other template. One arithmetic per table serves every layout, because the layouts
    /// that store or compute a table agree on it (REFERENCE §1–3): `pos_embed` is numpy float64 cast to float32 (the
    /// original stores it, diffusers recomputes it bit for bit, the Cerebras Model Zoo stores it within 1 ulp);
    /// `t_embed.table` is PyTorch float32 step by step (the Model Zoo stores it; the original computes the same rows on
    /// the fly; diffusers' own sinusoid differs by its frequency shift, a semantic note, and it stores no table); the
    /// schedule is numpy float64 cast to float32 (only the Model Zoo stores it).
    public static func recomputedTable(_ template: String, config: DiTConfig) -> [Float]? {
        switch template {
        case "pos_embed": return Tables.positionTable(hidden: config.hiddenSize, grid: config.gridSize)
        case "t_embed.table": return Tables.timestepTable(steps: config.diffusionSteps, dim: config.frequencyEmbeddingSize, maxPeriod: config.maxPeriod)
        case "diffusion.sqrt_alphas_cumprod": return Tables.diffusionSchedule(steps: config.diffusionSteps).sqrtAlphasCumprod
        case "diffusion.sqrt_one_minus_alphas_cumprod": return Tables.diffusionSchedule(steps: config.diffusionSteps).sqrtOneMinus
        default: return nil
        }
    }

    /// The timestep table's angles t·f_k (float32, as the table rounds them before cos/sin): PyTorch's vectorised
    /// `exp` rounds 2 of the 128 frequencies (k = 12, 106) one ulp away from a correctly rounded exp, so a real table
    /// differs from any libm's by up to one ulp of the angle (3e-5 at t ≈ 979); nil for the other tables, which numpy
    /// computes in float64.
    public static func recomputedTableAngles(_ template: String, config: DiTConfig) -> [Float]? {
        template == "t_embed.table" ? Tables.timestepAngles(steps: config.diffusionSteps, dim: config.frequencyEmbeddingSize, maxPeriod: config.maxPeriod) : nil
    }

    /// The input size for the position table; the config summary for the other tables.
    public static func tableSizeSource(_ template: String, config: DiTConfig) -> String {
        template == "pos_embed" ? "input size \(config.inputSize) (input_size, diffusers' sample_size)" : config.summary
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

    /// What the original, diffusers or Cerebras code computes differently from this model (timestep shift, timestep
    /// input, MLP norm eps, GELU form).
    public static func semanticNotes(from c: DiTConfig, to layout: Layout) -> [String] {
        var out: [String] = []
        switch layout {
        case .diffusers:
            if c.timestepShift != 1 { out.append("diffusers computes timestep frequencies with shift 1, this model used \(c.timestepShift): outputs will differ slightly (verification shows where)") }
            if c.timestepInput == .table { out.append("this model took integer timesteps through a table; diffusers computes the sinusoid") }
        case .original:
            if c.timestepShift != 0 { out.append("the original DiT computes timestep frequencies with shift 0, this model used \(c.timestepShift)") }
            if c.mlpNormEps != 1e-6 { out.append("the original DiT's MLP LayerNorm eps is 1e-6, this model used \(c.mlpNormEps)") }
            if c.gelu != .tanh { out.append("the original DiT uses tanh GELU, this model used \(c.gelu.rawValue)") }
        case .cerebras:
            if c.gelu != .erf { out.append("Cerebras uses exact (erf) GELU, this model used \(c.gelu.rawValue)") }
            if c.timestepShift != 0 { out.append("Cerebras' timestep table uses shift 0, this model used \(c.timestepShift)") }
            if c.mlpNormEps != 1e-6 { out.append("Cerebras' LayerNorm eps is 1e-6, this model's MLP norm used \(c.mlpNormEps)") }
        default: break
        }
        return out
    }

    /// `blocks.N` for block tensors, `final layer`, `diffusion tables`, or `embedders`.
    public static func parameterGroup(_ name: String) -> String {
        if name.hasPrefix("blocks.") { return name.split(separator: ".").prefix(2).joined(separator: ".") }
        if name.hasPrefix("final.") { return "final layer" }
        if name.hasPrefix("diffusion.") { return "diffusion tables" }
        return "embedders"
    }

    /// The position table always; the timestep and schedule tables too for a model with integer timesteps.
    public static func synthesizedOptional(_ config: DiTConfig) -> Set<String> {
        var include: Set<String> = ["pos_embed"]
        if config.timestepInput == .table { include.formUnion(["t_embed.table", "diffusion.sqrt_alphas_cumprod", "diffusion.sqrt_one_minus_alphas_cumprod"]) }
        return include
    }

    /// A ConvTranspose head's bias, repeated over the p² patch positions (one value per channel); nil for the others.
    public static func synthesized(_ name: String, shape: [Int], config: DiTConfig, seed: UInt64) -> OutputTensor? {
        guard name == "final.linear.bias", config.outputHead == .convTranspose else { return nil }
        // A ConvTranspose head has one bias per channel, repeated over the p² patch positions.
        let perChannel = Synthetic.random(name, [config.outChannels], std: 0.02, seed: seed)
        return OutputTensor(name: name, dtype: .f32, shape: shape) { sink in
            let bytes = try perChannel.contiguousBytes()
            for _ in 0..<(config.patchSize * config.patchSize) { try sink.write(bytes) }
        }
    }

    /// Checks that `patch_embed.weight` has the config's hidden size.
    public static func canonicalProblems(_ config: DiTConfig, tensor: (String) -> TensorInfo?) -> [String] {
        if let patch = tensor("patch_embed.weight"), patch.shape.count == 4, patch.shape[0] != config.hiddenSize {
            return ["hidden_size = \(config.hiddenSize) but patch_embed.weight has shape \(patch.shape) (D = \(patch.shape[0]))"]
        }
        return []
    }

    /// Latent size × 8 (the SD VAE's downsampling).
    public static func imageSize(_ config: DiTConfig) -> Int? { config.inputSize * 8 }

    /// A Cerebras checkpoint keeps the Model Zoo trainer's `__metadata__`: a list whose last item records the run's
    /// parameters (its metadata callback). ditkit writes the model section with what the config fixes, under the
    /// Model Zoo's own names (`trainer.init.model` of the DiT params files), so the head count — which the weights
    /// cannot give — travels with the file; `model_name` is the trainer's class, and no `version` is written (the
    /// Model Zoo checks a version against its own, and this file was not made by one).
    public static func trainerEntries(_ c: DiTConfig, layout: Layout) -> [(String, JSONValue)] {
        guard layout == .cerebras else { return [] }
        let model: JSONValue = .object([
            ("name", .string("dit")), ("hidden_size", .int(c.hiddenSize)), ("num_hidden_layers", .int(c.depth)),
            ("num_heads", .int(c.numHeads)), ("filter_size", .int(c.mlpHidden)), ("patch_size", .array([.int(c.patchSize), .int(c.patchSize)])),
            ("num_classes", .int(c.numClasses)), ("frequency_embedding_size", .int(c.frequencyEmbeddingSize)),
            ("num_diffusion_steps", .int(c.diffusionSteps)), ("layer_norm_epsilon", .double(c.attentionNormEps)),
        ])
        return [("__metadata__", .array([.object([
            ("model_name", .string("DiTModel")),
            ("params", .object([("trainer", .object([("init", .object([("model", model)]))]))])),
            ("written_by", .string("ditkit")),
        ])]))]
    }

    /// Heads and the input size cannot be read from every layout's weights.
    public static func options(reproducing config: DiTConfig) -> ModelOptions {
        ModelOptions(heads: config.numHeads, inputSize: config.inputSize)
    }

    /// Heads, the input size and the class count cannot always be read from weights; diffusers' per-block embedder
    /// copies may need a choice.
    public static let modelOptions: Set<String> = ["heads", "inputSize", "numClasses", "embedderBlock"]

    /// diffusers for a preset in the original layout (diffusers stores the embedders once per block).
    public static func comparisonLayout(for preset: FamilyPreset<DiTConfig>) -> Layout? { preset.layout == .original ? .diffusers : nil }

    // MARK: diffusers files

    /// `transformer/config.json` for DiTTransformer2DModel, with the model's MLP norm eps and GELU form.
    package static func diffusersConfig(_ c: DiTConfig) -> JSONValue {
        .object([
            ("_class_name", .string("DiTTransformer2DModel")), ("_diffusers_version", .string("0.42.1")),
            ("activation_fn", .string(c.gelu == .tanh ? "gelu-approximate" : "gelu")), ("attention_bias", .bool(true)),
            ("attention_head_dim", .int(c.headDim)), ("dropout", .double(0)), ("in_channels", .int(c.inChannels)),
            ("norm_elementwise_affine", .bool(false)), ("norm_eps", .double(c.mlpNormEps)), ("norm_num_groups", .int(32)),
            ("norm_type", .string("ada_norm_zero")), ("num_attention_heads", .int(c.numHeads)),
            ("num_embeds_ada_norm", .int(c.numClasses)), ("num_layers", .int(c.depth)), ("out_channels", .int(c.outChannels)),
            ("patch_size", .int(c.patchSize)), ("sample_size", .int(c.inputSize)), ("upcast_attention", .bool(false)),
        ])
    }

    /// DiT's DDIM scheduler: 1000 steps, linear β 1e-4…0.02, epsilon prediction, no clipping.
    package static let schedulerConfig: JSONValue = .object([
        ("_class_name", .string("DDIMScheduler")), ("_diffusers_version", .string("0.42.1")), ("beta_end", .double(0.02)),
        ("beta_schedule", .string("linear")), ("beta_start", .double(0.0001)), ("clip_sample", .bool(false)),
        ("clip_sample_range", .double(1)), ("dynamic_thresholding_ratio", .double(0.995)), ("num_train_timesteps", .int(1000)),
        ("prediction_type", .string("epsilon")), ("rescale_betas_zero_snr", .bool(false)), ("sample_max_value", .double(1)),
        ("set_alpha_to_one", .bool(true)), ("steps_offset", .int(0)), ("thresholding", .bool(false)),
        ("timestep_spacing", .string("leading")), ("trained_betas", .null),
    ])
}
