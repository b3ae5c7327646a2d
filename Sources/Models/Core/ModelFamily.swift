import Checkpoints
import Tensors

/// A source layout's identity: the naming a checkpoint's tensors follow (`original`, `diffusers`, `cerebras`, …), or
/// ditkit's own `canonical` naming. A family gives each of its layouts a ``SourceLayout`` naming table; the same
/// identity (`diffusers`) can name layouts of several families.
public struct Layout: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The layout's name (`original`, `diffusers`, …), as reports and the command line spell it.
    public let rawValue: String
    /// A layout identity named `rawValue`; any string is accepted (an unknown name simply matches no family's layout).
    public init(rawValue: String) { self.rawValue = rawValue }
    /// A layout identity named `rawValue` (`Layout("original")`).
    public init(_ rawValue: String) { self.rawValue = rawValue }
    /// The layout's name.
    public var description: String { rawValue }

    /// ditkit's canonical naming (`schemas/canonical-names.md`): one safetensors file, the config in its metadata.
    public static let canonical = Layout("canonical")
    /// The model's original research code (facebookresearch/DiT for DiT).
    public static let original = Layout("original")
    /// Hugging Face diffusers.
    public static let diffusers = Layout("diffusers")
    /// Cerebras Model Zoo.
    public static let cerebras = Layout("cerebras")
    /// No layout was recognised.
    public static let unknown = Layout("unknown")
}

/// The layout a conversion writes: a family's source layout or `canonical` (one type: a target is a layout).
public typealias TargetLayout = Layout

/// The config of one model family: every number that fixes the function its weights compute. Serialised as the
/// `ditkit.config` metadata of a canonical file (with a `family` field naming the family).
public protocol FamilyConfig: Sendable, Equatable {
    associatedtype Family: ModelFamily where Family.Config == Self
    /// The config as JSON (`schemas/model-config.schema.json`), `family` included.
    var json: JSONValue { get }
    /// Reads and validates a config written by `json`; errors name `origin` (the file and entry it came from).
    init(json: JSONValue, origin: String) throws
    /// Every problem of this config (field ranges, rules tying fields together, checked sizes); `names` renames
    /// fields for the source that called them otherwise.
    func problems(names: [String: String]) -> [String]
    /// Transformer blocks: the range of `{i}` in per-block tensor names.
    var depth: Int { get }
    /// The layout the weights came from, for reports.
    var sourceLayout: Layout? { get set }
    /// A one-line summary of the sizes, for reports and error messages.
    var summary: String { get }
}

extension FamilyConfig {
    /// Throws ``ModelError/invalidConfig(origin:problems:)`` naming `origin` and every problem when the config is
    /// not one ditkit can run or map.
    public func validate(origin: String, names: [String: String] = [:]) throws {
        let problems = problems(names: names)
        guard problems.isEmpty else { throw ModelError.invalidConfig(origin: origin, problems: problems) }
    }
}

/// A model family: one architecture and everything ditkit knows about it, implemented once. The generic machinery —
/// layout detection, strict name mapping, config inference inputs, conversion planning, writing, parameter counts,
/// synthetic weights — is derived from what a family declares here. `docs/adding-a-family.md` walks through adding one.
///
/// The reference forward and the verification rules of a family are added in the modules above by conforming it to
/// `RunnableFamily` (Reference) and `VerifiableFamily` (Verification); the families are listed once, in
/// ``ModelFamilies/all``.
public protocol ModelFamily: Sendable {
    associatedtype Config: FamilyConfig where Config.Family == Self

    /// The family's name in configs and on the command line (`dit`).
    static var name: String { get }
    /// What the family is, for reports (`Diffusion Transformer (DiT)`).
    static var summary: String { get }
    /// The canonical tensors in file order: non-block tensors, then the per-block ones (`{i}`), then the rest.
    static var canonical: [CanonicalSpec<Config>] { get }
    /// The source layouts, each as a naming table. Detection tries them in this order.
    static var layouts: [SourceLayout<Config>] { get }
    /// Named configurations.
    static var presets: [FamilyPreset<Config>] { get }

    /// Infers the config of a checkpoint from its tensors (read through the naming table, so the family speaks in
    /// canonical names), its config files and the user's options. Values assumed rather than read go to
    /// `context.notes`.
    static func inferConfig(_ context: inout InferenceContext<Self>) throws -> Config

    /// Frozen tables the family recomputes rather than learns (position tables, timestep tables, schedules), as the
    /// source code computes them; nil for a tensor that is not such a table. The one place a table is recomputed:
    /// conversion (to check a dropped table or fill one the target needs), synthetic weights and the forward use it.
    static func recomputedTable(_ template: String, config: Config) -> [Float]?

    /// For a sin/cos table whose angles are rounded before cos/sin (a float32 timestep table), each entry's angle:
    /// a difference is then counted in ulps of the angle, the rounding the source's own platform may do differently
    /// (`TableDifference`); nil for other tables (the default).
    static func recomputedTableAngles(_ template: String, config: Config) -> [Float]?

    /// The config value a recomputed table's size comes from, for a message (DiT: `input size 64 (input_size,
    /// diffusers' sample_size)`).
    static func tableSizeSource(_ template: String, config: Config) -> String

    /// Multiply-adds of one forward pass for one sample.
    static func multiplyAdds(_ config: Config) -> Int

    /// Notes on numerics the target layout's code has that differ from this model's (a conversion keeps every weight,
    /// but the target's code may compute slightly differently).
    static func semanticNotes(from config: Config, to layout: Layout) -> [String]

    /// The group a canonical tensor counts under in a per-group parameter report (`embedders`, `blocks.3`, …).
    static func parameterGroup(_ canonicalName: String) -> String

    /// Canonical optional tensors that synthetic weights include for `config` (e.g. frozen tables).
    static func synthesizedOptional(_ config: Config) -> Set<String>

    /// A synthetic tensor the family builds itself (e.g. a bias that must repeat), or nil for the default random one.
    static func synthesized(_ name: String, shape: [Int], config: Config, seed: UInt64) -> OutputTensor?

    /// Checks of a canonical file beyond the names and shapes (problems, one per line).
    static func canonicalProblems(_ config: Config, tensor: (String) -> TensorInfo?) -> [String]

    /// The `ModelOptions` properties the family reads (`key` is read for every family); a family refuses the others
    /// rather than ignore what the caller asked for.
    static var modelOptions: Set<String> { get }

    /// Options that make config inference give `config` again for a converted copy of the model (the values its
    /// weights cannot give).
    static func options(reproducing config: Config) -> ModelOptions

    /// The image size in pixels a config generates, for reports (nil when it has none).
    static func imageSize(_ config: Config) -> Int?

    /// Another layout whose parameter total a preset report shows beside the preset's own (DiT: diffusers, which
    /// stores the embedders once per block).
    static func comparisonLayout(for preset: FamilyPreset<Config>) -> Layout?

    /// What a tensor of a whole file that no component claims is, when this family's source code made it (a schedule
    /// buffer, training statistics, a text encoder); nil when the family does not know it (the default). Read by
    /// ``ModelBundle`` to classify its extras.
    static func extraTensorRole(_ name: String) -> ExtraTensorRole?

    /// The float32 values the family's source code computes for the frozen extra buffer `table` (an
    /// ``ExtraTensorRole/table``) of a model with `config`, and where they come from in words; nil when it computes
    /// none (the default). A whole-file conversion drops a buffer equal to these values bit for bit.
    static func extraTable(_ table: String, config: Config) -> (values: [Float], basis: String)?

    /// Folders a diffusers pipeline of this model needs beside its components that follow from the config (a
    /// scheduler whose steps are the model's), written when a whole file becomes a pipeline folder; none by default.
    static func pipelineFiles(_ config: Config) -> [(folder: String, className: String, file: String, json: JSONValue)]

    /// Top-level entries a training framework keeps beside the weights in a whole checkpoint of `layout` that follow
    /// from the config (the Cerebras Model Zoo trainer's `__metadata__` with the run's model parameters), added when
    /// a conversion writes that framework's own container; none by default.
    static func trainerEntries(_ config: Config, layout: Layout) -> [(String, JSONValue)]
}

extension ModelFamily {
    /// Default: no trainer entries.
    public static func trainerEntries(_ config: Config, layout: Layout) -> [(String, JSONValue)] { [] }
    /// Default: no family-built synthetic tensors (every one is random).
    public static func synthesized(_ name: String, shape: [Int], config: Config, seed: UInt64) -> OutputTensor? { nil }
    /// Default: no checks beyond names and shapes.
    public static func canonicalProblems(_ config: Config, tensor: (String) -> TensorInfo?) -> [String] { [] }
    /// Default: no numeric differences to note.
    public static func semanticNotes(from config: Config, to layout: Layout) -> [String] { [] }
    /// Default: synthetic weights include no optional tensor.
    public static func synthesizedOptional(_ config: Config) -> Set<String> { [] }
    /// Default: the family has no image size.
    public static func imageSize(_ config: Config) -> Int? { nil }
    /// Default: the family reads no option but `key`, and refuses the others.
    public static var modelOptions: Set<String> { [] }
    /// Default: no options (everything is read from the weights).
    public static func options(reproducing config: Config) -> ModelOptions { ModelOptions() }
    /// Default: the config's one-line summary.
    public static func tableSizeSource(_ template: String, config: Config) -> String { config.summary }
    /// Default: no comparison layout.
    public static func comparisonLayout(for preset: FamilyPreset<Config>) -> Layout? { nil }

    /// The source layout named `layout`, if this family has it.
    public static func layout(_ layout: Layout) -> SourceLayout<Config>? { layouts.first { $0.id == layout } }

    /// The layouts a conversion of this family offers to write: `canonical` and every source layout that is a target.
    public static var targets: [Layout] { [.canonical] + layouts.filter(\.isTarget).map(\.id) }

    /// The preset named `name`, matched leniently (case, `_`/`-`, `/`/`-`, a leading family prefix).
    public static func preset(named name: String) -> FamilyPreset<Config>? {
        let wanted = presetKey(name)
        return presets.first { presetKey($0.name) == wanted || $0.aliases.contains { presetKey($0) == wanted } }
    }
}

/// A named configuration of a family, in the layout its weights are published in.
public struct FamilyPreset<Config: FamilyConfig>: Sendable {
    /// The preset's name (`DiT-XL/2`).
    public let name: String
    /// The layout its published weights use (and its parameter count is given in).
    public let layout: Layout
    /// The model's config.
    public let config: Config
    /// Other names that find it (`cerebras-2B` for `cerebras-dit-2B`).
    public let aliases: [String]

    /// A preset named `name` of `config`, published in `layout`, also found by `aliases`.
    public init(name: String, layout: Layout, config: Config, aliases: [String] = []) {
        self.name = name
        self.layout = layout
        self.config = config
        self.aliases = aliases
    }

}

/// Options for reading a model out of a checkpoint. `key` applies to every family; the others are DiT's sizes that
/// cannot be read from weights (a family that has no use for one refuses it).
public struct ModelOptions: Sendable {
    /// Which sub-dict of a training checkpoint to read (`ema` by default when there is one, or `model`).
    public var key: String?
    /// DiT: attention heads; overrides the component config and the preset guess (heads cannot be read from weights).
    public var heads: Int?
    /// DiT: the latent input size (side of the square latent); overrides the stored position table and `sample_size`.
    public var inputSize: Int?
    /// DiT: the number of classes, null class excluded; the label table must have that many rows or one more.
    public var numClasses: Int?
    /// diffusers: the block whose embedder copy to use when the copies differ.
    public var embedderBlock: Int?
    /// How the caller names each option in messages, by property name (`heads` → `--heads` for a CLI); by default
    /// `heads option`.
    public var optionNames: [String: String] = [:]

    /// The properties that are set (`key` excluded: every family reads it).
    public var setProperties: [String] {
        [("heads", heads != nil), ("inputSize", inputSize != nil), ("numClasses", numClasses != nil), ("embedderBlock", embedderBlock != nil)]
            .filter(\.1).map(\.0)
    }

    /// The name of option `property` in messages.
    public func name(of property: String) -> String { optionNames[property] ?? "\(property) option" }

    /// Options as given; nil leaves a value to the checkpoint (or the family's default).
    public init(key: String? = nil, heads: Int? = nil, inputSize: Int? = nil, numClasses: Int? = nil, embedderBlock: Int? = nil) {
        self.key = key
        self.heads = heads
        self.inputSize = inputSize
        self.numClasses = numClasses
        self.embedderBlock = embedderBlock
    }
}

extension ModelFamily {
    /// No table's differences are counted in ulps of its angles unless the family says so.
    public static func recomputedTableAngles(_ template: String, config: Config) -> [Float]? { nil }
}

/// The matching key of a preset name: lowercased, `_` and `/` read as `-` (`DiT-XL/2` → `dit-xl-2`).
func presetKey(_ s: String) -> String {
    String(s.lowercased().map { $0 == "_" || $0 == "/" ? "-" : $0 })
}
