import Tensors

/// A value of the nested state a Cerebras `.mdl` file holds (what `cerebras.pytorch.save` takes): dicts with string
/// keys in order, lists, tensors (streamed), and the Python scalars, strings and None.
public indirect enum MDLNode: Sendable {
    /// A dict; keys in order (a key may hold "." — the spec keeps the structure — or "/", which makes HDF5 groups).
    case dict([(String, MDLNode)])
    /// A list.
    case list([MDLNode])
    /// A tensor, streamed into the file when its turn comes.
    case tensor(OutputTensor)
    /// A Python int.
    case int(Int)
    /// A Python float.
    case float(Double)
    /// A Python bool.
    case bool(Bool)
    /// A Python str.
    case string(String)
    /// Python's None.
    case none
}

/// How `MDLWriter` writes.
public struct MDLWriteOptions: Sendable {
    /// How tensor datasets are stored.
    public enum Compression: String, Sendable, CaseIterable {
        /// h5py's automatic chunks, each LZ4-compressed (HDF5 filter 32004) — what the Cerebras saver writes.
        case lz4
        /// Contiguous, uncompressed datasets (the saver's `Compression.NONE`).
        case none
    }

    /// LZ4 chunks (the default, as the saver) or none.
    public var compression: Compression
    /// Replace an existing file at the path.
    public var overwrite: Bool
    /// `fsync` before the rename.
    public var durable: Bool
    /// Hears the bytes of tensor data produced so far, as they stream.
    public var progress: (@Sendable (Int) -> Void)?

    /// Options with LZ4 compression, no overwrite, not durable, no progress unless given.
    public init(compression: Compression = .lz4, overwrite: Bool = false, durable: Bool = false, progress: (@Sendable (Int) -> Void)? = nil) {
        self.compression = compression
        self.overwrite = overwrite
        self.durable = durable
        self.progress = progress
    }
}

/// Writes Cerebras `.mdl` checkpoints, format 0.5, laid out as `cerebras.pytorch.save` (cerebras-pytorch 2.10) lays
/// them out — read in its sources (`storage/save.py`, `serializers.py`, cerebras-appliance `storage/h5_storage.py`,
/// `context.py`, `serializers.py`) and checked against files the real saver wrote:
///
/// - root attributes `__spec__` (`json.dumps([structure with leaves "*", torch treespec_dumps JSON], indent=4)`),
///   `__version__` (float64 0.5), `__cstorch_version__` (the version whose layout this is, "2.10.0"), one
///   `<flat key>.__metadata__` per leaf (the saver's per-leaf JSON: `__spec__`, `__objects__`, the serializer's
///   metadata), `__written_by__` ("ditkit": the loader reads only the attributes it names, so an extra one is
///   harmless), and `__SUCCESS__` (h5py's enum bool, TRUE) last;
/// - a dataset per tensor named by its flat key (unescaped: "/" makes groups), numpy's dtype (bf16 as int16),
///   h5py's automatic chunks with the LZ4 filter (0-d tensors contiguous), and the attributes the saver's
///   `write_numpy` puts on it (`__TORCH__`, `shapes`, `dtypes`, `rtfx_dtypes`, `__TYPE__`, `compressed`, `__NUMPY__`);
/// - scalars, strings and None as metadata only.
///
/// Leaves are written as the saver submits them: every non-tensor leaf first, then the tensors, each in flat order.
public enum MDLWriter {
    /// The `__cstorch_version__` written: the cerebras-pytorch release whose format-0.5 layout ditkit reproduces.
    public static let cstorchVersion = "2.10.0"

    /// Writes `root` (a dict) to `path` atomically (a temporary file beside it, renamed when complete; nothing is
    /// left behind when a tensor's producer or the disk fails). Memory: one band of chunk rows of one tensor.
    /// Throws `.outputExists` (no `overwrite`), `.unsupported` for a tensor dtype the format cannot hold,
    /// `.malformed` for a state the format cannot name (a root that is not a dict, keys that clash as HDF5 names),
    /// `.io` when writing fails, and whatever a producer throws.
    public static func write(_ root: MDLNode, to path: String, options: MDLWriteOptions = MDLWriteOptions()) throws {
        guard case .dict = root else {
            throw CheckpointError.malformed(path: path, location: "root", reason: "a .mdl file holds a dict at its root")
        }
        var leaves: [(key: String, node: MDLNode)] = []
        flatten(root, prefix: nil, into: &leaves)
        var seen = Set<String>()
        for leaf in leaves where !seen.insert(leaf.key).inserted {
            throw CheckpointError.malformed(
                path: path, location: leaf.key, reason: "two leaves flatten to the same key (the saver's keys join path parts with \".\")")
        }

        var attributes: [HDF5WriteAttribute] = [
            HDF5WriteAttribute("__spec__", .string(specJSON(root))),
            HDF5WriteAttribute("__version__", .float64(0.5)),
            HDF5WriteAttribute("__cstorch_version__", .string(cstorchVersion)),
        ]
        let progress = options.progress
        try AtomicFileWriter.withFile(at: path, overwrite: options.overwrite, durable: options.durable) { out in
            let writer = try HDF5Writer(out: out)
            let ordered = leaves.filter { !$0.node.isTensor } + leaves.filter { $0.node.isTensor }
            for leaf in ordered {
                let metadata = leafMetadata(leaf.node)
                attributes.append(HDF5WriteAttribute("\(leaf.key).__metadata__", .string(leafJSON(key: leaf.key, metadata: metadata))))
                guard case .tensor(let tensor) = leaf.node else { continue }
                let components = leaf.key.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                try writer.add(
                    dataset: components, dtype: tensor.dtype, shape: tensor.shape, lz4: options.compression == .lz4,
                    attributes: datasetAttributes(tensor), progress: progress.map { p in { p($0) } }
                ) { sink in try tensor.produce(sink) }
            }
            attributes.append(HDF5WriteAttribute("__written_by__", .string("ditkit")))
            attributes.append(HDF5WriteAttribute("__SUCCESS__", .bool(true)))
            try writer.finish(rootAttributes: attributes)
        }
    }

    /// The leaves of `node` with their flat keys: path parts joined by "." with no escaping, list items by index
    /// (torch pytree's flattening, as `cstorch.utils.nest.recurse_spec` names them).
    static func flatten(_ node: MDLNode, prefix: String?, into leaves: inout [(key: String, node: MDLNode)]) {
        func join(_ part: String) -> String { prefix.map { "\($0).\(part)" } ?? part }
        switch node {
        case .dict(let members): for (k, v) in members { flatten(v, prefix: join(k), into: &leaves) }
        case .list(let items): for (i, v) in items.enumerated() { flatten(v, prefix: join(String(i)), into: &leaves) }
        default: leaves.append((prefix ?? "", node))
        }
    }

    // MARK: JSON as the saver writes it

    /// The root `__spec__`: `json.dumps([structure, treespec_dumps(spec)], indent=4)`.
    static func specJSON(_ root: MDLNode) -> String {
        PythonJSON.array([structure(root), .string(treespec(root))]).dumps(indent: 4)
    }

    /// The structure with every leaf replaced by "*" (`tree_unflatten(("*" …), spec)`).
    static func structure(_ node: MDLNode) -> PythonJSON {
        switch node {
        case .dict(let members): return .object(members.map { ($0.0, structure($0.1)) })
        case .list(let items): return .array(items.map(structure))
        default: return .string("*")
        }
    }

    /// torch's `treespec_dumps` (protocol 1): `json.dumps([1, node])` with nodes `{"type", "context",
    /// "children_spec"}`; a dict's context is `json.dumps(list(keys))`, a list's `"null"`, a leaf's type and context null.
    static func treespec(_ node: MDLNode) -> String {
        func spec(_ node: MDLNode) -> PythonJSON {
            switch node {
            case .dict(let members):
                return .object([
                    ("type", .string("builtins.dict")),
                    ("context", .string(PythonJSON.array(members.map { .string($0.0) }).dumps())),
                    ("children_spec", .array(members.map { spec($0.1) })),
                ])
            case .list(let items):
                return .object([
                    ("type", .string("builtins.list")), ("context", .string("null")),
                    ("children_spec", .array(items.map(spec))),
                ])
            default:
                return .object([("type", .null), ("context", .null), ("children_spec", .array([]))])
            }
        }
        return PythonJSON.array([.int(1), spec(node)]).dumps()
    }

    /// The serializer metadata of a leaf, in the saver's key order.
    static func leafMetadata(_ node: MDLNode) -> PythonJSON {
        switch node {
        case .tensor(let t):
            return .object([
                ("__TORCH__", .bool(true)),
                ("shapes", .array([.array(t.shape.map { .int($0) })])),
                ("dtypes", .array([.string(MDLDTypes.torchName(t.dtype))])),
                ("rtfx_dtypes", .array([.int(rtfxCode(t.dtype))])),
                ("__TYPE__", .string("TorchTensorSerializer")),
                ("__NUMPY__", .bool(true)),
                ("compressed", .bool(false)),
            ])
        case .int(let v): return scalar(.int(v))
        case .float(let v): return scalar(.double(v))
        case .bool(let v): return scalar(.bool(v))
        case .string(let s):
            return .object([("string_value", .string(s)), ("__TYPE__", .string("StringSerializer")), ("__NONE__", .bool(true))])
        default:
            return .object([("__TYPE__", .string("NoneSerializer")), ("__NONE__", .bool(true))])
        }
    }

    private static func scalar(_ value: PythonJSON) -> PythonJSON {
        .object([("scalar_value", value), ("__TYPE__", .string("ScalarSerializer")), ("__NONE__", .bool(true))])
    }

    /// The per-leaf attribute `<key>.__metadata__`: `json.dumps({"__spec__": [{key: "*"}, treespec],
    /// "__objects__": [key], "<key>.__metadata__": metadata}, indent=4)`.
    static func leafJSON(key: String, metadata: PythonJSON) -> String {
        let single = MDLNode.dict([(key, .none)])
        return PythonJSON.object([
            ("__spec__", .array([.object([(key, .string("*"))]), .string(treespec(single))])),
            ("__objects__", .array([.string(key)])),
            ("\(key).__metadata__", metadata),
        ]).dumps(indent: 4)
    }

    /// The attributes `write_numpy` puts on a tensor's dataset, in the order they end up in its object header.
    static func datasetAttributes(_ t: OutputTensor) -> [HDF5WriteAttribute] {
        let shapes: HDF5WriteValue = t.shape.isEmpty
            ? .float64s([], shape: [1, 0])  // numpy makes [()] a float64 array of shape (1, 0)
            : .int64s(t.shape.map { Int64($0) }, shape: [1, t.shape.count])
        return [
            HDF5WriteAttribute("__TORCH__", .bool(true)),
            HDF5WriteAttribute("shapes", shapes),
            HDF5WriteAttribute("dtypes", .strings([MDLDTypes.torchName(t.dtype)], shape: [1])),
            HDF5WriteAttribute("rtfx_dtypes", .int64s([Int64(rtfxCode(t.dtype))], shape: [1])),
            HDF5WriteAttribute("__TYPE__", .string("TorchTensorSerializer")),
            HDF5WriteAttribute("compressed", .bool(false)),
            HDF5WriteAttribute("__NUMPY__", .bool(true)),
        ]
    }

    /// cerebras-appliance's RtFx dtype code (`torch_to_rtfx_dtype`, read from cerebras-pytorch 2.10): float64 12,
    /// float32 11, float16 10, bfloat16 15, int64 5, int32 4, int16 3, uint8 6, bool 1.
    static func rtfxCode(_ dtype: DType) -> Int {
        switch dtype {
        case .f64: return 12
        case .f32: return 11
        case .f16: return 10
        case .bf16: return 15
        case .i64: return 5
        case .i32: return 4
        case .i16: return 3
        case .u8: return 6
        case .bool: return 1
        default: return 0
        }
    }
}

extension MDLNode {
    var isTensor: Bool { if case .tensor = self { return true }; return false }
}

/// JSON text exactly as Python's `json.dumps` writes it (`ensure_ascii`, `repr` floats, `NaN`/`Infinity`,
/// separators `", "` and `": "`, or with `indent` newlines and `","` after items).
indirect enum PythonJSON {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([PythonJSON])
    case object([(String, PythonJSON)])

    /// `json.dumps(value)` (indent nil) or `json.dumps(value, indent=n)`.
    func dumps(indent: Int? = nil) -> String {
        var out = ""
        write(to: &out, indent: indent, level: 0)
        return out
    }

    private func write(to out: inout String, indent: Int?, level: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += PythonJSON.repr(d)
        case .string(let s): PythonJSON.quote(s, into: &out)
        case .array(let items):
            guard !items.isEmpty else { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                separator(&out, first: i == 0, indent: indent, level: level + 1)
                item.write(to: &out, indent: indent, level: level + 1)
            }
            closing(&out, indent: indent, level: level)
            out += "]"
        case .object(let members):
            guard !members.isEmpty else { out += "{}"; return }
            out += "{"
            for (i, member) in members.enumerated() {
                separator(&out, first: i == 0, indent: indent, level: level + 1)
                PythonJSON.quote(member.0, into: &out)
                out += ": "
                member.1.write(to: &out, indent: indent, level: level + 1)
            }
            closing(&out, indent: indent, level: level)
            out += "}"
        }
    }

    private func separator(_ out: inout String, first: Bool, indent: Int?, level: Int) {
        if let indent {
            out += first ? "\n" : ",\n"
            out += String(repeating: " ", count: indent * level)
        } else if !first {
            out += ", "
        }
    }

    private func closing(_ out: inout String, indent: Int?, level: Int) {
        if let indent { out += "\n" + String(repeating: " ", count: indent * level) }
    }

    /// Python's `float.__repr__` as `json` writes it: shortest round-trip digits, exponent form below 1e-4 and from
    /// 1e16 (`1e-05`, `1e+16`), `.0` on integral values; `NaN`, `Infinity`, `-Infinity`.
    static func repr(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        // Swift's description is the shortest round-trip form too, and switches to exponents at the same points
        // (2^-? aside): it differs from Python only in the exponent's sign and width.
        var text = d.description
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            var mantissa = String(text[..<e])
            var exponent = String(text[text.index(after: e)...])
            if mantissa.hasSuffix(".0") { mantissa.removeLast(2) }
            let negative = exponent.hasPrefix("-")
            exponent = String(exponent.drop { $0 == "-" || $0 == "+" })
            if exponent.count < 2 { exponent = "0" + exponent }
            text = mantissa + "e" + (negative ? "-" : "+") + exponent
        }
        return text
    }

    /// A JSON string literal with `ensure_ascii`: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other controls and every
    /// non-ASCII character as `\uXXXX` (UTF-16 units, surrogate pairs above U+FFFF).
    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for unit in s.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x20..<0x7F, 0x7F: out += String(UnicodeScalar(UInt8(unit)))
            default:
                let hex = String(unit, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
        out += "\""
    }
}
