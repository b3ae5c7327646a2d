import Checkpoints

/// A layout found under a key prefix (`""`, `ema.`, `model.`, `module.`, `transformer.`, `model.model.`).
public struct LayoutMatch: Sendable, Equatable {
    /// Two matches are equal when every counted field is (the summary follows from family and layout).
    public static func == (a: LayoutMatch, b: LayoutMatch) -> Bool {
        (a.family, a.layout, a.prefix, a.depth, a.matchedTensors, a.tensorsUnderPrefix)
            == (b.family, b.layout, b.prefix, b.depth, b.matchedTensors, b.tensorsUnderPrefix)
    }

    /// The family whose layout it is (`dit`).
    public let family: String
    /// The layout recognised.
    public let layout: Layout
    /// Key prefix the layout's names sit under.
    public let prefix: String
    /// Number of transformer blocks seen.
    public let depth: Int
    /// Tensors under the prefix that carry the layout's names.
    public let matchedTensors: Int
    /// Tensors under the prefix in total.
    public let tensorsUnderPrefix: Int

    /// What the layout is, for reports (`original DiT (facebookresearch)`).
    public let summary: String

    /// A match; `summary` defaults to the family's summary of `layout`.
    public init(
        family: String = DiTFamily.name, layout: Layout, prefix: String, depth: Int, matchedTensors: Int, tensorsUnderPrefix: Int,
        summary: String? = nil
    ) {
        self.family = family
        self.summary = summary ?? ModelFamilies.layoutSummary(family: family, layout: layout)
        self.layout = layout
        self.prefix = prefix
        self.depth = depth
        self.matchedTensors = matchedTensors
        self.tensorsUnderPrefix = tensorsUnderPrefix
    }
}

/// How one layout is recognised, derived from its naming table (no tensor name is written here).
struct LayoutSignature {
    let family: String
    let layout: Layout
    let summary: String
    /// Stored names (after the prefix) every checkpoint of the layout has; the first anchors the prefix search.
    let required: [String]
    /// The stored per-block name (with `{i}`) that counts the blocks; nil for a layout without blocks (depth 0).
    let blockKey: String?
    /// First components of the layout's stored names.
    let stems: [String]

    init?<F: ModelFamily>(_ family: F.Type, _ layout: SourceLayout<F.Config>) {
        let required = layout.signature.compactMap { layout.probeName($0)?.replacingBlock(0) }
        let blockKey = layout.probeName(layout.depthProbe)
        guard required.count == layout.signature.count, !required.isEmpty,
            blockKey?.contains("{i}") == true || !F.canonical.contains(where: \.perBlock)
        else { return nil }
        self.family = F.name
        self.layout = layout.id
        self.summary = layout.summary
        self.required = required
        self.blockKey = blockKey?.contains("{i}") == true ? blockKey : nil
        self.stems = layout.stems
    }
}

/// Recognises layouts by the stored names their naming tables give the signature tensors. It only tells which
/// layouts a checkpoint holds and where; the full name mapping is the layout's table.
public enum LayoutDetector {
    /// The positions in `name` just after each `.` (and the start, for length 0) at which a prefix of one of
    /// `lengths` UTF-8 bytes would end: the only places a match prefix can cut the name (near-linear lookups).
    static func prefixCuts(_ name: String, lengths: Set<Int>) -> [String.Index] {
        let utf8 = name.utf8
        var cuts = lengths.contains(0) ? [utf8.startIndex] : []
        var length = 0
        for i in utf8.indices {
            length += 1
            if utf8[i] == UInt8(ascii: "."), lengths.contains(length) { cuts.append(utf8.index(after: i)) }
        }
        return cuts
    }

    /// Every family's signatures, in registry order.
    static let signatures: [LayoutSignature] = ModelFamilies.all.flatMap { family in signatures(of: family) }

    static func signatures<F: ModelFamily>(of family: F.Type) -> [LayoutSignature] {
        F.layouts.compactMap { LayoutSignature(F.self, $0) }
    }

    /// Every (layout, prefix) pair of any family present in `names`, in the order their prefixes first appear.
    public static func detect(_ names: [String]) -> [LayoutMatch] { detect(names, signatures: signatures) }

    /// Every (layout, prefix) pair of the given families present in `names`.
    public static func detect(_ names: [String], families: [any ModelFamily.Type]) -> [LayoutMatch] {
        var all: [LayoutSignature] = []
        for family in families { all += signatures(of: family) }
        return detect(names, signatures: all)
    }

    /// The (layout, prefix) pairs of one family present in `names`.
    public static func detect<F: ModelFamily>(_ names: [String], family: F.Type) -> [LayoutMatch] {
        detect(names, signatures: signatures(of: family))
    }

    /// Near-linear in the names: candidate prefixes come from the names ending in a signature's anchor, then one
    /// pass files every name under each candidate prefix it starts with (only its cuts after a `.` of a candidate's
    /// length are looked up).
    static func detect(_ names: [String], signatures: [LayoutSignature]) -> [LayoutMatch] {
        var candidates: [(signature: LayoutSignature, prefix: String)] = []
        var seenPairs = Set<String>()
        for signature in signatures {
            let anchor = signature.required[0]
            for name in names where name.hasSuffix(anchor) {
                let prefix = String(name.dropLast(anchor.count))
                guard prefix.isEmpty || prefix.hasSuffix("."),
                    seenPairs.insert(signature.family + "|" + signature.layout.rawValue + "|" + prefix).inserted
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
            for cut in LayoutDetector.prefixCuts(name, lengths: lengths) {
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
            var depth = 0
            if let blockKey = signature.blockKey {
                let split = blockKey.split(separator: "{", maxSplits: 1)
                let blockParts = [String(split[0]), String(split[1].dropFirst("i}".count))]
                while keySet.contains(blockParts[0] + String(depth) + blockParts[1]) { depth += 1 }
            }
            let matched = keys.filter { key in signature.stems.contains { key == $0 || ($0.hasSuffix(".") && key.hasPrefix($0)) } }.count
            matches.append((
                LayoutMatch(family: signature.family, layout: signature.layout, prefix: prefix, depth: depth, matchedTensors: matched,
                            tensorsUnderPrefix: keys.count, summary: signature.summary),
                firstIndex[prefix] ?? 0))
        }
        return matches.enumerated().sorted { ($0.element.first, $0.offset) < ($1.element.first, $1.offset) }.map(\.element.match)
    }

    /// The main layout of a checkpoint: the first match, or `.unknown`.
    public static func primary(_ checkpoint: Checkpoint) -> Layout {
        detect(checkpoint.tensors.map(\.name)).first?.layout ?? .unknown
    }
}
