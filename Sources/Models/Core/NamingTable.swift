import Checkpoints
import Tensors

/// One tensor of a family's canonical scheme (`schemas/canonical-names.md`).
public struct CanonicalSpec<Config: FamilyConfig>: Sendable {
    /// Name, with `{i}` for the block index.
    public let template: String
    /// The canonical shape for a config.
    public let shape: @Sendable (Config) -> [Int]
    /// Frozen buffers (position tables, schedules) are not trained.
    public let trainable: Bool
    /// Absent from some layouts (recomputable, or only one layout stores it).
    public let optional: Bool

    /// A canonical tensor named `template` (`{i}` for per-block ones) whose shape `shape` computes from a config.
    public init(_ template: String, trainable: Bool = true, optional: Bool = false, shape: @escaping @Sendable (Config) -> [Int]) {
        self.template = template
        self.shape = shape
        self.trainable = trainable
        self.optional = optional
    }

    /// Whether the tensor repeats in every block (its template has `{i}`).
    public var perBlock: Bool { template.contains("{i}") }
    /// The name in block `i` (the template with `{i}` replaced).
    public func name(block i: Int) -> String { template.replacingBlock(i) }
}

/// How a layout stores one canonical tensor.
public enum SourceForm: Sendable {
    /// The same elements under another name (possibly another shape of the same size, e.g. (T,D) vs (1,T,D)).
    case same(String)
    /// The canonical tensor is these tensors concatenated along dimension 0, in order (fused q,k,v; adaLN chunks).
    case rows([String])
    /// The layout keeps a copy in every block (`{j}`); all copies must be equal and one is read.
    case copies(String)
    /// Another arrangement of the elements, described by a transform the family provides (e.g. a ConvTranspose head
    /// read as a linear one).
    case transformed(any TensorTransform)
    /// Not stored by this layout.
    case absent

    /// The source names this form reads, `{i}`/`{j}` unexpanded.
    public var names: [String] {
        switch self {
        case .same(let name), .copies(let name): return [name]
        case .rows(let names): return names
        case .transformed(let transform): return transform.sourceNames
        case .absent: return []
        }
    }
}

/// A layout quirk as a typed hook: a canonical tensor stored as other tensors in another arrangement. The transform
/// reads the canonical tensor from the stored ones and writes the stored ones from the canonical tensor.
public protocol TensorTransform: Sendable {
    /// The stored tensors it reads and writes, in order (no placeholders).
    var sourceNames: [String] { get }
    /// The shapes of the stored tensors for a model whose canonical tensor has `canonicalShape`.
    func sourceShapes(canonicalShape: [Int], config: any FamilyConfig) -> [[Int]]
    /// The canonical shape implied by the stored tensors' shapes, or nil when they do not fit the transform (read
    /// before the config is known, to infer it).
    func canonicalShape(sourceShapes: [[Int]]) -> [Int]?
    /// The canonical tensor as a producer streaming from the stored tensors.
    func canonical(from sources: [TensorInfo], name: String, shape: [Int], dtype: DType) -> OutputTensor
    /// The stored tensors (named `sourceNames`) from the canonical tensor; throws when the layout cannot hold it.
    func sources(from canonical: OutputTensor, config: any FamilyConfig) throws -> [OutputTensor]
}

/// How a conversion writes a layout's files.
public enum LayoutWriter<Config: FamilyConfig>: Sendable {
    /// A state dict in a torch zip `.pt` file (or a `.safetensors` file when the output path ends so and
    /// `safetensors` is true), nested under `nestedUnder` keys, every name preceded by `namePrefix`.
    case stateDict(nestedUnder: [String], namePrefix: String, safetensors: Bool)
    /// A diffusers folder (a pipeline, or one component folder).
    case diffusers(DiffusersWriter<Config>)
}

/// What a diffusers folder of a family holds besides the component's weights.
public struct DiffusersWriter<Config: FamilyConfig>: Sendable {
    /// The folder of the weights inside a pipeline (`transformer`).
    public let component: String
    /// The component's class (`DiTTransformer2DModel`) and its `config.json` for a config.
    public let componentClass: String
    /// The component's `config.json` for a config.
    public let componentConfig: @Sendable (Config) -> JSONValue
    /// The pipeline class written to `model_index.json`.
    public let pipelineClass: String
    /// Folders written beside the component: name, class and JSON file (e.g. the scheduler).
    public let extraComponents: [(folder: String, className: String, file: String, json: JSONValue)]
    /// Components carried over from a source pipeline by content when it has them (`vae`), else `[null, null]`.
    public let carriedComponents: [String]
    /// `model_index.json` keys copied from a source pipeline (`id2label`).
    public let carriedIndexKeys: [String]

    /// A diffusers writer; extras, carried components and carried index keys default to none.
    public init(
        component: String, componentClass: String, componentConfig: @escaping @Sendable (Config) -> JSONValue, pipelineClass: String,
        extraComponents: [(folder: String, className: String, file: String, json: JSONValue)] = [], carriedComponents: [String] = [],
        carriedIndexKeys: [String] = []
    ) {
        self.component = component
        self.componentClass = componentClass
        self.componentConfig = componentConfig
        self.pipelineClass = pipelineClass
        self.extraComponents = extraComponents
        self.carriedComponents = carriedComponents
        self.carriedIndexKeys = carriedIndexKeys
    }
}

/// One source layout of a family, as data: its naming table from canonical templates to source forms, how it is
/// recognised, how it is written, and its few typed hooks.
public struct SourceLayout<Config: FamilyConfig>: Sendable {
    /// The layout's identity (`original`, `diffusers`, …).
    public let id: Layout
    /// What it is, for reports (`original DiT (facebookresearch)`).
    public let summary: String
    /// Canonical template → how this layout stores it. Templates absent from the table are `.absent`.
    public let forms: [String: SourceForm]
    /// Canonical templates whose stored tensors every checkpoint of the layout has: how the layout is recognised (the
    /// first one's source name anchors the search for prefixes).
    public let signature: [String]
    /// The per-block canonical template whose stored tensor counts the blocks (any template for a family without
    /// blocks).
    public let depthProbe: String
    /// Whether the layout's tensors sit beside other models' tensors under the same prefix (a sub-module of a larger
    /// state dict, such as VQ-Diffusion's `empty_text_embed` beside its transformer): stored names under the prefix
    /// that the table does not map are then left to those models (counted in a note) rather than refused.
    public let sharesPrefix: Bool
    /// Stored shapes that differ from the canonical shape (same elements): template → shape.
    public let storedShapes: [String: @Sendable (Config) -> [Int]]
    /// How a conversion writes the layout's files.
    public let writer: LayoutWriter<Config>
    /// Checks (and adapts) a model's config before writing it in this layout: returns the config written and notes;
    /// throws ``ModelError/lossy(_:)`` when the layout cannot hold the model.
    public let prepare: @Sendable (Config, ConversionOptions) throws -> (Config, [String])

    /// A layout from its naming table (`forms`), recognition (`signature`, `depthProbe`), stored shapes that differ,
    /// writer, whether it shares its prefix with other models (by default not) and `prepare` hook (by default, writes
    /// any config unchanged).
    public init(
        id: Layout, summary: String, forms: [String: SourceForm], signature: [String], depthProbe: String,
        storedShapes: [String: @Sendable (Config) -> [Int]] = [:], writer: LayoutWriter<Config>, sharesPrefix: Bool = false,
        prepare: @escaping @Sendable (Config, ConversionOptions) throws -> (Config, [String]) = { config, _ in (config, []) }
    ) {
        self.id = id
        self.summary = summary
        self.forms = forms
        self.signature = signature
        self.depthProbe = depthProbe
        self.storedShapes = storedShapes
        self.writer = writer
        self.sharesPrefix = sharesPrefix
        self.prepare = prepare
    }

    /// How this layout stores the canonical template (`.absent` when the table does not name it).
    public func form(_ template: String) -> SourceForm { forms[template] ?? .absent }

    /// The prefix real checkpoints of this layout put before every name (Cerebras: `model.model.`).
    public var conventionalPrefix: String {
        guard case .stateDict(let nested, let namePrefix, _) = writer else { return "" }
        return nested.map { $0 + "." }.joined() + namePrefix
    }

    /// The stored name of a canonical template's first source tensor, block and copy 0 (how detection finds it).
    func probeName(_ template: String) -> String? {
        form(template).names.first.map { $0.replacingPlaceholder("{j}", with: "0") }
    }

    /// The first components of every stored name (`x_embedder.`, `blocks.`, `pos_embed`): what marks a name as the
    /// layout's when counting the tensors under a prefix.
    var stems: [String] {
        var out: [String] = []
        for form in forms.values {
            for name in form.names {
                let parts = name.split(separator: ".", maxSplits: 1)
                let stem = parts.count > 1 ? String(parts[0]) + "." : name
                if !out.contains(stem) { out.append(stem) }
            }
        }
        return out.sorted()
    }
}

extension String {
    /// Replaces the first `{i}` with the block index.
    func replacingBlock(_ i: Int) -> String { replacingPlaceholder("{i}", with: String(i)) }
    /// Replaces the first `{j}` (per-block copies of a non-block tensor) with the block index.
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

/// A stored tensor with its shape, as a layout stores a model.
public struct SourceTensor: Sendable, Equatable {
    /// The stored name, without prefix.
    public let name: String
    /// The stored shape.
    public let shape: [Int]
    /// Whether the tensor is trained (false for frozen tables).
    public let trainable: Bool
}

extension ModelFamily {
    /// The canonical specs before the first per-block one (embedders), the per-block ones, and the rest (heads, tables).
    static var canonicalParts: (head: [CanonicalSpec<Config>], blocks: [CanonicalSpec<Config>], tail: [CanonicalSpec<Config>]) {
        let firstBlock = canonical.firstIndex { $0.perBlock } ?? canonical.count
        return (Array(canonical[..<firstBlock]), canonical.filter(\.perBlock),
                Array(canonical[firstBlock...].filter { !$0.perBlock }))
    }

    /// Every tensor `layout` stores for `config`, in that layout's conventional order, without prefix. Optional
    /// canonical tensors are included when the layout stores them. Per-block copies of a non-block tensor (`{j}`) are
    /// stored inside each block (before the block's own tensors when they precede the blocks in canonical order, after them otherwise).
    public static func sourceTensors(_ layoutID: Layout, config: Config) -> [SourceTensor] {
        guard let layout = layout(layoutID) else { return [] }
        var out: [SourceTensor] = []
        var seen = Set<String>()
        func add(_ name: String, _ shape: [Int], _ trainable: Bool) {
            if seen.insert(name).inserted { out.append(SourceTensor(name: name, shape: shape, trainable: trainable)) }
        }
        func emit(_ spec: CanonicalSpec<Config>, block: Int?) {
            let shape = spec.shape(config)
            func resolve(_ s: String) -> String { block.map { s.replacingBlock($0) } ?? s }
            switch layout.form(spec.template) {
            case .absent, .copies: break
            case .same(let name):
                add(resolve(name), layout.storedShapes[spec.template]?(config) ?? shape, spec.trainable)
            case .rows(let names):
                var part = shape
                part[0] /= names.count
                for n in names { add(resolve(n), part, spec.trainable) }
            case .transformed(let transform):
                for (name, stored) in zip(transform.sourceNames, transform.sourceShapes(canonicalShape: shape, config: config)) {
                    add(resolve(name), stored, spec.trainable)
                }
            }
        }
        let parts = canonicalParts
        for spec in parts.head { emit(spec, block: nil) }
        for i in 0..<config.depth {
            func copies(_ specs: [CanonicalSpec<Config>]) {
                for spec in specs {
                    if case .copies(let name) = layout.form(spec.template) { add(name.replacingCopy(i), spec.shape(config), spec.trainable) }
                }
            }
            copies(parts.head)
            for spec in parts.blocks { emit(spec, block: i) }
            copies(parts.tail)
        }
        for spec in parts.tail { emit(spec, block: nil) }
        return out
    }

    /// The canonical tensors of `config` (per-block templates expanded), with the optional ones named in `includeOptional`.
    public static func canonicalTensors(_ config: Config, includeOptional: Set<String> = []) -> [(name: String, spec: CanonicalSpec<Config>)] {
        var out: [(String, CanonicalSpec<Config>)] = []
        let parts = canonicalParts
        for spec in parts.head where !spec.optional || includeOptional.contains(spec.template) { out.append((spec.template, spec)) }
        for i in 0..<config.depth { for spec in parts.blocks { out.append((spec.name(block: i), spec)) } }
        for spec in parts.tail where !spec.optional || includeOptional.contains(spec.template) { out.append((spec.template, spec)) }
        return out
    }

    /// Every canonical tensor of `config`, optional ones included.
    public static func allCanonicalTensors(_ config: Config) -> [(name: String, spec: CanonicalSpec<Config>)] {
        canonicalTensors(config, includeOptional: Set(canonical.map(\.template)))
    }
}
