import Checkpoints
import Tensors

/// What `ditkit inspect` reports about a checkpoint, built from metadata alone (no tensor data is read).
public struct InspectReport: Sendable {
    /// The tensors under one top-level name (`groupName`), with their totals.
    public struct Group: Sendable {
        /// The first component of the tensors' names (`ema`, `blocks`).
        public let name: String
        /// Tensors in the group.
        public var tensors = 0
        /// Elements in the group (logical, saturating at `Int.max`).
        public var elements = 0
        /// Bytes of the group's tensors (logical, saturating at `Int.max`).
        public var bytes = 0
    }

    /// The checkpoint inspected.
    public let checkpoint: Checkpoint
    /// Every layout detected, with its prefix, in the order the prefixes first appear in the file.
    public let layouts: [LayoutMatch]
    /// Tensors grouped by top-level name, in first-seen order.
    public let groups: [Group]

    /// Builds the report from `checkpoint`'s metadata (detection over every known family).
    public init(_ checkpoint: Checkpoint) {
        self.checkpoint = checkpoint
        layouts = LayoutDetector.detect(checkpoint.tensors.map(\.name))
        var groups: [Group] = []
        var position: [String: Int] = [:]
        for tensor in checkpoint.tensors {
            let name = InspectReport.groupName(tensor.name)
            if position[name] == nil {
                position[name] = groups.count
                groups.append(Group(name: name))
            }
            let i = position[name]!
            groups[i].tensors += 1
            // Logical sizes of expanded (stride-0) views can sum past Int.max: such a total saturates.
            groups[i].elements = Checked.saturatingAdd(groups[i].elements, tensor.elementCount)
            groups[i].bytes = Checked.saturatingAdd(groups[i].bytes, tensor.byteCount)
        }
        self.groups = groups
    }

    /// The top-level group of a tensor path: its first component (`ema`, `opt`, `blocks`, `transformer`).
    public static func groupName(_ path: String) -> String {
        path.split(separator: ".", maxSplits: 1).first.map(String.init) ?? path
    }

    /// The layout a user should read first: the first match, or unknown.
    public var layout: Layout { layouts.first?.layout ?? .unknown }

    /// The report as JSON, valid against `schemas/inspect.schema.json`.
    public var json: JSONValue {
        let c = checkpoint
        let storages = c.storageSummary
        var tensorItems: [JSONValue] = []
        tensorItems.reserveCapacity(c.tensors.count)
        for t in c.tensors {
            var fields: [(String, JSONValue)] = [
                ("name", .string(t.name)), ("dtype", .string(t.dtype.rawValue)), ("shape", .array(t.shape.map { .int($0) })),
                ("elements", .int(t.elementCount)), ("bytes", .int(t.byteCount)), ("contiguous", .bool(t.geometry.isContiguous)),
                ("storage", .string(t.storage.key)),
            ]
            if !t.geometry.isContiguous || t.geometry.offset != 0 {
                fields.append(("strides", .array(t.geometry.strides.map { .int($0) })))
                fields.append(("storage_offset", .int(t.geometry.offset)))
            }
            if let grad = t.requiresGrad { fields.append(("requires_grad", .bool(grad))) }
            tensorItems.append(.object(fields))
        }
        return .object([
            ("path", .string(c.path)),
            ("format", .string(c.format.rawValue)),
            ("format_description", .string(c.format.summary)),
            ("variant", c.variant.map { .string($0) } ?? .null),
            ("layout", .string(layout.rawValue)),
            ("layouts", .array(layouts.map { m in
                .object([
                    ("layout", .string(m.layout.rawValue)), ("prefix", .string(m.prefix)), ("depth", .int(m.depth)),
                    ("matched_tensors", .int(m.matchedTensors)), ("tensors_under_prefix", .int(m.tensorsUnderPrefix)),
                ])
            })),
            ("files", .array(c.files.map { .string($0) })),
            ("totals", .object([
                ("tensors", .int(c.tensors.count)), ("elements", .int(c.elementCount)), ("bytes", .int(c.tensorBytes)),
                ("storages", .int(storages.count)), ("storage_bytes", .int(storages.bytes)),
            ])),
            ("groups", .array(groups.map { g in
                .object([("name", .string(g.name)), ("tensors", .int(g.tensors)), ("elements", .int(g.elements)), ("bytes", .int(g.bytes))])
            })),
            ("tensors", .array(tensorItems)),
            ("values", .array(c.values.map { v in
                .object([
                    ("path", .string(v.path)), ("kind", .string(v.kind)), ("value", v.json), ("text", .string(v.text)),
                    ("opaque", .bool(v.isOpaqueObject)),
                ])
            })),
            ("metadata", .object(c.metadata.map { ($0.0, .string($0.1)) })),
            ("configs", .object(c.configs.map { ($0.0, $0.1) })),
            ("notes", .array(c.notes.map { .string($0) })),
        ])
    }
}
