import Tensors

/// The container formats ditkit opens.
public enum CheckpointFormat: String, Sendable, CaseIterable {
    case torchZip = "torch-zip"
    case torchLegacy = "torch-legacy"
    case pickle
    case safetensors
    case safetensorsSharded = "safetensors-sharded"
    case diffusersComponent = "diffusers-component"
    case diffusersPipeline = "diffusers-pipeline"

    public var summary: String {
        switch self {
        case .torchZip: return "PyTorch zip archive (torch.save, torch ≥ 1.6)"
        case .torchLegacy: return "PyTorch legacy file (torch.save before 1.6)"
        case .pickle: return "plain Python pickle"
        case .safetensors: return "safetensors"
        case .safetensorsSharded: return "sharded safetensors (index + shards)"
        case .diffusersComponent: return "diffusers component folder"
        case .diffusersPipeline: return "diffusers pipeline folder"
        }
    }
}

/// A non-tensor value found in a checkpoint (e.g. a training argument, an optimizer hyper-parameter).
public struct CheckpointValue: Sendable {
    /// Dotted path, e.g. `args.global_batch_size` or `opt.param_groups.0.lr`.
    public let path: String
    /// `str`, `int`, `float`, `bool`, `None`, `bytes`, `set`, or a class name for opaque objects.
    public let kind: String
    /// Python-like text.
    public let text: String
    /// The value as JSON (scalars as themselves; other values as their text).
    public let json: JSONValue
    /// An instance of a class outside the allowlist, kept as data (its fields follow as their own values).
    public let isOpaqueObject: Bool
}

/// Options for opening a checkpoint.
public struct OpenOptions: Sendable {
    /// diffusers weight variant (`fp16` → `diffusion_pytorch_model.fp16.safetensors`).
    public var variant: String?
    /// Refuse any pickle callable outside torch's weights-only allowlist instead of keeping it opaque.
    public var strict: Bool

    public init(variant: String? = nil, strict: Bool = false) {
        self.variant = variant
        self.strict = strict
    }
}

/// A checkpoint of any supported format, opened without reading tensor data: ordered tensors (each readable
/// on demand), non-tensor values, safetensors metadata and diffusers configs.
public final class Checkpoint: @unchecked Sendable {
    public let path: String
    public let format: CheckpointFormat
    public let tensors: [TensorInfo]
    public let values: [CheckpointValue]
    /// safetensors `__metadata__` (prefixed by shard or component where several files contribute).
    public let metadata: [(String, String)]
    /// JSON configs by file name relative to `path` (`config.json`, `model_index.json`, `transformer/config.json`).
    public let configs: [(String, JSONValue)]
    /// Files the checkpoint was read from (relative to `path` for folders).
    public let files: [String]
    /// Things a user should know that are not errors (big-endian storages, compressed entries, …).
    public let notes: [String]
    public let variant: String?

    init(
        path: String, format: CheckpointFormat, tensors: [TensorInfo], values: [CheckpointValue] = [],
        metadata: [(String, String)] = [], configs: [(String, JSONValue)] = [], files: [String], notes: [String] = [],
        variant: String? = nil
    ) {
        self.path = path
        self.format = format
        self.tensors = tensors
        self.values = values
        self.metadata = metadata
        self.configs = configs
        self.files = files
        self.notes = notes
        self.variant = variant
    }

    public func tensor(named name: String) -> TensorInfo? { tensors.first { $0.name == name } }

    public func config(_ name: String) -> JSONValue? { configs.first { $0.0 == name }?.1 }

    /// Bytes of all tensors' elements (a shared storage counts once per tensor that views it). Saturates at
    /// `Int.max` rather than trapping; opened checkpoints stay far below (see `checkExpansion`).
    public var tensorBytes: Int { tensors.reduce(0) { Checked.saturatingAdd($0, $1.byteCount) } }
    /// Elements of all tensors, saturating at `Int.max` like `tensorBytes`.
    public var elementCount: Int { tensors.reduce(0) { Checked.saturatingAdd($0, $1.elementCount) } }
    /// Distinct storages and their bytes (what the file actually holds).
    public var storageSummary: (count: Int, bytes: Int) {
        var seen = Set<ObjectIdentifier>()
        var bytes = 0
        for t in tensors where seen.insert(ObjectIdentifier(t.storage)).inserted {
            bytes = Checked.saturatingAdd(bytes, t.storage.byteCount)
        }
        return (seen.count, bytes)
    }

    /// How many times its own size a file's tensors may add up to (plus `expansionAllowance`) before they are
    /// refused as an expansion bomb.
    public static let expansionFactor = 16
    /// Logical bytes allowed beyond `expansionFactor` × the file size (64 MiB: a broadcast table in a tiny file).
    public static let expansionAllowance = 64 << 20

    /// The most logical bytes a file of `fileSize` bytes may unfold to: 16 × `fileSize` + 64 MiB (saturating).
    static func expansionLimit(fileSize: Int) -> Int {
        Checked.saturatingAdd(Checked.saturatingMultiply(fileSize, expansionFactor), expansionAllowance)
    }

    /// Refuses an expansion bomb: views (stride 0, overlapping) whose logical bytes add up to more than
    /// 16 × `fileSize` + 64 MiB. Without views a file's tensors add up to at most its storages, so real checkpoints
    /// are far below (deflated storages that inflate past the limit are refused the same way); a 79 KB file whose stride-0 views claim 1.5 GiB would otherwise make `convert` write (and
    /// `verify` allocate) that much. Checked arithmetic: logical sizes past 2^63 are refused too, so every total
    /// of an opened checkpoint fits in `Int`. Throws `.malformed` naming the tensor that crosses the limit.
    static func checkExpansion(_ tensors: [TensorInfo], fileSize: Int, path: String) throws {
        let limit = expansionLimit(fileSize: fileSize)
        var total = 0
        for tensor in tensors {
            let bytes = Checked.multiply(tensor.layout.elementCount, tensor.dtype.size)
            if let bytes, let sum = Checked.add(total, bytes), sum <= limit {
                total = sum
                continue
            }
            let logical = bytes.map { "\($0) logical bytes" } ?? "more than 2^63 logical bytes"
            throw CheckpointError.malformed(
                path: path, location: "tensor \(tensor.name)",
                reason: "view (\(tensor.layout)) of \(tensor.dtype.rawValue) makes \(logical) out of storage "
                    + "\(tensor.storage.key) (\(tensor.storage.byteCount) bytes); with the \(total) bytes of the tensors "
                    + "before it that is more than \(expansionFactor) × the file's \(fileSize) bytes + 64 MiB "
                    + "(\(limit) bytes): an expansion bomb (views repeating their storage, or entries inflating far past the "
                    + "file), refused")
        }
    }

    // MARK: opening

    /// Opens `path`, deciding the format from its bytes (files) or contents (folders), never its extension.
    public static func open(_ path: String, options: OpenOptions = OpenOptions()) throws -> Checkpoint {
        switch try FormatSniffer.sniff(path) {
        case .file(let kind, let file):
            return try openFile(file, kind: kind, options: options)
        case .folder(let kind):
            return try DiffusersFolder.open(path, kind: kind, options: options)
        }
    }

    static func openFile(_ file: MappedFile, kind: FormatSniffer.FileKind, options: OpenOptions) throws -> Checkpoint {
        let path = file.path
        let fileName = FileSystem.fileName(path)
        switch kind {
        case .safetensors:
            let st = try SafetensorsFile(file: file)
            return Checkpoint(path: path, format: .safetensors, tensors: st.tensors, metadata: st.metadata, files: [fileName])
        case .safetensorsIndex:
            let sharded = try ShardedSafetensors(indexPath: path)
            return Checkpoint(
                path: path, format: .safetensorsSharded, tensors: sharded.tensors, metadata: sharded.metadata,
                files: [fileName] + sharded.shards.map { FileSystem.fileName($0.file.path) },
                notes: sharded.notes)
        case .torchZip, .torchLegacy, .pickle:
            let loaded: TorchArchive.Loaded
            let format: CheckpointFormat
            switch kind {
            case .torchZip: loaded = try TorchArchive.loadZip(file: file, strict: options.strict); format = .torchZip
            case .torchLegacy: loaded = try TorchArchive.loadLegacy(file: file, strict: options.strict); format = .torchLegacy
            default: loaded = try TorchArchive.loadPlainPickle(file: file, strict: options.strict); format = .pickle
            }
            var flattener = PickleFlattener(path: path)
            try flattener.walk(loaded.root, path: [])
            try checkExpansion(flattener.tensors, fileSize: file.size, path: path)
            return Checkpoint(
                path: path, format: format, tensors: flattener.tensors, values: flattener.values, files: [fileName],
                notes: loaded.notes + flattener.notes)
        }
    }
}

/// Turns an unpickled object tree into named tensors and named values.
struct PickleFlattener {
    let path: String
    var tensors: [TensorInfo] = []
    var values: [CheckpointValue] = []
    var notes: [String] = []
    private var active = Set<ObjectIdentifier>()
    static let maxDepth = 64

    init(path: String) { self.path = path }

    static func join(_ parts: [String]) -> String { parts.isEmpty ? "(root)" : parts.joined(separator: ".") }

    mutating func walk(_ value: PickleValue, path parts: [String]) throws {
        guard parts.count <= PickleFlattener.maxDepth else {
            throw CheckpointError.malformed(
                path: path, location: PickleFlattener.join(Array(parts.prefix(8))) + "…",
                reason: "objects nest deeper than \(PickleFlattener.maxDepth) levels")
        }
        switch value {
        case .tensor(let t):
            tensors.append(try tensorInfo(t, name: parts.isEmpty ? "tensor" : PickleFlattener.join(parts)))
        case .dict(let d):
            try guarded(ObjectIdentifier(d), parts) {
                for entry in d.entries { try $0.walk(entry.value, path: parts + [PickleFlattener.keyText(entry.key)]) }
            }
        case .list(let l):
            try guarded(ObjectIdentifier(l), parts) {
                for (i, item) in l.items.enumerated() { try $0.walk(item, path: parts + [String(i)]) }
            }
        case .tuple(let items):
            for (i, item) in items.enumerated() { try walk(item, path: parts + [String(i)]) }
        case .object(let object) where PickleFlattener.moduleState(object) != nil:
            // A pickled torch.nn.Module (torch.save(model)): show its parameters and buffers under
            // state-dict names, as model.state_dict() would.
            let state = PickleFlattener.moduleState(object)!
            record(parts, kind: object.type.description, text: "<\(object.type)>", json: .string(object.type.description), opaque: true)
            if parts.isEmpty { notes.append("a whole pickled nn.Module (torch.save(model)); tensors are named as in its state_dict()") }
            try guarded(ObjectIdentifier(object), parts) { me in
                for key in ["_parameters", "_buffers"] {
                    guard case .dict(let tensors)? = state[key] else { continue }
                    for entry in tensors.entries {
                        if case .none = entry.value { continue }
                        try me.walk(entry.value, path: parts + [PickleFlattener.keyText(entry.key)])
                    }
                }
                if case .dict(let modules)? = state["_modules"] {
                    for entry in modules.entries {
                        if case .none = entry.value { continue }
                        try me.walk(entry.value, path: parts + [PickleFlattener.keyText(entry.key)])
                    }
                }
            }
        case .object(let object):
            record(parts, kind: object.type.description, text: "<\(object.type)>", json: .string(object.type.description), opaque: true)
            try guarded(ObjectIdentifier(object), parts) { me in
                if let state = object.state { try me.walkState(state, path: parts) }
                for (i, item) in object.listItems.enumerated() { try me.walk(item, path: parts + [String(i)]) }
                for (key, item) in object.dictItems { try me.walk(item, path: parts + [PickleFlattener.keyText(key)]) }
                if object.state == nil && object.listItems.isEmpty && object.dictItems.isEmpty && !object.arguments.isEmpty {
                    for (i, item) in object.arguments.enumerated() where item.containsTensor {
                        try me.walk(item, path: parts + ["args", String(i)])
                    }
                }
            }
        case .none: record(parts, kind: "None", text: "None", json: .null)
        case .bool(let b): record(parts, kind: "bool", text: b ? "True" : "False", json: .bool(b))
        case .int(let i): record(parts, kind: "int", text: String(i), json: .int(i))
        case .bigInt(let s): record(parts, kind: "int", text: s, json: .string(s))
        case .float(let d): record(parts, kind: "float", text: pythonFloatRepr(d), json: d.isFinite ? .double(d) : .string(pythonFloatRepr(d)))
        case .string(let s): record(parts, kind: "str", text: value.repr(limit: 200), json: .string(s))
        default:
            let text = value.repr(limit: 200)
            record(parts, kind: value.kindName, text: text, json: .string(text))
        }
    }

    /// The attribute dict of an opaque object that looks like a torch.nn.Module (has `_parameters` and `_modules`).
    static func moduleState(_ object: PickleObject) -> PickleDict? {
        guard case .dict(let state)? = object.state, state["_parameters"] != nil, state["_modules"] != nil else { return nil }
        return state
    }

    /// BUILD state: a dict of attributes, or `(dict, slotstate)`.
    private mutating func walkState(_ state: PickleValue, path parts: [String]) throws {
        if case .tuple(let items) = state, items.count == 2 {
            for item in items {
                if case .none = item { continue }
                try walk(item, path: parts)
            }
        } else {
            try walk(state, path: parts)
        }
    }

    private mutating func guarded(_ id: ObjectIdentifier, _ parts: [String], _ body: (inout PickleFlattener) throws -> Void) throws {
        guard active.insert(id).inserted else {
            record(parts, kind: "cycle", text: "<reference to an enclosing container>", json: .string("<cycle>"))
            return
        }
        defer { active.remove(id) }
        try body(&self)
    }

    private mutating func record(_ parts: [String], kind: String, text: String, json: JSONValue, opaque: Bool = false) {
        values.append(CheckpointValue(path: PickleFlattener.join(parts), kind: kind, text: text, json: json, isOpaqueObject: opaque))
    }

    static func keyText(_ key: PickleValue) -> String {
        switch key {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bigInt(let s): return s
        case .bool(let b): return b ? "True" : "False"
        case .none: return "None"
        default: return key.repr(limit: 60)
        }
    }

    private func tensorInfo(_ t: PickledTensor, name: String) throws -> TensorInfo {
        let layout: TensorLayout
        do {
            layout = try TensorLayout(shape: t.shape, strides: t.strides, offset: t.offset)
        } catch {
            throw CheckpointError.malformed(path: path, location: "tensor \(name)", reason: "\(error)")
        }
        let storageElements = t.storage.byteCount / t.dtype.size
        if layout.elementCount > 0 && layout.storageExtent > storageElements {
            throw CheckpointError.malformed(
                path: path, location: "tensor \(name)",
                reason: "view (shape \(t.shape), strides \(t.strides), offset \(t.offset)) reaches element "
                    + "\(layout.storageExtent) but storage \(t.storage.key) holds only \(storageElements) elements of "
                    + "\(t.dtype.rawValue) (\(t.storage.byteCount) bytes)")
        }
        return TensorInfo(
            name: name, dtype: t.dtype, layout: layout, storage: t.storage, requiresGrad: t.requiresGrad,
            isParameter: t.isParameter)
    }
}

extension PickleValue {
    /// Whether a tensor is reachable inside (bounded depth; used for opaque constructor arguments).
    var containsTensor: Bool { containsTensor(depth: 0) }

    private func containsTensor(depth: Int) -> Bool {
        guard depth < 16 else { return false }
        switch self {
        case .tensor: return true
        case .tuple(let items), .frozenset(let items): return items.contains { $0.containsTensor(depth: depth + 1) }
        case .list(let l): return l.items.contains { $0.containsTensor(depth: depth + 1) }
        case .dict(let d): return d.entries.contains { $0.value.containsTensor(depth: depth + 1) }
        default: return false
        }
    }
}
