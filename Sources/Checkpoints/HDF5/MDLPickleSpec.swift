import Tensors

/// The format-0.4 `__spec__`: hex text of a dill pickle of a torch pytree `TreeSpec`. Cerebras' loader runs that
/// pickle (`dill.loads`), so a hostile file runs code there; ditkit reads it as data with the restricted
/// `Unpickler`: the only callables it builds are `torch.utils._pytree.TreeSpec` / `LeafSpec` instances (their
/// state is read as fields), `dill._dill._load_type` of a builtin container type (kept as the type's name), and
/// the generic data builtins; a code-execution primitive is HOSTILE, any other callable refused.
package enum MDLPickleSpec {
    /// Builtin types `dill._dill._load_type(name)` may name in a spec (a pytree node's `type`).
    static let loadableTypes: Set<String> = [
        "dict", "list", "tuple", "set", "frozenset", "NoneType", "int", "float", "str", "bool", "bytes",
    ]
    static let treeSpecClasses: Set<String> = ["torch.utils._pytree.TreeSpec", "torch.utils._pytree.LeafSpec"]

    /// Decodes hex text; a character that is not a hex digit, or an odd length, is an error naming its offset.
    package static func hexBytes(_ text: String) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count / 2)
        var high: UInt8?
        for (offset, c) in text.utf8.enumerated() {
            let nibble: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = c - UInt8(ascii: "A") + 10
            default:
                let shown = c >= 0x20 && c < 0x7F ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x" + String(c, radix: 16, uppercase: true)
                throw MDLSpecError("not hexadecimal text: \(shown) at offset \(offset)")
            }
            if let h = high {
                out.append(h << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        guard high == nil else { throw MDLSpecError("hexadecimal text of odd length \(text.utf8.count)") }
        return out
    }

    /// Reads the TreeSpec of pickle `bytes` as data. Throws `PickleError` (hostile or malformed pickles) or
    /// `MDLSpecError` (a pickle that is not a TreeSpec ditkit reads).
    package static func treeSpec(pickle bytes: [UInt8]) throws -> MDLTreeSpec {
        let host = SpecHost()
        let unpickler = Unpickler(policy: PicklePolicy(strict: false), host: host)
        let value = try bytes.withUnsafeBytes { try unpickler.load($0).value }
        var visits = 0
        // Shared subtrees (the one LeafSpec every leaf references) are visited once per reference: bounded by the
        // pickle's size (each reference costs at least one opcode byte).
        let budget = 2 * bytes.count + 1_000
        return try spec(value, depth: 0, visits: &visits, budget: budget)
    }

    private static func spec(_ value: PickleValue, depth: Int, visits: inout Int, budget: Int) throws -> MDLTreeSpec {
        guard depth <= MDLTreeSpec.maxDepth else {
            throw MDLSpecError("the spec nests deeper than \(MDLTreeSpec.maxDepth) levels (or refers to itself)")
        }
        visits += 1
        guard visits <= budget else { throw MDLSpecError("the spec expands to more than \(budget) nodes (shared subtrees)") }
        guard case .object(let object) = value, treeSpecClasses.contains(object.type.description) else {
            throw MDLSpecError("the spec pickle holds a \(value.kindName), not a torch.utils._pytree.TreeSpec")
        }
        if object.type.name == "LeafSpec" { return .leaf }
        guard case .dict(let state)? = object.state else {
            throw MDLSpecError("a TreeSpec of the spec pickle has no field dict")
        }
        let children: [PickleValue]
        switch state["children_specs"] {
        case .list(let l)?: children = l.items
        case .tuple(let t)?: children = t
        default: throw MDLSpecError("a TreeSpec of the spec pickle has no children_specs list")
        }
        let typeName: String?
        switch state["type"] {
        case .none?, nil: typeName = nil
        case .global(let g)?: typeName = g.description
        case let other?: throw MDLSpecError("a TreeSpec type is a \(other.kindName), not a class")
        }
        guard let typeName else {
            guard children.isEmpty else { throw MDLSpecError("a TreeSpec without a type has children") }
            return .leaf
        }
        var keys: [MDLSpecKey]?
        var contextIsNull = false
        switch state["context"] {
        case .none?, nil: contextIsNull = true
        case .list(let l)?: keys = try l.items.map(key)
        case .tuple(let t)?: keys = try t.map(key)
        case let other?: throw MDLSpecError("the context of a \(typeName) node is a \(other.kindName)", unsupported: true)
        }
        let parsed = try children.map { try spec($0, depth: depth + 1, visits: &visits, budget: budget) }
        return try MDLTreeSpec.make(type: typeName, context: keys, contextIsNull: contextIsNull, children: parsed)
    }

    private static func key(_ value: PickleValue) throws -> MDLSpecKey {
        switch value {
        case .string(let s): return .string(s)
        case .int(let i): return .int(i)
        case .float(let d): return .float(d)
        case .bool(let b): return .bool(b)
        case .none: return .none
        default: throw MDLSpecError("a dict key of the spec is a \(value.kindName)", unsupported: true)
        }
    }

    /// Builds, as data, what a TreeSpec pickle calls; everything else goes to the unpickler's policy.
    private final class SpecHost: UnpicklerHost {
        func persistentLoad(_ pid: PickleValue, offset: Int) throws -> PickleValue {
            throw PickleError.unsupportedOpcode(offset: offset, opcode: "BINPERSID", reason: "a persistent id in a spec pickle")
        }

        func call(
            _ callable: PickleGlobal, arguments: [PickleValue], offset: Int,
            nested: (PickleGlobal, [PickleValue]) throws -> PickleValue
        ) throws -> PickleValue? {
            let name = callable.description
            if MDLPickleSpec.treeSpecClasses.contains(name) {
                // NEWOBJ of the dataclass with no arguments; its fields arrive by BUILD.
                guard arguments.isEmpty else {
                    throw PickleError.malformed(offset: offset, reason: "\(name) called with arguments")
                }
                return .object(PickleObject(type: callable, arguments: []))
            }
            if name == "copyreg._reconstructor", arguments.count == 3, case .global(let cls) = arguments[0],
                MDLPickleSpec.treeSpecClasses.contains(cls.description)
            {
                return .object(PickleObject(type: cls, arguments: []))
            }
            if name == "dill._dill._load_type" {
                guard arguments.count == 1, case .string(let typeName) = arguments[0],
                    MDLPickleSpec.loadableTypes.contains(typeName)
                else {
                    let shown = arguments.map { $0.repr(limit: 60) }.joined(separator: ", ")
                    throw PickleError.notAllowlisted(
                        offset: offset, callable: callable, arguments: shown, how: "by REDUCE (a type other than a builtin container)",
                        strict: true, alsoUnknown: [])
                }
                return .global(PickleGlobal(module: "builtins", name: typeName))
            }
            return nil
        }
    }
}
