import Checkpoints

/// The DiT checkpoint layouts ditkit knows.
public enum Layout: String, Sendable, CaseIterable {
    /// facebookresearch/DiT `models.py` state dict.
    case original
    /// diffusers `DiTTransformer2DModel` (or legacy `Transformer2DModel` with ada_norm_zero).
    case diffusers
    /// Cerebras Model Zoo DiT.
    case cerebras
    case unknown

    public var summary: String {
        switch self {
        case .original: return "original DiT (facebookresearch)"
        case .diffusers: return "diffusers DiT"
        case .cerebras: return "Cerebras Model Zoo DiT"
        case .unknown: return "unknown"
        }
    }
}

/// A layout found under a key prefix (`""`, `ema.`, `model.`, `module.`, `transformer.`, `model.model.`).
public struct LayoutMatch: Sendable, Equatable {
    public let layout: Layout
    /// Key prefix the layout's names sit under.
    public let prefix: String
    /// Number of transformer blocks seen.
    public let depth: Int
    /// Tensors under the prefix that carry the layout's names.
    public let matchedTensors: Int
    /// Tensors under the prefix in total.
    public let tensorsUnderPrefix: Int

    public init(layout: Layout, prefix: String, depth: Int, matchedTensors: Int, tensorsUnderPrefix: Int) {
        self.layout = layout
        self.prefix = prefix
        self.depth = depth
        self.matchedTensors = matchedTensors
        self.tensorsUnderPrefix = tensorsUnderPrefix
    }
}

/// Recognises layouts by key patterns (signature keys that only that layout has). The full name mapping is
/// the `Scheme` of each layout; this only tells which one a checkpoint holds and where.
public enum LayoutDetector {
    struct Signature {
        let layout: Layout
        /// Keys (after the prefix) every checkpoint of the layout has.
        let required: [String]
        /// Per-block key (with `{i}`) used to count depth; its stem identifies block tensors.
        let blockKey: String
        let blockStem: String
        /// Stems of non-block tensors that belong to the layout.
        let stems: [String]
    }

    static let signatures: [Signature] = [
        Signature(
            layout: .original,
            required: ["x_embedder.proj.weight", "t_embedder.mlp.0.weight", "final_layer.linear.weight"],
            blockKey: "blocks.{i}.attn.qkv.weight", blockStem: "blocks.",
            stems: ["pos_embed", "x_embedder.", "t_embedder.", "y_embedder.", "final_layer."]),
        Signature(
            layout: .diffusers,
            required: ["pos_embed.proj.weight", "proj_out_1.weight", "proj_out_2.weight"],
            blockKey: "transformer_blocks.{i}.attn1.to_q.weight", blockStem: "transformer_blocks.",
            stems: ["pos_embed.", "proj_out_1.", "proj_out_2."]),
        Signature(
            layout: .cerebras,
            required: ["patch_embedding_layer.linear_proj.weight", "timestep_embedding_layer.ffn.ffn.0.linear_layer.weight"],
            blockKey: "transformer_decoder.layers.{i}.self_attn.proj_q_dense_layer.weight",
            blockStem: "transformer_decoder.layers.",
            stems: [
                "patch_embedding_layer.", "timestep_embedding_layer.", "label_embedding_layer.", "final_norm.", "noise_head.",
                "gaussian_diffusion.",
            ]),
    ]

    /// Every (layout, prefix) pair present in `names`, in the order their prefixes first appear. Near-linear in
    /// the names: candidate prefixes come from the names ending in a signature's anchor, then one pass files every
    /// name under each candidate prefix it starts with (only its cuts after a `.` of a candidate's length are looked up).
    public static func detect(_ names: [String]) -> [LayoutMatch] {
        var candidates: [(signature: Signature, prefix: String)] = []
        var seenPairs = Set<String>()
        for signature in signatures {
            let anchor = signature.required[0]
            for name in names where name.hasSuffix(anchor) {
                let prefix = String(name.dropLast(anchor.count))
                guard prefix.isEmpty || prefix.hasSuffix("."), seenPairs.insert(signature.layout.rawValue + "|" + prefix).inserted
                else { continue }
                candidates.append((signature, prefix))
            }
        }
        guard !candidates.isEmpty else { return [] }
        let prefixes = Set(candidates.map(\.prefix))
        let lengths = Set(prefixes.map(\.utf8.count))
        var under: [String: [String]] = [:]
        var firstIndex: [String: Int] = [:]
        for (index, name) in names.enumerated() {
            let utf8 = name.utf8
            var cuts = lengths.contains(0) ? [utf8.startIndex] : []
            var length = 0
            for i in utf8.indices {
                length += 1
                if utf8[i] == UInt8(ascii: "."), lengths.contains(length) { cuts.append(utf8.index(after: i)) }
            }
            for cut in cuts {
                let prefix = String(name[..<cut])
                guard prefixes.contains(prefix) else { continue }
                under[prefix, default: []].append(String(name[cut...]))
                if firstIndex[prefix] == nil { firstIndex[prefix] = index }
            }
        }
        var matches: [(match: LayoutMatch, first: Int)] = []
        for (signature, prefix) in candidates {
            let keys = under[prefix] ?? []
            let keySet = Set(keys)
            guard signature.required.allSatisfy(keySet.contains) else { continue }
            let split = signature.blockKey.split(separator: "{", maxSplits: 1)
            let blockParts = [String(split[0]), String(split[1].dropFirst("i}".count))]
            var depth = 0
            while keySet.contains(blockParts[0] + String(depth) + blockParts[1]) { depth += 1 }
            let matched = keys.filter { key in
                key.hasPrefix(signature.blockStem) || signature.stems.contains { key == $0 || key.hasPrefix($0) }
            }.count
            matches.append((
                LayoutMatch(layout: signature.layout, prefix: prefix, depth: depth, matchedTensors: matched, tensorsUnderPrefix: keys.count),
                firstIndex[prefix] ?? 0))
        }
        return matches.enumerated().sorted { ($0.element.first, $0.offset) < ($1.element.first, $1.offset) }.map(\.element.match)
    }

    /// The main layout of a checkpoint: the first match, or `.unknown`.
    public static func primary(_ checkpoint: Checkpoint) -> Layout {
        detect(checkpoint.tensors.map(\.name)).first?.layout ?? .unknown
    }
}
