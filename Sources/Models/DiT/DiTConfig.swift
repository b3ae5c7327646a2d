import Checkpoints
import Tensors

/// Every number that fixes a DiT's function: sizes, and each numeric choice on which the sources differ.
///
/// Serialised as the `ditkit.config` metadata of a canonical file (`schemas/model-config.schema.json`).
public struct DiTConfig: FamilyConfig {
    /// DiT configs belong to ``DiTFamily``.
    public typealias Family = DiTFamily

    /// The GELU form of the MLP: the tanh approximation (original) or the exact erf form (Cerebras, diffusers' `gelu`).
    public enum GELU: String, Sendable { case tanh, erf }
    /// How the final layer maps tokens back to patches.
    public enum OutputHead: String, Sendable {
        /// Linear (p²·Cout, D) then unpatchify (original, diffusers).
        case linear
        /// ConvTranspose2d(kernel = stride = p), one bias per channel (Cerebras). The same function as a
        /// linear head whose bias repeats over patch positions.
        case convTranspose = "conv_transpose"
    }
    /// Where the 2-D sin-cos position table comes from.
    public enum PosEmbed: String, Sendable {
        /// Stored in the checkpoint (original, Cerebras).
        case stored
        /// Recomputed from the grid (diffusers); bit-identical to the original's table at 256 and 512 px.
        case computed
    }
    /// How the timestep reaches the timestep embedder's MLP.
    public enum TimestepInput: String, Sendable {
        /// The sinusoid is computed from the (float) timestep.
        case sinusoid
        /// Integer timesteps index a frozen table of sinusoids (Cerebras).
        case table
    }

    /// The family name written to the `family` field of the JSON (`dit`).
    public var family = "dit"
    /// Hidden size D: the width of every token.
    public var hiddenSize: Int
    /// Transformer blocks.
    public var depth: Int
    /// Attention heads; they divide D into heads of `headDim`.
    public var numHeads: Int
    /// Patch side p, in latent pixels (the patch embedder is a p×p convolution with stride p).
    public var patchSize: Int
    /// Latent channels C of the input (4 for the SD VAE).
    public var inChannels: Int
    /// Output channels: C, or 2C when the model also predicts the variance (`learnSigma`).
    public var outChannels: Int
    /// Classes of the label embedding, the null class excluded.
    public var numClasses: Int
    /// The label table has a row for the null class (id = numClasses), used for classifier-free guidance.
    public var hasNullClass: Bool
    /// Hidden width of each block's MLP (4·D in published models).
    public var mlpHidden: Int
    /// Latent size S (image size / 8).
    public var inputSize: Int
    /// Width of the sinusoid the timestep embedder's MLP reads (256).
    public var frequencyEmbeddingSize = 256
    /// Diffusion steps T (1000): the rows of a stored timestep table and the length of the diffusion schedule
    /// tables (the Cerebras Model Zoo's `num_diffusion_steps`); integer timesteps lie in 0…T−1. Written to the JSON
    /// only when it is not 1000.
    public var diffusionSteps = 1000
    /// Timestep frequencies exp(−ln(maxPeriod)·k/(half − shift)): 0 original and Cerebras, 1 diffusers.
    public var timestepShift: Int
    /// The longest period of the timestep sinusoid (10000).
    public var maxPeriod: Double = 10000
    /// Whether the sinusoid is computed from the timestep or looked up in a frozen table.
    public var timestepInput: TimestepInput = .sinusoid
    /// LayerNorm eps before attention, before the MLP, and in the final layer.
    public var attentionNormEps: Double = 1e-6
    /// LayerNorm eps before the MLP (diffusers: its config's `norm_eps`, default 1e-5).
    public var mlpNormEps: Double = 1e-6
    /// LayerNorm eps of the final layer.
    public var finalNormEps: Double = 1e-6
    /// The MLP's GELU form.
    public var gelu: GELU = .tanh
    /// The output head's arrangement.
    public var outputHead: OutputHead = .linear
    /// Whether the position table is stored or recomputed.
    public var posEmbed: PosEmbed = .stored
    /// Layout the weights came from (`original`, `diffusers`, `cerebras`), for reports.
    public var sourceLayout: Layout?

    /// Sizes in one line, for reports and error messages.
    public var summary: String {
        "D=\(hiddenSize), depth \(depth), \(numHeads) heads, patch \(patchSize), \(inChannels)→\(outChannels) channels, "
            + "\(numClasses) classes\(hasNullClass ? " + null" : ""), MLP \(mlpHidden), input \(inputSize)"
            + (diffusionSteps == 1000 ? "" : ", \(diffusionSteps) diffusion steps")
    }

    /// A config of these sizes with the original DiT's numerics; `mlpHidden` defaults to 4·`hiddenSize`. Not validated:
    /// call ``FamilyConfig/validate(origin:names:)``.
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

    /// Whether the model predicts the variance too (`outChannels` == 2·`inChannels`).
    public var learnSigma: Bool { outChannels == 2 * inChannels }
    /// Width of one attention head (D / heads).
    public var headDim: Int { hiddenSize / max(numHeads, 1) }
    /// Patches per side of the latent (`inputSize` / p).
    public var gridSize: Int { inputSize / max(patchSize, 1) }
    /// Tokens per sample (`gridSize`²).
    public var tokens: Int { gridSize * gridSize }
    /// Rows of the label table: `numClasses`, plus one for the null class when it has one.
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

    /// Every problem of this config: each field outside its range (`DiTConfig.fields`, the ranges of
    /// `schemas/model-config.schema.json`), then the rules that tie fields together (heads divide D, the patch
    /// divides the input, Cout is C or 2C, …) and the sizes of every tensor and activation row, computed
    /// overflow-checked. Each line names the field, its value and what is allowed; `names` renames fields for
    /// configs that call them otherwise (diffusers' `sample_size`, a command-line option).
    public func problems(names: [String: String] = [:]) -> [String] {
        func name(_ key: String) -> String { names[key].map { "\($0) (\(key))" } ?? key }
        var out: [String] = []
        for field in DiTConfig.fields {
            let value = field.value(self)
            if !field.contains(value) { out.append("\(name(field.key)) = \(DiTConfig.format(value)) is outside \(field.allowed)") }
        }
        guard out.isEmpty else { return out }  // the rules below divide by fields now known to be positive
        if hiddenSize % numHeads != 0 {
            out.append("\(name("num_heads")) = \(numHeads) does not divide \(name("hidden_size")) = \(hiddenSize) (attention splits D into equal heads)")
        }
        if hiddenSize % 4 != 0 {
            out.append("\(name("hidden_size")) = \(hiddenSize) is not a multiple of 4 (the 2-D sin-cos position table needs D/4 frequencies)")
        }
        if inputSize % patchSize != 0 {
            out.append("\(name("patch_size")) = \(patchSize) does not divide \(name("input_size")) = \(inputSize)")
        }
        if outChannels != inChannels && outChannels != 2 * inChannels {
            out.append("\(name("out_channels")) = \(outChannels) must be \(name("in_channels")) = \(inChannels) or twice it (learned sigma)")
        }
        if frequencyEmbeddingSize % 2 != 0 {
            out.append("\(name("frequency_embedding_size")) = \(frequencyEmbeddingSize) must be even ([cos | sin] halves)")
        }
        if frequencyEmbeddingSize / 2 <= timestepShift {
            out.append("\(name("frequency_embedding_size")) = \(frequencyEmbeddingSize) leaves no frequency for \(name("timestep_shift")) = \(timestepShift) (half − shift must be positive)")
        }
        if labelRows < 1 { out.append("\(name("num_classes")) = 0 without a null-class row leaves the label table empty") }
        // Every tensor's size and the parameter total, and one sample's widest activation matrix, overflow-checked.
        var total = 0
        for spec in DiTFamily.canonical {
            let shape = spec.shape(self)
            let count = (try? checkedElementCount(shape)) ?? Int.max
            if count > DiTConfig.maxElements {
                out.append("\(spec.template) would have shape \(shape), over the \(DiTConfig.maxElements) elements a tensor may hold")
            }
            total = Checked.saturatingAdd(total, Checked.saturatingMultiply(count, spec.perBlock ? depth : 1))
        }
        let headWidth = (try? checkedElementCount([patchSize, patchSize, outChannels])) ?? Int.max
        let width = max(3 * hiddenSize, mlpHidden, headWidth)
        if out.isEmpty, ((try? checkedElementCount([tokens, width])) ?? Int.max) > DiTConfig.maxElements {
            out.append("\(name("input_size")) = \(inputSize) with \(name("patch_size")) = \(patchSize) gives \(tokens) tokens: "
                + "× width \(width) exceeds the \(DiTConfig.maxElements) activations a sample may hold")
        }
        if out.isEmpty, total > DiTConfig.maxElements {
            out.append("the model would hold more than \(DiTConfig.maxElements) parameters")
        }
        return out
    }

    /// Largest size any config field may take (2^20 = 1,048,576): 512× the widest published DiT (D = 2048),
    /// and small enough that products of a few sizes cannot overflow before they are checked.
    public static let maxSize = 1 << 20
    /// Most transformer blocks a config may declare (published DiTs have at most 30); a model's depth must also
    /// equal the blocks its file holds.
    public static let maxDepth = 4096
    /// Most elements one tensor, or one sample's activation matrix, may hold (2^40): sizes past this cannot come
    /// from a real file and would overflow byte counts once multiplied by a batch and a dtype size.
    public static let maxElements = 1 << 40

    /// The allowed range of one config field; `schemas/model-config.schema.json` states the same ranges (a test
    /// keeps the two in sync).
    public struct Field: Sendable {
        /// The schema key (`norm_eps.mlp` for a nested one).
        public let key: String
        /// Smallest allowed value (excluded when `exclusiveMinimum`).
        public let minimum: Double
        /// Largest allowed value (included).
        public let maximum: Double
        /// The minimum itself is excluded (eps must be positive).
        public let exclusiveMinimum: Bool
        let value: @Sendable (DiTConfig) -> Double

        /// Whether `v` is within the range.
        public func contains(_ v: Double) -> Bool {
            (exclusiveMinimum ? v > minimum : v >= minimum) && v <= maximum
        }

        /// The range as text: `1…1048576`, or `> 0 and ≤ 1`.
        public var allowed: String {
            exclusiveMinimum ? "> \(DiTConfig.format(minimum)) and ≤ \(DiTConfig.format(maximum))"
                : "\(DiTConfig.format(minimum))…\(DiTConfig.format(maximum))"
        }
    }

    /// Every numeric field with its range, as the schema states them.
    public static let fields: [Field] = {
        let size = Double(maxSize)
        func field(_ key: String, _ minimum: Double, _ maximum: Double, exclusive: Bool = false, _ value: @escaping @Sendable (DiTConfig) -> Double) -> Field {
            Field(key: key, minimum: minimum, maximum: maximum, exclusiveMinimum: exclusive, value: value)
        }
        return [
            field("hidden_size", 1, size) { Double($0.hiddenSize) },
            field("depth", 1, Double(maxDepth)) { Double($0.depth) },
            field("num_heads", 1, size) { Double($0.numHeads) },
            field("patch_size", 1, size) { Double($0.patchSize) },
            field("in_channels", 1, size) { Double($0.inChannels) },
            field("out_channels", 1, 2 * size) { Double($0.outChannels) },
            field("num_classes", 0, size) { Double($0.numClasses) },
            field("mlp_hidden", 1, 4 * size) { Double($0.mlpHidden) },
            field("input_size", 1, size) { Double($0.inputSize) },
            field("frequency_embedding_size", 2, size) { Double($0.frequencyEmbeddingSize) },
            field("diffusion_steps", 1, size) { Double($0.diffusionSteps) },
            field("timestep_shift", 0, 1) { Double($0.timestepShift) },
            field("max_period", 1, 1e12) { $0.maxPeriod },
            field("norm_eps.attention", 0, 1, exclusive: true) { $0.attentionNormEps },
            field("norm_eps.mlp", 0, 1, exclusive: true) { $0.mlpNormEps },
            field("norm_eps.final", 0, 1, exclusive: true) { $0.finalNormEps },
        ]
    }()

    /// A field value as messages print it: an integer without a fraction, otherwise the shortest round-trip decimal.
    static func format(_ v: Double) -> String { NumberFormat.shortest(v) }

    // MARK: JSON

    /// The config as JSON (`schemas/model-config.schema.json`), `family` included.
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
        if diffusionSteps != 1000 { pairs.insert(("diffusion_steps", .int(diffusionSteps)), at: 13) }
        if let sourceLayout { pairs.append(("source_layout", .string(sourceLayout.rawValue))) }
        return .object(pairs)
    }

    /// Reads and validates a config written by `json` (a canonical file's or a trace's `ditkit.config`). Throws
    /// `ModelError.invalidConfig` naming `origin`, the field, the value found and what is allowed: a missing or
    /// mistyped field, a key the schema does not have, any value outside its range (`problems(names:)`).
    public init(json: JSONValue, origin: String = "ditkit.config") throws {
        func fail(_ problem: String) -> ModelError { ModelError.invalidConfig(origin: origin, problems: [problem]) }
        guard let pairs = json.objectValue else { throw fail("expected a JSON object, found \(json.serialized().prefix(60))") }
        let known: Set<String> = [
            "family", "hidden_size", "depth", "num_heads", "patch_size", "in_channels", "out_channels", "learn_sigma", "num_classes",
            "null_class_row", "mlp_hidden", "input_size", "frequency_embedding_size", "timestep_shift", "max_period",
            "timestep_input", "norm_eps", "gelu", "output_head", "pos_embed", "source_layout", "diffusion_steps",
        ]
        if let unknown = pairs.first(where: { !known.contains($0.0) }) { throw fail("unknown field \(unknown.0)") }
        func int(_ key: String) throws -> Int {
            guard let value = json[key] else { throw fail("field \(key) is missing") }
            guard let v = value.intValue else { throw fail("field \(key) = \(value.serialized().prefix(40)) is not an integer") }
            return v
        }
        func number(_ key: String, in object: JSONValue, default fallback: Double) throws -> Double {
            guard let value = object[key] else { return fallback }
            guard let v = value.doubleValue else { throw fail("field \(key) = \(value.serialized().prefix(40)) is not a number") }
            return v
        }
        func choice<T: RawRepresentable>(_ key: String, default fallback: T? = nil) throws -> T where T.RawValue == String {
            guard let value = json[key] else {
                if let fallback { return fallback }
                throw fail("field \(key) is missing")
            }
            guard let text = value.stringValue, let v = T(rawValue: text) else {
                throw fail("field \(key) = \(value.serialized().prefix(40)) is not one of the allowed strings")
            }
            return v
        }
        func bool(_ key: String) throws -> Bool? {
            guard let value = json[key] else { return nil }
            guard let v = value.boolValue else { throw fail("field \(key) = \(value.serialized().prefix(40)) is not true or false") }
            return v
        }
        guard (json["family"]?.stringValue ?? "dit") == "dit" else {
            throw fail("family \(json["family"]?.serialized() ?? "?") is not dit")
        }
        self.init(
            hiddenSize: try int("hidden_size"), depth: try int("depth"), numHeads: try int("num_heads"),
            patchSize: try int("patch_size"), inChannels: try int("in_channels"), outChannels: try int("out_channels"),
            numClasses: try int("num_classes"), hasNullClass: try bool("null_class_row") ?? true,
            mlpHidden: try int("mlp_hidden"), inputSize: try int("input_size"), timestepShift: try int("timestep_shift"))
        frequencyEmbeddingSize = json["frequency_embedding_size"] == nil ? 256 : try int("frequency_embedding_size")
        diffusionSteps = json["diffusion_steps"] == nil ? 1000 : try int("diffusion_steps")
        maxPeriod = try number("max_period", in: json, default: 10000)
        timestepInput = try choice("timestep_input", default: TimestepInput.sinusoid)
        let eps = json["norm_eps"] ?? .object([])
        guard let epsPairs = eps.objectValue else { throw fail("field norm_eps is not an object") }
        if let unknown = epsPairs.first(where: { !["attention", "mlp", "final"].contains($0.0) }) { throw fail("unknown field norm_eps.\(unknown.0)") }
        attentionNormEps = try number("attention", in: eps, default: 1e-6)
        mlpNormEps = try number("mlp", in: eps, default: 1e-6)
        finalNormEps = try number("final", in: eps, default: 1e-6)
        gelu = try choice("gelu")
        outputHead = try choice("output_head")
        posEmbed = try choice("pos_embed")
        if let value = json["source_layout"] {
            guard let text = value.stringValue, ["original", "diffusers", "cerebras", "unknown"].contains(text) else {
                throw fail("field source_layout = \(value.serialized().prefix(40)) is not original, diffusers, cerebras or unknown")
            }
            sourceLayout = Layout(text)
        }
        try validate(origin: origin)
        if let learned = try bool("learn_sigma"), learned != learnSigma {
            throw fail("learn_sigma = \(learned) contradicts out_channels = \(outChannels) with in_channels = \(inChannels)")
        }
    }
}
