import Checkpoints
import Tensors

/// How one canonical tensor is obtained from a checkpoint's tensors.
public enum CanonicalSource: Sendable {
    /// The same elements (possibly reshaped).
    case tensor(TensorInfo)
    /// Concatenation along dimension 0.
    case rows([TensorInfo])
    /// Another arrangement of stored tensors, read through the layout's transform.
    case transformed(any TensorTransform, [TensorInfo])

    /// The checkpoint tensors this canonical tensor is made from.
    public var inputs: [TensorInfo] {
        switch self {
        case .tensor(let t): return [t]
        case .rows(let parts), .transformed(_, let parts): return parts
        }
    }
}

/// One canonical tensor of a model view.
public struct CanonicalTensor: Sendable {
    /// The canonical name (`blocks.3.attn.qkv.weight`).
    public let name: String
    /// Where its elements come from in the checkpoint.
    public let source: CanonicalSource
    /// The canonical shape.
    public let shape: [Int]
    /// The dtype of the stored tensors.
    public let dtype: DType
}

/// A value of a model's config that was assumed rather than read (heads cannot be read from weights, a training
/// checkpoint's EMA weights were chosen, a default filled a missing config key), and where the assumption came from.
/// Every command reports these; a comparison never lets an assumed value silently win over a read one.
public struct Assumption: Sendable, Equatable, CustomStringConvertible {
    /// The config field (`num_heads`, `num_classes`, `norm_eps.mlp`) or choice (`weights`) assumed.
    public let field: String
    /// The value assumed, as text.
    public let value: String
    /// Where the value came from (`the preset with hidden size 1152`, `head dimension 64`).
    public let basis: String

    /// An assumption of `value` for `field`, on `basis`.
    public init(field: String, value: String, basis: String) {
        self.field = field
        self.value = value
        self.basis = basis
    }

    /// `num_heads = 16 (assumed: the preset with hidden size 1152)`.
    public var description: String { "\(field) = \(value) (assumed: \(basis))" }

    /// As JSON: field, value, basis.
    public var json: JSONValue { .object([("field", .string(field)), ("value", .string(value)), ("basis", .string(basis))]) }
}

/// What a family's config inference sees: the checkpoint's tensors under the detected prefix, read by CANONICAL
/// template through the layout's naming table, the checkpoint's config files, the user's options, and a place for
/// notes. Every shape read is rank-checked and names the stored tensor when it does not fit.
public struct InferenceContext<Family: ModelFamily> {
    /// The checkpoint being read.
    public let checkpoint: Checkpoint
    /// The layout detected, as its naming table.
    public let layout: SourceLayout<Family.Config>
    /// Blocks present (counted through the layout's depth probe).
    public let depth: Int
    /// The options the caller gave.
    public let options: ModelOptions
    /// Things the user should know (each assumption is also a note).
    public var notes: [String] = []
    /// Values assumed rather than read, and where each came from.
    public var assumptions: [Assumption] = []

    /// Records an assumption (and a note saying it).
    public mutating func assume(_ field: String, _ value: String, basis: String, note: String) {
        assumptions.append(Assumption(field: field, value: value, basis: basis))
        notes.append(note)
    }
    /// How each config field's value was obtained (field → tensor, key or option), so that a problem names what the
    /// user can fix.
    public var origins: [String: String] = [:]
    /// The key prefix the layout's names sit under (a pipeline folder's component: `vqvae.`).
    public var prefix: String = ""
    let stored: [String: TensorInfo]

    /// The stored names of a canonical template's form at canonical block `block` and inner index `inner` (copy 0).
    func storedNames(_ template: String, block: Int, inner: Int) -> [String] {
        layout.form(template).names.map {
            layout.resolve($0, template: template, block: block, inner: inner, depth: depth).replacingPlaceholder("{j}", with: "0")
        }
    }

    init(checkpoint: Checkpoint, layout: SourceLayout<Family.Config>, depth: Int, options: ModelOptions, prefix: String = "", stored: [String: TensorInfo]) {
        self.checkpoint = checkpoint
        self.layout = layout
        self.depth = depth
        self.options = options
        self.prefix = prefix
        self.stored = stored
    }

    /// The attention head count, which weights cannot give: the caller's `heads` option, else the component
    /// config's `num_attention_heads`, else assumed from the preset of the same hidden size (`presetHeads`), else
    /// assumed from the first of `headDimensions` that divides `hidden`; each assumption is recorded and noted.
    /// Throws ``ModelError/sizeNeeded(path:field:reason:)`` when none applies.
    public mutating func headCount(hidden: Int, presetHeads: Int?, headDimensions: [Int]) throws -> Int {
        let path = checkpoint.path
        if let h = options.heads {
            origins["num_heads"] = options.name(of: "heads")
            return h
        }
        if let h = try configInt("num_attention_heads") {
            origins["num_heads"] = "\(componentConfig?.file ?? path): num_attention_heads"
            return h
        }
        if let (h, path) = modelZooParameter("num_heads", hidden: hidden), h > 0 {
            origins["num_heads"] = "\(checkpoint.path): \(path)"
            return h
        }
        if let h = presetHeads {
            assume(
                "num_heads", "\(h)", basis: "the preset with hidden size \(hidden)",
                note: "\(h) attention heads, from the preset with hidden size \(hidden) (assumed: heads cannot be read from weights)")
            return h
        }
        if let dim = headDimensions.first(where: { hidden > 0 && hidden % $0 == 0 }) {
            let heads = hidden / dim
            assume(
                "num_heads", "\(heads)", basis: "head dimension \(dim)",
                note: "\(heads) attention heads assuming head dimension \(dim) (assumed: heads cannot be read from weights)")
            return heads
        }
        let multiples = headDimensions.map(String.init)
        throw ModelError.sizeNeeded(
            path: path, field: "num_heads",
            reason: "hidden size \(hidden) matches no preset and is not a multiple of "
                + (multiples.count > 1 ? multiples.dropLast().joined(separator: ", ") + " or " + multiples.last! : multiples.joined()))
    }

    /// An integer model parameter a Cerebras Model Zoo trainer recorded with the run (`__metadata__[-1]["params"]`,
    /// which its metadata callback saves in every checkpoint: the model section at `trainer.init.model`, or `model`
    /// in older params files) — `num_heads`, `num_classes` — with the value's path; nil when the file has none, or
    /// when the same record's `hidden_size` is not this model's (another model's params).
    public func modelZooParameter(_ name: String, hidden: Int) -> (Int, String)? {
        var last: (index: Int, heads: (Int, String)?, hidden: Int?) = (-1, nil, nil)
        for value in checkpoint.values where value.path.hasPrefix("__metadata__.") {
            let parts = value.path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard parts.count >= 5, let index = Int(parts[1]), parts[2] == "params",
                ["model"] == parts[3..<(parts.count - 1)] || ["trainer", "init", "model"] == parts[3..<(parts.count - 1)],
                let field = parts.last, field == name || field == "hidden_size", let number = value.json.intValue
            else { continue }
            if index > last.index { last = (index, nil, nil) }
            guard index == last.index else { continue }
            if field == name { last.heads = (number, value.path) } else { last.hidden = number }
        }
        guard let (number, path) = last.heads, last.hidden == nil || last.hidden == hidden else { return nil }
        return (number, path)
    }

    /// The stored name of a canonical tensor (block 0, copy 0), for messages.
    public func storedName(_ template: String) -> String { storedName(template, block: 0, inner: 0) }

    /// The stored name of a canonical tensor at canonical block `block` and inner index `inner`, for messages.
    public func storedName(_ template: String, block: Int, inner: Int = 0) -> String {
        storedNames(template, block: block, inner: inner).first ?? template
    }

    /// Whether the checkpoint stores the canonical tensor `template` (block 0, copy 0).
    public func has(_ template: String) -> Bool { has(template, block: 0, inner: 0) }

    /// Whether the checkpoint stores the canonical tensor `template` at canonical block `block` and inner index `inner`.
    public func has(_ template: String, block: Int, inner: Int = 0) -> Bool {
        let names = storedNames(template, block: block, inner: inner)
        return !names.isEmpty && names.allSatisfy { stored[$0] != nil }
    }

    /// The canonical shape of `template` (block 0, copy 0) as the stored tensors give it: a stored tensor of the
    /// same elements keeps its stored shape; concatenated rows add up; a transform maps its stored shapes.
    public func shape(_ template: String) throws -> [Int] { try shape(template, block: 0, inner: 0) }

    /// The canonical shape of `template` at canonical block `block` and inner index `inner`, as ``shape(_:)`` reads it.
    public func shape(_ template: String, block: Int, inner: Int = 0) throws -> [Int] {
        let names = storedNames(template, block: block, inner: inner)
        guard !names.isEmpty else { throw ModelError.config("cannot infer the config: the \(layout.id) layout does not store \(template)") }
        var shapes: [[Int]] = []
        for name in names {
            guard let t = stored[name] else { throw ModelError.config("cannot infer the config: \(name) is missing") }
            shapes.append(t.shape)
        }
        switch layout.form(template) {
        case .rows:
            guard shapes.allSatisfy({ !$0.isEmpty && Array($0.dropFirst()) == Array(shapes[0].dropFirst()) }) else {
                throw ModelError.mapping(path: checkpoint.path, problems: ["shape: the parts of \(template) (\(names.joined(separator: ", "))) do not stack: \(shapes)"])
            }
            return [shapes.reduce(0) { Checked.saturatingAdd($0, $1[0]) }] + shapes[0].dropFirst()
        case .transformed(let transform):
            guard let shape = transform.canonicalShape(sourceShapes: shapes) else {
                throw ModelError.mapping(path: checkpoint.path, problems: ["shape: \(names.joined(separator: ", ")) is \(shapes.map { "\($0)" }.joined(separator: ", ")), which does not fit \(template)"])
            }
            return shape
        default:
            return shapes[0]
        }
    }

    /// Dimension `axis` of the canonical tensor `template`, which must have rank `rank`; a tensor of another rank is
    /// named, never indexed past its end.
    public func dim(_ template: String, _ axis: Int, rank: Int) throws -> Int {
        let shape = try shape(template)
        guard shape.count == rank else {
            throw ModelError.mapping(path: checkpoint.path, problems: ["shape: \(storedName(template)) is \(shape), expected a rank-\(rank) tensor"])
        }
        return shape[axis]
    }

    /// The element count of the stored tensor of `template` (block 0, copy 0), for tables stored in another rank.
    public func elements(_ template: String) throws -> Int {
        try checkedElementCount(try shape(template))
    }

    /// The component config of a diffusers checkpoint (`config.json` of the component), with the file it came from:
    /// in a pipeline folder the component folder named by the prefix (`vqvae/config.json` under `vqvae.`), else the
    /// transformer's.
    public var componentConfig: (json: JSONValue, file: String)? {
        let folder = prefix.hasSuffix(".") ? String(prefix.dropLast()) + "/config.json" : nil
        guard let entry = checkpoint.configs.first(where: { $0.0 == folder })
            ?? checkpoint.configs.first(where: { $0.0 == "config.json" || $0.0.hasSuffix("transformer/config.json") })
        else { return nil }
        return (entry.1, checkpoint.path + "/" + entry.0)
    }

    /// An integer of the component config: absent or null → nil; present but not an integer → an error naming the
    /// file and key.
    public func configInt(_ key: String) throws -> Int? {
        guard let (json, file) = componentConfig, let value = json[key], value != .null else { return nil }
        guard let v = value.intValue else {
            throw ModelError.invalidConfig(origin: file, problems: ["\(key) = \(value.serialized().prefix(40)) is not an integer"])
        }
        return v
    }
}

/// A model read out of a checkpoint: its family and layout, the prefix its names sit under, the config inferred for
/// it, and every canonical tensor mapped (strictly) to the checkpoint's tensors. Reads no tensor data, except to
/// check per-block copies.
public struct ModelView<Family: ModelFamily>: Sendable {
    /// The checkpoint the model was read from (tensor data is read from it lazily).
    public let checkpoint: Checkpoint
    /// The layout the names follow (`canonical` for a canonical file).
    public let layout: Layout
    /// The key prefix the layout's names sit under in the checkpoint (`""`, `ema.`, `model.model.`).
    public let prefix: String
    /// The config inferred or read for the model.
    public let config: Family.Config
    /// Canonical tensors in canonical order.
    public let tensors: [CanonicalTensor]
    /// Things the user should know (prefix found, copies checked, values assumed).
    public let notes: [String]
    /// Values assumed rather than read (also in `notes`).
    public let assumptions: [Assumption]
    /// The source names read when the model is one component of a whole file (``ModelBundle``); nil when every tensor
    /// under the prefix is the model's.
    public internal(set) var claimed: Set<String>? = nil

    /// How the canonical tensor `name` is read, or nil when the model has none of that name.
    public func tensor(_ name: String) -> CanonicalSource? { tensors.first { $0.name == name }?.source }

    /// What the layout is, for reports.
    public var layoutSummary: String {
        Family.layout(layout)?.summary ?? (layout == .canonical ? "ditkit canonical \(Family.name)" : layout.rawValue)
    }

    /// Reads the model of this family out of `checkpoint`: a canonical file by its metadata, otherwise by detecting
    /// the family's layouts and mapping every stored name strictly.
    public static func open(_ checkpoint: Checkpoint, options: ModelOptions = ModelOptions()) throws -> ModelView {
        for property in options.setProperties where !Family.modelOptions.contains(property) {
            throw ModelError.invalidOption(name: options.name(of: property), problem: "a \(Family.summary) model has no use for it")
        }
        if let configText = checkpoint.metadata.first(where: { $0.0 == "ditkit.config" })?.1 {
            return try openCanonical(checkpoint, configText: configText)
        }
        return try open(checkpoint, matches: LayoutDetector.detect(checkpoint.tensors.map(\.name), family: Family.self), options: options)
    }

    /// Reads the model from the detected `matches` (of this family). `only`, when given, limits the tensors read to
    /// those source names (one component of a whole file, ``ModelBundle``: the others are other components or extras).
    static func open(_ checkpoint: Checkpoint, matches: [LayoutMatch], options: ModelOptions, only: Set<String>? = nil) throws -> ModelView {
        var notes: [String] = checkpoint.assumed
        guard !matches.isEmpty else {
            throw ModelError.mapping(
                path: checkpoint.path,
                problems: ["no \(Family.summary) layout recognised (" + Family.layouts.map(\.summary).joined(separator: ", ") + ")"])
        }
        var assumptions: [Assumption] = []
        if !checkpoint.assumed.isEmpty, let variant = checkpoint.variant {
            assumptions.append(Assumption(field: "variant", value: variant, basis: "the only weight variant present"))
        }
        let match = try choose(matches, key: options.key, path: checkpoint.path, notes: &notes, assumptions: &assumptions)
        let layout = Family.layout(match.layout)!
        let prefix = match.prefix
        let explained = prefix == layout.conventionalPrefix
            || (matches.contains { $0.prefix.hasPrefix("model.") } && matches.contains { $0.prefix.hasPrefix("ema.") })
        if !prefix.isEmpty && !explained {
            notes.append("names carry the prefix \"\(prefix)\"" + (prefix == "module." ? " (DistributedDataParallel)" : ""))
        }
        var byName: [String: TensorInfo] = [:]
        var duplicates: [String] = []
        var legacy = 0
        for tensor in checkpoint.tensors where tensor.name.hasPrefix(prefix) && only.map({ $0.contains(tensor.name) }) ?? true {
            var key = String(tensor.name.dropFirst(prefix.count))
            if let current = layout.legacyName(key) {
                key = current
                legacy += 1
            }
            if byName[key] != nil { duplicates.append(key) }
            byName[key] = tensor
        }
        if legacy > 0 { notes.append("\(legacy) tensors stored under older names of the \(layout.id) layout, read as the current ones") }
        var context = InferenceContext<Family>(checkpoint: checkpoint, layout: layout, depth: match.depth, options: options, prefix: prefix, stored: byName)
        var config = try Family.inferConfig(&context)
        notes += context.notes
        assumptions += context.assumptions

        // Strict mapping: every stored name must be expected for this config, and every expected name present.
        let expected = Family.sourceTensors(layout.id, config: config)
        let expectedNames = Set(expected.map(\.name))
        // Optional tensors, every per-block copy included.
        let optionalStored = Set(Family.canonical.filter(\.optional).flatMap { spec in
            layout.form(spec.template).names.flatMap { name in
                name.contains("{j}") ? (0..<max(config.depth, 1)).map { name.replacingCopy($0) } : [name]
            }
        })
        var problems: [String] = []
        let unmapped = byName.keys.filter { !expectedNames.contains($0) }.sorted()
        if layout.sharesPrefix {
            if !unmapped.isEmpty {
                notes.append("\(unmapped.count) other tensors under \"\(prefix)\" belong to other models of the file and are not read here")
            }
        } else {
            for name in unmapped { problems.append("unmapped: \(prefix)\(name) \(byName[name]!.shape)") }
        }
        for t in expected where byName[t.name] == nil && !optionalStored.contains(t.name) {
            problems.append("missing: \(prefix)\(t.name) \(t.shape)")
        }
        for t in expected {
            if let have = byName[t.name], have.shape != t.shape {
                problems.append("shape: \(prefix)\(t.name) is \(have.shape), expected \(t.shape) for \(config.summary)")
            }
        }
        for name in duplicates { problems.append("duplicate: \(prefix)\(name)") }
        guard problems.isEmpty else { throw ModelError.mapping(path: checkpoint.path, problems: problems) }

        var tensors: [CanonicalTensor] = []
        for (name, spec) in Family.allCanonicalTensors(config) {
            func resolve(_ s: String) -> String {
                layout.resolve(s, template: spec.template, block: spec.block, inner: spec.inner, depth: config.depth)
            }
            let shape = spec.shape(config)
            let source: CanonicalSource
            switch layout.form(spec.template) {
            case .absent: continue
            case .same(let s):
                guard let t = byName[resolve(s)] else { continue }  // optional and absent
                source = .tensor(t)
            case .rows(let parts):
                source = .rows(parts.map { byName[resolve($0)]! })
            case .copies(let template):
                guard byName[template.replacingCopy(0)] != nil else { continue }  // optional and absent
                source = .tensor(try chooseCopy(template, byName: byName, depth: config.depth, options: options, notes: &notes, path: checkpoint.path))
            case .transformed(let transform):
                let parts = transform.sourceNames.compactMap { byName[resolve($0)] }
                guard parts.count == transform.sourceNames.count else { continue }
                source = .transformed(transform, parts)
            }
            let dtypes = Set(source.inputs.map(\.dtype))
            guard dtypes.count == 1, let dtype = dtypes.first else {
                throw ModelError.mapping(path: checkpoint.path, problems: ["\(name): its parts have different dtypes \(dtypes.map(\.rawValue).sorted())"])
            }
            tensors.append(CanonicalTensor(name: name, source: source, shape: shape, dtype: dtype))
        }
        config.sourceLayout = layout.id
        var view = ModelView(
            checkpoint: checkpoint, layout: layout.id, prefix: prefix, config: config, tensors: tensors, notes: notes, assumptions: assumptions)
        view.claimed = only
        return view
    }

    /// The match to read: the one under `key`; else a training checkpoint's EMA weights; else the first.
    static func choose(
        _ matches: [LayoutMatch], key: String?, path: String, notes: inout [String], assumptions: inout [Assumption]
    ) throws -> LayoutMatch {
        if let key {
            let wanted = key.hasSuffix(".") ? key : key + "."
            guard let m = matches.first(where: { $0.prefix == wanted || $0.prefix.hasPrefix(wanted) }) else {
                throw ModelError.noModelUnderKey(path: path, key: key, found: matches.map(\.prefix))
            }
            return m
        }
        // A training checkpoint: `ema.` and `model.` (or, for a sub-module of the saved model, prefixes under them).
        if let ema = matches.first(where: { $0.prefix.hasPrefix("ema.") }), let raw = matches.first(where: { $0.prefix.hasPrefix("model.") }) {
            notes.append("training checkpoint: reading the EMA weights under \"\(ema.prefix)\" (the raw weights are under \"\(raw.prefix)\")")
            assumptions.append(Assumption(field: "weights", value: "ema", basis: "a training checkpoint's EMA weights are read by default"))
            return ema
        }
        if matches.count > 1 {
            notes.append("several models found (" + matches.map { "\"\($0.prefix)\"" }.joined(separator: ", ")
                + "); reading \"\(matches[0].prefix)\"")
            assumptions.append(Assumption(field: "weights", value: matches[0].prefix, basis: "the first of several models found"))
        }
        return matches[0]
    }

    /// Per-block copies of a non-block tensor (diffusers' embedders) must be bit-identical; one is read.
    static func chooseCopy(
        _ template: String, byName: [String: TensorInfo], depth: Int, options: ModelOptions, notes: inout [String], path: String
    ) throws -> TensorInfo {
        let missing = (0..<depth).filter { byName[template.replacingCopy($0)] == nil }
        guard missing.isEmpty else {
            throw ModelError.mapping(path: path, problems: missing.map { "missing: \(template.replacingCopy($0)) (block 0 has it)" })
        }
        let copies = (0..<depth).map { byName[template.replacingCopy($0)]! }
        if let chosen = options.embedderBlock {
            guard chosen >= 0 && chosen < depth else {
                throw ModelError.invalidOption(name: options.name(of: "embedderBlock"), problem: "\(chosen) is outside 0..<\(depth)")
            }
            return copies[chosen]
        }
        // Compared in place (zero-copy views of the mapped shards), not copied into arrays.
        var differing: [Int] = []
        try copies[0].withContiguousBytes { reference in
            for (j, copy) in copies.enumerated().dropFirst() {
                let same = try copy.withContiguousBytes { bytes in
                    bytes.count == reference.count && bytes.elementsEqual(reference)
                }
                if !same { differing.append(j) }
            }
        }
        guard differing.isEmpty else {
            throw ModelError.copiesDiffer(path: path, tensor: template.replacingCopy(0), blocks: differing)
        }
        if template.hasSuffix("linear_1.weight") { notes.append("diffusers embedder copies in all \(depth) blocks are bit-identical; stored once") }
        return copies[0]
    }

    /// A canonical file: names are canonical, the config is in the metadata. The config is validated, and its depth
    /// must equal the blocks the file holds before any per-block name is expanded, so the work is bounded by the
    /// tensors present.
    static func openCanonical(_ checkpoint: Checkpoint, configText: String) throws -> ModelView {
        let origin = "\(checkpoint.path): metadata ditkit.config"
        let json: JSONValue
        do { json = try JSONParser.parse(configText) } catch {
            throw ModelError.invalidConfig(origin: origin, problems: ["not valid JSON (\(error))"])
        }
        let family = json["family"]?.stringValue ?? DiTFamily.name
        guard family == Family.name else {
            throw ModelError.invalidConfig(origin: origin, problems: ["family \(family) is not \(Family.name)"])
        }
        let config = try Family.Config(json: json, origin: origin)
        let blockPrefixes = Set(Family.canonical.filter(\.perBlock).map { String($0.template.prefix { $0 != "{" }) })
        var blocks = Set<Int>()
        for t in checkpoint.tensors {
            for blockPrefix in blockPrefixes where t.name.hasPrefix(blockPrefix) {
                if let i = Int(t.name.dropFirst(blockPrefix.count).prefix { $0 != "." }) { blocks.insert(i) }
            }
        }
        guard config.depth == blocks.count, blocks.allSatisfy({ $0 < config.depth }) else {
            throw ModelError.invalidConfig(origin: origin, problems: [
                "depth = \(config.depth) but the file holds \(blocks.count) blocks"
                    + (blocks.isEmpty ? "" : " (indices \(blocks.min()!)…\(blocks.max()!))")])
        }
        let byName = Dictionary(checkpoint.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let early = Family.canonicalProblems(config) { byName[$0] }
        guard early.isEmpty else { throw ModelError.invalidConfig(origin: origin, problems: early) }
        var tensors: [CanonicalTensor] = []
        var problems: [String] = []
        let expected = Family.allCanonicalTensors(config)
        let expectedNames = Set(expected.map(\.name))
        for (name, spec) in expected {
            guard let t = byName[name] else {
                if !spec.optional { problems.append("missing: \(name) \(spec.shape(config))") }
                continue
            }
            if t.shape != spec.shape(config) { problems.append("shape: \(name) is \(t.shape), expected \(spec.shape(config))") }
            tensors.append(CanonicalTensor(name: name, source: .tensor(t), shape: spec.shape(config), dtype: t.dtype))
        }
        for t in checkpoint.tensors where !expectedNames.contains(t.name) { problems.append("unmapped: \(t.name) \(t.shape)") }
        guard problems.isEmpty else { throw ModelError.mapping(path: checkpoint.path, problems: problems) }
        return ModelView(
            checkpoint: checkpoint, layout: config.sourceLayout ?? .unknown, prefix: "", config: config, tensors: tensors,
            notes: checkpoint.assumed, assumptions: [])
    }
}
