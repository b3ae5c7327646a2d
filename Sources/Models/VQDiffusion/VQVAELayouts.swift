import Checkpoints
import Tensors

/// The VQ-VAE's source layouts as naming tables (REFERENCE §4).
enum VQVAELayouts {
    /// The original name of a canonical template: `down_blocks.{i}.resnets.{j}` → `down.{i}.block.{j}`,
    /// `conv_shortcut` → `nin_shortcut`, attention `{group_norm, to_q, to_k, to_v, to_out.0}` → `attn.{j}.{norm, q, k,
    /// v, proj_out}`, the middle block's `resnets.0/attentions.0/resnets.1` → `block_1/attn_1/block_2`, `conv_norm_out`
    /// → `norm_out`, `downsamplers.0` → `downsample`, `up_blocks.{i}` → `up.{i}` (numbered by resolution through
    /// `storedBlock`), `upsamplers.0` → `upsample`, the codebook buffer `quantize.embedding`.
    static func originalName(_ template: String) -> String {
        let renames: [(String, String)] = [
            ("mid_block.resnets.0.", "mid.block_1."), ("mid_block.attentions.0.", "mid.attn_1."), ("mid_block.resnets.1.", "mid.block_2."),
            ("down_blocks.", "down."), ("up_blocks.", "up."), (".resnets.", ".block."), (".attentions.", ".attn."),
            ("conv_shortcut", "nin_shortcut"), ("group_norm", "norm"), (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."),
            (".to_out.0.", ".proj_out."), ("downsamplers.0.", "downsample."), ("upsamplers.0.", "upsample."),
            ("conv_norm_out", "norm_out"), ("quantize.embedding.weight", "quantize.embedding"),
        ]
        var name = template
        for (from, to) in renames { name = replacingAll(name, from, to) }
        return name
    }

    /// `text` with every non-overlapping occurrence of `from` replaced by `to`, left to right — what
    /// `String.replacing(_:with:)` gives, over UTF-8 bytes (the generic version costs milliseconds over a layout's
    /// names, at every start of the program).
    static func replacingAll(_ text: String, _ from: String, _ to: String) -> String {
        let source = Array(text.utf8), pattern = Array(from.utf8)
        guard !pattern.isEmpty, source.count >= pattern.count else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(source.count)
        var i = 0
        var changed = false
        while i < source.count {
            if source[i] == pattern[0], i + pattern.count <= source.count, source[i..<(i + pattern.count)].elementsEqual(pattern) {
                out.append(contentsOf: to.utf8)
                i += pattern.count
                changed = true
            } else {
                out.append(source[i])
                i += 1
            }
        }
        return changed ? String(decoding: out, as: UTF8.self) : text
    }

    /// Whether a canonical template is an attention projection weight (a (C, C) linear; the original stores a 1×1 conv).
    static func isAttentionProjection(_ template: String) -> Bool {
        template.contains("attentions.") && template.hasSuffix(".weight") && !template.contains("group_norm")
    }

    /// A (C, C) linear stored as a 1×1 convolution.
    static let conv1x1: @Sendable ([Int]) -> [Int] = { $0 + [1, 1] }

    static let signature = ["encoder.down_blocks.{i}.resnets.{j}.conv1.weight", "quant_conv.weight", "quantize.embedding.weight", "decoder.conv_out.weight"]

    /// microsoft/VQ-Diffusion `PatchVQGAN` (`ithq_vqvae.pth` = `{"model": state_dict}`, EMA quantizer): attention as
    /// 1×1 convolutions, decoder levels numbered by resolution.
    static let original = SourceLayout<VQVAEConfig>(
        id: .original, summary: "original VQ-Diffusion PatchVQGAN",
        forms: Dictionary(uniqueKeysWithValues: VQVAEFamily.canonical.map { ($0.template, SourceForm.same(originalName($0.template))) }),
        signature: signature, depthProbe: signature[0],
        writer: .stateDict(nestedUnder: ["model"], namePrefix: "", safetensors: false),
        prepare: { config, _ in
            // PatchVQGAN always has the middle attention and GroupNorm(32, eps 1e-6).
            var problems: [String] = []
            if !config.midAttention { problems.append("the original's middle block always has attention; this model's has none") }
            if config.normGroups != 32 { problems.append("the original's GroupNorm has 32 groups; this model's has \(config.normGroups)") }
            if config.normEps != 1e-6 { problems.append("the original's GroupNorm eps is 1e-6; this model's is \(config.normEps)") }
            guard problems.isEmpty else { throw ModelError.lossy(problems.joined(separator: "; ")) }
            return (config, [])
        },
        storedReshapes: Dictionary(uniqueKeysWithValues: VQVAEFamily.canonical.map(\.template).filter(isAttentionProjection).map { ($0, conv1x1) }),
        storedBlock: { template, block, depth in template.hasPrefix("decoder.up_blocks.") ? depth - 1 - block : block })

    /// diffusers' attention names before 0.14 (`query`, `key`, `value`, `proj_attn`), which diffusers' own VQ-Diffusion
    /// converter still writes and diffusers 0.42 renames on load (2-D weights only).
    static func legacyDiffusersName(_ name: String) -> String? {
        guard name.contains("attentions.") else { return nil }
        for (old, new) in [(".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.")] where name.contains(old) {
            return replacingAll(name, old, new)
        }
        return nil
    }

    /// diffusers `VQModel`: the canonical names; no EMA-quantizer state.
    static let diffusers = SourceLayout<VQVAEConfig>(
        id: .diffusers, summary: "diffusers VQModel",
        forms: Dictionary(uniqueKeysWithValues: VQVAEFamily.canonical.filter { !$0.template.hasPrefix("quantize.") || $0.template == "quantize.embedding.weight" }
            .map { ($0.template, SourceForm.same($0.template)) }),
        signature: signature, depthProbe: signature[0],
        writer: .diffusers(DiffusersWriter(
            component: "vqvae", componentClass: "VQModel", componentConfig: diffusersConfig, pipelineClass: "VQDiffusionPipeline",
            carriedComponents: ["learned_classifier_free_sampling_embeddings", "scheduler", "text_encoder", "tokenizer", "transformer"])),
        legacyName: legacyDiffusersName)

    /// The `VQModel` `config.json` diffusers 0.42 writes for a config (every key `save_pretrained` writes).
    package static func diffusersConfig(_ c: VQVAEConfig) -> JSONValue {
        let down = c.levelAttention.map { JSONValue.string($0 ? "AttnDownEncoderBlock2D" : "DownEncoderBlock2D") }
        let up = c.levelAttention.reversed().map { JSONValue.string($0 ? "AttnUpDecoderBlock2D" : "UpDecoderBlock2D") }
        return .object([
            ("_class_name", .string("VQModel")), ("_diffusers_version", .string("0.42.1")), ("act_fn", .string("silu")),
            ("block_out_channels", .array(c.blockOutChannels.map { .int($0) })), ("down_block_types", .array(down)),
            ("force_upcast", .bool(false)), ("in_channels", .int(c.inChannels)), ("latent_channels", .int(c.latentChannels)),
            ("layers_per_block", .int(c.layersPerBlock)), ("lookup_from_codebook", .bool(false)),
            ("mid_block_add_attention", .bool(c.midAttention)), ("norm_num_groups", .int(c.normGroups)), ("norm_type", .string("group")),
            ("num_vq_embeddings", .int(c.numCodes)), ("out_channels", .int(c.outChannels)), ("sample_size", .int(c.sampleSize)),
            ("scaling_factor", .double(0.18215)), ("up_block_types", .array(up)), ("vq_embed_dim", .int(c.embedDim)),
        ])
    }
}

/// The PatchVQVAE wrapper's shared quantizer: one canonical tensor stored twice, as `enc.quantize.X` and
/// `dec.quantize.X` (the encoder and decoder wrappers hold the same module, and a state dict lists it under both).
/// Read: the two copies must be bit-identical (checked when the tensor is read); write: the tensor twice.
struct SharedQuantizer: TensorTransform {
    /// The stored copies.
    let sourceNames: [String]

    /// The quantizer tensor `name` (`quantize.embedding`) as the encoder's and the decoder's copy.
    init(_ name: String) { sourceNames = ["enc." + name, "dec." + name] }

    func sourceShapes(canonicalShape: [Int], config: any FamilyConfig) -> [[Int]] { [canonicalShape, canonicalShape] }

    func canonicalShape(sourceShapes: [[Int]]) -> [Int]? {
        sourceShapes.count == 2 && sourceShapes[0] == sourceShapes[1] ? sourceShapes[0] : nil
    }

    func canonical(from sources: [TensorInfo], name: String, shape: [Int], dtype: DType) -> OutputTensor {
        let names = sourceNames
        return OutputTensor(name: name, dtype: dtype, shape: shape) { sink in
            let same = try sources[0].withContiguousBytes { a in try sources[1].withContiguousBytes { b in a.count == b.count && a.elementsEqual(b) } }
            guard same else {
                throw ModelError.lossy("the shared quantizer's copies \(names[0]) and \(names[1]) differ; the original shares one module, so they must be equal")
            }
            try sources[0].write(to: sink)
        }
    }

    func sources(from canonical: OutputTensor, config: any FamilyConfig) throws -> [OutputTensor] {
        sourceNames.map { canonical.renamed($0) }
    }
}

extension VQVAELayouts {
    /// The codec of a microsoft/VQ-Diffusion solver checkpoint (`model.content_codec.` of a DALLE): the `PatchVQVAE`
    /// wrapper stores the `PatchVQGAN`'s encoder and quant conv under `enc.`, its decoder and post-quant conv under
    /// `dec.`, and the one quantizer under both.
    static let originalCodec: SourceLayout<VQVAEConfig> = {
        var forms: [String: SourceForm] = [:]
        for spec in VQVAEFamily.canonical {
            let name = originalName(spec.template)
            if name.hasPrefix("quantize.") {
                forms[spec.template] = .transformed(SharedQuantizer(name))
            } else if name.hasPrefix("encoder.") || name.hasPrefix("quant_conv.") {
                forms[spec.template] = .same("enc." + name)
            } else {
                forms[spec.template] = .same("dec." + name)
            }
        }
        return SourceLayout<VQVAEConfig>(
            id: Layout("original-codec"), summary: "original VQ-Diffusion PatchVQVAE (a solver checkpoint's content_codec)",
            forms: forms, signature: signature, depthProbe: signature[0],
            writer: .stateDict(nestedUnder: ["model"], namePrefix: "content_codec.", safetensors: false),
            prepare: original.prepare, storedReshapes: original.storedReshapes, storedBlock: original.storedBlock, isTarget: false)
    }()
}
