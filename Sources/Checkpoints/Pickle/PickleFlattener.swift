import Tensors

/// Turns an unpickled object graph into named tensors and named values.
///
/// Linear in the graph's size: a shared container (list, dict, object, non-empty tuple) is walked once, at its
/// first path; every later reference to it (a cycle included) becomes a value naming that path. The text it
/// records (paths and values) is bounded by `maxOutputBytes`, proportional to the file's size.
struct PickleFlattener {
    let path: String
    var tensors: [TensorInfo] = []
    var values: [CheckpointValue] = []
    var notes: [String] = []
    /// The first path of every container walked.
    private var firstPaths: [PickleIdentity: String] = [:]
    /// Whether a container holds a tensor, by identity (see `containsTensor`).
    private var holdsTensor: [PickleIdentity: Bool] = [:]
    private var outputBytes = 0
    /// Bytes of names and value text the flattener may record: `16 × file bytes + 16 MiB`.
    let maxOutputBytes: Int
    static let maxDepth = 64

    init(path: String, inputBytes: Int) {
        self.path = path
        maxOutputBytes = 16 * max(0, min(inputBytes, Int.max / 32)) + (16 << 20)
    }

    static func join(_ parts: [String]) -> String { parts.isEmpty ? "(root)" : parts.joined(separator: ".") }

    mutating func walk(_ value: PickleValue, path parts: [String]) throws {
        guard parts.count <= PickleFlattener.maxDepth else {
            throw CheckpointError.malformed(
                path: path, location: PickleFlattener.join(Array(parts.prefix(8))) + "…",
                reason: "objects nest deeper than \(PickleFlattener.maxDepth) levels")
        }
        switch value {
        case .tensor(let t):
            let name = parts.isEmpty ? "tensor" : PickleFlattener.join(parts)
            try charge(name.utf8.count, at: parts)
            tensors.append(try tensorInfo(t, name: name))
        case .dict(let d):
            try once(value, parts) { me in
                for entry in d.entries { try me.walk(entry.value, path: parts + [PickleFlattener.keyText(entry.key)]) }
            }
        case .list(let l):
            try once(value, parts) { me in
                for (i, item) in l.items.enumerated() { try me.walk(item, path: parts + [String(i)]) }
            }
        case .tuple(let items):
            try once(value, parts) { me in
                for (i, item) in items.enumerated() { try me.walk(item, path: parts + [String(i)]) }
            }
        case .object(let object):
            try once(value, parts) { me in try me.walkObject(object, path: parts) }
        case .none: try record(parts, kind: "None", text: "None", json: .null)
        case .bool(let b): try record(parts, kind: "bool", text: b ? "True" : "False", json: .bool(b))
        case .int(let i): try record(parts, kind: "int", text: String(i), json: .int(i))
        case .bigInt(let s): try record(parts, kind: "int", text: PickleValue.bounded(s, 200), json: .string(s))
        case .float(let d):
            try record(parts, kind: "float", text: pythonFloatRepr(d), json: d.isFinite ? .double(d) : .string(pythonFloatRepr(d)))
        case .string(let s): try record(parts, kind: "str", text: value.repr(limit: 200), json: .string(s))
        default:
            let text = value.repr(limit: 200)
            try record(parts, kind: value.kindName, text: text, json: .string(text))
        }
    }

    private mutating func walkObject(_ object: PickleObject, path parts: [String]) throws {
        try record(parts, kind: object.type.description, text: "<\(object.type)>", json: .string(object.type.description), opaque: true)
        if let state = PickleFlattener.moduleState(object) {
            // A pickled torch.nn.Module (torch.save(model)): show its parameters and buffers under
            // state-dict names, as model.state_dict() would.
            if parts.isEmpty { notes.append("a whole pickled nn.Module (torch.save(model)); tensors are named as in its state_dict()") }
            for key in ["_parameters", "_buffers", "_modules"] {
                guard case .dict(let members)? = state[key] else { continue }
                for entry in members.entries {
                    if case .none = entry.value { continue }
                    try walk(entry.value, path: parts + [PickleFlattener.keyText(entry.key)])
                }
            }
            return
        }
        if let state = object.state { try walkState(state, path: parts) }
        for (i, item) in object.listItems.enumerated() { try walk(item, path: parts + [String(i)]) }
        for (key, item) in object.dictItems { try walk(item, path: parts + [PickleFlattener.keyText(key)]) }
        if object.state == nil && object.listItems.isEmpty && object.dictItems.isEmpty && !object.arguments.isEmpty {
            for (i, item) in object.arguments.enumerated() where containsTensor(item, depth: 0) {
                try walk(item, path: parts + ["args", String(i)])
            }
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

    /// Walks a container at its first path only; a later reference records the path it was first seen at.
    private mutating func once(_ value: PickleValue, _ parts: [String], _ body: (inout PickleFlattener) throws -> Void) throws {
        guard let id = value.identity else { return }  // an empty tuple holds nothing
        if let first = firstPaths[id] {
            try record(parts, kind: "reference", text: "<the object at \(first)>", json: .string("<the object at \(first)>"))
            return
        }
        firstPaths[id] = PickleFlattener.join(parts)
        try body(&self)
    }

    /// Whether a tensor is reachable inside (depth-bounded; each container answered once).
    private mutating func containsTensor(_ value: PickleValue, depth: Int) -> Bool {
        guard depth < 16 else { return false }
        let children: [PickleValue]
        switch value {
        case .tensor: return true
        case .tuple(let items), .frozenset(let items): children = items
        case .list(let l): children = l.items
        case .dict(let d): children = d.entries.map(\.value)
        default: return false
        }
        guard let id = value.identity else { return false }
        if let known = holdsTensor[id] { return known }
        holdsTensor[id] = false  // a cycle back here adds nothing
        let found = children.contains { containsTensor($0, depth: depth + 1) }
        holdsTensor[id] = found
        return found
    }

    private mutating func charge(_ bytes: Int, at parts: [String]) throws {
        outputBytes += bytes
        guard outputBytes <= maxOutputBytes else {
            throw CheckpointError.malformed(
                path: path, location: PickleValue.bounded(PickleFlattener.join(parts), 200),
                reason: "the pickle's names and values need more than \(maxOutputBytes) bytes of text "
                    + "(16 per byte of the file plus 16 MiB); a checkpoint does not")
        }
    }

    private mutating func record(_ parts: [String], kind: String, text: String, json: JSONValue, opaque: Bool = false) throws {
        let name = PickleFlattener.join(parts)
        try charge(name.utf8.count + text.utf8.count, at: parts)
        values.append(CheckpointValue(path: name, kind: kind, text: text, json: json, isOpaqueObject: opaque))
    }

    static func keyText(_ key: PickleValue) -> String {
        switch key {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bigInt(let s): return PickleValue.bounded(s, 60)
        case .bool(let b): return b ? "True" : "False"
        case .none: return "None"
        default: return key.repr(limit: 60)
        }
    }

    private func tensorInfo(_ t: PickledTensor, name: String) throws -> TensorInfo {
        let geometry: TensorGeometry
        do {
            geometry = try TensorGeometry(shape: t.shape, strides: t.strides, offset: t.offset)
        } catch {
            throw CheckpointError.malformed(path: path, location: "tensor \(name)", reason: "\(error)")
        }
        let storageElements = t.storage.byteCount / t.dtype.size
        if geometry.elementCount > 0 && geometry.storageExtent > storageElements {
            throw CheckpointError.malformed(
                path: path, location: "tensor \(name)",
                reason: "view (shape \(t.shape), strides \(t.strides), offset \(t.offset)) reaches element "
                    + "\(geometry.storageExtent) but storage \(t.storage.key) holds only \(storageElements) elements of "
                    + "\(t.dtype.rawValue) (\(t.storage.byteCount) bytes)")
        }
        return TensorInfo(
            name: name, dtype: t.dtype, geometry: geometry, storage: t.storage, requiresGrad: t.requiresGrad,
            isParameter: t.isParameter)
    }
}
