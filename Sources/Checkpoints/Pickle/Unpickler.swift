import Tensors

/// Why a pickle stream was refused. `offset` is the byte offset of the opcode in the stream.
package enum PickleError: Error, CustomStringConvertible, Sendable {
    case truncated(offset: Int, opcode: String)
    case unknownOpcode(offset: Int, byte: UInt8)
    case unsupportedOpcode(offset: Int, opcode: String, reason: String)
    case stackUnderflow(offset: Int, opcode: String)
    case missingMark(offset: Int, opcode: String)
    case badMemo(offset: Int, index: Int)
    case typeError(offset: Int, opcode: String, expected: String, found: String)
    case malformed(offset: Int, reason: String)
    /// A call of a code-execution primitive (`os.system`, `builtins.eval`, `subprocess.*`, …). Never executed.
    /// `how` says how it was reached (`by REDUCE`, `by BUILD (its __setstate__)`, `inside … by REDUCE`).
    case codeExecution(offset: Int, callable: PickleGlobal, arguments: String, how: String)
    /// A call of a callable outside the policy (`PicklePolicy`): unknown, or under `strict` outside torch's
    /// weights-only set. Never executed. `alsoUnknown` names the other unknown callables the pickle calls, with
    /// their offsets (those that allowing `callable` would not cover), so that a user learns them all at once.
    case notAllowlisted(
        offset: Int, callable: PickleGlobal, arguments: String, how: String, strict: Bool,
        alsoUnknown: [(callable: PickleGlobal, offset: Int)])
    case tooDeep(offset: Int, limit: Int)
    /// The pickle needs more of a machine budget (`PickleBudgets`) than its size allows.
    case overBudget(offset: Int, budget: String, limit: Int, inputBytes: Int)
    case noResult

    package var offset: Int? {
        switch self {
        case .truncated(let o, _), .unknownOpcode(let o, _), .unsupportedOpcode(let o, _, _), .stackUnderflow(let o, _),
            .missingMark(let o, _), .badMemo(let o, _), .typeError(let o, _, _, _), .malformed(let o, _),
            .codeExecution(let o, _, _, _), .notAllowlisted(let o, _, _, _, _, _), .tooDeep(let o, _), .overBudget(let o, _, _, _):
            return o
        case .noResult: return nil
        }
    }

    package var isHostile: Bool { if case .codeExecution = self { return true }; return false }

    package var description: String {
        switch self {
        case .truncated(let o, let op): return "pickle ends inside \(op) at byte \(o)"
        case .unknownOpcode(let o, let b):
            return "unknown pickle opcode 0x\(String(b, radix: 16)) at byte \(o)"
        case .unsupportedOpcode(let o, let op, let why): return "pickle opcode \(op) at byte \(o) is not supported: \(why)"
        case .stackUnderflow(let o, let op): return "pickle opcode \(op) at byte \(o) finds too few values on the stack"
        case .missingMark(let o, let op): return "pickle opcode \(op) at byte \(o) has no MARK to pop to"
        case .badMemo(let o, let i): return "pickle reads memo slot \(i) at byte \(o), which was never written"
        case .typeError(let o, let op, let expected, let found):
            return "pickle opcode \(op) at byte \(o) expects \(expected), found \(found)"
        case .malformed(let o, let why): return "malformed pickle at byte \(o): \(why)"
        case .codeExecution(let o, let callable, let args, let how):
            return "the pickle calls \(callable)(\(args)) \(how) at byte \(o): that is code execution, not data; "
                + "refused (nothing was executed)"
        case .notAllowlisted(let o, let callable, let args, let how, true, _):
            return "the pickle calls \(callable)(\(args)) \(how) at byte \(o), which is not on torch's weights-only "
                + "allowlist (the strict policy); refused (nothing was executed)"
        case .notAllowlisted(let o, let callable, let args, let how, false, let others):
            return "the pickle calls \(callable)(\(args)) \(how) at byte \(o): unknown callable \(callable), refused "
                + "(nothing was executed; allowed by name, it becomes an opaque value)"
                + (others.isEmpty ? "" : "; it also calls the unknown "
                    + others.map { "\($0.callable) (byte \($0.offset))" }.joined(separator: ", ") + ", each to be allowed as well")
        case .tooDeep(let o, let limit): return "pickle nests deeper than \(limit) levels at byte \(o)"
        case .overBudget(let o, let budget, let limit, let bytes):
            return "pickle exceeds its \(budget) budget at byte \(o): the limit is \(limit) for a \(bytes)-byte pickle "
                + "(budgets grow with the pickle's real size; see PickleBudgets)"
        case .noResult: return "pickle has no STOP opcode"
        }
    }
}

/// What a file format adds to plain pickles: resolving persistent ids and its rebuild functions.
package protocol UnpicklerHost: AnyObject {
    /// Resolves a persistent id (torch: `('storage', StorageClass, key, location, numel)`).
    func persistentLoad(_ pid: PickleValue, offset: Int) throws -> PickleValue
    /// Calls one of the host's rebuild functions, or returns nil when `callable` is not one of them. A rebuild
    /// function that calls a function it receives as an argument (torch's `_rebuild_from_type_v2(func, …)`) calls
    /// it through `nested`, which applies the unpickler's whole policy (`PicklePolicy`).
    func call(
        _ callable: PickleGlobal, arguments: [PickleValue], offset: Int,
        nested: (PickleGlobal, [PickleValue]) throws -> PickleValue
    ) throws -> PickleValue?
}

/// Limits on what one pickle may make the machine do, each proportional to the pickle's real size with a floor,
/// so that a file under 10 MB never needs 1 GiB or 10 s. Exceeding one is an error naming it, its limit and the
/// byte offset.
package struct PickleBudgets: Sendable, Equatable {
    /// Work units: one per opcode, plus one per value moved off the stack, copied or hashed (and per 64 bytes of
    /// text hashed). `64 × bytes + 1,000,000`.
    package var work: Int
    /// Container items: slots of every list, tuple, dict, set and object built (copies by `list(…)`, `tuple(…)`,
    /// `torch.Size(…)` included), and one per 8 bytes built by `bytes(…)` or `_codecs.encode`. `2 × bytes + 1,000,000`.
    package var items: Int
    /// Memo entries: `bytes / 2 + 10,000`.
    package var memo: Int
    /// Values on the stack at once: `bytes / 2 + 10,000`.
    package var stack: Int
    /// Open MARKs at once: `bytes / 2 + 1,000`.
    package var marks: Int

    /// The budgets of a pickle of `bytes` bytes.
    package init(inputBytes bytes: Int) {
        let n = max(0, min(bytes, Int.max / 128))
        work = 64 * n + 1_000_000
        items = 2 * n + 1_000_000
        memo = n / 2 + 10_000
        stack = n / 2 + 10_000
        marks = n / 2 + 1_000
    }
}

/// A pickle interpreter that builds data and executes nothing.
///
/// Supports every opcode of protocols 0–5 that builds data. GLOBAL pushes a name; REDUCE, NEWOBJ, NEWOBJ_EX, INST
/// and OBJ of a name, and BUILD on an instance, go through `policy` (see `PicklePolicy`): the host's rebuild
/// functions and the generic data builtins build values, allowed data classes become `PickleObject`s (opaque, with
/// their arguments and state), and anything else is refused — as code execution when it is a known primitive.
/// Work and memory are bounded by `PickleBudgets` of the pickle's size; every walk over the value graph is linear
/// (shared values are visited once).
package struct Unpickler {
    /// What the pickle may call (see `PicklePolicy`).
    package var policy: PicklePolicy
    /// The file format's persistent ids and rebuild functions (torch), if any.
    package var host: UnpicklerHost?
    /// Budgets to use instead of those derived from the pickle's size (tests).
    package var budgets: PickleBudgets?

    package init(policy: PicklePolicy = PicklePolicy(), host: UnpicklerHost? = nil) {
        self.policy = policy
        self.host = host
    }

    /// Interprets one pickle starting at `start` in `data`; returns the value and the offset just past STOP.
    package func load(_ data: UnsafeRawBufferPointer, from start: Int = 0) throws -> (value: PickleValue, end: Int) {
        var machine = Machine(data: data, position: start, config: self)
        return try machine.run()
    }

    fileprivate struct Machine {
        let data: UnsafeRawBufferPointer
        var position: Int
        let config: Unpickler
        let budgets: PickleBudgets
        let inputBytes: Int
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]
        var opcodeOffset = 0
        var opcodeName = ""
        var work = 0
        var items = 0
        /// Tuple/frozenset nesting by element buffer, computed once per tuple; holds the elements so that a
        /// buffer address is never reused while the machine runs.
        var nestingCache: [PickleIdentity: (nesting: Int, items: [PickleValue])] = [:]
        /// Callables whose call is being interpreted (a rebuild function calling its argument), for messages.
        var callers: [PickleGlobal] = []
        /// The first unknown callable (refused at STOP), the others' names and offsets, what was seen.
        var firstUnknown: PickleError?
        var otherUnknown: [(callable: PickleGlobal, offset: Int)] = []
        var unknownNames = Set<String>()
        var unknownModules = Set<String>()

        init(data: UnsafeRawBufferPointer, position: Int, config: Unpickler) {
            self.data = data
            self.position = position
            self.config = config
            inputBytes = max(0, data.count - position)
            budgets = config.budgets ?? PickleBudgets(inputBytes: inputBytes)
        }

        // MARK: budgets

        func overBudget(_ name: String, _ limit: Int) -> PickleError {
            .overBudget(offset: opcodeOffset, budget: name, limit: limit, inputBytes: inputBytes)
        }

        mutating func spend(_ units: Int) throws {
            work += units
            guard work <= budgets.work else { throw overBudget("work", budgets.work) }
        }

        /// Charges `count` container items (slots built or copied).
        mutating func charge(items count: Int) throws {
            items += count
            guard items <= budgets.items else { throw overBudget("container items", budgets.items) }
            try spend(count)
        }

        // MARK: reading

        mutating func take(_ count: Int) throws -> UnsafeRawBufferPointer {
            guard count >= 0, count <= data.count - position else {
                throw PickleError.truncated(offset: opcodeOffset, opcode: opcodeName)
            }
            defer { position += count }
            return UnsafeRawBufferPointer(rebasing: data[position..<(position + count)])
        }

        mutating func byte() throws -> UInt8 { try take(1)[0] }

        mutating func uint(_ size: Int) throws -> UInt64 {
            let raw = try take(size)
            var value: UInt64 = 0
            for i in (0..<size).reversed() { value = value << 8 | UInt64(raw[i]) }
            return value
        }

        mutating func length(_ size: Int) throws -> Int {
            let value = try uint(size)
            guard value <= UInt64(data.count - position) else {
                throw PickleError.truncated(offset: opcodeOffset, opcode: opcodeName)
            }
            return Int(value)
        }

        /// A protocol-0 text argument up to (not including) the next newline.
        mutating func line() throws -> String {
            var end = position
            while end < data.count && data[end] != 0x0A { end += 1 }
            guard end < data.count else { throw PickleError.truncated(offset: opcodeOffset, opcode: opcodeName) }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: data[position..<end]), as: UTF8.self)
            position = end + 1
            return text
        }

        /// The raw bytes of a protocol-0 argument up to the next newline.
        mutating func lineBytes() throws -> [UInt8] {
            var end = position
            while end < data.count && data[end] != 0x0A { end += 1 }
            guard end < data.count else { throw PickleError.truncated(offset: opcodeOffset, opcode: opcodeName) }
            defer { position = end + 1 }
            return [UInt8](UnsafeRawBufferPointer(rebasing: data[position..<end]))
        }

        mutating func utf8(_ count: Int) throws -> String {
            let raw = try take(count)
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw PickleError.malformed(offset: opcodeOffset, reason: "\(opcodeName) string is not valid UTF-8")
            }
            return text
        }

        // MARK: stack

        mutating func push(_ value: PickleValue) throws {
            guard stack.count < budgets.stack else { throw overBudget("stack", budgets.stack) }
            switch value {
            case .tuple, .frozenset:
                guard nesting(value) < Machine.maxValueNesting else {
                    throw PickleError.tooDeep(offset: opcodeOffset, limit: Machine.maxValueNesting)
                }
            default: break
            }
            stack.append(value)
        }

        mutating func pop() throws -> PickleValue {
            guard let value = stack.popLast() else { throw PickleError.stackUnderflow(offset: opcodeOffset, opcode: opcodeName) }
            if let mark = marks.last, stack.count < mark {
                throw PickleError.stackUnderflow(offset: opcodeOffset, opcode: opcodeName)
            }
            return value
        }

        mutating func top() throws -> PickleValue {
            guard let value = stack.last, stack.count > (marks.last ?? 0) || marks.isEmpty else {
                throw PickleError.stackUnderflow(offset: opcodeOffset, opcode: opcodeName)
            }
            return value
        }

        mutating func popMark() throws -> [PickleValue] {
            guard let mark = marks.popLast() else { throw PickleError.missingMark(offset: opcodeOffset, opcode: opcodeName) }
            let items = Array(stack[mark...])
            stack.removeSubrange(mark...)
            try spend(items.count)
            return items
        }

        mutating func memoize(_ index: Int) throws {
            guard let value = stack.last else { throw PickleError.stackUnderflow(offset: opcodeOffset, opcode: opcodeName) }
            guard memo.count < budgets.memo || memo[index] != nil else { throw overBudget("memo", budgets.memo) }
            memo[index] = value
        }

        mutating func recall(_ index: Int) throws {
            guard let value = memo[index] else { throw PickleError.badMemo(offset: opcodeOffset, index: index) }
            try push(value)
        }

        func typeError(_ expected: String, _ found: PickleValue) -> PickleError {
            .typeError(offset: opcodeOffset, opcode: opcodeName, expected: expected, found: found.kindName)
        }

        // MARK: run

        mutating func run() throws -> (value: PickleValue, end: Int) {
            while position < data.count {
                opcodeOffset = position
                let op = data[position]
                position += 1
                opcodeName = Opcode.name(op)
                try spend(1)
                switch op {
                case 0x80:  // PROTO
                    let version = try byte()
                    guard version <= 5 else {
                        throw PickleError.unsupportedOpcode(offset: opcodeOffset, opcode: "PROTO", reason: "protocol \(version) is newer than 5")
                    }
                case 0x95: _ = try uint(8)  // FRAME: framing is transparent
                case 0x2E:  // STOP
                    let value = try pop()
                    if case .notAllowlisted(let o, let callable, let args, let how, _, _)? = firstUnknown {
                        throw PickleError.notAllowlisted(
                            offset: o, callable: callable, arguments: args, how: how, strict: false, alsoUnknown: otherUnknown)
                    }
                    return (value, position)
                case 0x28:  // MARK
                    guard marks.count < budgets.marks else { throw overBudget("open marks", budgets.marks) }
                    marks.append(stack.count)
                case 0x30: _ = try pop()  // POP
                case 0x31: _ = try popMark()  // POP_MARK
                case 0x32: try push(try top())  // DUP

                // numbers
                case 0x4E: try push(.none)
                case 0x88: try push(.bool(true))
                case 0x89: try push(.bool(false))
                case 0x4A: try push(.int(Int(Int32(bitPattern: UInt32(try uint(4))))))  // BININT
                case 0x4B: try push(.int(Int(try byte())))  // BININT1
                case 0x4D: try push(.int(Int(try uint(2))))  // BININT2
                case 0x8A: try push(Machine.longValue(try take(try length(1))))  // LONG1
                case 0x8B:  // LONG4
                    let n = try uint(4)
                    guard n <= UInt64(data.count - position) else { throw PickleError.truncated(offset: opcodeOffset, opcode: opcodeName) }
                    try push(Machine.longValue(try take(Int(n))))
                case 0x49:  // INT (text): "01"/"00" are True/False in protocol 0
                    let text = try line()
                    if text == "01" { try push(.bool(true)) } else if text == "00" { try push(.bool(false)) } else { try push(try parseIntText(text)) }
                case 0x4C:  // LONG (text)
                    var text = try line()
                    if text.hasSuffix("L") { text.removeLast() }
                    try push(try parseIntText(text))
                case 0x46:  // FLOAT (text)
                    let text = try line()
                    guard let d = Double(text.trimmingWhitespace()) else {
                        throw PickleError.malformed(offset: opcodeOffset, reason: "FLOAT text '\(text)' is not a number")
                    }
                    try push(.float(d))
                case 0x47: try push(.float(Double(bitPattern: try bigEndianUInt64())))  // BINFLOAT

                // strings and bytes
                case 0x58: try push(.string(try utf8(try length(4))))  // BINUNICODE
                case 0x8C: try push(.string(try utf8(try length(1))))  // SHORT_BINUNICODE
                case 0x8D: try push(.string(try utf8(try length(8))))  // BINUNICODE8
                case 0x56: try push(.string(Machine.rawUnicodeEscape(try lineBytes())))  // UNICODE (text)
                case 0x53: try push(.string(try pythonStringLiteral(try line())))  // STRING (text, py2 str)
                case 0x54:  // BINSTRING (py2 str, signed 4-byte length)
                    let n = Int32(bitPattern: UInt32(try uint(4)))
                    guard n >= 0 else { throw PickleError.malformed(offset: opcodeOffset, reason: "negative BINSTRING length") }
                    try push(.string(Machine.latin1(try take(Int(n)))))
                case 0x55: try push(.string(Machine.latin1(try take(try length(1)))))  // SHORT_BINSTRING
                case 0x42: try push(.bytes([UInt8](try take(try length(4)))))  // BINBYTES
                case 0x43: try push(.bytes([UInt8](try take(try length(1)))))  // SHORT_BINBYTES
                case 0x8E: try push(.bytes([UInt8](try take(try length(8)))))  // BINBYTES8
                case 0x96: try push(.bytearray([UInt8](try take(try length(8)))))  // BYTEARRAY8
                case 0x97:
                    throw PickleError.unsupportedOpcode(
                        offset: opcodeOffset, opcode: "NEXT_BUFFER", reason: "out-of-band buffers are not part of a checkpoint file")
                case 0x98: break  // READONLY_BUFFER: no effect on the value

                // containers
                case 0x5D: try push(.list(PickleList()))  // EMPTY_LIST
                case 0x29: try push(.tuple([]))  // EMPTY_TUPLE
                case 0x7D: try push(.dict(PickleDict()))  // EMPTY_DICT
                case 0x8F: try push(.set(PickleSet()))  // EMPTY_SET
                case 0x6C: try push(.list(PickleList(try collect(try popMark()))))  // LIST
                case 0x74: try push(.tuple(try collect(try popMark())))  // TUPLE
                case 0x85: let a = try pop(); try push(.tuple(try collect([a])))  // TUPLE1
                case 0x86: let b = try pop(); let a = try pop(); try push(.tuple(try collect([a, b])))  // TUPLE2
                case 0x87: let c = try pop(); let b = try pop(); let a = try pop(); try push(.tuple(try collect([a, b, c])))  // TUPLE3
                case 0x91: try push(.frozenset(try unique(try popMark())))  // FROZENSET
                case 0x64:  // DICT
                    let items = try collect(try popMark())
                    guard items.count % 2 == 0 else { throw PickleError.malformed(offset: opcodeOffset, reason: "DICT with an odd number of items") }
                    let dict = PickleDict()
                    for i in stride(from: 0, to: items.count, by: 2) { try spend(dict.set(items[i], items[i + 1])) }
                    try push(.dict(dict))
                case 0x61:  // APPEND
                    let value = try pop()
                    try append(try collect([value]), to: try top())
                case 0x65:  // APPENDS
                    let items = try collect(try popMark())
                    try append(items, to: try top())
                case 0x73:  // SETITEM
                    let value = try pop(), key = try pop()
                    try setItems(try collect([key, value]), in: try top())
                case 0x75:  // SETITEMS
                    let items = try collect(try popMark())
                    guard items.count % 2 == 0 else { throw PickleError.malformed(offset: opcodeOffset, reason: "SETITEMS with an odd number of items") }
                    try setItems(items, in: try top())
                case 0x90:  // ADDITEMS
                    let items = try collect(try popMark())
                    guard case .set(let set) = try top() else { throw typeError("a set", try top()) }
                    for item in items { try spend(set.insert(item)) }

                // memo
                case 0x70: try memoize(try parseIndex(try line()))  // PUT
                case 0x71: try memoize(Int(try byte()))  // BINPUT
                case 0x72: try memoize(Int(try uint(4)))  // LONG_BINPUT
                case 0x94: try memoize(memo.count)  // MEMOIZE
                case 0x67: try recall(try parseIndex(try line()))  // GET
                case 0x68: try recall(Int(try byte()))  // BINGET
                case 0x6A: try recall(Int(try uint(4)))  // LONG_BINGET

                // names and calls
                case 0x63:  // GLOBAL
                    let module = try line(), name = try line()
                    try push(.global(PickleGlobal(module: module, name: name)))
                case 0x93:  // STACK_GLOBAL
                    let nameValue = try pop(), moduleValue = try pop()
                    guard case .string(let name) = nameValue else { throw typeError("a str name", nameValue) }
                    guard case .string(let module) = moduleValue else { throw typeError("a str module", moduleValue) }
                    try push(.global(PickleGlobal(module: module, name: name)))
                case 0x52:  // REDUCE
                    let args = try pop(), callable = try pop()
                    guard case .tuple(let arguments) = args else { throw typeError("an argument tuple", args) }
                    try push(try call(callable, arguments, .call))
                case 0x81:  // NEWOBJ
                    let args = try pop(), cls = try pop()
                    guard case .tuple(let arguments) = args else { throw typeError("an argument tuple", args) }
                    try push(try call(cls, arguments, .instance))
                case 0x92:  // NEWOBJ_EX
                    let kwargs = try pop(), args = try pop(), cls = try pop()
                    guard case .tuple(var arguments) = args else { throw typeError("an argument tuple", args) }
                    if case .dict(let d) = kwargs, d.count > 0 {
                        try charge(items: arguments.count + 1)
                        arguments.append(kwargs)
                    }
                    try push(try call(cls, arguments, .instance))
                case 0x69:  // INST
                    let module = try line(), name = try line()
                    let arguments = try collect(try popMark())
                    try push(try call(.global(PickleGlobal(module: module, name: name)), arguments, .call))
                case 0x6F:  // OBJ
                    let items = try collect(try popMark())
                    guard let cls = items.first else { throw PickleError.stackUnderflow(offset: opcodeOffset, opcode: "OBJ") }
                    try push(try call(cls, Array(items.dropFirst()), .call))
                case 0x62:  // BUILD
                    let state = try pop()
                    try build(try top(), state: state)
                case 0x51:  // BINPERSID
                    let pid = try pop()
                    try push(try persistentLoad(pid))
                case 0x50:  // PERSID
                    try push(try persistentLoad(.string(try line())))
                case 0x82, 0x83, 0x84:
                    throw PickleError.unsupportedOpcode(
                        offset: opcodeOffset, opcode: opcodeName, reason: "the copyreg extension registry names no data type")
                default:
                    throw PickleError.unknownOpcode(offset: opcodeOffset, byte: op)
                }
            }
            throw PickleError.truncated(offset: position, opcode: "STOP")
        }

        // MARK: semantics

        /// Tuples and frozensets are values, released recursively by Swift: their nesting is capped.
        static let maxValueNesting = 200

        /// `items` as the elements of a new container, charged to the container-items budget.
        mutating func collect(_ items: [PickleValue]) throws -> [PickleValue] {
            try charge(items: items.count)
            return items
        }

        /// Nesting of tuples and frozensets inside each other (containers with identity count as leaves: their
        /// release is iterative). Each tuple is measured once and cached by its element buffer, so a DAG of shared
        /// tuples costs its size, not its number of paths; every tuple pushed was measured below the cap.
        mutating func nesting(_ value: PickleValue) -> Int {
            switch value {
            case .tuple(let items), .frozenset(let items):
                guard let id = value.identity else { return 1 }
                if let known = nestingCache[id] { return known.nesting }
                var deepest = 0
                for item in items { deepest = max(deepest, nesting(item)) }
                nestingCache[id] = (deepest + 1, items)
                return deepest + 1
            default: return 0
            }
        }

        mutating func append(_ items: [PickleValue], to target: PickleValue) throws {
            switch target {
            case .list(let list): list.items.append(contentsOf: items)
            case .object(let object): object.listItems.append(contentsOf: items)
            default: throw typeError("a list", target)
            }
        }

        mutating func setItems(_ items: [PickleValue], in target: PickleValue) throws {
            switch target {
            case .dict(let dict):
                for i in stride(from: 0, to: items.count, by: 2) { dict.set(items[i], items[i + 1]) }
            case .object(let object):
                for i in stride(from: 0, to: items.count, by: 2) { object.dictItems.append((items[i], items[i + 1])) }
            default: throw typeError("a dict", target)
            }
        }

        /// BUILD calls the instance's `__setstate__`: allowed on instances the policy let the pickle create; on a
        /// bare name (never instantiated) it is a call of that name's code, refused like any other.
        mutating func build(_ target: PickleValue, state: PickleValue) throws {
            switch target {
            case .object(let object): object.state = state
            case .dict, .list, .set, .tensor:
                break  // attribute state of a container subclass or a tensor carries no data we read
            case .global(let global):
                if CodeExecutionDenylist.contains(global) || !config.policy.keepsOpaque(global, .call) {
                    try refuse(global, [state], how: "by BUILD (its __setstate__)")
                }
                throw typeError("an instance to BUILD", target)
            default: throw typeError("an object to BUILD", target)
            }
        }

        mutating func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
            guard let host = config.host else {
                throw PickleError.unsupportedOpcode(
                    offset: opcodeOffset, opcode: opcodeName, reason: "persistent id \(pid.repr(limit: 80)) outside a PyTorch file")
            }
            return try host.persistentLoad(pid, offset: opcodeOffset)
        }

        /// REDUCE / NEWOBJ / NEWOBJ_EX / INST / OBJ: build the value an allowed callable would (see `PicklePolicy`),
        /// refuse every other callable. Nothing is executed.
        mutating func call(_ callable: PickleValue, _ arguments: [PickleValue], _ kind: PicklePolicy.CallKind) throws -> PickleValue {
            guard case .global(let global) = callable else {
                throw PickleError.malformed(
                    offset: opcodeOffset, reason: "\(opcodeName) calls a \(callable.kindName), not a named class or function")
            }
            // Deciding reads the whole name: a long name called again and again is work the budget must see.
            try spend(global.module.utf8.count + global.name.utf8.count)
            if let host = config.host {
                callers.append(global)
                defer { callers.removeLast() }
                let result = try host.call(global, arguments: arguments, offset: opcodeOffset) { inner, innerArguments in
                    try call(.global(inner), innerArguments, .call)
                }
                if let result {
                    try charge(items: Machine.shallowCount(result))
                    return result
                }
            }
            let how = callers.isEmpty ? "by \(opcodeName)" : "inside \(callers.map(\.description).joined(separator: " inside ")) (\(opcodeName))"
            if CodeExecutionDenylist.contains(global) { try refuse(global, arguments, how: how) }
            if let result = try builtin(global, arguments) { return result }
            if !config.policy.keepsOpaque(global, kind) {
                if config.policy.strict { try refuse(global, arguments, how: how) }
                noteUnknown(global, arguments, how: how, kind)
            }
            return .object(PickleObject(type: global, arguments: arguments))
        }

        /// Throws the refusal of calling `global`: HOSTILE for a code-execution primitive, else not allowed.
        func refuse(_ global: PickleGlobal, _ arguments: [PickleValue], how: String) throws -> Never {
            let shown = arguments.map { $0.repr(limit: 120) }.joined(separator: ", ")
            if CodeExecutionDenylist.contains(global) {
                throw PickleError.codeExecution(offset: opcodeOffset, callable: global, arguments: shown, how: how)
            }
            throw PickleError.notAllowlisted(
                offset: opcodeOffset, callable: global, arguments: shown, how: how, strict: config.policy.strict, alsoUnknown: [])
        }

        /// Records an unknown callable, refused when the pickle ends (so that the refusal names them all); the
        /// machine goes on with an opaque stand-in, which nothing executes. Instances of a class whose module already
        /// has a named class are covered by allowing that name and not listed again.
        mutating func noteUnknown(_ global: PickleGlobal, _ arguments: [PickleValue], how: String, _ kind: PicklePolicy.CallKind) {
            if kind == .instance && unknownModules.contains(global.module) { return }
            guard unknownNames.insert(global.description).inserted else { return }
            if kind == .instance { unknownModules.insert(global.module) }
            guard firstUnknown != nil else {
                let shown = arguments.map { $0.repr(limit: 120) }.joined(separator: ", ")
                firstUnknown = .notAllowlisted(
                    offset: opcodeOffset, callable: global, arguments: shown, how: how, strict: false, alsoUnknown: [])
                return
            }
            if otherUnknown.count < 8 { otherUnknown.append((global, opcodeOffset)) }
        }

        /// Items a host's result holds at its top level (a tuple copied by `torch.Size`, a tensor's shape).
        static func shallowCount(_ value: PickleValue) -> Int {
            switch value {
            case .tuple(let items), .frozenset(let items): return items.count
            case .list(let l): return l.items.count
            case .tensor(let t): return t.shape.count + t.strides.count
            default: return 1
            }
        }

        /// The generic (non-torch) data builtins: the values they build, or nil for any other callable.
        mutating func builtin(_ global: PickleGlobal, _ args: [PickleValue]) throws -> PickleValue? {
            switch (global.module, global.name) {
            case ("collections", "OrderedDict"), ("builtins", "dict"):
                let dict = PickleDict()
                if let first = args.first {
                    let pairs: [PickleValue]
                    switch first {
                    case .list(let l): pairs = l.items
                    case .tuple(let t): pairs = t
                    case .dict(let d): return .dict(d)
                    default: throw typeError("a sequence of pairs", first)
                    }
                    try charge(items: 2 * pairs.count)
                    for pair in pairs {
                        guard case .tuple(let kv) = pair, kv.count == 2 else { throw typeError("a (key, value) pair", pair) }
                        try spend(dict.set(kv[0], kv[1]))
                    }
                }
                return .dict(dict)
            case ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "list"), ("builtins", "tuple"):
                var items: [PickleValue] = []
                if let first = args.first {
                    switch first {
                    case .list(let l): items = l.items
                    case .tuple(let t), .frozenset(let t): items = t
                    case .set(let s): items = s.items
                    default: throw typeError("an iterable", first)
                    }
                }
                try charge(items: items.count)
                switch global.name {
                case "set":
                    let set = PickleSet()
                    for item in items { try spend(set.insert(item)) }
                    return .set(set)
                case "frozenset": return .frozenset(try unique(items))
                case "list": return .list(PickleList(items))
                default: return .tuple(items)
                }
            case ("builtins", "bytearray"), ("builtins", "bytes"):
                var bytes: [UInt8] = []
                switch args.first {
                case nil: break
                case .bytes(let b)?: bytes = b
                case .string(let s)?: bytes = try Machine.encodeLatin1(s, offset: opcodeOffset)
                case .list(let l)?:
                    try charge(items: l.items.count)
                    bytes = try l.items.map {
                        guard case .int(let i) = $0, (0...255).contains(i) else { throw typeError("byte values", $0) }
                        return UInt8(i)
                    }
                case let other?: throw typeError("bytes", other)
                }
                try charge(items: bytes.count / 8 + 1)
                return global.name == "bytes" ? .bytes(bytes) : .bytearray(bytes)
            case ("_codecs", "encode"):
                guard case .string(let s)? = args.first else { throw typeError("a str to encode", args.first ?? .none) }
                try charge(items: s.utf8.count / 8 + 1)
                let encoding: String
                if args.count > 1, case .string(let e) = args[1] { encoding = e.lowercased() } else { encoding = "utf-8" }
                switch encoding {
                case "latin1", "latin-1", "iso-8859-1", "iso8859-1": return .bytes(try Machine.encodeLatin1(s, offset: opcodeOffset))
                case "utf-8", "utf8": return .bytes(Array(s.utf8))
                default: throw PickleError.malformed(offset: opcodeOffset, reason: "_codecs.encode with encoding '\(encoding)'")
                }
            case ("copyreg", "_reconstructor"):
                // copyreg._reconstructor(cls, object, None) is `object.__new__(cls)` (protocol 0/1 instances); with
                // another base it would call `base.__new__` and `base.__init__` with the state.
                guard args.count == 3, case .global(let base) = args[1], base == PickleGlobal(module: "builtins", name: "object")
                else {
                    try refuse(global, args, how: "by \(opcodeName) (only an instance of an allowed class with base builtins.object is data)")
                }
                return try call(args[0], [], .instance)
            default:
                return nil
            }
        }

        // MARK: literals

        static func longValue(_ raw: UnsafeRawBufferPointer) -> PickleValue {
            if raw.isEmpty { return .int(0) }
            if raw.count <= 8 {
                var value: UInt64 = 0
                for i in (0..<raw.count).reversed() { value = value << 8 | UInt64(raw[i]) }
                if raw.count < 8 && raw[raw.count - 1] & 0x80 != 0 {
                    value |= ~UInt64(0) << UInt64(raw.count * 8)  // sign-extend
                }
                return .int(Int(Int64(bitPattern: value)))
            }
            return .bigInt(integerText(twosComplementLittleEndian: [UInt8](raw)))
        }

        /// Integers of up to this many bytes (at most 4,300 decimal digits, where CPython stops converting int to
        /// str) are rendered in decimal, quadratic but bounded; longer ones in hexadecimal, in linear time.
        static let maxDecimalBytes = 1785

        /// Text of a little-endian two's-complement integer of any size: decimal, or `0x…` past `maxDecimalBytes`.
        static func integerText(twosComplementLittleEndian bytes: [UInt8]) -> String {
            var magnitude = bytes
            let negative = (bytes.last ?? 0) & 0x80 != 0
            if negative {  // magnitude = -value = ~value + 1
                var carry: UInt16 = 1
                for i in 0..<magnitude.count {
                    let v = UInt16(~magnitude[i]) + carry
                    magnitude[i] = UInt8(v & 0xFF)
                    carry = v >> 8
                }
            }
            while magnitude.count > 1, magnitude.last == 0 { magnitude.removeLast() }
            if magnitude.count > maxDecimalBytes {
                let hex = Array("0123456789abcdef".utf8)
                var text: [UInt8] = Array((negative ? "-0x" : "0x").utf8)
                text.reserveCapacity(text.count + 2 * magnitude.count)
                for (i, byte) in magnitude.reversed().enumerated() {
                    if i > 0 || byte >= 16 { text.append(hex[Int(byte >> 4)]) }
                    text.append(hex[Int(byte & 15)])
                }
                return String(decoding: text, as: UTF8.self)
            }
            var digits: [UInt8] = []
            var words = magnitude
            while words.contains(where: { $0 != 0 }) {
                var remainder: UInt32 = 0
                for i in (0..<words.count).reversed() {
                    let current = remainder << 8 | UInt32(words[i])
                    words[i] = UInt8(current / 10)
                    remainder = current % 10
                }
                digits.append(UInt8(remainder) + UInt8(ascii: "0"))
            }
            if digits.isEmpty { digits = [UInt8(ascii: "0")] }
            return (negative ? "-" : "") + String(decoding: digits.reversed(), as: UTF8.self)
        }

        func parseIntText(_ text: String) throws -> PickleValue {
            let trimmed = text.trimmingWhitespace()
            if let value = Int(trimmed) { return .int(value) }
            let digits = trimmed.hasPrefix("-") ? trimmed.dropFirst() : Substring(trimmed)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw PickleError.malformed(offset: opcodeOffset, reason: "\(opcodeName) text '\(text)' is not an integer")
            }
            let stripped = String(digits.drop(while: { $0 == "0" }))
            return .bigInt((trimmed.hasPrefix("-") ? "-" : "") + (stripped.isEmpty ? "0" : stripped))
        }

        func parseIndex(_ text: String) throws -> Int {
            guard let value = Int(text), value >= 0 else {
                throw PickleError.malformed(offset: opcodeOffset, reason: "memo index '\(text)' is not a number")
            }
            return value
        }

        mutating func bigEndianUInt64() throws -> UInt64 {
            let raw = try take(8)
            var value: UInt64 = 0
            for i in 0..<8 { value = value << 8 | UInt64(raw[i]) }
            return value
        }

        static func latin1(_ raw: UnsafeRawBufferPointer) -> String {
            var scalars = String.UnicodeScalarView()
            for b in raw { scalars.append(Unicode.Scalar(b)) }
            return String(scalars)
        }

        static func encodeLatin1(_ s: String, offset: Int) throws -> [UInt8] {
            if s.unicodeScalars.count == s.utf8.count { return Array(s.utf8) }  // ASCII: the same bytes
            return try s.unicodeScalars.map {
                guard $0.value < 256 else {
                    throw PickleError.malformed(offset: offset, reason: "latin-1 text holds a character past U+00FF")
                }
                return UInt8($0.value)
            }
        }

        /// Python's raw-unicode-escape: `\uXXXX` and `\UXXXXXXXX` escapes, every other byte Latin-1.
        static func rawUnicodeEscape(_ bytes: [UInt8]) -> String {
            var scalars = String.UnicodeScalarView()
            var i = 0
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\\"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "u") || bytes[i + 1] == UInt8(ascii: "U") {
                    let width = bytes[i + 1] == UInt8(ascii: "u") ? 4 : 8
                    if i + 2 + width <= bytes.count,
                        let code = UInt32(String(decoding: bytes[(i + 2)..<(i + 2 + width)], as: UTF8.self), radix: 16),
                        let scalar = Unicode.Scalar(code)
                    {
                        scalars.append(scalar)
                        i += 2 + width
                        continue
                    }
                }
                scalars.append(Unicode.Scalar(c))
                i += 1
            }
            return String(scalars)
        }

        /// A protocol-0 STRING argument: a quoted Python 2 string literal with backslash escapes.
        func pythonStringLiteral(_ text: String) throws -> String {
            let scalars = Array(text.unicodeScalars)
            guard scalars.count >= 2, let quote = scalars.first, quote == "'" || quote == "\"", scalars.last == quote else {
                throw PickleError.malformed(offset: opcodeOffset, reason: "STRING argument is not quoted")
            }
            var out = String.UnicodeScalarView()
            var i = 1
            let end = scalars.count - 1
            while i < end {
                let c = scalars[i]
                guard c == "\\", i + 1 < end else { out.append(c); i += 1; continue }
                let e = scalars[i + 1]
                i += 2
                switch e {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "\\": out.append("\\")
                case "'": out.append("'")
                case "\"": out.append("\"")
                case "x":
                    guard i + 2 <= end, let v = UInt8(String(String.UnicodeScalarView(scalars[i..<(i + 2)])), radix: 16) else {
                        throw PickleError.malformed(offset: opcodeOffset, reason: "bad \\x escape in STRING")
                    }
                    out.append(Unicode.Scalar(v))
                    i += 2
                case "0"..."7":
                    var value = UInt32(e.value - 48)
                    var n = 1
                    while n < 3, i < end, ("0"..."7").contains(scalars[i]) {
                        value = value * 8 + (scalars[i].value - 48)
                        i += 1
                        n += 1
                    }
                    out.append(Unicode.Scalar(UInt8(truncatingIfNeeded: value)))
                default:
                    out.append("\\")
                    out.append(e)
                }
            }
            return String(out)
        }

        /// `items` without duplicates (a frozenset's elements), hashing charged to the work budget.
        mutating func unique(_ items: [PickleValue]) throws -> [PickleValue] {
            try charge(items: items.count)
            var seen = Set<PickleKey>()
            var unique: [PickleValue] = []
            for item in items {
                var cost = 0
                if seen.insert(PickleKey(item, cost: &cost)).inserted { unique.append(item) }
                try spend(cost)
            }
            return unique
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}

/// Opcode names, for messages.
enum Opcode {
    static func name(_ byte: UInt8) -> String {
        switch byte {
        case 0x28: return "MARK"
        case 0x2E: return "STOP"
        case 0x30: return "POP"
        case 0x31: return "POP_MARK"
        case 0x32: return "DUP"
        case 0x46: return "FLOAT"
        case 0x49: return "INT"
        case 0x4A: return "BININT"
        case 0x4B: return "BININT1"
        case 0x4C: return "LONG"
        case 0x4D: return "BININT2"
        case 0x4E: return "NONE"
        case 0x50: return "PERSID"
        case 0x51: return "BINPERSID"
        case 0x52: return "REDUCE"
        case 0x53: return "STRING"
        case 0x54: return "BINSTRING"
        case 0x55: return "SHORT_BINSTRING"
        case 0x56: return "UNICODE"
        case 0x58: return "BINUNICODE"
        case 0x61: return "APPEND"
        case 0x62: return "BUILD"
        case 0x63: return "GLOBAL"
        case 0x64: return "DICT"
        case 0x7D: return "EMPTY_DICT"
        case 0x65: return "APPENDS"
        case 0x67: return "GET"
        case 0x68: return "BINGET"
        case 0x69: return "INST"
        case 0x6A: return "LONG_BINGET"
        case 0x6C: return "LIST"
        case 0x5D: return "EMPTY_LIST"
        case 0x6F: return "OBJ"
        case 0x70: return "PUT"
        case 0x71: return "BINPUT"
        case 0x72: return "LONG_BINPUT"
        case 0x73: return "SETITEM"
        case 0x74: return "TUPLE"
        case 0x29: return "EMPTY_TUPLE"
        case 0x75: return "SETITEMS"
        case 0x47: return "BINFLOAT"
        case 0x80: return "PROTO"
        case 0x81: return "NEWOBJ"
        case 0x82: return "EXT1"
        case 0x83: return "EXT2"
        case 0x84: return "EXT4"
        case 0x85: return "TUPLE1"
        case 0x86: return "TUPLE2"
        case 0x87: return "TUPLE3"
        case 0x88: return "NEWTRUE"
        case 0x89: return "NEWFALSE"
        case 0x8A: return "LONG1"
        case 0x8B: return "LONG4"
        case 0x42: return "BINBYTES"
        case 0x43: return "SHORT_BINBYTES"
        case 0x8C: return "SHORT_BINUNICODE"
        case 0x8D: return "BINUNICODE8"
        case 0x8E: return "BINBYTES8"
        case 0x8F: return "EMPTY_SET"
        case 0x90: return "ADDITEMS"
        case 0x91: return "FROZENSET"
        case 0x92: return "NEWOBJ_EX"
        case 0x93: return "STACK_GLOBAL"
        case 0x94: return "MEMOIZE"
        case 0x95: return "FRAME"
        case 0x96: return "BYTEARRAY8"
        case 0x97: return "NEXT_BUFFER"
        case 0x98: return "READONLY_BUFFER"
        default: return "0x" + String(byte, radix: 16)
        }
    }
}
