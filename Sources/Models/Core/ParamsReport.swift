import Checkpoints
import Tensors

/// What `ditkit params` reports: preset counts, and per-group counts of real checkpoints, of one family.
public struct ParamsReport<Family: ModelFamily> {
    public struct Group: Sendable {
        public let name: String
        public let parameters: Int
    }

    public struct CheckpointEntry {
        public let view: ModelView<Family>
        public let groups: [Group]
        /// Canonical parameters (one copy of every weight).
        public let total: Int
        public let trainable: Int
        /// Numbers the file stores (diffusers' embedder copies counted every time).
        public let stored: Int
        public let gflops: Double
    }

    public let presets: [FamilyPreset<Family.Config>]
    public let checkpointEntries: [CheckpointEntry]

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
            let stored = view.checkpoint.tensors.filter { $0.name.hasPrefix(prefix) }.reduce(0) { Checked.saturatingAdd($0, $1.elementCount) }
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
                    ("config", e.view.config.json),
                ])
            })),
        ])
    }
}
