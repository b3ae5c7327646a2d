import Checkpoints
import Tensors

/// VQ-Diffusion's VQ-VAE: the original's `PatchVQGAN` (`ithq_vqvae.pth`) and diffusers' `VQModel`. Its canonical names
/// are diffusers 0.42's `VQModel` state-dict names (new attention names, 2-D attention weights) plus the original's
/// EMA-quantizer state; they are in `schemas/canonical-names.md`, its config in `schemas/model-config.schema.json`
/// (family `vq-vae`). `{i}` is the resolution level (encoder order) in encoder names and the up-block in EXECUTION
/// order in decoder names (diffusers' `up_blocks.k` = the original's `up.(L−1−k)`); `{j}` is the ResNet (or the
/// attention after it) within a level.
public enum VQVAEFamily: ModelFamily {
    /// The VQ-VAE's config.
    public typealias Config = VQVAEConfig
    /// The family name in configs and on the command line.
    public static let name = "vq-vae"
    /// The family, for reports.
    public static let summary = "VQ-Diffusion VQ-VAE"

    typealias Spec = CanonicalSpec<VQVAEConfig>
    typealias Size = @Sendable (VQVAEConfig, Int?, Int?) -> Int
    typealias Presence = @Sendable (VQVAEConfig, Int?, Int?) -> Bool
    typealias Count = @Sendable (VQVAEConfig, Int) -> Int

    static func conv(_ name: String, out: @escaping Size, in input: @escaping Size, kernel: Int, count: Count?, present: @escaping Presence) -> [Spec] {
        [
            Spec(name + ".weight", innerCount: count, present: present) { [out($0, $1, $2), input($0, $1, $2), kernel, kernel] },
            Spec(name + ".bias", innerCount: count, present: present) { [out($0, $1, $2)] },
        ]
    }

    static func vector(_ name: String, _ size: @escaping Size, count: Count?, present: @escaping Presence) -> [Spec] {
        ["weight", "bias"].map { Spec(name + "." + $0, innerCount: count, present: present) { [size($0, $1, $2)] } }
    }

    /// A ResNet block: GroupNorm, 3×3 conv, GroupNorm, 3×3 conv, and a 1×1 shortcut where the channels change.
    static func resnet(_ p: String, in input: @escaping Size, out: @escaping Size, count: Count?, present: @escaping Presence) -> [Spec] {
        vector(p + "norm1", input, count: count, present: present)
            + conv(p + "conv1", out: out, in: input, kernel: 3, count: count, present: present)
            + vector(p + "norm2", out, count: count, present: present)
            + conv(p + "conv2", out: out, in: out, kernel: 3, count: count, present: present)
            + conv(p + "conv_shortcut", out: out, in: input, kernel: 1, count: count) { c, i, j in
                present(c, i, j) && input(c, i, j) != out(c, i, j)
            }
    }

    /// Single-head attention: GroupNorm, then q, k, v and out as (C, C) linears.
    static func attention(_ p: String, _ size: @escaping Size, count: Count?, present: @escaping Presence) -> [Spec] {
        var specs = vector(p + "group_norm", size, count: count, present: present)
        for proj in ["to_q", "to_k", "to_v", "to_out.0"] {
            specs.append(Spec(p + proj + ".weight", innerCount: count, present: present) { [size($0, $1, $2), size($0, $1, $2)] })
            specs.append(Spec(p + proj + ".bias", innerCount: count, present: present) { [size($0, $1, $2)] })
        }
        return specs
    }

    static func attends(_ c: VQVAEConfig, level: Int) -> Bool { c.levelAttention.indices.contains(level) && c.levelAttention[level] }

    /// The canonical VQ-VAE scheme, in file order: encoder, quant conv, codebook (and the original's EMA state),
    /// post-quant conv, decoder.
    public static let canonical: [CanonicalSpec<VQVAEConfig>] = {
        let always: Presence = { _, _, _ in true }
        let level: Size = { c, i, _ in c.channels(level: i) }
        let upLevel: Size = { c, k, _ in c.channels(level: c.decoderLevel(k)) }
        let inner: Size = { c, _, _ in c.innerChannels }
        let latent: Size = { c, _, _ in c.latentChannels }
        let embed: Size = { c, _, _ in c.embedDim }
        let encoderResnets: Count = { c, _ in c.layersPerBlock }
        let decoderResnets: Count = { c, _ in c.layersPerBlock + 1 }
        var specs: [Spec] = conv("encoder.conv_in", out: { c, _, _ in c.channels(level: 0) }, in: { c, _, _ in c.inChannels }, kernel: 3, count: nil, present: always)
        let down = "encoder.down_blocks.{i}."
        specs += resnet(down + "resnets.{j}.", in: { c, i, j in c.encoderResnetInput(level: i, resnet: j) }, out: level, count: encoderResnets, present: always)
        specs += attention(down + "attentions.{j}.", level, count: encoderResnets) { c, i, _ in attends(c, level: i ?? 0) }
        specs += conv(down + "downsamplers.0.conv", out: level, in: level, kernel: 3, count: nil) { c, i, _ in (i ?? 0) < c.depth - 1 }
        func mid(_ p: String) -> [Spec] {
            resnet(p + "resnets.0.", in: inner, out: inner, count: nil, present: always)
                + attention(p + "attentions.0.", inner, count: nil) { c, _, _ in c.midAttention }
                + resnet(p + "resnets.1.", in: inner, out: inner, count: nil, present: always)
        }
        specs += mid("encoder.mid_block.")
        specs += vector("encoder.conv_norm_out", inner, count: nil, present: always)
        specs += conv("encoder.conv_out", out: latent, in: inner, kernel: 3, count: nil, present: always)
        specs += conv("quant_conv", out: embed, in: latent, kernel: 1, count: nil, present: always)
        specs.append(Spec("quantize.embedding.weight") { [$0.numCodes, $0.embedDim] })
        specs.append(Spec("quantize.cluster_size", trainable: false, optional: true) { [$0.numCodes] })
        specs.append(Spec("quantize.embedding_avg", trainable: false, optional: true) { [$0.numCodes, $0.embedDim] })
        specs += conv("post_quant_conv", out: latent, in: embed, kernel: 1, count: nil, present: always)
        specs += conv("decoder.conv_in", out: inner, in: latent, kernel: 3, count: nil, present: always)
        specs += mid("decoder.mid_block.")
        let up = "decoder.up_blocks.{i}."
        specs += resnet(up + "resnets.{j}.", in: { c, k, j in c.decoderResnetInput(upBlock: k, resnet: j) }, out: upLevel, count: decoderResnets, present: always)
        specs += attention(up + "attentions.{j}.", upLevel, count: decoderResnets) { c, k, _ in attends(c, level: c.decoderLevel(k)) }
        specs += conv(up + "upsamplers.0.conv", out: upLevel, in: upLevel, kernel: 3, count: nil) { c, k, _ in (k ?? 0) < c.depth - 1 }
        specs += vector("decoder.conv_norm_out", { c, _, _ in c.channels(level: 0) }, count: nil, present: always)
        specs += conv("decoder.conv_out", out: { c, _, _ in c.outChannels }, in: { c, _, _ in c.channels(level: 0) }, kernel: 3, count: nil, present: always)
        return specs
    }()

    /// original (`PatchVQGAN`), the original inside a solver checkpoint (`PatchVQVAE`), diffusers (`VQModel`), in detection order.
    public static let layouts: [SourceLayout<VQVAEConfig>] = [VQVAELayouts.original, VQVAELayouts.originalCodec, VQVAELayouts.diffusers]

    /// ITHQ's VQ-VAE (published as `ithq_vqvae.pth`, original layout) and a tiny one matching the fixtures.
    public static let presets: [FamilyPreset<VQVAEConfig>] = [
        FamilyPreset(
            name: "ITHQ-VQVAE", layout: .original,
            config: VQVAEConfig(
                blockOutChannels: [64, 128, 256, 512], levelAttention: [false, false, false, true], layersPerBlock: 2,
                latentChannels: 256, numCodes: 4096, embedDim: 128, sampleSize: 256),
            aliases: ["ithq-vqvae", "vq-vae-ithq"]),
        FamilyPreset(
            name: "VQVAE-tiny", layout: .original,
            config: VQVAEConfig(
                blockOutChannels: [32, 32], levelAttention: [false, true], layersPerBlock: 1, latentChannels: 32, numCodes: 32,
                embedDim: 8, sampleSize: 8),
            aliases: ["vq-vae-tiny"]),
    ]

    /// The latent grid assumed when no config gives the image size (the ITHQ transformer's 32 × 32 tokens).
    static let assumedLatentGrid = 32

    /// Sizes from shapes: levels (the encoder's down-blocks), each level's channels, ResNets per level, attention per
    /// level and in the middle block, latent channels, codes × width; groups and image size from diffusers'
    /// `config.json` when there is one (checked against the weights), otherwise the original's fixed 32 groups and an
    /// image size assumed (said as an assumption).
    public static func inferConfig(_ context: inout InferenceContext<VQVAEFamily>) throws -> VQVAEConfig {
        let levels = context.depth
        guard levels >= 1 else { throw ModelError.config("cannot infer the config: no encoder level found") }
        let resnet = "encoder.down_blocks.{i}.resnets.{j}.conv1.weight"
        var channels: [Int] = []
        var attention: [Bool] = []
        for i in 0..<levels {
            let shape = try context.shape(resnet, block: i)
            guard shape.count == 4 else {
                throw ModelError.mapping(path: context.checkpoint.path, problems: ["shape: \(context.storedName(resnet, block: i)) is \(shape), expected a rank-4 tensor"])
            }
            channels.append(shape[0])
            attention.append(context.has("encoder.down_blocks.{i}.attentions.{j}.to_q.weight", block: i))
        }
        var layers = 0
        while layers < 64 && context.has(resnet, block: 0, inner: layers) { layers += 1 }
        let codebook = try context.shape("quantize.embedding.weight")
        guard codebook.count == 2 else {
            throw ModelError.mapping(path: context.checkpoint.path, problems: ["shape: \(context.storedName("quantize.embedding.weight")) is \(codebook), expected (codes, width)"])
        }
        var config = VQVAEConfig(
            inChannels: try context.dim("encoder.conv_in.weight", 1, rank: 4), outChannels: try context.dim("decoder.conv_out.weight", 0, rank: 4),
            blockOutChannels: channels, levelAttention: attention, layersPerBlock: layers,
            latentChannels: try context.dim("encoder.conv_out.weight", 0, rank: 4), numCodes: codebook[0], embedDim: codebook[1],
            sampleSize: assumedLatentGrid << (levels - 1))
        config.midAttention = context.has("encoder.mid_block.attentions.0.to_q.weight")
        let file = context.checkpoint.configs.first { $0.0 == "config.json" || $0.0.hasSuffix("vqvae/config.json") }
        if let (json, name) = file.map({ ($0.1, context.checkpoint.path + "/" + $0.0) }) {
            try readDiffusersConfig(json, file: name, into: &config)
        } else if context.layout.id == .diffusers {
            context.assume("norm_groups", "32", basis: "diffusers' default (no config.json)", note: "norm_num_groups assumed 32 (no config.json gives it)")
        }
        if file.flatMap({ $0.1["sample_size"]?.intValue }) == nil {
            context.assume(
                "sample_size", String(config.sampleSize), basis: "a \(assumedLatentGrid)×\(assumedLatentGrid) token grid (the weights do not fix it)",
                note: "sample_size assumed \(config.sampleSize) (a \(assumedLatentGrid)×\(assumedLatentGrid) token grid; convolutions take any size)")
        }
        try config.validate(origin: context.checkpoint.path)
        return config
    }

    /// Reads diffusers' `VQModel` `config.json`: groups and image size, and every size it states checked against the
    /// weights.
    static func readDiffusersConfig(_ json: JSONValue, file: String, into config: inout VQVAEConfig) throws {
        var problems: [String] = []
        func int(_ key: String) throws -> Int? {
            guard let value = json[key], value != .null else { return nil }
            guard let v = value.intValue else { throw ModelError.invalidConfig(origin: file, problems: ["\(key) = \(value.serialized().prefix(40)) is not an integer"]) }
            return v
        }
        func check(_ key: String, _ stated: Int?, _ weights: Int) {
            if let stated, stated != weights { problems.append("\(key) = \(stated) but the weights have \(weights)") }
        }
        check("in_channels", try int("in_channels"), config.inChannels)
        check("out_channels", try int("out_channels"), config.outChannels)
        check("layers_per_block", try int("layers_per_block"), config.layersPerBlock)
        check("latent_channels", try int("latent_channels"), config.latentChannels)
        check("num_vq_embeddings", try int("num_vq_embeddings"), config.numCodes)
        check("vq_embed_dim", try int("vq_embed_dim"), config.embedDim)
        if let stated = json["block_out_channels"]?.arrayValue?.compactMap(\.intValue), stated != config.blockOutChannels {
            problems.append("block_out_channels = \(stated) but the weights have \(config.blockOutChannels)")
        }
        if let types = json["down_block_types"]?.arrayValue?.compactMap(\.stringValue) {
            let stated = types.map { $0.hasPrefix("Attn") }
            if stated != config.levelAttention { problems.append("down_block_types = \(types) but the weights have attention at levels \(config.levelAttention)") }
        }
        if let mid = json["mid_block_add_attention"]?.boolValue, mid != config.midAttention {
            problems.append("mid_block_add_attention = \(mid) but the weights \(config.midAttention ? "have" : "have no") middle attention")
        }
        guard problems.isEmpty else { throw ModelError.invalidConfig(origin: file, problems: problems) }
        if let groups = try int("norm_num_groups") { config.normGroups = groups }
        if let size = try int("sample_size") { config.sampleSize = size }
    }

    /// No frozen tables: the EMA-quantizer state is training state, not a recomputable table.
    public static func recomputedTable(_ template: String, config: VQVAEConfig) -> [Float]? { nil }

    /// The image size in pixels.
    public static func imageSize(_ config: VQVAEConfig) -> Int? { config.sampleSize }

    /// The preset's other layout: diffusers for a preset published in the original layout, and the reverse.
    public static func comparisonLayout(for preset: FamilyPreset<VQVAEConfig>) -> Layout? {
        preset.layout == .original ? .diffusers : .original
    }

    /// Multiply-adds of encoding and decoding one image at `sample_size`: every convolution (3×3 and 1×1) and the
    /// attention projections, scores and values at their resolution, and the codebook distances.
    public static func multiplyAdds(_ c: VQVAEConfig) -> Int {
        var total = 0
        func add(_ n: Int) { total = Checked.saturatingAdd(total, n) }
        for (name, spec) in canonicalTensors(c) where name.hasSuffix(".weight") {
            let shape = spec.shape(c)
            guard shape.count == 4 || name.contains(".attentions.") && shape.count == 2 else { continue }
            let side = resolution(of: name, spec: spec, config: c)
            let pixels = Checked.saturatingMultiply(side, side)
            add(Checked.saturatingMultiply(pixels, shape.reduce(1) { Checked.saturatingMultiply($0, $1) }))
            if name.hasSuffix("to_q.weight") { add(Checked.saturatingMultiply(2 * pixels, Checked.saturatingMultiply(pixels, shape[0]))) }
        }
        let latent = c.latentSize
        add(Checked.saturatingMultiply(latent * latent, Checked.saturatingMultiply(c.numCodes, c.embedDim)))
        return total
    }

    /// The side of the activation a weight is applied at (a downsampler's output is half its input's; an upsampler
    /// works after the ×2).
    static func resolution(of name: String, spec: CanonicalSpec<VQVAEConfig>, config c: VQVAEConfig) -> Int {
        let full = c.sampleSize
        if name.hasPrefix("encoder.down_blocks.") {
            let i = spec.block ?? 0
            return name.contains("downsamplers") ? full >> (i + 1) : full >> i
        }
        if name.hasPrefix("decoder.up_blocks.") {
            let level = c.decoderLevel(spec.block)
            return name.contains("upsamplers") ? full >> max(level - 1, 0) : full >> level
        }
        if name.hasPrefix("encoder.conv_in") || name.hasPrefix("decoder.conv_out") { return full }
        return c.latentSize
    }

    /// `encoder` (with the quant conv), `quantizer`, `decoder` (with the post-quant conv).
    public static func parameterGroup(_ canonicalName: String) -> String {
        if canonicalName.hasPrefix("encoder.") || canonicalName.hasPrefix("quant_conv.") { return "encoder" }
        if canonicalName.hasPrefix("decoder.") || canonicalName.hasPrefix("post_quant_conv.") { return "decoder" }
        return "quantizer"
    }

}
