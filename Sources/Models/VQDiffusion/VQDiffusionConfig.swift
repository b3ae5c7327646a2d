import Checkpoints
import Tensors

/// Every number that fixes a VQ-Diffusion transformer's function (microsoft/VQ-Diffusion `Text2ImageTransformer`,
/// diffusers' `Transformer2DModel` with vectorized input): sizes, and each numeric choice on which the sources differ.
///
/// Serialised as the `ditkit.config` metadata of a canonical file (`schemas/model-config.schema.json`, family
/// `vq-diffusion`).
public struct VQDiffusionConfig: FamilyConfig {
    /// VQ-Diffusion transformer configs belong to ``VQDiffusionFamily``.
    public typealias Family = VQDiffusionFamily

    /// The MLP's activation.
    public enum Activation: String, Sendable {
        /// x·sigmoid(1.702·x): the original's `GELU2`, diffusers' `ApproximateGELU` (its "geglu-approximate", not gated).
        case sigmoidGELU = "sigmoid_gelu"
        /// The exact erf GELU (diffusers' `gelu`).
        case erfGELU = "erf_gelu"
        /// The tanh approximation (diffusers' `gelu-approximate`).
        case tanhGELU = "tanh_gelu"
    }

    /// What the model returns.
    public enum Output: String, Sendable {
        /// log_softmax over the codes, computed in float64, returned as float32 (diffusers): (N, codes, L).
        case logProbs = "log_probs"
        /// The same, then a row of −70 appended for the mask class and everything clamped to [−70, 0] (the original's
        /// `predict_start`): (N, codes + 1, L).
        case logProbsMaskRow = "log_probs_mask_row"
    }

    /// What the adaptive norms do with a timestep at or past `diffusionSteps`.
    public enum LateTimesteps: String, Sendable {
        /// Refused (diffusers indexes its table and fails).
        case refuse
        /// The mean of the norm's embedding table is used for the sample (the original's AdaLayerNorm).
        case meanEmbedding = "mean_embedding"
    }

    /// The family name written to the `family` field of the JSON (`vq-diffusion`).
    public var family = "vq-diffusion"
    /// Transformer blocks.
    public var depth: Int
    /// Hidden size D: the width of every token.
    public var hiddenSize: Int
    /// Attention heads (self- and cross-attention); they divide D into heads of `headDim`.
    public var numHeads: Int
    /// Width of each context token (CLIP ViT-B/32 text: 512).
    public var contextDim: Int
    /// Context tokens per sample (CLIP: 77).
    public var contextLength: Int
    /// Codebook entries of the VQ-VAE (4096); the token id `codes` is the mask token, which has an embedding row
    /// (diffusers' `num_vector_embeds` = codes + 1).
    public var codes: Int
    /// Latent rows (diffusers' `height`/`sample_size`).
    public var height: Int
    /// Latent columns.
    public var width: Int
    /// Diffusion steps: the rows of every adaptive norm's timestep table (diffusers' `num_embeds_ada_norm`).
    public var diffusionSteps: Int
    /// Hidden width of each block's MLP (4·D in published models).
    public var mlpHidden: Int
    /// The MLP's activation.
    public var activation: Activation = .sigmoidGELU
    /// LayerNorm eps of the adaptive norms (norm1, norm2): 1e-5 in both sources whatever diffusers' `norm_eps` says.
    public var adaNormEps: Double = 1e-5
    /// LayerNorm eps of the affine norm before the MLP (norm3; diffusers' `norm_eps`).
    public var ffNormEps: Double = 1e-5
    /// LayerNorm eps of the affine output norm.
    public var outNormEps: Double = 1e-5
    /// What the model returns.
    public var output: Output = .logProbs
    /// What the adaptive norms do with a timestep at or past `diffusionSteps`.
    public var lateTimesteps: LateTimesteps = .refuse
    /// Layout the weights came from (`original`, `diffusers`), for reports.
    public var sourceLayout: Layout?

    /// A config of these sizes with diffusers' numerics; `mlpHidden` defaults to 4·`hiddenSize`. Not validated: call
    /// ``FamilyConfig/validate(origin:names:)``.
    public init(
        depth: Int, hiddenSize: Int, numHeads: Int, contextDim: Int = 512, contextLength: Int = 77, codes: Int = 4096,
        height: Int = 32, width: Int = 32, diffusionSteps: Int = 100, mlpHidden: Int? = nil
    ) {
        self.depth = depth
        self.hiddenSize = hiddenSize
        self.numHeads = numHeads
        self.contextDim = contextDim
        self.contextLength = contextLength
        self.codes = codes
        self.height = height
        self.width = width
        self.diffusionSteps = diffusionSteps
        self.mlpHidden = mlpHidden ?? 4 * hiddenSize
    }

    /// Sizes in one line, for reports and error messages.
    public var summary: String {
        "D=\(hiddenSize), depth \(depth), \(numHeads) heads, context \(contextLength)×\(contextDim), \(codes) codes + mask, "
            + "latent \(height)×\(width), \(diffusionSteps) steps, MLP \(mlpHidden)"
    }

    /// Width of one attention head (D / heads).
    public var headDim: Int { hiddenSize / max(numHeads, 1) }
    /// Latent tokens per sample (height · width).
    public var tokens: Int { height * width }
    /// Rows of the token embedding: the codes and the mask token (diffusers' `num_vector_embeds`).
    public var vectorEmbeds: Int { codes + 1 }
    /// Rows of the output per token: the codes, plus the mask row under the original's output.
    public var outputRows: Int { codes + (output == .logProbsMaskRow ? 1 : 0) }

    /// The original's numerics (microsoft/VQ-Diffusion): the −70 mask row and clamp, the mean table for late timesteps.
    public func withOriginalSemantics() -> VQDiffusionConfig {
        var c = self
        c.output = .logProbsMaskRow
        c.lateTimesteps = .meanEmbedding
        return c
    }

    /// diffusers' numerics: log-probabilities over the codes only, late timesteps refused.
    public func withDiffusersSemantics() -> VQDiffusionConfig {
        var c = self
        c.output = .logProbs
        c.lateTimesteps = .refuse
        return c
    }

    /// These sizes with the numerics of `other` (activation, every eps, output form, late timesteps).
    public func withNumerics(of other: VQDiffusionConfig) -> VQDiffusionConfig {
        var c = self
        c.activation = other.activation
        c.adaNormEps = other.adaNormEps
        c.ffNormEps = other.ffNormEps
        c.outNormEps = other.outNormEps
        c.output = other.output
        c.lateTimesteps = other.lateTimesteps
        return c
    }

    /// Every numeric field with its range, as the schema states them.
    static let ranges: [ConfigRange<VQDiffusionConfig>] = {
        let size = Double(VQLimits.maxSize)
        typealias R = ConfigRange<VQDiffusionConfig>
        return [
            R("depth", 1, Double(VQLimits.maxDepth)) { Double($0.depth) },
            R("hidden_size", 1, size) { Double($0.hiddenSize) },
            R("num_heads", 1, size) { Double($0.numHeads) },
            R("context_dim", 1, size) { Double($0.contextDim) },
            R("context_length", 1, size) { Double($0.contextLength) },
            R("codes", 1, size) { Double($0.codes) },
            R("height", 1, size) { Double($0.height) },
            R("width", 1, size) { Double($0.width) },
            R("diffusion_steps", 1, size) { Double($0.diffusionSteps) },
            R("mlp_hidden", 1, 4 * size) { Double($0.mlpHidden) },
            R("norm_eps.ada", 0, 1, exclusive: true) { $0.adaNormEps },
            R("norm_eps.ff", 0, 1, exclusive: true) { $0.ffNormEps },
            R("norm_eps.out", 0, 1, exclusive: true) { $0.outNormEps },
        ]
    }()

    /// Every problem of this config: each field outside its range, heads that do not divide D, and tensor and
    /// activation sizes past the limits (overflow-checked). `names` renames fields for sources that call them otherwise.
    public func problems(names: [String: String] = [:]) -> [String] {
        func name(_ key: String) -> String { names[key].map { "\($0) (\(key))" } ?? key }
        var out = Self.ranges.compactMap { $0.problem(self, name: name) }
        guard out.isEmpty else { return out }
        if hiddenSize % numHeads != 0 {
            out.append("\(name("num_heads")) = \(numHeads) does not divide \(name("hidden_size")) = \(hiddenSize) (attention splits D into equal heads)")
        }
        var total = 0
        for spec in VQDiffusionFamily.canonical {
            let count = (try? checkedElementCount(spec.shape(self))) ?? Int.max
            if count > VQLimits.maxElements {
                out.append("\(spec.template) would have shape \(spec.shape(self)), over the \(VQLimits.maxElements) elements a tensor may hold")
            }
            total = Checked.saturatingAdd(total, Checked.saturatingMultiply(count, spec.perBlock ? depth : 1))
        }
        let width = max(3 * hiddenSize, mlpHidden, codes + 1)
        let rows = max(Checked.saturatingMultiply(height, width), contextLength)
        if out.isEmpty, ((try? checkedElementCount([rows, width])) ?? Int.max) > VQLimits.maxElements
            || ((try? checkedElementCount([height, width, height, width])) ?? Int.max) > VQLimits.maxElements {
            out.append("\(name("height")) × \(name("width")) = \(height)×\(width) tokens exceed the \(VQLimits.maxElements) activations a sample may hold")
        }
        if out.isEmpty, total > VQLimits.maxElements { out.append("the model would hold more than \(VQLimits.maxElements) parameters") }
        return out
    }

    // MARK: JSON

    /// The config as JSON (`schemas/model-config.schema.json`), `family` included.
    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("family", .string(family)), ("depth", .int(depth)), ("hidden_size", .int(hiddenSize)), ("num_heads", .int(numHeads)),
            ("context_dim", .int(contextDim)), ("context_length", .int(contextLength)), ("codes", .int(codes)),
            ("height", .int(height)), ("width", .int(width)), ("diffusion_steps", .int(diffusionSteps)),
            ("mlp_hidden", .int(mlpHidden)), ("activation", .string(activation.rawValue)),
            ("norm_eps", .object([("ada", .double(adaNormEps)), ("ff", .double(ffNormEps)), ("out", .double(outNormEps))])),
            ("output", .string(output.rawValue)), ("late_timesteps", .string(lateTimesteps.rawValue)),
        ]
        if let sourceLayout { pairs.append(("source_layout", .string(sourceLayout.rawValue))) }
        return .object(pairs)
    }

    /// Reads and validates a config written by `json`; errors name `origin`, the field and what is allowed.
    public init(json: JSONValue, origin: String = "ditkit.config") throws {
        let r = try ConfigJSONReader(json, origin: origin, family: "vq-diffusion", known: [
            "depth", "hidden_size", "num_heads", "context_dim", "context_length", "codes", "height", "width",
            "diffusion_steps", "mlp_hidden", "activation", "norm_eps", "output", "late_timesteps",
        ])
        self.init(
            depth: try r.int("depth"), hiddenSize: try r.int("hidden_size"), numHeads: try r.int("num_heads"),
            contextDim: try r.int("context_dim"), contextLength: try r.int("context_length"), codes: try r.int("codes"),
            height: try r.int("height"), width: try r.int("width"), diffusionSteps: try r.int("diffusion_steps"),
            mlpHidden: try r.int("mlp_hidden"))
        activation = try r.choice("activation", default: Activation.sigmoidGELU)
        let eps = try r.object("norm_eps", known: ["ada", "ff", "out"])
        adaNormEps = try r.number("ada", in: eps, default: 1e-5)
        ffNormEps = try r.number("ff", in: eps, default: 1e-5)
        outNormEps = try r.number("out", in: eps, default: 1e-5)
        output = try r.choice("output", default: Output.logProbs)
        lateTimesteps = try r.choice("late_timesteps", default: LateTimesteps.refuse)
        sourceLayout = try r.sourceLayout(allowed: ["original", "diffusers", "unknown"])
        try validate(origin: origin)
    }
}
