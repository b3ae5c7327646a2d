import Tensors

/// A key of a pytree node's context as Python holds it: `str(key)` is what the Cerebras saver joins into a flat key.
package enum MDLSpecKey: Sendable, Equatable {
    /// A `str` key.
    case string(String)
    /// An `int` key (optimizer state is keyed by parameter index).
    case int(Int)
    /// A `float` key.
    case float(Double)
    /// A `bool` key.
    case bool(Bool)
    /// The key `None`.
    case none

    /// Python's `str(key)`: the path component `cerebras.pytorch.utils.nest.recurse_spec` yields.
    package var text: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .float(let d): return pythonFloatRepr(d)
        case .bool(let b): return b ? "True" : "False"
        case .none: return "None"
        }
    }
}

/// A torch pytree `TreeSpec` (what `torch.utils._pytree.tree_flatten` returns and the Cerebras saver stores as
/// `__spec__`), read as data: from its JSON form (format 0.5, `treespec_dumps` protocol 1) or from its pickle
/// (format 0.4, see `MDLPickleSpec`).
package indirect enum MDLTreeSpec: Sendable, Equatable {
    /// A leaf (`LeafSpec`: type None, no children).
    case leaf
    /// A container: its pytree type name (`builtins.dict`, `collections.OrderedDict`, `builtins.list`,
    /// `builtins.tuple`, …), its keys (dicts; nil for sequences, whose children are numbered), its children in order.
    case node(type: String, keys: [MDLSpecKey]?, children: [MDLTreeSpec])

    /// Deepest nesting accepted (a state dict nests a handful of levels).
    package static let maxDepth = 64
    /// Most nodes accepted in one spec.
    package static let maxNodes = 10_000_000

    /// The container types whose flattening ditkit knows (torch's own registrations and Cerebras' `builtins.set`):
    /// dicts are keyed by their context, sequences numbered.
    static let keyedTypes: Set<String> = ["builtins.dict", "collections.OrderedDict"]
    static let sequenceTypes: Set<String> = ["builtins.list", "builtins.tuple", "builtins.set", "torch.Size"]

    /// Leaves in order.
    package var leafCount: Int {
        switch self {
        case .leaf: return 1
        case .node(_, _, let children): return children.reduce(0) { $0 + $1.leafCount }
        }
    }

    /// The path of every leaf, in flattening order, as `recurse_spec` yields them (a container with no leaves yields
    /// nothing; dict children are named `str(key)`, sequence children by index). Components are kept apart: a dict
    /// key containing "." stays one component.
    package func leafPaths() -> [[String]] {
        var out: [[String]] = []
        var scope: [String] = []
        collect(into: &out, scope: &scope)
        return out
    }

    private func collect(into out: inout [[String]], scope: inout [String]) {
        switch self {
        case .leaf: out.append(scope)
        case .node(_, let keys, let children):
            for (i, child) in children.enumerated() {
                scope.append(keys.map { $0[i].text } ?? String(i))
                child.collect(into: &out, scope: &scope)
                scope.removeLast()
            }
        }
    }

    /// The flat keys (`leafPaths` joined by "."), as the saver names leaves.
    package func flatKeys() -> [String] { leafPaths().map { $0.joined(separator: ".") } }

    // MARK: JSON (format 0.5)

    /// Parses `treespec_dumps` text (`[1, {"type": …, "context": "<json>", "children_spec": […]}]`). Throws
    /// `MDLSpecError` naming what is wrong.
    package static func parseJSON(_ text: String) throws -> MDLTreeSpec {
        let value: JSONValue
        do { value = try JSONParser.parse(text, maxDepth: 2 * maxDepth + 8) } catch let e as JSONParseError {
            throw MDLSpecError("the treespec is not JSON: \(e.description)")
        }
        guard case .array(let top) = value, top.count == 2 else {
            throw MDLSpecError("the treespec is not [protocol, spec]")
        }
        guard top[0].intValue == 1 else {
            throw MDLSpecError("treespec protocol \(top[0]) (ditkit reads protocol 1)")
        }
        var nodes = 0
        return try node(fromJSON: top[1], depth: 0, nodes: &nodes)
    }

    private static func node(fromJSON value: JSONValue, depth: Int, nodes: inout Int) throws -> MDLTreeSpec {
        guard depth <= maxDepth else { throw MDLSpecError("the treespec nests deeper than \(maxDepth) levels") }
        nodes += 1
        guard nodes <= maxNodes else { throw MDLSpecError("the treespec has more than \(maxNodes) nodes") }
        guard case .object = value else { throw MDLSpecError("a treespec node is not an object") }
        guard let children = value["children_spec"], case .array(let childValues) = children else {
            throw MDLSpecError("a treespec node has no children_spec list")
        }
        let type = value["type"] ?? .null
        if type == .null {
            guard childValues.isEmpty else { throw MDLSpecError("a leaf of the treespec has children") }
            return .leaf
        }
        guard let typeName = type.stringValue else { throw MDLSpecError("a treespec type is not a string") }
        let parsedChildren = try childValues.map { try node(fromJSON: $0, depth: depth + 1, nodes: &nodes) }
        // The context is itself JSON text ("null" for sequences, the key list for dicts).
        let contextText = value["context"]?.stringValue
        var context: JSONValue = .null
        if let contextText {
            do { context = try JSONParser.parse(contextText, maxDepth: 8) } catch let e as JSONParseError {
                throw MDLSpecError("the context of a \(typeName) node is not JSON: \(e.description)")
            }
        } else if let raw = value["context"], raw != .null {
            throw MDLSpecError("the context of a \(typeName) node is not JSON text")
        }
        return try make(type: typeName, context: context.keyList, contextIsNull: context == .null, children: parsedChildren)
    }

    /// Builds a node of `type` from its context keys (nil when the context is not a list) and children, checking
    /// them against each other.
    static func make(type: String, context: [MDLSpecKey]?, contextIsNull: Bool, children: [MDLTreeSpec]) throws -> MDLTreeSpec {
        if keyedTypes.contains(type) {
            guard let keys = context else { throw MDLSpecError("the context of a \(type) node is not a list of keys") }
            guard keys.count == children.count else {
                throw MDLSpecError("a \(type) node has \(keys.count) keys for \(children.count) children")
            }
            return .node(type: type, keys: keys, children: children)
        }
        if sequenceTypes.contains(type) {
            guard contextIsNull else { throw MDLSpecError("a \(type) node has a context (\(type) has none)") }
            return .node(type: type, keys: nil, children: children)
        }
        throw MDLSpecError("pytree node type \(type) (ditkit reads dict, OrderedDict, list, tuple and set nodes)", unsupported: true)
    }
}

/// A `__spec__` that cannot be read: `unsupported` when it is well-formed but uses something ditkit does not read.
package struct MDLSpecError: Error, CustomStringConvertible, Sendable {
    /// What is wrong.
    package let description: String
    /// Valid but outside what ditkit reads (else malformed).
    package let unsupported: Bool

    /// An error saying `description`; `unsupported` when the spec is valid but outside what ditkit reads.
    package init(_ description: String, unsupported: Bool = false) {
        self.description = description
        self.unsupported = unsupported
    }
}

extension JSONValue {
    /// A JSON list of scalar keys as pytree keys (nil when this is not such a list).
    var keyList: [MDLSpecKey]? {
        guard case .array(let items) = self else { return nil }
        var keys: [MDLSpecKey] = []
        keys.reserveCapacity(items.count)
        for item in items {
            switch item {
            case .string(let s): keys.append(.string(s))
            case .int(let i): keys.append(.int(i))
            case .double(let d): keys.append(.float(d))
            case .bool(let b): keys.append(.bool(b))
            case .null: keys.append(.none)
            default: return nil
            }
        }
        return keys
    }
}
