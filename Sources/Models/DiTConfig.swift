import Checkpoints

/// Every number that fixes a DiT's function: sizes, and each numeric choice on which the sources differ.
///
/// Serialised as the `ditkit.config` metadata of a canonical file (`schemas/model-config.schema.json`).
public struct DiTConfig: Sendable, Equatable {
    public enum GELU: String, Sendable { case tanh, erf }
    public enum OutputHead: String, Sendable {
        /// Linear (p²·Cout, D) then unpatchify (original, diffusers).
        case linear
        /// ConvTranspose2d(kernel = stride = p), one bias per channel (Cerebras). The same function as a
        /// linear head whose bias repeats over patch positions.
        case convTranspose = "conv_transpose"
    }
    public enum PosEmbed: String, Sendable {
        /// Stored in the checkpoint (original, Cerebras).
        case stored
        /// Recomputed from the grid (diffusers); bit-identical to the original's table at 256 and 512 px.
        case computed
    }
    public enum TimestepInput: String, Sendable {
        /// The sinusoid is computed from the (float) timestep.
        case sinusoid
        /// Integer timesteps index a frozen table of sinusoids (Cerebras).
        case table
    }

    public var family = "dit"
    public var hiddenSize: Int
    public var depth: Int
    public var numHeads: Int
    public var patchSize: Int
    public var inChannels: Int
    public var outChannels: Int
    public var numClasses: Int
    /// The label table has a row for the null class (id = numClasses), used for classifier-free guidance.
    public var hasNullClass: Bool
    public var mlpHidden: Int
    /// Latent size S (image size / 8).
    public var inputSize: Int
    public var frequencyEmbeddingSize = 256
    /// Timestep frequencies exp(−ln(maxPeriod)·k/(half − shift)): 0 original and Cerebras, 1 diffusers.
    public var timestepShift: Int
    public var maxPeriod: Double = 10000
    public var timestepInput: TimestepInput = .sinusoid
    /// LayerNorm eps before attention, before the MLP, and in the final layer.
    public var attentionNormEps: Double = 1e-6
    public var mlpNormEps: Double = 1e-6
    public var finalNormEps: Double = 1e-6
    public var gelu: GELU = .tanh
    public var outputHead: OutputHead = .linear
    public var posEmbed: PosEmbed = .stored
    /// Layout the weights came from (`original`, `diffusers`, `cerebras`), for reports.
    public var source: String?

    public init(
        hiddenSize: Int, depth: Int, numHeads: Int, patchSize: Int, inChannels: Int = 4, outChannels: Int = 8,
        numClasses: Int = 1000, hasNullClass: Bool = true, mlpHidden: Int? = nil, inputSize: Int = 32,
        timestepShift: Int = 0
    ) {
        self.hiddenSize = hiddenSize
        self.depth = depth
        self.numHeads = numHeads
        self.patchSize = patchSize
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.numClasses = numClasses
        self.hasNullClass = hasNullClass
        self.mlpHidden = mlpHidden ?? 4 * hiddenSize
        self.inputSize = inputSize
        self.timestepShift = timestepShift
    }

    public var learnSigma: Bool { outChannels == 2 * inChannels }
    public var headDim: Int { hiddenSize / max(numHeads, 1) }
    public var gridSize: Int { inputSize / max(patchSize, 1) }
    public var tokens: Int { gridSize * gridSize }
    public var labelRows: Int { numClasses + (hasNullClass ? 1 : 0) }

    /// The original DiT semantics (facebookresearch): shift 0, eps 1e-6, tanh GELU, stored pos_embed.
    public func withOriginalSemantics() -> DiTConfig {
        var c = self
        c.timestepShift = 0
        c.attentionNormEps = 1e-6
        c.mlpNormEps = 1e-6
        c.finalNormEps = 1e-6
        c.gelu = .tanh
        c.timestepInput = .sinusoid
        return c
    }

    /// diffusers' DiT numerics: timestep shift 1, MLP norm eps 1e-5 (its default `norm_eps`), the rest as the original.
    public func withDiffusersSemantics() -> DiTConfig {
        var c = withOriginalSemantics()
        c.timestepShift = 1
        c.mlpNormEps = 1e-5
        return c
    }

    /// These sizes with the numerics of `other` (shift, max period, each eps, GELU, timestep input), so two models
    /// can be run with the same numerics. A timestep table is used only when this model has one.
    public func withNumerics(of other: DiTConfig) -> DiTConfig {
        var c = self
        c.timestepShift = other.timestepShift
        c.maxPeriod = other.maxPeriod
        c.attentionNormEps = other.attentionNormEps
        c.mlpNormEps = other.mlpNormEps
        c.finalNormEps = other.finalNormEps
        c.gelu = other.gelu
        if other.timestepInput == .sinusoid || timestepInput == .table { c.timestepInput = other.timestepInput }
        return c
    }

    /// Checks the sizes fit together; returns the problems found.
    public func problems() -> [String] {
        var out: [String] = []
        if hiddenSize <= 0 || depth <= 0 || patchSize <= 0 || inChannels <= 0 || outChannels <= 0 { out.append("sizes must be positive") }
        if numHeads <= 0 || hiddenSize % max(numHeads, 1) != 0 { out.append("hidden size \(hiddenSize) is not a multiple of \(numHeads) heads") }
        if hiddenSize % 4 != 0 { out.append("hidden size \(hiddenSize) must be a multiple of 4 for the 2-D sin-cos position table") }
        if inputSize % max(patchSize, 1) != 0 { out.append("input size \(inputSize) is not a multiple of patch size \(patchSize)") }
        if timestepShift != 0 && timestepShift != 1 { out.append("timestep shift must be 0 or 1") }
        if frequencyEmbeddingSize % 2 != 0 { out.append("frequency embedding size must be even") }
        return out
    }

    // MARK: JSON

    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("family", .string(family)), ("hidden_size", .int(hiddenSize)), ("depth", .int(depth)),
            ("num_heads", .int(numHeads)), ("patch_size", .int(patchSize)), ("in_channels", .int(inChannels)),
            ("out_channels", .int(outChannels)), ("learn_sigma", .bool(learnSigma)), ("num_classes", .int(numClasses)),
            ("null_class_row", .bool(hasNullClass)), ("mlp_hidden", .int(mlpHidden)), ("input_size", .int(inputSize)),
            ("frequency_embedding_size", .int(frequencyEmbeddingSize)), ("timestep_shift", .int(timestepShift)),
            ("max_period", .double(maxPeriod)), ("timestep_input", .string(timestepInput.rawValue)),
            ("norm_eps", .object([
                ("attention", .double(attentionNormEps)), ("mlp", .double(mlpNormEps)), ("final", .double(finalNormEps)),
            ])),
            ("gelu", .string(gelu.rawValue)), ("output_head", .string(outputHead.rawValue)),
            ("pos_embed", .string(posEmbed.rawValue)),
        ]
        if let source { pairs.append(("source_layout", .string(source))) }
        return .object(pairs)
    }

    /// Reads a config written by `json`. Throws a message naming the missing or wrong field.
    public init(json: JSONValue) throws {
        func int(_ key: String) throws -> Int {
            guard let v = json[key]?.intValue else { throw ModelError.config("field \(key) is missing or not an integer") }
            return v
        }
        func string(_ key: String) throws -> String {
            guard let v = json[key]?.stringValue else { throw ModelError.config("field \(key) is missing or not a string") }
            return v
        }
        guard (json["family"]?.stringValue ?? "dit") == "dit" else {
            throw ModelError.config("family \(json["family"]?.stringValue ?? "?") is not dit")
        }
        self.init(
            hiddenSize: try int("hidden_size"), depth: try int("depth"), numHeads: try int("num_heads"),
            patchSize: try int("patch_size"), inChannels: try int("in_channels"), outChannels: try int("out_channels"),
            numClasses: try int("num_classes"), hasNullClass: json["null_class_row"]?.boolValue ?? true,
            mlpHidden: try int("mlp_hidden"), inputSize: try int("input_size"), timestepShift: try int("timestep_shift"))
        frequencyEmbeddingSize = json["frequency_embedding_size"]?.intValue ?? 256
        maxPeriod = json["max_period"]?.doubleValue ?? 10000
        timestepInput = TimestepInput(rawValue: json["timestep_input"]?.stringValue ?? "sinusoid") ?? .sinusoid
        attentionNormEps = json["norm_eps"]?["attention"]?.doubleValue ?? 1e-6
        mlpNormEps = json["norm_eps"]?["mlp"]?.doubleValue ?? 1e-6
        finalNormEps = json["norm_eps"]?["final"]?.doubleValue ?? 1e-6
        guard let g = GELU(rawValue: try string("gelu")) else { throw ModelError.config("gelu must be tanh or erf") }
        gelu = g
        guard let h = OutputHead(rawValue: try string("output_head")) else { throw ModelError.config("output_head must be linear or conv_transpose") }
        outputHead = h
        guard let p = PosEmbed(rawValue: try string("pos_embed")) else { throw ModelError.config("pos_embed must be stored or computed") }
        posEmbed = p
        source = json["source_layout"]?.stringValue
    }
}

/// Failures of the model layer: configs that cannot be inferred, names that do not map.
public enum ModelError: Error, CustomStringConvertible, Sendable {
    case config(String)
    case mapping(path: String, problems: [String])
    case unknownPreset(String)
    case lossy(String)

    public var description: String {
        switch self {
        case .config(let message): return "config: \(message)"
        case .mapping(let path, let problems):
            let shown = problems.prefix(12).map { "  " + $0 }.joined(separator: "\n")
            let more = problems.count > 12 ? "\n  … and \(problems.count - 12) more" : ""
            return "\(path): the tensor names do not map:\n\(shown)\(more)"
        case .unknownPreset(let name): return "unknown preset '\(name)' (see `ditkit params` for the list)"
        case .lossy(let message): return message
        }
    }
}
