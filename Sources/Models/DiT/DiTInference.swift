import Checkpoints
import Tensors

extension DiTFamily {
    /// Infers sizes from canonical shapes (read through the layout's naming table, so no stored name is written here)
    /// and the diffusers component config, and records each layout's numeric semantics. Every shape is rank-checked,
    /// every config.json value and option range-checked where it enters, and the result validated
    /// (`DiTConfig.problems`) with each field named as its source calls it.
    public static func inferConfig(_ context: inout InferenceContext<DiTFamily>) throws -> DiTConfig {
        let path = context.checkpoint.path
        let options = context.options
        let patchName = context.storedName("patch_embed.weight")
        let (hidden, channels, p) = (
            try context.dim("patch_embed.weight", 0, rank: 4), try context.dim("patch_embed.weight", 1, rank: 4),
            try context.dim("patch_embed.weight", 2, rank: 4)
        )
        guard try context.dim("patch_embed.weight", 3, rank: 4) == p, p >= 1, p <= DiTConfig.maxSize else {
            throw ModelError.mapping(path: path, problems: ["shape: \(patchName) is \(try context.shape("patch_embed.weight")), expected (D, C, p, p) with 1 ≤ p ≤ \(DiTConfig.maxSize)"])
        }
        let rows = try context.dim("y_embed.table", 0, rank: 2)
        let mlp = try context.dim("blocks.{i}.mlp.fc1.weight", 0, rank: 2)
        let configFile = context.componentConfig?.file ?? path
        context.origins = [
            "hidden_size": "\(patchName) dim 0", "in_channels": "\(patchName) dim 1", "patch_size": "\(patchName) dims 2, 3",
            "mlp_hidden": "\(context.storedName("blocks.{i}.mlp.fc1.weight")) dim 0",
            "num_classes": "rows of \(context.storedName("y_embed.table"))",
        ]

        // Output channels: the head's rows are p²·Cout.
        let headName = context.storedName("final.linear.weight")
        let headRows = try context.dim("final.linear.weight", 0, rank: 2)
        guard headRows % (p * p) == 0 else {
            throw ModelError.mapping(path: path, problems: ["shape: \(headName) has \(headRows) rows, not a multiple of p² = \(p * p)"])
        }
        let outChannels = headRows / (p * p)
        context.origins["out_channels"] = "rows of \(headName) / p²"

        // Classes and the null row: diffusers says K; otherwise K+1 rows when K+1−1 is a round number.
        var classes: Int
        var nullRow: Bool
        if let k = options.numClasses {
            classes = k
            nullRow = rows == k + 1
            context.origins["num_classes"] = options.name(of: "numClasses")
            guard rows == k || rows == k + 1 else {
                throw ModelError.invalidOption(name: options.name(of: "numClasses"), problem: "\(k) but the label table has \(rows) rows")
            }
        } else if let k = try context.configInt("num_embeds_ada_norm"), rows == k || rows == k + 1 {
            classes = k
            nullRow = rows == k + 1
        } else if let (k, path) = context.modelZooParameter("num_classes", hidden: hidden), k >= 0, rows == k || rows == k + 1 {
            // The Model Zoo trainer's recorded parameters say K.
            classes = k
            nullRow = rows == k + 1
            context.origins["num_classes"] = "\(context.checkpoint.path): \(path)"
        } else if rows >= 1, (rows - 1) % 10 == 0 {
            classes = rows - 1
            nullRow = true
            context.assumptions.append(Assumption(
                field: "num_classes", value: "\(classes) + null row", basis: "\(rows) label rows, one more than a round number"))
        } else {
            classes = rows
            nullRow = false
            context.assumptions.append(Assumption(field: "num_classes", value: "\(classes), no null row", basis: "\(rows) label rows"))
        }
        // Input size: a stored position table, diffusers' sample_size, or the option.
        var inputSize: Int?
        if let s = options.inputSize {
            inputSize = s
            context.origins["input_size"] = options.name(of: "inputSize")
        } else if context.has("pos_embed") {
            // Stored as (1, T, D), or as (T, D) where the layout's table says it stores another shape.
            let rank = context.layout.storedShapes["pos_embed"] == nil ? 3 : 2
            inputSize = gridSide(try context.dim("pos_embed", rank - 2, rank: rank)).map { $0 * p }
        } else if let s = try context.configInt("sample_size") {
            inputSize = s
            context.origins["input_size"] = "\(configFile): sample_size"
        }
        guard let inputSize else {
            throw ModelError.sizeNeeded(
                path: path, field: "input_size",
                reason: "no position table is stored and no config gives sample_size (32 for 256 px, 64 for 512 px)")
        }
        // Heads cannot be read from weights.
        let heads = try context.headCount(hidden: hidden, presetHeads: Preset.heads(forHiddenSize: hidden), headDimensions: [64])
        var config = DiTConfig(
            hiddenSize: hidden, depth: context.depth, numHeads: heads, patchSize: p, inChannels: channels, outChannels: outChannels,
            numClasses: classes, hasNullClass: nullRow, mlpHidden: mlp, inputSize: inputSize)
        if context.has("t_embed.fc1.weight") {
            config.frequencyEmbeddingSize = try context.dim("t_embed.fc1.weight", 1, rank: 2)
            context.origins["frequency_embedding_size"] = "\(context.storedName("t_embed.fc1.weight")) dim 1"
        }
        // Diffusion steps: the rows of a stored timestep table, else the length of a stored schedule table (the
        // Model Zoo's num_diffusion_steps); 1000 when neither is stored (nothing then depends on it).
        if context.has("t_embed.table") {
            config.diffusionSteps = try context.dim("t_embed.table", 0, rank: 2)
            context.origins["diffusion_steps"] = "\(context.storedName("t_embed.table")) dim 0"
        } else if context.has("diffusion.sqrt_alphas_cumprod") {
            config.diffusionSteps = try context.dim("diffusion.sqrt_alphas_cumprod", 0, rank: 1)
            context.origins["diffusion_steps"] = "\(context.storedName("diffusion.sqrt_alphas_cumprod")) dim 0"
        }
        try numerics[context.layout.id]?(&config, &context)
        try config.validate(origin: path, names: context.origins)

        // A component config's other sizes must agree with the weights.
        var disagreements: [String] = []
        if let h = try context.configInt("attention_head_dim") {
            let (product, overflow) = h.multipliedReportingOverflow(by: heads)
            if overflow || product != hidden {
                disagreements.append("attention_head_dim = \(h) × \(heads) heads ≠ hidden size \(hidden) of \(patchName)")
            }
        }
        let agreeing: [(String, Int, String)] = [
            ("num_layers", context.depth, "transformer blocks present"), ("patch_size", p, "patch of \(patchName)"),
            ("in_channels", channels, "channels of \(patchName)"), ("out_channels", outChannels, "rows of \(headName) / p²"),
        ]
        for (key, actual, what) in agreeing {
            if let v = try context.configInt(key), v != actual { disagreements.append("\(key) = \(v) but the weights have \(actual) (\(what))") }
        }
        guard disagreements.isEmpty else { throw ModelError.invalidConfig(origin: configFile, problems: disagreements) }
        return config
    }

    /// Each layout's numeric semantics: what its code computes differently.
    static let numerics: [Layout: @Sendable (inout DiTConfig, inout InferenceContext<DiTFamily>) throws -> Void] = [
        .original: { config, context in
            config.posEmbed = context.has("pos_embed") ? .stored : .computed
        },
        .diffusers: { config, context in
            config.timestepShift = 1
            config.posEmbed = .computed
            if let (json, file) = context.componentConfig, let value = json["norm_eps"], value != .null {
                guard let eps = value.doubleValue else {
                    throw ModelError.invalidConfig(origin: file, problems: ["norm_eps = \(value.serialized().prefix(40)) is not a number"])
                }
                config.mlpNormEps = eps
                context.origins["norm_eps.mlp"] = "\(file): norm_eps"
            } else {
                config.mlpNormEps = 1e-5
                context.assume(
                    "norm_eps.mlp", "1e-5", basis: "diffusers' default (config.json has no norm_eps)",
                    note: "config.json has no norm_eps (an older diffusers config): the MLP norm eps is diffusers' default 1e-5")
            }
            if context.componentConfig?.json["activation_fn"]?.stringValue == "gelu" { config.gelu = .erf }
        },
        .cerebras: { config, _ in
            config.gelu = .erf
            config.outputHead = .convTranspose
            config.timestepInput = .table
            config.posEmbed = .stored
        },
    ]

    static func gridSide(_ tokens: Int) -> Int? {
        guard tokens >= 0 else { return nil }
        let side = Int(Double(tokens).squareRoot().rounded())
        let (square, overflow) = side.multipliedReportingOverflow(by: side)
        return !overflow && square == tokens ? side : nil
    }
}
