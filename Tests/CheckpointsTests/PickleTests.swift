import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

/// The restricted unpickler against Python's own pickles of every protocol.
@Suite("Pickle machine")
struct PickleTests {
    /// Renders a value in the tagged form of fixtures/pickle/values.json.
    static func tagged(_ value: PickleValue) -> JSONValue {
        func floatJSON(_ d: Double) -> JSONValue {
            if d.isNaN { return .string("nan") }
            if d.isInfinite { return .string(d < 0 ? "-inf" : "inf") }
            if d == 0 && d.sign == .minus { return .string("-0.0") }
            return .double(d)
        }
        func hex(_ bytes: [UInt8]) -> String {
            bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        }
        func sortedInts(_ items: [PickleValue]) -> [JSONValue] {
            items.map(tagged).sorted { ($0["int"]?.stringValue.flatMap { Int($0) } ?? 0) < ($1["int"]?.stringValue.flatMap { Int($0) } ?? 0) }
        }
        switch value {
        case .none: return .object([("none", .null)])
        case .bool(let b): return .object([("bool", .bool(b))])
        case .int(let i): return .object([("int", .string(String(i)))])
        case .bigInt(let s): return .object([("int", .string(s))])
        case .float(let d): return .object([("float", floatJSON(d))])
        case .string(let s): return .object([("str", .string(s))])
        case .bytes(let b): return .object([("bytes", .string(hex(b)))])
        case .bytearray(let b): return .object([("bytearray", .string(hex(b)))])
        case .list(let l): return .object([("list", .array(l.items.map(tagged)))])
        case .tuple(let t): return .object([("tuple", .array(t.map(tagged)))])
        case .set(let s): return .object([("set", .array(sortedInts(s.items)))])
        case .frozenset(let s): return .object([("frozenset", .array(sortedInts(s)))])
        case .dict(let d): return .object([("dict", .array(d.entries.map { .array([tagged($0.key), tagged($0.value)]) }))])
        default: return .object([("other", .string(value.repr()))])
        }
    }

    @Test("protocols 0–5 all decode to the value Python pickled", arguments: 0...5)
    func protocols(_ version: Int) throws {
        let data = try #require(FileManager.default.contents(atPath: Fixtures.path("pickle/values-p\(version).pkl")))
        let expected = try JSONParser.parse([UInt8](try #require(FileManager.default.contents(atPath: Fixtures.path("pickle/values.json")))))
        let (value, end) = try [UInt8](data).withUnsafeBytes { try Unpickler().load($0) }
        #expect(end == data.count)
        let ours = Self.tagged(value)
        #expect(TensorValues.same(ours, expected) || ours == expected, "protocol \(version):\n\(ours.serialized())\nvs\n\(expected.serialized())")
    }

    @Test("memo keeps shared containers shared")
    func sharedMemo() throws {
        // [l, l] where l = [1]; then append 2 to the memoised l: both entries see it.
        // PROTO 2, EMPTY_LIST, BINPUT 0, MARK, EMPTY_LIST, BINPUT 1, BININT1 1, APPEND, BINGET 1, APPENDS,
        // BINGET 1, BININT1 2, APPEND, POP, STOP
        let bytes: [UInt8] = [0x80, 2, 0x5D, 0x71, 0, 0x28, 0x5D, 0x71, 1, 0x4B, 1, 0x61, 0x68, 1, 0x65, 0x68, 1, 0x4B, 2, 0x61, 0x30, 0x2E]
        let (value, _) = try bytes.withUnsafeBytes { try Unpickler().load($0) }
        guard case .list(let outer) = value, outer.items.count == 2, case .list(let a) = outer.items[0], case .list(let b) = outer.items[1] else {
            Issue.record("unexpected \(value.repr())")
            return
        }
        #expect(a === b)
        #expect(a.items.count == 2)
    }

    @Test("hostile opcodes and truncation are named with their offset", arguments: [
        ([0x80, 2, 0x63] + Array("os\nsystem\n".utf8) + [0x58, 2, 0, 0, 0] + Array("id".utf8) + [0x85, 0x52, 0x2E], "os.system"),
        ([0x80, 2, 0x8C, 5] + Array("posix".utf8) + [0x8C, 6] + Array("system".utf8) + [0x93, 0x29, 0x52, 0x2E], "posix.system"),
        ([0x80, 2, 0x63] + Array("builtins\ngetattr\n".utf8) + [0x29, 0x52, 0x2E], "builtins.getattr"),
        ([0x80, 2, 0x58, 0xFF, 0xFF, 0xFF, 0x7F], "ends inside BINUNICODE"),
        ([0x80, 2, 0x68, 7, 0x2E], "memo slot 7"),
        ([0x80, 2, 0xFF], "unknown pickle opcode 0xff at byte 2"),
        ([0x80, 2, 0x4B, 1], "no STOP"),
    ] as [([UInt8], String)])
    func refusals(_ input: ([UInt8], String)) {
        #expect {
            try input.0.withUnsafeBytes { try Unpickler().load($0) }
        } throws: { error in
            let text = "\(error)"
            if !text.contains(input.1) && !(input.1 == "no STOP" && text.contains("STOP")) {
                Issue.record("\(text) lacks \(input.1)")
                return false
            }
            return true
        }
    }

    @Test("data classes are opaque values by default and errors under strict")
    func opaque() throws {
        // argparse.Namespace() with BUILD {"lr": 0.5}
        let bytes: [UInt8] = [0x80, 2, 0x63] + Array("argparse\nNamespace\n".utf8) + [0x29, 0x81, 0x7D, 0x58, 2, 0, 0, 0] + Array("lr".utf8)
            + [0x47, 0x3F, 0xE0, 0, 0, 0, 0, 0, 0, 0x73, 0x62, 0x2E]
        let (value, _) = try bytes.withUnsafeBytes { try Unpickler().load($0) }
        guard case .object(let object) = value else { Issue.record("not opaque: \(value.repr())"); return }
        #expect(object.type.description == "argparse.Namespace")
        guard case .dict(let state)? = object.state, case .float(let lr)? = state["lr"] else { Issue.record("no state"); return }
        #expect(lr == 0.5)
        #expect {
            try bytes.withUnsafeBytes { try Unpickler(policy: PicklePolicy(strict: true)).load($0) }
        } throws: { error in
            guard let error = error as? PickleError, case .notAllowlisted(let offset, let callable, _, _, true, _) = error else { return false }
            return callable.description == "argparse.Namespace" && offset == 23
        }
    }

    @Test("code-execution detection covers the usual primitives")
    func denylist() {
        for (module, name) in [("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("builtins", "eval"), ("builtins", "exec"),
                               ("__builtin__", "getattr"), ("builtins", "__import__"), ("nt", "system"), ("torch.hub", "load"),
                               ("importlib", "import_module"), ("runpy", "run_path"), ("os.path", "join"), ("foo", "__reduce__")] {
            #expect(CodeExecutionDenylist.contains(PickleGlobal(module: module, name: name)), "\(module).\(name)")
        }
        for (module, name) in [("argparse", "Namespace"), ("builtins", "set"), ("collections", "OrderedDict"), ("numpy", "dtype"),
                               ("torch.nn.modules.linear", "Linear")] {
            #expect(!CodeExecutionDenylist.contains(PickleGlobal(module: module, name: name)), "\(module).\(name)")
        }
    }
}

@Suite("Pickle machine under hostile nesting")
struct PickleNestingTests {
    static let depth = 300_000

    @Test("300,000 nested lists, dicts and objects neither crash nor recurse on release",
          arguments: ["list", "dict", "object", "list in tuple", "object argument"])
    func deepContainers(_ kind: String) throws {
        var bytes: [UInt8] = [0x80, 2]
        let open: [UInt8]
        let close: [UInt8]
        switch kind {
        case "list": open = [0x5D, 0x28]; close = [0x65]  // EMPTY_LIST MARK … APPENDS
        case "dict": open = [0x7D, 0x28, 0x4B, 1]; close = [0x75]  // EMPTY_DICT MARK key … SETITEMS
        case "list in tuple": open = [0x5D, 0x28]; close = [0x85, 0x65]  // EMPTY_LIST MARK … TUPLE1 APPENDS
        case "object argument":  // argparse.Namespace(next) by NEWOBJ
            open = [0x63] + Array("argparse\nNamespace\n".utf8) + [0x28]
            close = [0x74, 0x81]
        default:  // argparse.Namespace() objects whose state holds the next one
            open = [0x63] + Array("argparse\nNamespace\n".utf8) + [0x29, 0x81, 0x7D, 0x28, 0x4B, 1]
            close = [0x75, 0x62]
        }
        bytes.reserveCapacity(2 + Self.depth * (open.count + close.count) + 2)
        for _ in 0..<Self.depth { bytes += open }
        bytes += [0x5D]  // innermost value
        for _ in 0..<Self.depth { bytes += close }
        bytes.append(0x2E)
        let (value, end) = try bytes.withUnsafeBytes { try Unpickler().load($0) }
        #expect(end == bytes.count)
        #expect(value.kindName != "None")
    }

    @Test("tuples nested past the cap are refused with the offset")
    func deepTuples() {
        var bytes: [UInt8] = [0x80, 2, 0x29]
        bytes += [UInt8](repeating: 0x85, count: Self.depth)  // TUPLE1 × 300k
        bytes.append(0x2E)
        #expect {
            try bytes.withUnsafeBytes { try Unpickler().load($0) }
        } throws: { error in
            "\(error)".contains("deeper than 200 levels")
        }
    }
}
