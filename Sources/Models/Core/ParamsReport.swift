import Checkpoints
import Tensors

/// What `ditkit params` reports: preset counts, and per-group counts of real checkpoints, of one family.
public struct ParamsReport<Family: ModelFamily> {
    /// Parameters under one group name (``ModelFamily/parameterGroup(_:)``).
    public struct Group: Sendable {
        /// The group (`embedders`, `blocks.3`, `final layer`).
        public let name: String
        /// Numbers in the group, counted as the checkpoint stores them (each tensor once).
        public let parameters: Int
    }

    /// The counts of one checkpoint.
    public struct CheckpointEntry {
        /// The model the counts are of.
        public let view: ModelView<Family>
        /// Per-group counts, in canonical order of first appearance.
        public let groups: [Group]
        /// Canonical parameters (one copy of every weight).
        public let total: Int
        /// The part of `total` in trained tensors (frozen tables excluded).
        public let trainable: Int
        /// Numbers the file stores (diffusers' embedder copies counted every time).
        public let stored: Int
        /// Multiply-adds of one forward pass for one sample, in units of 10^9.
        public let gflops: Double
    }

    /// The presets reported.
    public let presets: [FamilyPreset<Family.Config>]
    /// The checkpoints reported, in the order given.
    public let checkpointEntries: [CheckpointEntry]

    /// Counts `presets` and every view in `checkpoints` (reads no tensor data).
    public init(presets: [FamilyPreset<Family.Config>], checkpoints: [ModelView<Family>]) {
        self.presets = presets
        checkpointEntries = checkpoints.map { view in
            var groups: [(String, Int)] = []
            var trainable = 0
            let specs = Dictionary(Family.allCanonicalTensors(view.config).map { ($0.name, $0.spec) }, uniquingKeysWith: { a, _ in a })
            for tensor in view.tensors {
                // Counted as the checkpoint holds it (a ConvTranspose bias is C numbers, not p²·C).
                let n = tensor.source.inputs.reduce(0) { Checked.saturatingAdd($0, $1.elementCount) }
                let group = Family.parameterGroup(tensor.name)
                if let i = groups.firstIndex(where: { $0.0 == group }) { groups[i].1 = Checked.saturatingAdd(groups[i].1, n) } else { groups.append((group, n)) }
                if specs[tensor.name]?.trainable ?? true { trainable = Checked.saturatingAdd(trainable, n) }
            }
            let total = groups.reduce(0) { Checked.saturatingAdd($0, $1.1) }
            let prefix = view.prefix
            let stored = view.checkpoint.tensors.filter { t in t.name.hasPrefix(prefix) && (view.claimed.map { $0.contains(t.name) } ?? true) }.reduce(0) { Checked.saturatingAdd($0, $1.elementCount) }
            return CheckpointEntry(
                view: view, groups: groups.map { Group(name: $0.0, parameters: $0.1) }, total: total, trainable: trainable,
                stored: stored, gflops: Double(Family.multiplyAdds(view.config)) / 1e9)
        }
    }

    /// JSON valid against `schemas/params.schema.json`.
    public var json: JSONValue {
        .object([
            ("presets", .array(presets.map { p in
                let count = ParameterCount(config: p.config, layout: p.layout)
                var fields: [(String, JSONValue)] = [
                    ("name", .string(p.name)), ("layout", .string(p.layout.rawValue)),
                ]
                if let size = Family.imageSize(p.config) { fields.append(("image_size", .int(size))) }
                fields += [
                    ("total", .int(count.total)), ("trainable", .int(count.trainable)), ("frozen", .int(count.frozen)),
                    ("gflops", .double(count.gflops)),
                ]
                if let other = Family.comparisonLayout(for: p) { fields.append(("\(other.rawValue)_total", .int(ParameterCount(config: p.config, layout: other).total))) }
                fields.append(("config", p.config.json))
                return .object(fields)
            })),
            ("checkpoints", .array(checkpointEntries.map { e in
                .object([
                    ("path", .string(e.view.checkpoint.path)), ("layout", .string(e.view.layout.rawValue)),
                    ("prefix", .string(e.view.prefix)), ("total", .int(e.total)), ("trainable", .int(e.trainable)),
                    ("frozen", .int(e.total - e.trainable)), ("stored", .int(e.stored)), ("gflops", .double(e.gflops)),
                    ("groups", .array(e.groups.map { .object([("name", .string($0.name)), ("parameters", .int($0.parameters))]) })),
                    ("config", e.view.config.json), ("assumed", .array(e.view.assumptions.map(\.json))),
                ])
            })),
        ])
    }
}
