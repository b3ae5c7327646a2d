import Checkpoints
import Tensors

extension VQDiffusionFamily {
    /// Infers every size from canonical shapes (read through the layout's naming table): codes and D from the token
    /// table, the latent grid from the height and width tables, diffusion steps from the rows of the adaptive norms'
    /// tables, the context width from the cross-attention keys, the MLP width from its first linear. Heads come from
    /// the `heads` option, diffusers' `config.json`, or (the original stores no config) are assumed from the preset of
    /// the same hidden size or a head dimension of 64 or 88, and said so. The context length cannot be read from the
    /// weights (attention takes any length): 77, CLIP's, is assumed. Each layout's numerics are recorded: the original
    /// returns the mask row and clamp and uses the mean table for late timesteps; diffusers reads `activation_fn` and
    /// `norm_eps` (which reaches only norm3), and its `norm_type` "layer_norm" is replaced by ada_norm as diffusers
    /// itself does when `num_embeds_ada_norm` is set.
    public static func inferConfig(_ context: inout InferenceContext<VQDiffusionFamily>) throws -> VQDiffusionConfig {
        let path = context.checkpoint.path
        let tokensName = context.storedName("latent_embed.tokens")
        let embeds = try context.dim("latent_embed.tokens", 0, rank: 2)
        let hidden = try context.dim("latent_embed.tokens", 1, rank: 2)
        let height = try context.dim("latent_embed.height", 0, rank: 2)
        let width = try context.dim("latent_embed.width", 0, rank: 2)
        let steps = try context.dim("blocks.{i}.norm1.table", 0, rank: 2)
        let contextDim = try context.dim("blocks.{i}.cross_attn.k.weight", 1, rank: 2)
        let mlp = try context.dim("blocks.{i}.mlp.fc1.weight", 0, rank: 2)
        guard embeds >= 2 else {
            throw ModelError.mapping(path: path, problems: ["shape: \(tokensName) has \(embeds) rows; expected the codes and the mask token"])
        }
        context.origins = [
            "codes": "rows of \(tokensName) − 1 (the mask token)", "hidden_size": "\(tokensName) dim 1",
            "height": "rows of \(context.storedName("latent_embed.height"))", "width": "rows of \(context.storedName("latent_embed.width"))",
            "diffusion_steps": "rows of \(context.storedName("blocks.{i}.norm1.table"))",
            "context_dim": "\(context.storedName("blocks.{i}.cross_attn.k.weight")) dim 1",
            "mlp_hidden": "rows of \(context.storedName("blocks.{i}.mlp.fc1.weight"))",
        ]

        // Heads cannot be read from weights.
        let heads = try context.headCount(hidden: hidden, presetHeads: VQDiffusionPresets.heads(forHiddenSize: hidden), headDimensions: [64, 88])
        // The context length does not change the weights.
        let contextLength = 77
        context.assume(
            "context_length", "77", basis: "CLIP's 77 text tokens (attention takes any length; the weights do not fix it)",
            note: "context length 77, CLIP's (assumed: attention takes any length, the weights do not fix it)")

        var config = VQDiffusionConfig(
            depth: context.depth, hiddenSize: hidden, numHeads: heads, contextDim: contextDim, contextLength: contextLength,
            codes: embeds - 1, height: height, width: width, diffusionSteps: steps, mlpHidden: mlp)
        var disagreements: [String] = []
        let outRows = try context.dim("out.weight", 0, rank: 2)
        if outRows != embeds - 1 {
            disagreements.append("\(context.storedName("out.weight")) has \(outRows) rows but \(tokensName) has \(embeds) (codes + mask)")
        }
        guard disagreements.isEmpty else { throw ModelError.mapping(path: path, problems: disagreements) }

        switch context.layout.id {
        case .original:
            config = config.withOriginalSemantics()
        case .diffusers:
            try readDiffusersConfig(&config, &context)
        default: break
        }
        try config.validate(origin: path, names: context.origins)
        return config
    }

    /// The numerics and the sizes a diffusers `config.json` states, checked against the weights.
    static func readDiffusersConfig(_ config: inout VQDiffusionConfig, _ context: inout InferenceContext<VQDiffusionFamily>) throws {
        config = config.withDiffusersSemantics()
        guard let (json, file) = context.componentConfig else {
            context.assume(
                "norm_eps.ff", "1e-5", basis: "diffusers' default (no config.json)",
                note: "no config.json: diffusers' defaults assumed (activation geglu-approximate, norm_eps 1e-5)")
            return
        }
        if let value = json["activation_fn"], value != .null {
            switch value.stringValue {
            case "geglu-approximate": config.activation = .sigmoidGELU
            case "gelu": config.activation = .erfGELU
            case "gelu-approximate": config.activation = .tanhGELU
            default:
                throw ModelError.invalidConfig(origin: file, problems: [
                    "activation_fn = \(value.serialized().prefix(40)) is not one a vectorized Transformer2DModel of these weights computes (geglu-approximate, gelu, gelu-approximate)"])
            }
            context.origins["activation"] = "\(file): activation_fn"
        }
        if let value = json["norm_eps"], value != .null {
            guard let eps = value.doubleValue else {
                throw ModelError.invalidConfig(origin: file, problems: ["norm_eps = \(value.serialized().prefix(40)) is not a number"])
            }
            config.ffNormEps = eps
            context.origins["norm_eps.ff"] = "\(file): norm_eps (reaches only norm3)"
        }
        if json["norm_type"]?.stringValue == "layer_norm", json["num_embeds_ada_norm"].map({ $0 != .null }) == true {
            context.notes.append("config.json says norm_type \"layer_norm\"; diffusers uses ada_norm because num_embeds_ada_norm is set, and so does ditkit")
        }
        var disagreements: [String] = []
        if let h = try context.configInt("attention_head_dim") {
            let (product, overflow) = h.multipliedReportingOverflow(by: config.numHeads)
            if overflow || product != config.hiddenSize {
                disagreements.append("attention_head_dim = \(h) × \(config.numHeads) heads ≠ hidden size \(config.hiddenSize) of \(context.storedName("latent_embed.tokens"))")
            }
        }
        let agreeing: [(String, Int, String)] = [
            ("num_layers", config.depth, "transformer blocks present"),
            ("num_vector_embeds", config.vectorEmbeds, "rows of \(context.storedName("latent_embed.tokens"))"),
            ("num_embeds_ada_norm", config.diffusionSteps, "rows of \(context.storedName("blocks.{i}.norm1.table"))"),
            ("cross_attention_dim", config.contextDim, "columns of \(context.storedName("blocks.{i}.cross_attn.k.weight"))"),
            ("sample_size", config.height, "rows of \(context.storedName("latent_embed.height"))"),
            ("height", config.height, "rows of \(context.storedName("latent_embed.height"))"),
            ("width", config.width, "rows of \(context.storedName("latent_embed.width"))"),
        ]
        for (key, actual, what) in agreeing {
            if let v = try context.configInt(key), v != actual { disagreements.append("\(key) = \(v) but the weights have \(actual) (\(what))") }
        }
        guard disagreements.isEmpty else { throw ModelError.invalidConfig(origin: file, problems: disagreements) }
    }
}
