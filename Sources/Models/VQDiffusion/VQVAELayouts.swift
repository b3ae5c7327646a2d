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
        for (from, to) in renames { name = name.replacing(from, with: to) }
        return name
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
            return name.replacing(old, with: new)
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
