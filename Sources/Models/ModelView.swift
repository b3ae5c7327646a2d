import Checkpoints
import Tensors

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How one canonical tensor is obtained from a checkpoint's tensors.
public enum CanonicalSource {
    /// The same elements (possibly reshaped).
    case tensor(TensorInfo)
    /// Concatenation along dimension 0.
    case rows([TensorInfo])
    /// A Cerebras ConvTranspose head seen as the linear head: weight (D, C, p, p) → (p²·C, D).
    case convTransposeWeight(TensorInfo)
    /// The ConvTranspose bias (C) repeated over the p² patch positions → (p²·C).
    case convTransposeBias(TensorInfo, positions: Int)
}

/// Options for reading a model out of a checkpoint.
public struct ModelOptions: Sendable {
    /// Which sub-dict of a training checkpoint to read (`ema` by default when there is one, or `model`).
    public var key: String?
    public var heads: Int?
    public var inputSize: Int?
    public var numClasses: Int?
    /// diffusers: the block whose embedder copy to use when the copies differ.
    public var embedderBlock: Int?

    public init(key: String? = nil, heads: Int? = nil, inputSize: Int? = nil, numClasses: Int? = nil, embedderBlock: Int? = nil) {
        self.key = key
        self.heads = heads
        self.inputSize = inputSize
        self.numClasses = numClasses
        self.embedderBlock = embedderBlock
    }
}

/// A DiT read out of a checkpoint: its layout, the prefix its names sit under, the config inferred for it,
/// and every canonical tensor mapped (strictly) to the checkpoint's tensors. Reads no tensor data, except to
/// check diffusers' duplicated embedders.
public struct ModelView {
    public let checkpoint: Checkpoint
    public let layout: Layout
    public let prefix: String
    public let config: DiTConfig
    /// Canonical tensors in canonical order.
    public let tensors: [(name: String, source: CanonicalSource, shape: [Int], dtype: DType)]
    /// Things the user should know (prefix found, embedder copies checked, choices made).
    public let notes: [String]

    public func tensor(_ name: String) -> CanonicalSource? { tensors.first { $0.name == name }?.source }

    public static func open(_ checkpoint: Checkpoint, options: ModelOptions = ModelOptions()) throws -> ModelView {
        if let configText = checkpoint.metadata.first(where: { $0.0 == "ditkit.config" })?.1 {
            return try openCanonical(checkpoint, configText: configText)
        }
        var notes: [String] = []
        let matches = LayoutDetector.detect(checkpoint.tensors.map(\.name))
        guard !matches.isEmpty else {
            throw ModelError.mapping(path: checkpoint.path, problems: ["no DiT layout recognised (original, diffusers or Cerebras names)"])
        }
        let match: LayoutMatch
        if let key = options.key {
            let wanted = key.hasSuffix(".") ? key : key + "."
            guard let m = matches.first(where: { $0.prefix == wanted || $0.prefix.hasPrefix(wanted) }) else {
                throw ModelError.mapping(
                    path: checkpoint.path,
                    problems: ["--key \(key): no DiT under \"\(wanted)\"; found under: " + matches.map { "\"\($0.prefix)\"" }.joined(separator: ", ")])
            }
            match = m
        } else if let ema = matches.first(where: { $0.prefix == "ema." }), matches.contains(where: { $0.prefix == "model." }) {
            match = ema
            notes.append("training checkpoint: reading the EMA weights under \"ema.\" (--key model for the raw weights)")
        } else {
            match = matches[0]
            if matches.count > 1 {
                notes.append("several models found (" + matches.map { "\"\($0.prefix)\"" }.joined(separator: ", ")
                    + "); reading \"\(match.prefix)\" (choose with --key)")
            }
        }
        let layout = match.layout
        let prefix = match.prefix
        let explained = (layout == .cerebras && prefix == Schemes.cerebras.conventionalPrefix)
            || (matches.contains { $0.prefix == "model." } && matches.contains { $0.prefix == "ema." })
        if !prefix.isEmpty && !explained {
            notes.append("names carry the prefix \"\(prefix)\"" + (prefix == "module." ? " (DistributedDataParallel)" : ""))
        }
        var byName: [String: TensorInfo] = [:]
        var duplicates: [String] = []
        for tensor in checkpoint.tensors where tensor.name.hasPrefix(prefix) {
            let key = String(tensor.name.dropFirst(prefix.count))
            if byName[key] != nil { duplicates.append(key) }
            byName[key] = tensor
        }
        let scheme = Schemes.scheme(for: layout)!
        var config = try inferConfig(layout: layout, tensors: byName, checkpoint: checkpoint, depth: match.depth, options: options, notes: &notes)

        // Strict mapping: every stored name must be expected for this config, and every expected name present.
        let expected = Schemes.sourceTensors(layout, config: config)
        let expectedNames = Set(expected.map(\.name))
        var problems: [String] = []
        let unmapped = byName.keys.filter { !expectedNames.contains($0) }.sorted()
        for name in unmapped { problems.append("unmapped: \(prefix)\(name) \(byName[name]!.shape)") }
        for t in expected where byName[t.name] == nil {
            // Optional tensors a layout may omit: the original's pos_embed, Cerebras' frozen tables.
            if (layout == .original && t.name == "pos_embed") || (layout == .cerebras && isCerebrasBuffer(t.name)) { continue }
            problems.append("missing: \(prefix)\(t.name) \(t.shape)")
        }
        for t in expected {
            if let have = byName[t.name], have.shape != t.shape {
                problems.append("shape: \(prefix)\(t.name) is \(have.shape), expected \(t.shape) for \(describe(config))")
            }
        }
        for name in duplicates { problems.append("duplicate: \(prefix)\(name)") }
        guard problems.isEmpty else { throw ModelError.mapping(path: checkpoint.path, problems: problems) }

        // Canonical tensors.
        var tensors: [(String, CanonicalSource, [Int], DType)] = []
        for (name, spec) in Schemes.canonicalTensors(config, includeOptional: Set(Schemes.canonical.filter(\.optional).map(\.template))) {
            let block = spec.perBlock ? Int(name.split(separator: ".")[1]) : nil
            func resolve(_ s: String) -> String { block.map { s.replacingBlock($0) } ?? s }
            let shape = spec.shape(config)
            let source: CanonicalSource
            switch scheme.form(spec.template) {
            case .absent: continue
            case .same(let s):
                guard let t = byName[resolve(s)] else { continue }  // optional and absent
                source = .tensor(t)
            case .rows(let parts):
                source = .rows(parts.map { byName[resolve($0)]! })
            case .copies(let template):
                source = .tensor(try chooseCopy(template, byName: byName, depth: config.depth, options: options, notes: &notes, path: checkpoint.path))
            case .convTranspose(let weight, let bias):
                source = spec.template.hasSuffix("weight")
                    ? .convTransposeWeight(byName[weight]!)
                    : .convTransposeBias(byName[bias]!, positions: config.patchSize * config.patchSize)
            }
            let dtypes = Set(source.inputs.map(\.dtype))
            guard dtypes.count == 1, let dtype = dtypes.first else {
                throw ModelError.mapping(path: checkpoint.path, problems: ["\(name): its parts have different dtypes \(dtypes.map(\.rawValue).sorted())"])
            }
            tensors.append((name, source, shape, dtype))
        }
        config.source = layout.rawValue
        return ModelView(checkpoint: checkpoint, layout: layout, prefix: prefix, config: config, tensors: tensors, notes: notes)
    }

    static func isCerebrasBuffer(_ name: String) -> Bool {
        name.hasPrefix("gaussian_diffusion.") || name == "timestep_embedding_layer.timestep_embedding"
            || name == "patch_embedding_layer.position_embeddings"
    }

    static func describe(_ c: DiTConfig) -> String {
        "D=\(c.hiddenSize), depth \(c.depth), patch \(c.patchSize), \(c.inChannels)→\(c.outChannels) channels, "
            + "\(c.labelRows) label rows, MLP \(c.mlpHidden), input \(c.inputSize)"
    }

    /// diffusers stores the timestep and class embedders in every block; all copies must be bit-identical.
    static func chooseCopy(
        _ template: String, byName: [String: TensorInfo], depth: Int, options: ModelOptions, notes: inout [String], path: String
    ) throws -> TensorInfo {
        let copies = (0..<depth).map { byName[template.replacingCopy($0)]! }
        if let chosen = options.embedderBlock {
            guard chosen >= 0 && chosen < depth else { throw ModelError.config("--embedder-block \(chosen) is outside 0..<\(depth)") }
            return copies[chosen]
        }
        // Compared in place (zero-copy views of the mapped shards), not copied into arrays.
        var differing: [Int] = []
        try copies[0].withContiguousBytes { reference in
            for (j, copy) in copies.enumerated().dropFirst() {
                let same = try copy.withContiguousBytes { bytes in
                    bytes.count == reference.count && memcmp(bytes.baseAddress!, reference.baseAddress!, bytes.count) == 0
                }
                if !same { differing.append(j) }
            }
        }
        guard differing.isEmpty else {
            throw ModelError.mapping(
                path: path,
                problems: ["\(template.replacingCopy(0)): the per-block embedder copies differ from block 0's in blocks "
                    + differing.map(String.init).joined(separator: ", ")
                    + " (fine-tuned separately?); diffusers conditions the final layer on block 0's copy. "
                    + "Choose one with --embedder-block N"])
        }
        if template.hasSuffix("linear_1.weight") { notes.append("diffusers embedder copies in all \(depth) blocks are bit-identical; stored once") }
        return copies[0]
    }

    /// Infers sizes from shapes (and diffusers' config.json), and records each layout's numeric semantics.
    /// Every shape is read through its rank (a tensor of the wrong rank is named, never indexed past its end), every
    /// config.json value and option is range-checked where it enters, and the result is validated
    /// (`DiTConfig.validate`) with each field named as its source calls it.
    static func inferConfig(
        layout: Layout, tensors: [String: TensorInfo], checkpoint: Checkpoint, depth: Int, options: ModelOptions,
        notes: inout [String]
    ) throws -> DiTConfig {
        /// Dimension `axis` of tensor `name`, which must have rank `rank`.
        func dim(_ name: String, _ axis: Int, rank: Int) throws -> Int {
            guard let t = tensors[name] else { throw ModelError.config("cannot infer the config: \(name) is missing") }
            guard t.shape.count == rank else {
                throw ModelError.mapping(path: checkpoint.path, problems: ["shape: \(name) is \(t.shape), expected a rank-\(rank) tensor"])
            }
            return t.shape[axis]
        }
        let patchName: String, tableName: String, fc1Name: String
        switch layout {
        case .original: (patchName, tableName, fc1Name) = ("x_embedder.proj.weight", "y_embedder.embedding_table.weight", "blocks.0.mlp.fc1.weight")
        case .diffusers:
            (patchName, tableName, fc1Name) = (
                "pos_embed.proj.weight", "transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight",
                "transformer_blocks.0.ff.net.0.proj.weight"
            )
        case .cerebras:
            (patchName, tableName, fc1Name) = (
                "patch_embedding_layer.linear_proj.weight", "label_embedding_layer.weight", "transformer_decoder.layers.0.ffn.ffn.0.linear_layer.weight"
            )
        case .unknown: throw ModelError.config("unknown layout")
        }
        let (hidden, channels, p) = (try dim(patchName, 0, rank: 4), try dim(patchName, 1, rank: 4), try dim(patchName, 2, rank: 4))
        guard try dim(patchName, 3, rank: 4) == p, p >= 1, p <= DiTConfig.maxSize else {
            throw ModelError.mapping(path: checkpoint.path, problems: ["shape: \(patchName) is \(tensors[patchName]!.shape), expected (D, C, p, p) with 1 ≤ p ≤ \(DiTConfig.maxSize)"])
        }
        let rows = try dim(tableName, 0, rank: 2)
        let mlp = try dim(fc1Name, 0, rank: 2)
        let configEntry = checkpoint.configs.first { $0.0 == "config.json" || $0.0.hasSuffix("transformer/config.json") }
        let diffusersConfig = configEntry?.1
        let configFile = configEntry.map { checkpoint.path + "/" + $0.0 } ?? checkpoint.path
        /// An integer of config.json: absent → nil; present but not an integer → an error naming the file and key.
        func configInt(_ key: String) throws -> Int? {
            guard let value = diffusersConfig?[key], value != .null else { return nil }
            guard let v = value.intValue else {
                throw ModelError.invalidConfig(origin: configFile, problems: ["\(key) = \(value.serialized().prefix(40)) is not an integer"])
            }
            return v
        }
        // How each field's value was obtained, so that a problem names the tensor, key or option the user can fix.
        var names: [String: String] = [
            "hidden_size": "\(patchName) dim 0", "in_channels": "\(patchName) dim 1", "patch_size": "\(patchName) dims 2, 3",
            "mlp_hidden": "\(fc1Name) dim 0", "num_classes": "rows of \(tableName)",
        ]

        // Output channels: the head's rows are p²·Cout.
        let headRows: Int, headName: String
        switch layout {
        case .original: (headName, headRows) = ("final_layer.linear.weight", try dim("final_layer.linear.weight", 0, rank: 2))
        case .diffusers: (headName, headRows) = ("proj_out_2.weight", try dim("proj_out_2.weight", 0, rank: 2))
        default: (headName, headRows) = ("noise_head.conv_transpose.weight", try dim("noise_head.conv_transpose.weight", 1, rank: 4))
        }
        let outChannels = layout == .cerebras ? headRows : headRows / (p * p)
        names["out_channels"] = layout == .cerebras ? "\(headName) dim 1" : "rows of \(headName) / p²"
        if layout != .cerebras && headRows % (p * p) != 0 {
            throw ModelError.mapping(path: checkpoint.path, problems: ["shape: \(headName) has \(headRows) rows, not a multiple of p² = \(p * p)"])
        }
        // Classes and the null row: diffusers says K; otherwise K+1 rows when K+1−1 is a round number.
        var classes: Int
        var nullRow: Bool
        if let k = options.numClasses {
            classes = k
            nullRow = rows == k + 1
            names["num_classes"] = "--num-classes"
            guard rows == k || rows == k + 1 else { throw ModelError.config("--num-classes \(k) but the label table has \(rows) rows") }
        } else if let k = try configInt("num_embeds_ada_norm"), rows == k || rows == k + 1 {
            classes = k
            nullRow = rows == k + 1
        } else if rows >= 1, (rows - 1) % 10 == 0 {
            classes = rows - 1
            nullRow = true
        } else {
            classes = rows
            nullRow = false
        }
        // Input size: stored position table, diffusers' sample_size, or --input-size.
        var inputSize: Int?
        if let s = options.inputSize {
            inputSize = s
            names["input_size"] = "--input-size"
        } else if layout == .original, tensors["pos_embed"] != nil {
            inputSize = gridSide(try dim("pos_embed", 1, rank: 3)).map { $0 * p }
        } else if layout == .cerebras, tensors["patch_embedding_layer.position_embeddings"] != nil {
            inputSize = gridSide(try dim("patch_embedding_layer.position_embeddings", 0, rank: 2)).map { $0 * p }
        } else if let s = try configInt("sample_size") {
            inputSize = s
            names["input_size"] = "\(configFile): sample_size"
        }
        guard let inputSize else {
            throw ModelError.config("the input size cannot be read from the weights (no stored position table): pass --input-size (32 for 256 px, 64 for 512 px)")
        }
        // Heads cannot be read from weights.
        var heads: Int
        if let h = options.heads {
            heads = h
            names["num_heads"] = "--heads"
        } else if let h = try configInt("num_attention_heads") {
            heads = h
            names["num_heads"] = "\(configFile): num_attention_heads"
        } else if let h = Preset.heads(forHiddenSize: hidden) {
            heads = h
            notes.append("\(h) attention heads, from the preset with hidden size \(hidden) (heads cannot be read from weights; --heads to override)")
        } else if hidden > 0, hidden % 64 == 0 {
            heads = hidden / 64
            notes.append("\(heads) attention heads assuming head dimension 64 (heads cannot be read from weights; --heads to override)")
        } else {
            throw ModelError.config("hidden size \(hidden) matches no preset and is not a multiple of 64: pass --heads")
        }
        var config = DiTConfig(
            hiddenSize: hidden, depth: depth, numHeads: heads, patchSize: p, inChannels: channels, outChannels: outChannels,
            numClasses: classes, hasNullClass: nullRow, mlpHidden: mlp, inputSize: inputSize)
        let freqName = layout == .original ? "t_embedder.mlp.0.weight" : layout == .diffusers
            ? "transformer_blocks.0.norm1.emb.timestep_embedder.linear_1.weight" : "timestep_embedding_layer.ffn.ffn.0.linear_layer.weight"
        if tensors[freqName] != nil {
            config.frequencyEmbeddingSize = try dim(freqName, 1, rank: 2)
            names["frequency_embedding_size"] = "\(freqName) dim 1"
        }
        switch layout {
        case .original:
            config.posEmbed = tensors["pos_embed"] == nil ? .computed : .stored
        case .diffusers:
            config.timestepShift = 1
            if let value = diffusersConfig?["norm_eps"], value != .null {
                guard let eps = value.doubleValue else {
                    throw ModelError.invalidConfig(origin: configFile, problems: ["norm_eps = \(value.serialized().prefix(40)) is not a number"])
                }
                config.mlpNormEps = eps
                names["norm_eps.mlp"] = "\(configFile): norm_eps"
            } else {
                config.mlpNormEps = 1e-5
                notes.append("config.json has no norm_eps (an older diffusers config): the MLP norm eps is diffusers' default 1e-5")
            }
            config.posEmbed = .computed
            if diffusersConfig?["activation_fn"]?.stringValue == "gelu" { config.gelu = .erf }
        case .cerebras:
            config.gelu = .erf
            config.outputHead = .convTranspose
            config.timestepInput = .table
            config.posEmbed = .stored
        case .unknown: break
        }
        try config.validate(origin: checkpoint.path, names: names)
        // config.json's other sizes must agree with the weights.
        var disagreements: [String] = []
        if let h = try configInt("attention_head_dim") {
            let (product, overflow) = h.multipliedReportingOverflow(by: heads)
            if overflow || product != hidden {
                disagreements.append("attention_head_dim = \(h) × \(heads) heads ≠ hidden size \(hidden) of \(patchName)")
            }
        }
        let agreeing: [(String, Int, String)] = [
            ("num_layers", depth, "transformer blocks present"), ("patch_size", p, "patch of \(patchName)"),
            ("in_channels", channels, "channels of \(patchName)"),
        ]
        for (key, actual, what) in agreeing {
            if let v = try configInt(key), v != actual { disagreements.append("\(key) = \(v) but the weights have \(actual) (\(what))") }
        }
        if let v = try configInt("out_channels"), v != outChannels {
            disagreements.append("out_channels = \(v) but the weights have \(outChannels) (rows of \(headName) / p²)")
        }
        guard disagreements.isEmpty else { throw ModelError.invalidConfig(origin: configFile, problems: disagreements) }
        return config
    }

    static func gridSide(_ tokens: Int) -> Int? {
        guard tokens >= 0 else { return nil }
        let side = Int(Double(tokens).squareRoot().rounded())
        let (square, overflow) = side.multipliedReportingOverflow(by: side)
        return !overflow && square == tokens ? side : nil
    }

    /// A canonical file: names are canonical, the config is in the metadata. The config is validated
    /// (`DiTConfig(json:origin:)`), and its depth must equal the blocks the file holds before any per-block name
    /// is expanded, so the work is bounded by the tensors present.
    static func openCanonical(_ checkpoint: Checkpoint, configText: String) throws -> ModelView {
        let origin = "\(checkpoint.path): metadata ditkit.config"
        let json: JSONValue
        do { json = try JSONParser.parse(configText) } catch {
            throw ModelError.invalidConfig(origin: origin, problems: ["not valid JSON (\(error))"])
        }
        let config = try DiTConfig(json: json, origin: origin)
        var blocks = Set<Int>()
        for t in checkpoint.tensors where t.name.hasPrefix("blocks.") {
            if let i = Int(t.name.dropFirst("blocks.".count).prefix { $0 != "." }) { blocks.insert(i) }
        }
        guard config.depth == blocks.count, blocks.allSatisfy({ $0 < config.depth }) else {
            throw ModelError.invalidConfig(origin: origin, problems: [
                "depth = \(config.depth) but the file holds \(blocks.count) blocks"
                    + (blocks.isEmpty ? "" : " (indices \(blocks.min()!)…\(blocks.max()!))")])
        }
        if let patch = checkpoint.tensor(named: "patch_embed.weight"), patch.shape.count == 4, patch.shape[0] != config.hiddenSize {
            throw ModelError.invalidConfig(origin: origin, problems: [
                "hidden_size = \(config.hiddenSize) but patch_embed.weight has shape \(patch.shape) (D = \(patch.shape[0]))"])
        }
        let byName = Dictionary(checkpoint.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var tensors: [(String, CanonicalSource, [Int], DType)] = []
        var problems: [String] = []
        let expected = Schemes.canonicalTensors(config, includeOptional: Set(Schemes.canonical.filter(\.optional).map(\.template)))
        let expectedNames = Set(expected.map(\.name))
        for (name, spec) in expected {
            guard let t = byName[name] else {
                if !spec.optional { problems.append("missing: \(name) \(spec.shape(config))") }
                continue
            }
            if t.shape != spec.shape(config) { problems.append("shape: \(name) is \(t.shape), expected \(spec.shape(config))") }
            tensors.append((name, .tensor(t), spec.shape(config), t.dtype))
        }
        for t in checkpoint.tensors where !expectedNames.contains(t.name) { problems.append("unmapped: \(t.name) \(t.shape)") }
        guard problems.isEmpty else { throw ModelError.mapping(path: checkpoint.path, problems: problems) }
        let layout = Layout(rawValue: config.source ?? "") ?? .unknown
        return ModelView(checkpoint: checkpoint, layout: layout, prefix: "", config: config, tensors: tensors, notes: [])
    }
}

extension CanonicalSource {
    /// The checkpoint tensors this canonical tensor is made from.
    public var inputs: [TensorInfo] {
        switch self {
        case .tensor(let t), .convTransposeWeight(let t), .convTransposeBias(let t, _): return [t]
        case .rows(let parts): return parts
        }
    }
}
