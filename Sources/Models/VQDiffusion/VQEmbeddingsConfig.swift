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
    /// The source layouts (filled in by the layouts work).
    public static let layouts: [SourceLayout<VQEmbeddingsConfig>] = []
    /// Named configurations.
    public static let presets: [FamilyPreset<VQEmbeddingsConfig>] = []
    /// Infers the config from the weights.
    public static func inferConfig(_ context: inout InferenceContext<VQEmbeddingsFamily>) throws -> VQEmbeddingsConfig {
        throw ModelError.mapping(path: context.checkpoint.path, problems: ["VQ-Diffusion layouts are not read yet"])
    }
    /// No frozen tables.
    public static func recomputedTable(_ template: String, config: VQEmbeddingsConfig) -> [Float]? { nil }
    /// A table, no arithmetic.
    public static func multiplyAdds(_ config: VQEmbeddingsConfig) -> Int { 0 }
    /// One group.
    public static func parameterGroup(_ canonicalName: String) -> String { "embeddings" }
}
