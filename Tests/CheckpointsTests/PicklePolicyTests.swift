import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

/// Hand-assembled pickle opcodes for the policy and budget tests.
enum Ops {
    static let proto: [UInt8] = [0x80, 4]
    static let stop: [UInt8] = [0x2E]
    static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }
    static func str(_ s: String) -> [UInt8] { [0x8C, UInt8(s.utf8.count)] + Array(s.utf8) }
    static func stackGlobal(_ module: String, _ name: String) -> [UInt8] { str(module) + str(name) + [0x93] }
    /// `callable(*args)` by REDUCE.
    static func reduce(_ callable: [UInt8], _ args: [UInt8]...) -> [UInt8] { callable + [0x28] + args.flatMap { $0 } + [0x74, 0x52] }
    /// `cls.__new__(cls)` by NEWOBJ.
    static func newobj(_ cls: [UInt8]) -> [UInt8] { cls + [0x29, 0x81] }
    static func load(_ body: [UInt8], policy: PicklePolicy = PicklePolicy(), budgets: PickleBudgets? = nil) throws -> PickleValue {
        var unpickler = Unpickler(policy: policy)
        unpickler.budgets = budgets
        return try (proto + body + stop).withUnsafeBytes { try unpickler.load($0).value }
    }
}

/// The call policy: what a pickle may call, as a table.
@Suite("Pickle call policy")
struct PicklePolicyTests {
    enum Outcome: String { case called, opaque, hostile, unknown, strict }

    struct Row: CustomStringConvertible, Sendable {
        let name: String
        let body: [UInt8]
        var strict = false
        var allow: Set<String> = []
        let expected: Outcome
        var description: String { name + (strict ? " --strict" : "") + allow.map { " --allow \($0)" }.joined() }
    }

    static let rows: [Row] = [
        Row(name: "OrderedDict()", body: Ops.reduce(Ops.global("collections", "OrderedDict")), expected: .called),
        Row(name: "set([1])", body: Ops.reduce(Ops.global("builtins", "set"), [0x5D, 0x4B, 1, 0x61]), expected: .called),
        Row(name: "_codecs.encode", body: Ops.reduce(Ops.global("_codecs", "encode"), Ops.str("a"), Ops.str("latin1")), expected: .called),
        Row(name: "OrderedDict() strict", body: Ops.reduce(Ops.global("collections", "OrderedDict")), strict: true, expected: .called),
        Row(name: "argparse.Namespace", body: Ops.newobj(Ops.global("argparse", "Namespace")), expected: .opaque),
        Row(name: "argparse.Namespace", body: Ops.newobj(Ops.global("argparse", "Namespace")), strict: true, expected: .strict),
        Row(name: "numpy scalar", body: Ops.reduce(Ops.global("numpy.core.multiarray", "scalar"), Ops.str("f8")), expected: .opaque),
        Row(name: "numpy 2 scalar", body: Ops.reduce(Ops.global("numpy._core.multiarray", "scalar"), Ops.str("f8")), expected: .opaque),
        Row(name: "numpy.dtype", body: Ops.reduce(Ops.global("numpy", "dtype"), Ops.str("f8")), expected: .opaque),
        Row(name: "torch.nn Linear instance", body: Ops.newobj(Ops.global("torch.nn.modules.linear", "Linear")), expected: .opaque),
        Row(name: "torch.nn Linear called", body: Ops.reduce(Ops.global("torch.nn.modules.linear", "Linear"), [0x4B, 4]), expected: .unknown),
        Row(name: "torch.nn deeper module", body: Ops.newobj(Ops.global("torch.nn.modules.linear.x", "Linear")), expected: .unknown),
        Row(name: "unknown class", body: Ops.newobj(Ops.global("mylib.config", "Config")), expected: .unknown),
        Row(name: "unknown class", body: Ops.newobj(Ops.global("mylib.config", "Config")), allow: ["mylib.config.Config"], expected: .opaque),
        Row(name: "unknown class", body: Ops.newobj(Ops.global("mylib.config", "Config")), strict: true, allow: ["mylib.config.Config"], expected: .strict),
        Row(name: "sibling class instance", body: Ops.newobj(Ops.global("mylib.config", "Other")), allow: ["mylib.config.Config"], expected: .opaque),
        Row(name: "sibling function called", body: Ops.reduce(Ops.global("mylib.config", "load")), allow: ["mylib.config.Config"], expected: .unknown),
        Row(name: "submodule of an allowed class's module", body: Ops.newobj(Ops.global("mylib.config.sub", "X")), allow: ["mylib.config.Config"], expected: .unknown),
        Row(name: "a training script's class", body: Ops.newobj(Ops.global("__main__", "Args")), expected: .unknown),
        Row(name: "a training script's class", body: Ops.newobj(Ops.global("__main__", "Args")), allow: ["__main__.Args"], expected: .opaque),
        Row(name: "a dunder of a training script", body: Ops.reduce(Ops.stackGlobal("__main__", "Args.__reduce__")), expected: .hostile),
        Row(name: "user module named like a stdlib one", body: Ops.newobj(Ops.global("mylib.types", "Config")), expected: .unknown),
        Row(name: "dotted name", body: Ops.reduce(Ops.stackGlobal("collections", "OrderedDict.fromkeys"), [0x5D]), expected: .unknown),
        Row(name: "dotted name", body: Ops.reduce(Ops.stackGlobal("collections", "OrderedDict.fromkeys"), [0x5D]),
            allow: ["collections.OrderedDict.fromkeys"], expected: .opaque),
        Row(name: "os.system", body: Ops.reduce(Ops.global("os", "system"), Ops.str("id")), expected: .hostile),
        Row(name: "os.system", body: Ops.reduce(Ops.global("os", "system"), Ops.str("id")), allow: ["os.system"], expected: .hostile),
        Row(name: "os.system", body: Ops.reduce(Ops.global("os", "system"), Ops.str("id")), strict: true, expected: .hostile),
        Row(name: "STACK_GLOBAL torch os.system", body: Ops.reduce(Ops.stackGlobal("torch", "os.system"), Ops.str("id")), expected: .hostile),
        Row(name: "STACK_GLOBAL torch os.system", body: Ops.reduce(Ops.stackGlobal("torch", "os.system"), Ops.str("id")),
            allow: ["torch.os.system"], expected: .hostile),
        Row(name: "fx _exec_with_source", body: Ops.reduce(Ops.global("torch.fx.graph_module", "_exec_with_source"), Ops.str("x")), expected: .hostile),
        Row(name: "pydoc.pipepager", body: Ops.reduce(Ops.global("pydoc", "pipepager"), Ops.str("x"), Ops.str("id")), expected: .hostile),
        Row(name: "imaplib.IMAP4_stream", body: Ops.reduce(Ops.global("imaplib", "IMAP4_stream"), Ops.str("id")), expected: .hostile),
        Row(name: "doctest.debug_script", body: Ops.reduce(Ops.global("doctest", "debug_script"), Ops.str("x")), expected: .hostile),
        Row(name: "_ctypes.dlopen", body: Ops.reduce(Ops.global("_ctypes", "dlopen"), Ops.str("x")), expected: .hostile),
        Row(name: "numpy.load", body: Ops.reduce(Ops.global("numpy", "load"), Ops.str("x")), expected: .hostile),
        Row(name: "builtins.getattr", body: Ops.reduce(Ops.global("builtins", "getattr"), Ops.str("x")), expected: .hostile),
        Row(name: "dunder attribute", body: Ops.reduce(Ops.stackGlobal("argparse", "Namespace.__init__.__globals__")), expected: .hostile),
        Row(name: "reconstructor of an allowed class", body: Ops.reduce(
            Ops.global("copyreg", "_reconstructor"), Ops.global("argparse", "Namespace"), Ops.global("builtins", "object"), [0x4E]),
            expected: .opaque),
        Row(name: "reconstructor with base int", body: Ops.reduce(
            Ops.global("copyreg", "_reconstructor"), Ops.global("argparse", "Namespace"), Ops.global("builtins", "int"), [0x4B, 1]),
            expected: .unknown),
        Row(name: "reconstructor of os.system", body: Ops.reduce(
            Ops.global("copyreg", "_reconstructor"), Ops.global("os", "system"), Ops.global("builtins", "object"), [0x4E]),
            expected: .hostile),
        Row(name: "BUILD on an unknown class", body: Ops.global("mylib", "Net") + [0x7D, 0x62], expected: .unknown),
        Row(name: "BUILD on os.system", body: Ops.global("os", "system") + Ops.str("id") + [0x62], expected: .hostile),
        Row(name: "BUILD on an allowed instance", body: Ops.newobj(Ops.global("argparse", "Namespace")) + [0x7D, 0x62], expected: .opaque),
        Row(name: "referenced only", body: Ops.global("os", "system"), expected: .called),
    ]

    @Test("callable → called, kept opaque, refused as HOSTILE or unknown", arguments: rows)
    func table(_ row: Row) {
        let outcome: Outcome
        var message = ""
        do {
            let value = try Ops.load(row.body, policy: PicklePolicy(strict: row.strict, allowed: row.allow))
            if case .object = value { outcome = .opaque } else { outcome = .called }
        } catch let error as PickleError {
            message = error.description
            switch error {
            case .codeExecution: outcome = .hostile
            case .notAllowlisted(_, _, _, _, let strict, _): outcome = strict ? .strict : .unknown
            default: Issue.record("unexpected \(error)"); return
            }
        } catch {
            Issue.record("unexpected \(error)")
            return
        }
        #expect(outcome == row.expected, "\(message)")
        // The library's words name no CLI flag (the CLI adds `--allow NAME`); they say the callable can be allowed.
        if outcome == .unknown { #expect(message.contains("unknown callable") && message.contains("allowed by name") && !message.contains("--") && message.contains("at byte")) }
        if outcome == .hostile || outcome == .unknown || outcome == .strict {
            #expect(message.contains("nothing was executed") && !message.contains("kept as"), "\(message)")
        }
    }

    @Test("one refusal names every unknown callable, once, leaving out instances one --allow covers")
    func allUnknown() {
        // [mylib.a.Net(), mylib.a.Block() instance, mylib.a.Block(), timm.layers.Mlp(), mylib.a.load(), mylib.a.load()]
        let body: [UInt8] = [0x5D, 0x28] + Ops.newobj(Ops.global("mylib.a", "Net")) + Ops.newobj(Ops.global("mylib.a", "Block"))
            + Ops.newobj(Ops.global("mylib.a", "Block")) + Ops.newobj(Ops.global("timm.layers", "Mlp"))
            + Ops.reduce(Ops.global("mylib.a", "load")) + Ops.reduce(Ops.global("mylib.a", "load")) + [0x65]
        #expect {
            try Ops.load(body)
        } throws: { error in
            let text = "\(error)"
            let others = text.components(separatedBy: "also calls the unknown ").last ?? ""
            return text.contains("unknown callable mylib.a.Net") && others.contains("timm.layers.Mlp (byte ")
                && others.contains("mylib.a.load (byte ") && !others.contains("Block")
                && others.components(separatedBy: "mylib.a.load").count == 2
        }
    }

    @Test("a refusal names the callable, its arguments and the byte offset")
    func message() {
        #expect {
            try Ops.load(Ops.reduce(Ops.global("mylib.schedules", "cosine"), [0x4B, 10], Ops.str("warm")))
        } throws: { error in
            "\(error)".contains("mylib.schedules.cosine(10, 'warm') by REDUCE at byte 36")
        }
    }
}

/// Each machine budget, and linear work on shared values.
@Suite("Pickle machine budgets")
struct PickleBudgetTests {
    static func small(_ change: (inout PickleBudgets) -> Void) -> PickleBudgets {
        var budgets = PickleBudgets(inputBytes: 0)
        change(&budgets)
        return budgets
    }

    static func refused(_ body: [UInt8], _ budgets: PickleBudgets? = nil, naming budget: String) -> Bool {
        do {
            _ = try Ops.load(body, budgets: budgets)
            Issue.record("accepted")
            return false
        } catch let error as PickleError {
            guard case .overBudget(_, let name, _, _) = error else { Issue.record("\(error)"); return false }
            #expect("\(error)".contains("byte") && "\(error)".contains("limit"))
            return name == budget
        } catch {
            return false
        }
    }

    @Test("budgets grow with the input and have floors")
    func derived() {
        let budgets = PickleBudgets(inputBytes: 1_000_000)
        #expect(budgets.work == 65_000_000)
        #expect(budgets.items == 3_000_000)
        #expect(budgets.memo == 510_000 && budgets.stack == 510_000 && budgets.marks == 501_000)
        #expect(PickleBudgets(inputBytes: 0).work == 1_000_000)
    }

    @Test("stack, memo, marks, items and work each refuse past their limit")
    func each() {
        #expect(Self.refused([UInt8](repeating: 0x4E, count: 100), Self.small { $0.stack = 50 }, naming: "stack"))
        #expect(Self.refused([0x4E] + [UInt8](repeating: 0x94, count: 100), Self.small { $0.memo = 50 }, naming: "memo"))
        #expect(Self.refused([UInt8](repeating: 0x28, count: 100), Self.small { $0.marks = 50 }, naming: "open marks"))
        #expect(Self.refused([0x5D, 0x28] + [UInt8](repeating: 0x4E, count: 60) + [0x65], Self.small { $0.items = 50 }, naming: "container items"))
        #expect(Self.refused([UInt8](repeating: 0x4E, count: 100) + [UInt8](repeating: 0x30, count: 99), Self.small { $0.work = 150 }, naming: "work"))
    }

    @Test("sized by the input: a stack, memo, MARK or copy bomb is refused without an explicit budget")
    func bombs() {
        #expect(Self.refused([UInt8](repeating: 0x4E, count: 40_000), naming: "stack"))
        #expect(Self.refused([0x4E] + [UInt8](repeating: 0x94, count: 40_000), naming: "memo"))
        #expect(Self.refused([UInt8](repeating: 0x28, count: 40_000), naming: "open marks"))
        // list(t) of a 2,000-item tuple 5,000 times.
        var body = Ops.global("builtins", "list") + [0x94, 0x30, 0x28] + [UInt8](repeating: 0x4E, count: 2000) + [0x74, 0x94, 0x30, 0x5D]
        for _ in 0..<5000 { body += [0x68, 0, 0x68, 1, 0x85, 0x52, 0x61] }
        #expect(Self.refused(body, naming: "container items"))
    }

    @Test("shared tuples, frozensets and dict keys cost their size, not their number of paths")
    func dags() throws {
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            // t_k = (t_{k-1}, t_{k-1}), 190 levels
            var tuples: [UInt8] = [0x29]
            for _ in 0..<190 { tuples += [0x32, 0x86] }
            _ = try Ops.load(tuples)
            // f_k = frozenset({f_{k-1}, (f_{k-1},)}), 90 levels
            var sets: [UInt8] = [0x28, 0x91, 0x94]
            for k in 0..<90 { sets += [0x28, 0x68, UInt8(k), 0x68, UInt8(k), 0x85, 0x91, 0x94] }
            _ = try Ops.load(sets)
            // 2,000 dict keys, each (t_150, k)
            var keys: [UInt8] = [0x29]
            for _ in 0..<150 { keys += [0x32, 0x86] }
            keys += [0x94, 0x30, 0x7D]
            for k in 0..<2000 { keys += [0x68, 0, 0x4D, UInt8(k & 0xFF), UInt8(k >> 8), 0x86, 0x4E, 0x73] }
            guard case .dict(let d) = try Ops.load(keys) else { Issue.record("not a dict"); return }
            #expect(d.count == 2000)
        }
        #expect(elapsed < .seconds(2), "\(elapsed)")
    }

    @Test("equal small tuples are still equal dict keys, as in Python")
    func tupleKeys() throws {
        // {(1, 2): None, (1, 2): True}
        let body: [UInt8] = [0x7D, 0x4B, 1, 0x4B, 2, 0x86, 0x4E, 0x73, 0x4B, 1, 0x4B, 2, 0x86, 0x88, 0x73]
        guard case .dict(let d) = try Ops.load(body) else { Issue.record("not a dict"); return }
        #expect(d.count == 1)
    }

    @Test("a 300 KB LONG4 reads in linear time, as hexadecimal past 4,300 digits; shorter ones stay decimal")
    func bigInts() throws {
        let clock = ContinuousClock()
        var body: [UInt8] = [0x8B, 0xE0, 0x93, 0x04, 0x00]  // 300,000 bytes
        body += [UInt8](repeating: 0x5A, count: 300_000)
        var value = PickleValue.none
        let elapsed = try clock.measure { value = try Ops.load(body) }
        #expect(elapsed < .seconds(1), "\(elapsed)")
        guard case .bigInt(let text) = value else { Issue.record("\(value.kindName)"); return }
        #expect(text.hasPrefix("0x5a5a") && text.utf8.count == 600_002)
        #expect(value.repr(limit: 50).utf8.count < 60)
        // 2^64 = LONG1 of 9 bytes
        guard case .bigInt(let small) = try Ops.load([0x8A, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1]) else { Issue.record("not big"); return }
        #expect(small == "18446744073709551616")
    }

    @Test("repr reads a bounded prefix of a huge string")
    func boundedRepr() {
        let value = PickleValue.string(String(repeating: "x", count: 1_000_000))
        #expect(value.repr(limit: 100).count < 110)
    }

    @Test("deciding on a name of 20,000 dotted components is linear and still finds the primitive at its end")
    func longDottedName() {
        let parts = (0..<20_000).map { "m\($0)" }
        let start = ContinuousClock.now
        #expect(CodeExecutionDenylist.contains(PickleGlobal(module: "torch", name: (parts + ["os", "system"]).joined(separator: "."))))
        #expect(!CodeExecutionDenylist.contains(PickleGlobal(module: parts.joined(separator: "."), name: "Config")))
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test("a long name called again and again is charged to the work budget")
    func repeatedCallsOfALongName() throws {
        // GLOBAL 'mylib' + a 4,000-byte name, memoised, then 20,000 × (BINGET 0, EMPTY_TUPLE, REDUCE, POP).
        var bytes: [UInt8] = [0x80, 0x02, 0x63] + Array("mylib\n".utf8) + Array(String(repeating: "a", count: 4000).utf8) + [0x0A]
        bytes += [0x71, 0x00, 0x30]
        for _ in 0..<20_000 { bytes += [0x68, 0x00, 0x29, 0x52, 0x30] }
        bytes += [0x4E, 0x2E]
        #expect {
            try bytes.withUnsafeBytes { try Unpickler().load($0) }
        } throws: { error in
            "\(error)".contains("work")
        }
    }
}
