import Checkpoints
import Tensors

/// The families ditkit knows, in detection order. Adding a family adds its folders and one line here
/// (`docs/adding-a-family.md`).
public enum ModelFamilies {
    /// Every family, in detection order.
    public static let all: [any ModelFamily.Type] = [
        DiTFamily.self,
        VQDiffusionFamily.self,
        VQEmbeddingsFamily.self,
        VQVAEFamily.self,
    ]

    /// What every known layout is, for messages.
    static var layoutSummaries: [String] {
        var out: [String] = []
        for family in all { out += summaries(of: family) }
        return out
    }

    static func summaries<F: ModelFamily>(of family: F.Type) -> [String] { F.layouts.map(\.summary) }

    /// What `layout` of the family named `family` is, for reports.
    public static func layoutSummary(family: String, layout: Layout) -> String {
        guard let type = named(family) else { return layout.rawValue }
        return summary(of: type, layout: layout)
    }

    static func summary<F: ModelFamily>(of family: F.Type, layout: Layout) -> String {
        F.layout(layout)?.summary ?? (layout == .canonical ? "ditkit canonical \(F.summary)" : layout.rawValue)
    }

    /// Every family's name.
    public static var names: [String] {
        var out: [String] = []
        for family in all { out.append(nameOf(family)) }
        return out
    }

    static func nameOf<F: ModelFamily>(_ family: F.Type) -> String { F.name }
    static func familySummary<F: ModelFamily>(of family: F.Type) -> String { F.summary }

    /// The family named `name` (`dit`).
    public static func named(_ name: String) -> (any ModelFamily.Type)? {
        for family in all where nameOf(family) == name { return family }
        return nil
    }

    /// Every layout some family can write, `canonical` first, each once.
    public static var targets: [Layout] {
        var out: [Layout] = []
        for family in all { for target in targetsOf(family) where !out.contains(target) { out.append(target) } }
        return out
    }

    static func targetsOf<F: ModelFamily>(_ family: F.Type) -> [Layout] { F.targets }

    /// Every family's presets, erased.
    public static var presets: [any AnyPreset] { all.flatMap { $0.erasedPresets } }

    /// The preset named `name` in any family (matched leniently).
    public static func preset(named name: String) -> (any AnyPreset)? {
        for family in all { if let preset = family.erasedPreset(named: name) { return preset } }
        return nil
    }

    /// The preset names closest to `name` (edit distance on the matching key), for an "unknown preset" message.
    public static func nearestPresets(to name: String, count: Int = 3) -> [String] {
        let wanted = presetKey(name)
        func distance(_ a: String, _ b: String) -> Int {
            let a = Array(a), b = Array(b)
            var row = Array(0...b.count)
            for i in 1...max(a.count, 1) where i <= a.count {
                var previous = row[0]
                row[0] = i
                for j in 1...max(b.count, 1) where j <= b.count {
                    let current = row[j]
                    row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                    previous = current
                }
            }
            return row[b.count]
        }
        return presets.map { ($0.name, distance(presetKey($0.name), wanted)) }
            .sorted { ($0.1, $0.0) < ($1.1, $1.0) }.prefix(count).map(\.0)
    }

    /// Reads the model a checkpoint holds, whatever its family: a canonical file by the family its metadata names,
    /// otherwise the family of the first layout detected (under `options.key` when given). `families` are the
    /// families considered (all by default; a test adds its own).
    public static func open(
        _ checkpoint: Checkpoint, options: ModelOptions = ModelOptions(), families: [any ModelFamily.Type] = all
    ) throws -> any AnyModelView {
        func named(_ name: String) -> (any ModelFamily.Type)? {
            for family in families where nameOf(family) == name { return family }
            return nil
        }
        if let configText = checkpoint.metadata.first(where: { $0.0 == "ditkit.config" })?.1 {
            let json = try? JSONParser.parse(configText)
            let name = json?["family"]?.stringValue ?? DiTFamily.name
            guard let family = named(name) else {
                throw ModelError.invalidConfig(
                    origin: "\(checkpoint.path): metadata ditkit.config",
                    problems: ["family \(name) is not one ditkit knows (" + families.map { nameOf($0) }.joined(separator: ", ") + ")"])
            }
            return try openView(family, checkpoint, options)
        }
        let matches = LayoutDetector.detect(checkpoint.tensors.map(\.name), families: families)
        guard let first = matches.first else {
            var summaries: [String] = [], kinds: [String] = []
            for family in families {
                summaries += ModelFamilies.summaries(of: family)
                kinds.append(ModelFamilies.familySummary(of: family))
            }
            throw ModelError.mapping(
                path: checkpoint.path,
                problems: ["no " + kinds.map { $0 + " layout" }.joined(separator: " or ") + " recognised (" + summaries.joined(separator: ", ") + ")"])
        }
        // Several families in one file (a VQ-Diffusion training checkpoint holds a transformer, its learned embeddings
        // and a VQ-VAE): the first family in registry order, among those under `options.key` when given.
        var candidates = matches
        if let key = options.key {
            let wanted = key.hasSuffix(".") ? key : key + "."
            let under = matches.filter { $0.prefix == wanted || $0.prefix.hasPrefix(wanted) }
            if !under.isEmpty { candidates = under }
        }
        let family = families.first { f in candidates.contains { $0.family == nameOf(f) } } ?? named(first.family)!
        return try openView(family, checkpoint, options)
    }
}

/// Opens `checkpoint` as a model of `family` (a generic function, so the family's metatype is opened once).
func openView<F: ModelFamily>(_ family: F.Type, _ checkpoint: Checkpoint, _ options: ModelOptions) throws -> any AnyModelView {
    let view: ModelView<F> = try ModelView<F>.open(checkpoint, options: options)
    return view
}

/// A model view of any family, for code that does not need to know which (inspecting, converting, counting).
public protocol AnyModelView: Sendable {
    associatedtype Family: ModelFamily
    /// The view with its family's types.
    var typed: ModelView<Family> { get }
}

extension AnyModelView {
    /// The family's name (`dit`).
    public var familyName: String { Family.name }
    /// The checkpoint the model was read from.
    public var checkpoint: Checkpoint { typed.checkpoint }
    /// The layout the names follow.
    public var layout: Layout { typed.layout }
    /// What the layout is, for reports.
    public var layoutSummary: String { typed.layoutSummary }
    /// The key prefix the layout's names sit under.
    public var prefix: String { typed.prefix }
    /// Things the user should know (prefix found, copies checked, values assumed).
    public var notes: [String] { typed.notes }
    /// Values assumed rather than read.
    public var assumptions: [Assumption] { typed.assumptions }
    /// Canonical tensors in canonical order.
    public var tensors: [CanonicalTensor] { typed.tensors }
    /// The config as JSON (`ditkit.config`), `family` included.
    public var configJSON: JSONValue { typed.config.json }
    /// The config in one line.
    public var configSummary: String { typed.config.summary }
    /// Every canonical tensor as a producer of its bytes, in the order of `tensors` (``ModelView/canonicalOutputs()``).
    public var canonicalOutputs: [OutputTensor] { typed.canonicalOutputs() }
    /// Whether the canonical tensor `name` is training state rather than part of the model's function: optional, not
    /// trained, and no table this model's code recomputes (the original VQ-VAE's EMA-quantizer statistics).
    package func isTrainingState(canonical name: String) -> Bool {
        guard let spec = Family.allCanonicalTensors(typed.config).first(where: { $0.name == name })?.spec else { return false }
        return spec.optional && !spec.trainable && Family.recomputedTable(spec.template, config: typed.config) == nil
    }
    /// How `stored` (values of the canonical tensor `name`, kept in `dtype`) differs from the frozen table this model's
    /// code recomputes for it (``ModelFamily/tableDifference(_:config:stored:dtype:)``); nil when `name` is no such table.
    package func tableDifference(canonical name: String, stored: [Float], dtype: DType) throws -> (difference: TableDifference, expected: [Float])? {
        guard Family.canonical.contains(where: { $0.template == name && !$0.perBlock }) else { return nil }
        return try Family.tableDifference(name, config: typed.config, stored: stored, dtype: dtype)
    }
    /// Options that reopen this model's written conversions with what was known here (values the weights cannot
    /// give, such as DiT's head count).
    public var reproducingOptions: ModelOptions { Family.options(reproducing: typed.config) }

    /// Plans the conversion to `target` (``ModelView/plan(to:options:)``), erased.
    public func erasedPlan(to target: Layout, options: ConversionOptions = ConversionOptions()) throws -> any AnyConversionPlan {
        try typed.plan(to: target, options: options)
    }

    /// The parameter report of this checkpoint alone, as JSON and per group.
    public func parameterEntry() -> (json: JSONValue, groups: [(name: String, parameters: Int)], total: Int, trainable: Int, stored: Int, gflops: Double) {
        let report = ParamsReport<Family>(presets: [], checkpoints: [typed])
        let entry = report.checkpointEntries[0]
        let json = report.json["checkpoints"]?.arrayValue?.first ?? .null
        return (json, entry.groups.map { ($0.name, $0.parameters) }, entry.total, entry.trainable, entry.stored, entry.gflops)
    }
}

extension ModelView: AnyModelView {
    public var typed: ModelView<Family> { self }
}

/// A conversion plan of any family.
public protocol AnyConversionPlan: Sendable {
    var target: Layout { get }
    var outputs: [OutputTensor] { get }
    var notes: [String] { get }
    var casts: [String] { get }
    var byteCount: Int { get }
    /// The written model's config as JSON, and in one line.
    var configJSON: JSONValue { get }
    var configSummary: String { get }
    /// Writes the plan (``Exporter/write(_:to:options:)``); returns the files written.
    func write(to path: String, options: ExportOptions) throws -> [String]
}

extension ConversionPlan: AnyConversionPlan {
    public var configJSON: JSONValue { config.json }
    public var configSummary: String { config.summary }
    public func write(to path: String, options: ExportOptions) throws -> [String] { try Exporter.write(self, to: path, options: options) }
}

/// A preset of any family.
public protocol AnyPreset: Sendable {
    var name: String { get }
    var layout: Layout { get }
    var familyName: String { get }
    var configJSON: JSONValue { get }
    var configSummary: String { get }
    /// Image size in pixels, when the family has one.
    var imageSize: Int? { get }
    /// Parameter counts in the preset's layout, and in the family's comparison layout when it has one.
    var count: ParameterCount { get }
    var comparison: (layout: Layout, count: ParameterCount)? { get }
    /// The layouts this preset can be written in.
    var targets: [Layout] { get }
    /// Deterministic random weights of this preset, planned for `target`.
    func synthesize(to target: Layout, seed: UInt64, options: ConversionOptions) throws -> any AnyConversionPlan
    /// The preset report JSON (`schemas/params.schema.json`).
    var json: JSONValue { get }
}

extension FamilyPreset: AnyPreset {
    public var familyName: String { Config.Family.name }
    public var configJSON: JSONValue { config.json }
    public var configSummary: String { config.summary }
    public var imageSize: Int? { Config.Family.imageSize(config) }
    public var count: ParameterCount { ParameterCount(config: config, layout: layout) }
    public var comparison: (layout: Layout, count: ParameterCount)? {
        Config.Family.comparisonLayout(for: self).map { ($0, ParameterCount(config: config, layout: $0)) }
    }
    public var targets: [Layout] { Config.Family.targets }
    public func synthesize(to target: Layout, seed: UInt64, options: ConversionOptions) throws -> any AnyConversionPlan {
        try ConversionPlan<Config.Family>.make(canonical: Synthetic.canonicalOutputs(config, seed: seed), sources: [:], config: config, to: target, options: options)
    }
    public var json: JSONValue {
        ParamsReport<Config.Family>(presets: [self], checkpoints: []).json["presets"]?.arrayValue?.first ?? .null
    }
}

extension ModelFamily {
    static var erasedPresets: [any AnyPreset] { presets }
    static func erasedPreset(named name: String) -> (any AnyPreset)? { preset(named: name) }
}
