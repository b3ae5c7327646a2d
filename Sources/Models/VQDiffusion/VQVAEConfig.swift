import Checkpoints
import Tensors

/// Every number that fixes VQ-Diffusion's VQ-VAE (the original's `PatchVQGAN`, diffusers' `VQModel`): an encoder of
/// ResNet levels down to a latent grid, a codebook, and a mirrored decoder. Family `vq-vae`.
public struct VQVAEConfig: FamilyConfig {
    /// VQ-VAE configs belong to ``VQVAEFamily``.
    public typealias Family = VQVAEFamily

    /// The family name written to the `family` field of the JSON.
    public var family = "vq-vae"
    /// Image channels in (3).
    public var inChannels: Int
    /// Image channels out (3).
    public var outChannels: Int
    /// Channels of each resolution level, encoder order (ITHQ: 64, 128, 256, 512); the decoder runs them in reverse.
    public var blockOutChannels: [Int]
    /// Whether each level (encoder order) has self-attention after each ResNet block (ITHQ: only the lowest
    /// resolution); the decoder's level of the same resolution mirrors it.
    public var levelAttention: [Bool]
    /// ResNet blocks per encoder level; the decoder has one more per level.
    public var layersPerBlock: Int
    /// Whether the middle block (ResNet, attention, ResNet) has its attention.
    public var midAttention: Bool = true
    /// Channels of the encoder's output and the decoder's input (256).
    public var latentChannels: Int
    /// Codebook entries (4096).
    public var numCodes: Int
    /// Width of a codebook entry (128).
    public var embedDim: Int
    /// GroupNorm groups (32).
    public var normGroups: Int = 32
    /// GroupNorm eps (1e-6).
    public var normEps: Double = 1e-6
    /// Image side in pixels the model is traced at (not fixed by the weights: convolutions take any size).
    public var sampleSize: Int
    /// Layout the weights came from, for reports.
    public var sourceLayout: Layout?

    /// A config of these sizes. Not validated.
    public init(
        inChannels: Int = 3, outChannels: Int = 3, blockOutChannels: [Int], levelAttention: [Bool], layersPerBlock: Int = 2,
        latentChannels: Int, numCodes: Int, embedDim: Int, sampleSize: Int
    ) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.blockOutChannels = blockOutChannels
        self.levelAttention = levelAttention
        self.layersPerBlock = layersPerBlock
        self.latentChannels = latentChannels
        self.numCodes = numCodes
        self.embedDim = embedDim
        self.sampleSize = sampleSize
    }

    /// Resolution levels: the range of `{i}` in per-level tensor names.
    public var depth: Int { blockOutChannels.count }
    /// Channels of encoder level `i` (clamped to the levels, so a template's shape can be asked without a level).
    public func channels(level i: Int?) -> Int {
        blockOutChannels.isEmpty ? 0 : blockOutChannels[min(max(i ?? 0, 0), blockOutChannels.count - 1)]
    }
    /// The encoder level of decoder up-block `k` (execution order): levels run from the lowest resolution up.
    public func decoderLevel(_ k: Int?) -> Int { depth - 1 - (k ?? 0) }
    /// Input channels of ResNet `j` of encoder level `i`: the previous level's channels for the first ResNet.
    public func encoderResnetInput(level i: Int?, resnet j: Int?) -> Int {
        (j ?? 0) > 0 ? channels(level: i) : channels(level: max((i ?? 0) - 1, 0))
    }
    /// Input channels of ResNet `j` of decoder up-block `k`: the previous up-block's channels for the first ResNet.
    public func decoderResnetInput(upBlock k: Int?, resnet j: Int?) -> Int {
        (j ?? 0) > 0 ? channels(level: decoderLevel(k)) : channels(level: min(decoderLevel(k) + 1, depth - 1))
    }
    /// The widest channels: the lowest resolution's (the middle blocks').
    public var innerChannels: Int { blockOutChannels.last ?? 0 }
    /// The latent grid side: the image side halved at every level but the last.
    public var latentSize: Int { sampleSize >> max(depth - 1, 0) }
    /// Sizes in one line.
    public var summary: String {
        "channels \(blockOutChannels.map(String.init).joined(separator: ",")), \(layersPerBlock) ResNets per level, "
            + "latent \(latentChannels), \(numCodes) codes × \(embedDim), image \(sampleSize)"
    }

    static let ranges: [ConfigRange<VQVAEConfig>] = {
        let size = Double(VQLimits.maxSize)
        typealias R = ConfigRange<VQVAEConfig>
        return [
            R("in_channels", 1, size) { Double($0.inChannels) },
            R("out_channels", 1, size) { Double($0.outChannels) },
            R("levels", 1, 16) { Double($0.blockOutChannels.count) },
            R("layers_per_block", 1, 64) { Double($0.layersPerBlock) },
            R("latent_channels", 1, size) { Double($0.latentChannels) },
            R("num_codes", 1, size) { Double($0.numCodes) },
            R("embed_dim", 1, size) { Double($0.embedDim) },
            R("norm_groups", 1, size) { Double($0.normGroups) },
            R("group_norm_eps", 0, 1, exclusive: true) { $0.normEps },
            R("sample_size", 1, size) { Double($0.sampleSize) },
        ]
    }()

    /// Every problem: fields outside their ranges, channels the groups do not divide, an image side the levels do not
    /// halve evenly, sizes past the limits.
    public func problems(names: [String: String] = [:]) -> [String] {
        func name(_ key: String) -> String { names[key].map { "\($0) (\(key))" } ?? key }
        var out = Self.ranges.compactMap { $0.problem(self, name: name) }
        guard out.isEmpty else { return out }
        if levelAttention.count != blockOutChannels.count {
            out.append("\(name("level_attention")) has \(levelAttention.count) entries for \(blockOutChannels.count) levels")
        }
        for (k, c) in blockOutChannels.enumerated() {
            if c < 1 || c > VQLimits.maxSize { out.append("\(name("block_out_channels"))[\(k)] = \(c) is outside 1…\(VQLimits.maxSize)") }
            else if c % normGroups != 0 { out.append("\(name("block_out_channels"))[\(k)] = \(c) is not a multiple of \(name("norm_groups")) = \(normGroups)") }
        }
        if out.isEmpty, sampleSize % (1 << (depth - 1)) != 0 {
            out.append("\(name("sample_size")) = \(sampleSize) is not divisible by 2^\(depth - 1) (one halving per level but the last)")
        }
        if out.isEmpty {
            let widest = blockOutChannels.max() ?? 1
            let activations = (try? checkedElementCount([sampleSize, sampleSize, max(widest, latentChannels) * 9])) ?? Int.max
            if activations > VQLimits.maxElements {
                out.append("\(name("sample_size")) = \(sampleSize) needs more than the \(VQLimits.maxElements) activations a sample may hold")
            }
            if ((try? checkedElementCount([numCodes, embedDim])) ?? Int.max) > VQLimits.maxElements {
                out.append("the codebook \(numCodes) × \(embedDim) is over the \(VQLimits.maxElements) elements a tensor may hold")
            }
        }
        return out
    }

    /// The config as JSON, `family` included.
    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("family", .string(family)), ("in_channels", .int(inChannels)), ("out_channels", .int(outChannels)),
            ("block_out_channels", .array(blockOutChannels.map { .int($0) })),
            ("level_attention", .array(levelAttention.map { .bool($0) })), ("layers_per_block", .int(layersPerBlock)),
            ("mid_attention", .bool(midAttention)), ("latent_channels", .int(latentChannels)), ("num_codes", .int(numCodes)),
            ("embed_dim", .int(embedDim)), ("norm_groups", .int(normGroups)), ("group_norm_eps", .double(normEps)),
            ("sample_size", .int(sampleSize)),
        ]
        if let sourceLayout { pairs.append(("source_layout", .string(sourceLayout.rawValue))) }
        return .object(pairs)
    }

    /// Reads and validates a config written by `json`.
    public init(json: JSONValue, origin: String = "ditkit.config") throws {
        let r = try ConfigJSONReader(json, origin: origin, family: "vq-vae", known: [
            "in_channels", "out_channels", "block_out_channels", "level_attention", "layers_per_block", "mid_attention",
            "latent_channels", "num_codes", "embed_dim", "norm_groups", "group_norm_eps", "sample_size",
        ])
        self.init(
            inChannels: try r.int("in_channels"), outChannels: try r.int("out_channels"), blockOutChannels: try r.ints("block_out_channels"),
            levelAttention: try r.bools("level_attention"), layersPerBlock: try r.int("layers_per_block"),
            latentChannels: try r.int("latent_channels"), numCodes: try r.int("num_codes"), embedDim: try r.int("embed_dim"),
            sampleSize: try r.int("sample_size"))
        midAttention = try r.bool("mid_attention", default: true)
        normGroups = try r.int("norm_groups", default: 32)
        normEps = try r.number("group_norm_eps", default: 1e-6)
        sourceLayout = try r.sourceLayout(allowed: ["original", "original-codec", "diffusers", "unknown"])
        try validate(origin: origin)
    }
}
