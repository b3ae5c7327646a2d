import Tensors

/// A module-qualified name from a pickle's GLOBAL / STACK_GLOBAL / INST opcode. Only a name: never resolved.
package struct PickleGlobal: Hashable, Sendable, CustomStringConvertible {
    package let module: String
    package let name: String

    /// Normalises Python 2 spellings (`__builtin__`, `copy_reg`, `exceptions`) to their Python 3 modules,
    /// as `pickle`'s `fix_imports` does.
    package init(module: String, name: String) {
        switch module {
        case "__builtin__", "exceptions": self.module = "builtins"
        case "copy_reg": self.module = "copyreg"
        default: self.module = module
        }
        self.name = name
    }

    package var description: String { "\(module).\(name)" }
}

/// A mutable list (pickle containers are built up after they are memoised, so they need reference semantics).
package final class PickleList: @unchecked Sendable {
    package var items: [PickleValue]
    package init(_ items: [PickleValue] = []) { self.items = items }
    deinit { PickleTeardown.release(&items) }
}

/// A mutable dict keeping insertion order; a key set twice keeps its first position and its last value,
/// as Python's dict does.
package final class PickleDict: @unchecked Sendable {
    package private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var index: [PickleKey: Int] = [:]

    package init() {}
    deinit {
        var children = entries.flatMap { [$0.key, $0.value] }
        entries = []
        PickleTeardown.release(&children)
    }

    /// Sets `key` to `value`; returns the work of hashing the key (bounded, see `PickleKey`).
    @discardableResult
    package func set(_ key: PickleValue, _ value: PickleValue) -> Int {
        var cost = 0
        let hashKey = PickleKey(key, cost: &cost)
        if let position = index[hashKey] {
            entries[position].value = value
        } else {
            index[hashKey] = entries.count
            entries.append((key, value))
        }
        return cost
    }

    package subscript(key: String) -> PickleValue? {
        index[.string(key)].map { entries[$0].value }
    }

    package var count: Int { entries.count }
}

/// A mutable set (for ADDITEMS); elements kept in insertion order without duplicates.
package final class PickleSet: @unchecked Sendable {
    package private(set) var items: [PickleValue] = []
    private var seen = Set<PickleKey>()
    package init() {}
    deinit { PickleTeardown.release(&items) }

    /// Adds `value` unless an equal one is there; returns the work of hashing it (bounded, see `PickleKey`).
    @discardableResult
    package func insert(_ value: PickleValue) -> Int {
        var cost = 0
        if seen.insert(PickleKey(value, cost: &cost)).inserted { items.append(value) }
        return cost
    }
}

/// An instance of a data class or of a class the user allowed (see `PicklePolicy`), kept as data: its class name,
/// the arguments it was created with, the state BUILD gave it, and any items appended to it. Nothing of it is ever
/// executed.
package final class PickleObject: @unchecked Sendable {
    package let type: PickleGlobal
    package private(set) var arguments: [PickleValue]
    package var state: PickleValue?
    package var listItems: [PickleValue] = []
    package var dictItems: [(PickleValue, PickleValue)] = []

    package init(type: PickleGlobal, arguments: [PickleValue]) {
        self.type = type
        self.arguments = arguments
    }

    deinit {
        var children = arguments + listItems + dictItems.flatMap { [$0.0, $0.1] } + (state.map { [$0] } ?? [])
        arguments = []
        state = nil
        listItems = []
        dictItems = []
        PickleTeardown.release(&children)
    }
}

/// Releases pickle containers without recursion. A hostile pickle can nest lists or dicts millions deep;
/// Swift would release such a chain recursively and overflow the stack. Each container's `deinit` hands its
/// children to this loop instead: the outermost release on a thread drops values one by one, and a container
/// that dies meanwhile (its `deinit` runs nested inside the loop) only appends its children to the loop's list.
/// So no release goes deeper than the tuple nesting the unpickler caps, and every value is dropped once, whatever
/// its sharing.
enum PickleTeardown {
    /// The values waiting to be dropped by the release running on this thread.
    final class Pending: @unchecked Sendable {
        var values: [PickleValue] = []
    }

    @TaskLocal static var running: Pending?

    static func release(_ children: inout [PickleValue]) {
        if let pending = running {
            pending.values.append(contentsOf: children)
            children = []
            return
        }
        let pending = Pending()
        swap(&pending.values, &children)
        $running.withValue(pending) {
            // Each value dies at the end of its iteration, outside any access to `pending.values`.
            while let value = pending.values.popLast() { _ = value }
        }
    }
}

/// A tensor as a pickle describes it: a view (its geometry: shape, strides and offset, in elements of `dtype`) of a storage.
package struct PickledTensor: Sendable {
    package let storage: TensorStorage
    package let dtype: DType
    /// The raw view as pickled; checked against the storage when the checkpoint is assembled.
    package let shape: [Int]
    package let strides: [Int]
    package let offset: Int
    package let requiresGrad: Bool
    package let isParameter: Bool

    package func with(requiresGrad: Bool, isParameter: Bool) -> PickledTensor {
        PickledTensor(
            storage: storage, dtype: dtype, shape: shape, strides: strides, offset: offset,
            requiresGrad: requiresGrad, isParameter: isParameter)
    }
}

/// Everything a restricted unpickler can produce.
package indirect enum PickleValue: @unchecked Sendable {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer outside the 64-bit range, as decimal text; past 4,300 digits (where CPython refuses int → str)
    /// as hexadecimal text (`0x…`, `-0x…`), which converts in linear time.
    case bigInt(String)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case bytearray([UInt8])
    case list(PickleList)
    case tuple([PickleValue])
    case dict(PickleDict)
    case set(PickleSet)
    case frozenset([PickleValue])
    /// A class or function name used as a value (e.g. `torch.float16`, a storage class).
    case global(PickleGlobal)
    case object(PickleObject)
    /// A storage reached through a persistent id (torch).
    case storage(TensorStorage, dtype: DType?)
    case tensor(PickledTensor)

    /// A short name of the value's kind, as a user reads it.
    package var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .bytearray: return "bytearray"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .set: return "set"
        case .frozenset: return "frozenset"
        case .global(let g): return "global \(g)"
        case .object(let o): return o.type.description
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }

    /// A Python-like rendering for messages and `inspect` (bounded: long strings and containers are cut).
    package func repr(limit: Int = 200) -> String {
        var out = ""
        render(into: &out, limit: limit, depth: 0)
        return out
    }

    /// Renders at most about `limit` characters whatever the value's size or sharing: every call appends at least
    /// one character and none starts past the limit (`utf8.count` is O(1) on native strings).
    private func render(into out: inout String, limit: Int, depth: Int) {
        if out.utf8.count > limit || depth > 8 { out += "…"; return }
        switch self {
        case .none: out += "None"
        case .bool(let b): out += b ? "True" : "False"
        case .int(let i): out += String(i)
        case .bigInt(let s): out += PickleValue.bounded(s, limit)
        case .float(let d): out += pythonFloatRepr(d)
        case .string(let s):
            out += "'" + PickleValue.bounded(s, limit) + "'"
        case .bytes(let b): out += "b<\(b.count) bytes>"
        case .bytearray(let b): out += "bytearray(<\(b.count) bytes>)"
        case .list(let l): renderSequence(l.items, open: "[", close: "]", into: &out, limit: limit, depth: depth)
        case .tuple(let t): renderSequence(t, open: "(", close: t.count == 1 ? ",)" : ")", into: &out, limit: limit, depth: depth)
        case .set(let s): renderSequence(s.items, open: "{", close: "}", into: &out, limit: limit, depth: depth)
        case .frozenset(let s): renderSequence(s, open: "frozenset({", close: "})", into: &out, limit: limit, depth: depth)
        case .dict(let d):
            out += "{"
            for (i, entry) in d.entries.enumerated() {
                if i > 0 { out += ", " }
                if out.utf8.count > limit { out += "…"; break }
                entry.key.render(into: &out, limit: limit, depth: depth + 1)
                out += ": "
                entry.value.render(into: &out, limit: limit, depth: depth + 1)
            }
            out += "}"
        case .global(let g): out += g.description
        case .object(let o): out += "<\(o.type)>"
        case .storage(let s, _): out += "<storage \(s.key)>"
        case .tensor(let t): out += "<tensor \(t.dtype.rawValue) \(t.shape)>"
        }
    }

    /// `s` cut to `limit` characters (reads at most `limit` of them).
    static func bounded(_ s: String, _ limit: Int) -> String {
        let end = s.index(s.startIndex, offsetBy: limit, limitedBy: s.endIndex) ?? s.endIndex
        return end == s.endIndex ? s : String(s[..<end]) + "…"
    }

    /// The identity of a value with reference semantics (lists, dicts, sets, objects, storages) or of a non-empty
    /// tuple or frozenset's element buffer (shared by every copy of that value); nil for scalars and empty tuples.
    /// Walks over a value graph memoise on it so that shared values are visited once.
    var identity: PickleIdentity? {
        switch self {
        case .list(let l): return .object(ObjectIdentifier(l))
        case .dict(let d): return .object(ObjectIdentifier(d))
        case .set(let s): return .object(ObjectIdentifier(s))
        case .object(let o): return .object(ObjectIdentifier(o))
        case .storage(let s, _): return .object(ObjectIdentifier(s))
        case .tuple(let items), .frozenset(let items):
            return items.withUnsafeBufferPointer { buffer in
                buffer.isEmpty ? nil : buffer.baseAddress.map { .buffer(UnsafeRawPointer($0)) }
            }
        default: return nil
        }
    }

    private func renderSequence(
        _ items: [PickleValue], open: String, close: String, into out: inout String, limit: Int, depth: Int
    ) {
        out += open
        for (i, item) in items.enumerated() {
            if i > 0 { out += ", " }
            if out.utf8.count > limit { out += "…"; break }
            item.render(into: &out, limit: limit, depth: depth + 1)
        }
        out += close
    }
}

/// Python's `repr(float)` spelling for the common cases (`1.0`, `0.0001`, `inf`, `nan`).
package func pythonFloatRepr(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    // An integral value prints with ".0" (Python keeps the float-ness visible), -0.0 included.
    if d == d.rounded(), abs(d) < 1e16 { return d == 0 && d.sign == .minus ? "-0.0" : String(Int64(d)) + ".0" }
    return "\(d)"
}

/// Identity of a shared pickle value (see `PickleValue.identity`). Valid while the value is alive.
enum PickleIdentity: Hashable {
    case object(ObjectIdentifier)
    case buffer(UnsafeRawPointer)
}

/// A hashable stand-in for dict keys and set elements (strings, numbers, tuples of them; identity otherwise).
/// Tuples and frozensets compare by value, as in Python, up to `maxNodes` nodes per key; a bigger one (a hostile
/// DAG of shared tuples would expand exponentially) compares by identity instead.
enum PickleKey: Hashable {
    case none
    case bool(Bool)
    case int(Int)
    case big(String)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleKey])
    case global(PickleGlobal)
    case identity(PickleIdentity)
    case other(String)

    static let maxNodes = 256

    /// The key of `value`; `cost` grows by the nodes visited (at most `maxNodes`) plus one per 64 bytes of the
    /// strings and bytes hashed, so that callers can charge hashing to a work budget.
    init(_ value: PickleValue, cost: inout Int) {
        var budget = PickleKey.maxNodes
        var bytes = 0
        self = PickleKey.make(value, budget: &budget, bytes: &bytes) ?? value.identity.map(PickleKey.identity) ?? .tuple([])
        cost += PickleKey.maxNodes - max(budget, 0) + bytes / 64
    }

    /// nil when `budget` runs out inside a tuple or frozenset.
    private static func make(_ value: PickleValue, budget: inout Int, bytes: inout Int) -> PickleKey? {
        budget -= 1
        guard budget >= 0 else { return nil }
        switch value {
        case .tuple(let items), .frozenset(let items):
            var keys: [PickleKey] = []
            keys.reserveCapacity(min(items.count, budget))
            for item in items {
                guard let key = make(item, budget: &budget, bytes: &bytes) else { return nil }
                keys.append(key)
            }
            return .tuple(keys)
        case .string(let s): bytes += s.utf8.count
        case .bytes(let b), .bytearray(let b): bytes += b.count
        case .bigInt(let s): bytes += s.utf8.count
        default: break
        }
        return PickleKey(scalar: value)
    }

    private init(scalar value: PickleValue) {
        switch value {
        case .none: self = .none
        case .bool(let b): self = .int(b ? 1 : 0)  // Python: True == 1
        case .int(let i): self = .int(i)
        case .bigInt(let s): self = .big(s)
        case .float(let d): self = d == d.rounded() && abs(d) < 9e15 ? .int(Int(d)) : .float(d)
        case .string(let s): self = .string(s)
        case .bytes(let b): self = .bytes(b)
        case .tuple, .frozenset, .list, .dict, .set, .object, .storage:
            self = value.identity.map(PickleKey.identity) ?? .tuple([])
        case .global(let g): self = .global(g)
        case .bytearray(let b): self = .bytes(b)
        case .tensor(let t): self = .other("tensor@\(ObjectIdentifier(t.storage))/\(t.offset)/\(t.shape)")
        }
    }
}
