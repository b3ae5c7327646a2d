import Tensors

/// One tensor of the canonical DiT scheme (`schemas/canonical-names.md`).
public struct CanonicalSpec: Sendable {
    /// Name, with `{i}` for the block index.
    public let template: String
    public let shape: @Sendable (DiTConfig) -> [Int]
    /// Frozen buffers (pos_embed, Cerebras tables) are not trained.
    public let trainable: Bool
    /// Absent from some layouts (recomputable, or only Cerebras stores it).
    public let optional: Bool

    public var perBlock: Bool { template.contains("{i}") }
    public func name(block i: Int) -> String { template.replacingBlock(i) }
}

/// How a layout stores one canonical tensor.
public enum SourceForm: Sendable {
    /// The same elements under another name (possibly another shape of the same size, e.g. (T,D) vs (1,T,D)).
    case same(String)
    /// The canonical tensor is these tensors concatenated along dimension 0, in order (fused q,k,v; adaLN chunks).
    case rows([String])
    /// diffusers keeps a copy in every block (`{j}`); all copies must be equal and one is stored.
    case copies(String)
    /// Cerebras' ConvTranspose2d head: weight (D, C, p, p), bias (C). Canonical linear row (pi·p+qi)·C+c.
    case convTranspose(weight: String, bias: String)
    /// Not stored by this layout.
    case absent
}

/// The naming scheme of one layout, as a table from canonical templates to source forms.
public struct Scheme: Sendable {
    public let layout: Layout
    /// Canonical template → how this layout stores it. Templates absent from the table are `.absent`.
    public let forms: [String: SourceForm]
    /// The prefix real checkpoints put before every name (Cerebras: `model.model.`).
    public let conventionalPrefix: String

    public func form(_ template: String) -> SourceForm { forms[template] ?? .absent }
}

extension String {
    /// Replaces the first `{i}` with the block index.
    func replacingBlock(_ i: Int) -> String { replacingPlaceholder("{i}", with: String(i)) }
    /// Replaces the first `{j}` (diffusers' per-block embedder copies) with the block index.
    func replacingCopy(_ j: Int) -> String { replacingPlaceholder("{j}", with: String(j)) }

    func replacingPlaceholder(_ placeholder: String, with value: String) -> String {
        let chars = Array(self), marker = Array(placeholder)
        guard chars.count >= marker.count else { return self }
        for start in 0...(chars.count - marker.count) where Array(chars[start..<(start + marker.count)]) == marker {
            return String(chars[..<start]) + value + String(chars[(start + marker.count)...])
        }
        return self
    }
}

public enum Schemes {
    /// The canonical DiT scheme, in file order.
    public static let canonical: [CanonicalSpec] = {
        func spec(_ t: String, trainable: Bool = true, optional: Bool = false, _ shape: @escaping @Sendable (DiTConfig) -> [Int]) -> CanonicalSpec {
            CanonicalSpec(template: t, shape: shape, trainable: trainable, optional: optional)
        }
        return [
            spec("pos_embed", trainable: false, optional: true) { [1, $0.tokens, $0.hiddenSize] },
            spec("patch_embed.weight") { [$0.hiddenSize, $0.inChannels, $0.patchSize, $0.patchSize] },
            spec("patch_embed.bias") { [$0.hiddenSize] },
            spec("t_embed.table", trainable: false, optional: true) { [1000, $0.frequencyEmbeddingSize] },
            spec("t_embed.fc1.weight") { [$0.hiddenSize, $0.frequencyEmbeddingSize] },
            spec("t_embed.fc1.bias") { [$0.hiddenSize] },
            spec("t_embed.fc2.weight") { [$0.hiddenSize, $0.hiddenSize] },
            spec("t_embed.fc2.bias") { [$0.hiddenSize] },
            spec("y_embed.table") { [$0.labelRows, $0.hiddenSize] },
            spec("blocks.{i}.attn.qkv.weight") { [3 * $0.hiddenSize, $0.hiddenSize] },
            spec("blocks.{i}.attn.qkv.bias") { [3 * $0.hiddenSize] },
            spec("blocks.{i}.attn.out.weight") { [$0.hiddenSize, $0.hiddenSize] },
            spec("blocks.{i}.attn.out.bias") { [$0.hiddenSize] },
            spec("blocks.{i}.mlp.fc1.weight") { [$0.mlpHidden, $0.hiddenSize] },
            spec("blocks.{i}.mlp.fc1.bias") { [$0.mlpHidden] },
            spec("blocks.{i}.mlp.fc2.weight") { [$0.hiddenSize, $0.mlpHidden] },
            spec("blocks.{i}.mlp.fc2.bias") { [$0.hiddenSize] },
            spec("blocks.{i}.modulation.weight") { [6 * $0.hiddenSize, $0.hiddenSize] },
            spec("blocks.{i}.modulation.bias") { [6 * $0.hiddenSize] },
            spec("final.linear.weight") { [$0.patchSize * $0.patchSize * $0.outChannels, $0.hiddenSize] },
            spec("final.linear.bias") { [$0.patchSize * $0.patchSize * $0.outChannels] },
            spec("final.modulation.weight") { [2 * $0.hiddenSize, $0.hiddenSize] },
            spec("final.modulation.bias") { [2 * $0.hiddenSize] },
            spec("diffusion.sqrt_alphas_cumprod", trainable: false, optional: true) { _ in [1000] },
            spec("diffusion.sqrt_one_minus_alphas_cumprod", trainable: false, optional: true) { _ in [1000] },
        ]
    }()

    public static let original = Scheme(
        layout: .original,
        forms: [
            "pos_embed": .same("pos_embed"),
            "patch_embed.weight": .same("x_embedder.proj.weight"), "patch_embed.bias": .same("x_embedder.proj.bias"),
            "t_embed.fc1.weight": .same("t_embedder.mlp.0.weight"), "t_embed.fc1.bias": .same("t_embedder.mlp.0.bias"),
            "t_embed.fc2.weight": .same("t_embedder.mlp.2.weight"), "t_embed.fc2.bias": .same("t_embedder.mlp.2.bias"),
            "y_embed.table": .same("y_embedder.embedding_table.weight"),
            "blocks.{i}.modulation.weight": .same("blocks.{i}.adaLN_modulation.1.weight"),
            "blocks.{i}.modulation.bias": .same("blocks.{i}.adaLN_modulation.1.bias"),
            "blocks.{i}.attn.qkv.weight": .same("blocks.{i}.attn.qkv.weight"),
            "blocks.{i}.attn.qkv.bias": .same("blocks.{i}.attn.qkv.bias"),
            "blocks.{i}.attn.out.weight": .same("blocks.{i}.attn.proj.weight"),
            "blocks.{i}.attn.out.bias": .same("blocks.{i}.attn.proj.bias"),
            "blocks.{i}.mlp.fc1.weight": .same("blocks.{i}.mlp.fc1.weight"), "blocks.{i}.mlp.fc1.bias": .same("blocks.{i}.mlp.fc1.bias"),
            "blocks.{i}.mlp.fc2.weight": .same("blocks.{i}.mlp.fc2.weight"), "blocks.{i}.mlp.fc2.bias": .same("blocks.{i}.mlp.fc2.bias"),
            "final.modulation.weight": .same("final_layer.adaLN_modulation.1.weight"),
            "final.modulation.bias": .same("final_layer.adaLN_modulation.1.bias"),
            "final.linear.weight": .same("final_layer.linear.weight"), "final.linear.bias": .same("final_layer.linear.bias"),
        ],
        conventionalPrefix: "")

    public static let diffusers: Scheme = {
        let b = "transformer_blocks.{i}."
        let e = "transformer_blocks.{j}.norm1.emb."
        return Scheme(
            layout: .diffusers,
            forms: [
                "patch_embed.weight": .same("pos_embed.proj.weight"), "patch_embed.bias": .same("pos_embed.proj.bias"),
                "t_embed.fc1.weight": .copies(e + "timestep_embedder.linear_1.weight"),
                "t_embed.fc1.bias": .copies(e + "timestep_embedder.linear_1.bias"),
                "t_embed.fc2.weight": .copies(e + "timestep_embedder.linear_2.weight"),
                "t_embed.fc2.bias": .copies(e + "timestep_embedder.linear_2.bias"),
                "y_embed.table": .copies(e + "class_embedder.embedding_table.weight"),
                "blocks.{i}.modulation.weight": .same(b + "norm1.linear.weight"),
                "blocks.{i}.modulation.bias": .same(b + "norm1.linear.bias"),
                "blocks.{i}.attn.qkv.weight": .rows([b + "attn1.to_q.weight", b + "attn1.to_k.weight", b + "attn1.to_v.weight"]),
                "blocks.{i}.attn.qkv.bias": .rows([b + "attn1.to_q.bias", b + "attn1.to_k.bias", b + "attn1.to_v.bias"]),
                "blocks.{i}.attn.out.weight": .same(b + "attn1.to_out.0.weight"),
                "blocks.{i}.attn.out.bias": .same(b + "attn1.to_out.0.bias"),
                "blocks.{i}.mlp.fc1.weight": .same(b + "ff.net.0.proj.weight"), "blocks.{i}.mlp.fc1.bias": .same(b + "ff.net.0.proj.bias"),
                "blocks.{i}.mlp.fc2.weight": .same(b + "ff.net.2.weight"), "blocks.{i}.mlp.fc2.bias": .same(b + "ff.net.2.bias"),
                "final.modulation.weight": .same("proj_out_1.weight"), "final.modulation.bias": .same("proj_out_1.bias"),
                "final.linear.weight": .same("proj_out_2.weight"), "final.linear.bias": .same("proj_out_2.bias"),
            ],
            conventionalPrefix: "")
    }()

    public static let cerebras: Scheme = {
        let l = "transformer_decoder.layers.{i}."
        func both(_ stems: [String]) -> ([String], [String]) { (stems.map { $0 + ".weight" }, stems.map { $0 + ".bias" }) }
        let modulation = both(["norm1.shift_linear.1", "norm1.scale_linear.1", "gate_msa.1", "norm3.shift_linear.1", "norm3.scale_linear.1", "gate_mlp.1"].map { l + $0 })
        let qkv = both(["self_attn.proj_q_dense_layer", "self_attn.proj_k_dense_layer", "self_attn.proj_v_dense_layer"].map { l + $0 })
        let final = both(["final_norm.shift_linear.1", "final_norm.scale_linear.1"])
        return Scheme(
            layout: .cerebras,
            forms: [
                "pos_embed": .same("patch_embedding_layer.position_embeddings"),
                "patch_embed.weight": .same("patch_embedding_layer.linear_proj.weight"),
                "patch_embed.bias": .same("patch_embedding_layer.linear_proj.bias"),
                "t_embed.table": .same("timestep_embedding_layer.timestep_embedding"),
                "t_embed.fc1.weight": .same("timestep_embedding_layer.ffn.ffn.0.linear_layer.weight"),
                "t_embed.fc1.bias": .same("timestep_embedding_layer.ffn.ffn.0.linear_layer.bias"),
                "t_embed.fc2.weight": .same("timestep_embedding_layer.ffn.ffn.1.linear_layer.weight"),
                "t_embed.fc2.bias": .same("timestep_embedding_layer.ffn.ffn.1.linear_layer.bias"),
                "y_embed.table": .same("label_embedding_layer.weight"),
                "blocks.{i}.modulation.weight": .rows(modulation.0), "blocks.{i}.modulation.bias": .rows(modulation.1),
                "blocks.{i}.attn.qkv.weight": .rows(qkv.0), "blocks.{i}.attn.qkv.bias": .rows(qkv.1),
                "blocks.{i}.attn.out.weight": .same(l + "self_attn.proj_output_dense_layer.weight"),
                "blocks.{i}.attn.out.bias": .same(l + "self_attn.proj_output_dense_layer.bias"),
                "blocks.{i}.mlp.fc1.weight": .same(l + "ffn.ffn.0.linear_layer.weight"), "blocks.{i}.mlp.fc1.bias": .same(l + "ffn.ffn.0.linear_layer.bias"),
                "blocks.{i}.mlp.fc2.weight": .same(l + "ffn.ffn.1.linear_layer.weight"), "blocks.{i}.mlp.fc2.bias": .same(l + "ffn.ffn.1.linear_layer.bias"),
                "final.modulation.weight": .rows(final.0), "final.modulation.bias": .rows(final.1),
                "final.linear.weight": .convTranspose(weight: "noise_head.conv_transpose.weight", bias: "noise_head.conv_transpose.bias"),
                "final.linear.bias": .convTranspose(weight: "noise_head.conv_transpose.weight", bias: "noise_head.conv_transpose.bias"),
                "diffusion.sqrt_alphas_cumprod": .same("gaussian_diffusion.sqrt_alphas_cum_prod"),
                "diffusion.sqrt_one_minus_alphas_cumprod": .same("gaussian_diffusion.sqrt_one_minus_alphas_cum_prod"),
            ],
            conventionalPrefix: "model.model.")
    }()

    public static func scheme(for layout: Layout) -> Scheme? {
        switch layout {
        case .original: return original
        case .diffusers: return diffusers
        case .cerebras: return cerebras
        case .unknown: return nil
        }
    }

    /// A source tensor name with its shape, as `layout` stores the tensors of `config`.
    public struct SourceTensor: Sendable, Equatable {
        public let name: String
        public let shape: [Int]
        public let trainable: Bool
    }

    /// Every tensor `layout` stores for `config`, in that layout's conventional order, without prefix.
    /// `optional` canonical tensors are included when the layout stores them (pos_embed in original and
    /// Cerebras, Cerebras' frozen tables).
    public static func sourceTensors(_ layout: Layout, config: DiTConfig) -> [SourceTensor] {
        guard let scheme = scheme(for: layout) else { return [] }
        var out: [SourceTensor] = []
        var seen = Set<String>()
        func add(_ name: String, _ shape: [Int], _ trainable: Bool) {
            if seen.insert(name).inserted { out.append(SourceTensor(name: name, shape: shape, trainable: trainable)) }
        }
        func emit(_ spec: CanonicalSpec, block: Int?) {
            let template = spec.template
            let shape = spec.shape(config)
            func resolve(_ s: String) -> String { block.map { s.replacingBlock($0) } ?? s }
            switch scheme.form(template) {
            case .absent: break
            case .same(let name):
                let stored = (layout == .cerebras && template == "pos_embed") ? [config.tokens, config.hiddenSize] : shape
                add(resolve(name), stored, spec.trainable)
            case .rows(let names):
                var part = shape
                part[0] /= names.count
                for n in names { add(resolve(n), part, spec.trainable) }
            case .copies(let name):
                for j in 0..<config.depth { add(name.replacingCopy(j), shape, spec.trainable) }
            case .convTranspose(let weight, let bias):
                add(weight, [config.hiddenSize, config.outChannels, config.patchSize, config.patchSize], true)
                add(bias, [config.outChannels], true)
            }
        }
        switch layout {
        case .diffusers:
            // diffusers order: patch embedding, then per block (embedder copies first), then the output head.
            for spec in canonical where !spec.perBlock && spec.template.hasPrefix("patch_embed") { emit(spec, block: nil) }
            for i in 0..<config.depth {
                for spec in canonical where !spec.perBlock {
                    if case .copies(let name) = scheme.form(spec.template) {
                        add(name.replacingCopy(i), spec.shape(config), spec.trainable)
                    }
                }
                for spec in canonical where spec.perBlock { emit(spec, block: i) }
            }
            for spec in canonical where spec.template.hasPrefix("final.") { emit(spec, block: nil) }
        default:
            for spec in canonical where !spec.perBlock && !spec.template.hasPrefix("final.") && !spec.template.hasPrefix("diffusion.") {
                if layout == .original && (spec.template == "t_embed.table") { continue }
                emit(spec, block: nil)
            }
            for i in 0..<config.depth { for spec in canonical where spec.perBlock { emit(spec, block: i) } }
            for spec in canonical where spec.template.hasPrefix("final.") || spec.template.hasPrefix("diffusion.") {
                emit(spec, block: nil)
            }
        }
        return out
    }

    /// The canonical tensors of `config` (per-block templates expanded), with or without the optional ones.
    public static func canonicalTensors(_ config: DiTConfig, includeOptional: Set<String> = []) -> [(name: String, spec: CanonicalSpec)] {
        var out: [(String, CanonicalSpec)] = []
        for spec in canonical where !spec.perBlock && !spec.template.hasPrefix("final.") && !spec.template.hasPrefix("diffusion.") {
            if spec.optional && !includeOptional.contains(spec.template) { continue }
            out.append((spec.template, spec))
        }
        for i in 0..<config.depth { for spec in canonical where spec.perBlock { out.append((spec.name(block: i), spec)) } }
        for spec in canonical where spec.template.hasPrefix("final.") || spec.template.hasPrefix("diffusion.") {
            if spec.optional && !includeOptional.contains(spec.template) { continue }
            out.append((spec.template, spec))
        }
        return out
    }
}
