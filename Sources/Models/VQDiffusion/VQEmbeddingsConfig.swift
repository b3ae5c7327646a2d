import Checkpoints
import Tensors

/// The learned classifier-free sampling embeddings of VQ-Diffusion: the context used for the unconditional half of
/// classifier-free guidance (diffusers' `LearnedClassifierFreeSamplingEmbeddings`, the original's
/// `empty_text_embed`). Family `vq-diffusion-embeddings`.
public struct VQEmbeddingsConfig: FamilyConfig {
    /// These configs belong to ``VQEmbeddingsFamily``.
    public typealias Family = VQEmbeddingsFamily

    /// The family name written to the `family` field of the JSON.
    public var family = "vq-diffusion-embeddings"
    /// Context tokens (CLIP: 77).
    public var length: Int
    /// Width of each token (CLIP ViT-B/32 text: 512).
    public var hiddenSize: Int
    /// Layout the weights came from, for reports.
    public var sourceLayout: Layout?

    /// Embeddings of `length` tokens of width `hiddenSize`. Not validated.
    public init(length: Int = 77, hiddenSize: Int = 512) {
        self.length = length
        self.hiddenSize = hiddenSize
    }

    /// The embeddings have no blocks.
    public var depth: Int { 0 }
    /// Sizes in one line.
    public var summary: String { "\(length) tokens × \(hiddenSize)" }

    static let ranges: [ConfigRange<VQEmbeddingsConfig>] = [
        ConfigRange("length", 1, Double(VQLimits.maxSize)) { Double($0.length) },
        ConfigRange("hidden_size", 1, Double(VQLimits.maxSize)) { Double($0.hiddenSize) },
    ]

    /// Every field outside its range.
    public func problems(names: [String: String] = [:]) -> [String] {
        Self.ranges.compactMap { $0.problem(self) { key in names[key].map { "\($0) (\(key))" } ?? key } }
    }

    /// The config as JSON, `family` included.
    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [("family", .string(family)), ("length", .int(length)), ("hidden_size", .int(hiddenSize))]
        if let sourceLayout { pairs.append(("source_layout", .string(sourceLayout.rawValue))) }
        return .object(pairs)
    }

    /// Reads and validates a config written by `json`.
    public init(json: JSONValue, origin: String = "ditkit.config") throws {
        let r = try ConfigJSONReader(json, origin: origin, family: "vq-diffusion-embeddings", known: ["length", "hidden_size"])
        self.init(length: try r.int("length"), hiddenSize: try r.int("hidden_size"))
        sourceLayout = try r.sourceLayout(allowed: ["original", "diffusers", "unknown"])
        try validate(origin: origin)
    }
}

/// VQ-Diffusion's learned classifier-free sampling embeddings as a family of one tensor.
public enum VQEmbeddingsFamily: ModelFamily {
    /// The embeddings' config.
    public typealias Config = VQEmbeddingsConfig
    /// The family name in configs and on the command line.
    public static let name = "vq-diffusion-embeddings"
    /// The family, for reports.
    public static let summary = "VQ-Diffusion learned classifier-free embeddings"
    /// One tensor: `embeddings` (length, width).
    public static let canonical: [CanonicalSpec<VQEmbeddingsConfig>] = [
        CanonicalSpec("embeddings") { [$0.length, $0.hiddenSize] },
    ]
    /// original (`empty_text_embed` of microsoft/VQ-Diffusion's DiffusionTransformer), diffusers, in detection order.
    public static let layouts: [SourceLayout<VQEmbeddingsConfig>] = [original, diffusers]

    /// The original's `empty_text_embed` (float64, (77, 512) in ITHQ): `transformer.empty_text_embed` in a bare DALLE
    /// state dict, `model.transformer.empty_text_embed` and `ema.empty_text_embed` in a solver checkpoint, beside the
    /// transformer, the CLIP text tower and the diffusion buffers (other models of the file, not read here). Written
    /// as a bare state dict under `transformer.`, where the original's DALLE loads it.
    static let original = SourceLayout<VQEmbeddingsConfig>(
        id: .original, summary: "original VQ-Diffusion empty_text_embed (microsoft DiffusionTransformer)",
        forms: ["embeddings": .same("empty_text_embed")], signature: ["embeddings"], depthProbe: "embeddings",
        writer: .stateDict(nestedUnder: [], namePrefix: "transformer.", safetensors: true), sharesPrefix: true)

    /// diffusers' `LearnedClassifierFreeSamplingEmbeddings` component (`learned_classifier_free_sampling_embeddings/`).
    static let diffusers = SourceLayout<VQEmbeddingsConfig>(
        id: .diffusers, summary: "diffusers LearnedClassifierFreeSamplingEmbeddings",
        forms: ["embeddings": .same("embeddings")], signature: ["embeddings"], depthProbe: "embeddings",
        writer: .diffusers(DiffusersWriter(
            component: "learned_classifier_free_sampling_embeddings", componentClass: "LearnedClassifierFreeSamplingEmbeddings",
            componentConfig: diffusersConfig, pipelineClass: "VQDiffusionPipeline")))

    /// The component's `config.json`, as diffusers 0.42 saves it.
    package static func diffusersConfig(_ c: VQEmbeddingsConfig) -> JSONValue {
        .object([
            ("_class_name", .string("LearnedClassifierFreeSamplingEmbeddings")), ("_diffusers_version", .string("0.42.1")),
            ("hidden_size", .int(c.hiddenSize)), ("learnable", .bool(true)), ("length", .int(c.length)),
        ])
    }

    /// ITHQ's embeddings (77 CLIP tokens × 512, original layout; the tiny fixture's are the same size).
    public static let presets: [FamilyPreset<VQEmbeddingsConfig>] = {
        var ithq = VQEmbeddingsConfig()
        ithq.sourceLayout = .original
        return [FamilyPreset(name: "vq-diffusion-ithq-embeddings", layout: .original, config: ithq, aliases: ["ITHQ-embeddings"])]
    }()

    /// Length and width from the table's shape; a diffusers `config.json` must agree and be learnable.
    public static func inferConfig(_ context: inout InferenceContext<VQEmbeddingsFamily>) throws -> VQEmbeddingsConfig {
        let name = context.storedName("embeddings")
        let config = VQEmbeddingsConfig(length: try context.dim("embeddings", 0, rank: 2), hiddenSize: try context.dim("embeddings", 1, rank: 2))
        context.origins = ["length": "rows of \(name)", "hidden_size": "\(name) dim 1"]
        if let (json, file) = context.componentConfig {
            var problems: [String] = []
            if let learnable = json["learnable"], learnable != .bool(true) {
                problems.append("learnable = \(learnable.serialized().prefix(40)) but the folder stores learned embeddings")
            }
            for (key, actual) in [("length", config.length), ("hidden_size", config.hiddenSize)] {
                if let v = try context.configInt(key), v != actual { problems.append("\(key) = \(v) but \(name) has \(actual)") }
            }
            guard problems.isEmpty else { throw ModelError.invalidConfig(origin: file, problems: problems) }
        }
        if context.stored[name]?.dtype == .f64 {
            context.notes.append("\(name) is float64 (the original's dtype); conversions keep it unless a dtype is asked for")
        }
        try config.validate(origin: context.checkpoint.path, names: context.origins)
        return config
    }

    /// What the target's code does with the table's dtype.
    public static func semanticNotes(from config: VQEmbeddingsConfig, to layout: Layout) -> [String] {
        guard layout == .diffusers else { return [] }
        return ["diffusers' own conversion script casts empty_text_embed to float32; ditkit keeps the source dtype. diffusers 0.42 loads a float64 table as float32 (the model's dtype) unless torch_dtype=torch.float64 is given"]
    }

    /// No frozen tables.
    public static func recomputedTable(_ template: String, config: VQEmbeddingsConfig) -> [Float]? { nil }
    /// A table, no arithmetic.
    public static func multiplyAdds(_ config: VQEmbeddingsConfig) -> Int { 0 }
    /// One group.
    public static func parameterGroup(_ canonicalName: String) -> String { "embeddings" }
}
