@testable import Checkpoints
import DitkitTestSupport
import Foundation
import Tensors
import Testing

/// ditkit's own HDF5 reader against files written by h5py + hdf5plugin (fixtures/generate/hdf5_files.py): every
/// normal fixture's tree, attributes and dataset bytes equal what h5py reads (the JSON sidecars); every hostile
/// fixture gives the error it must.
@Suite("HDF5 reader")
struct HDF5ReaderTests {
    /// Written by HDF5 2.0 (h5py 3.16, the fixtures venv) and by HDF5 1.14 (h5py 3.13, as Cerebras' stack writes).
    static let normal = ["types", "chunked", "attrs", "groups", "many-attrs"].flatMap { [$0, "hdf5-1.14/\($0)"] }
        + ["hdf5-1.14/cstorch-save"]

    static func sidecar(_ name: String) throws -> JSONValue {
        let data = try #require(FileManager.default.contents(atPath: Fixtures.path("hdf5/\(name).json")))
        return try JSONParser.parse([UInt8](data))
    }

    static func open(_ relative: String) throws -> HDF5File {
        let file = try MappedFile(path: Fixtures.path(relative))
        return try HDF5File(file: file)
    }

    /// numpy's `dtype.str` for a datatype (h5py's mapping: an int8 FALSE/TRUE enum is numpy bool).
    static func numpyType(_ t: HDF5Datatype) -> String {
        switch t {
        case .integer(let size, let signed, let big):
            return (size == 1 ? "|" : big ? ">" : "<") + (signed ? "i" : "u") + "\(size)"
        case .float(let size, let big): return (big ? ">" : "<") + "f\(size)"
        case .fixedString(let size, _): return "|S\(size)"
        case .variableString: return "|O"
        case .opaque(let size, _): return "|V\(size)"
        case .enumeration(let base, let members):
            if members.map(\.name) == ["FALSE", "TRUE"] { return "|b1" }
            return numpyType(base)
        }
    }

    /// A value in the sidecar's tagged form.
    static func tagged(_ v: HDF5Value) -> JSONValue {
        switch v {
        case .integer(let i): return .object([("type", .string("int")), ("value", .int(Int(i)))])
        case .unsigned(let u): return .object([("type", .string("uint")), ("value", u <= UInt64(Int.max) ? .int(Int(u)) : .double(Double(u)))])
        case .float(let d): return .object([("type", .string("float")), ("value", .double(d))])
        case .string(let s): return .object([("type", .string("string")), ("value", .string(s))])
        case .bytes(let b): return .object([("hex", .string(b.map { String(format: "%02x", $0) }.joined())), ("type", .string("bytes"))])
        case .enumerated(let name, let value):
            return .object([("name", name.map { .string($0) } ?? .null), ("type", .string("enum")), ("value", .int(Int(value)))])
        case .array(let items, let shape):
            return .object([("items", .array(items.map(tagged))), ("shape", .array(shape.map { .int($0) })), ("type", .string("array"))])
        case .empty: return .object([("type", .string("empty"))])
        }
    }

    /// Compares two tagged values field by field, whatever the key order.
    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)):
            return x.count == y.count && x.allSatisfy { key, value in y.first { $0.0 == key }.map { same(value, $0.1) } ?? false }
        case let (.array(x), .array(y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        default: return a == b
        }
    }

    /// Attributes compared by name (h5py lists them by name; the reader keeps header order).
    static func checkAttributes(_ unsorted: [HDF5Attribute], _ expected: JSONValue?, _ what: String) {
        let pairs = (expected?.arrayValue ?? []).sorted { ($0.arrayValue?.first?.stringValue ?? "") < ($1.arrayValue?.first?.stringValue ?? "") }
        let attributes = unsorted.sorted { $0.name < $1.name }
        #expect(attributes.map(\.name) == pairs.compactMap { $0.arrayValue?.first?.stringValue }, "\(what) attribute names")
        for (attribute, pair) in zip(attributes, pairs) {
            let want = pair.arrayValue?.last ?? .null
            #expect(same(tagged(attribute.value), want), "\(what) attribute \(attribute.name): \(tagged(attribute.value)) ≠ \(want)")
        }
    }

    @Test("normal fixtures read as h5py reads them", arguments: normal)
    func normalFixture(_ name: String) throws {
        let expected = try Self.sidecar(name)
        let h5 = try Self.open("hdf5/\(name).h5")
        #expect(h5.superblockVersion == 0)
        var groups: [String: HDF5Group] = [:]
        func collect(_ g: HDF5Group) {
            groups[g.path] = g
            for member in g.groups.values { collect(member) }
        }
        collect(h5.root)
        let expectedGroups = try #require(expected["groups"]?.objectValue)
        #expect(Set(groups.keys) == Set(expectedGroups.map(\.0)))
        for (path, want) in expectedGroups {
            let group = try #require(groups[path], "group \(path)")
            #expect(group.memberNames == (want["members"]?.arrayValue ?? []).compactMap(\.stringValue), "members of \(path)")
            Self.checkAttributes(group.attributes, want["attrs"], "group \"\(path)\"")
        }
        let expectedDatasets = try #require(expected["datasets"]?.objectValue)
        #expect(h5.root.allDatasets.count == expectedDatasets.count)
        for (path, want) in expectedDatasets {
            let dataset = try #require(h5.root.dataset(at: path), "dataset \(path)")
            #expect(Self.numpyType(dataset.datatype) == want["dtype"]?.stringValue, "\(path) dtype \(dataset.datatype)")
            switch dataset.dataspace {
            case .null: #expect(want["shape"] == .null, "\(path) shape")
            case .scalar: #expect(want["shape"]?.arrayValue?.isEmpty == true, "\(path) shape")
            case .simple(let dims): #expect(want["shape"]?.arrayValue?.compactMap(\.intValue) == dims, "\(path) shape")
            }
            Self.checkAttributes(dataset.attributes, want["attrs"], "dataset \"\(path)\"")
            switch dataset.storage {
            case .contiguous: #expect(want["storage"]?.stringValue == "contiguous", "\(path) storage")
            case .compact: #expect(want["storage"]?.stringValue == "compact", "\(path) storage")
            case .chunked(_, let chunks, let filters):
                #expect(want["storage"]?.stringValue == "chunked", "\(path) storage")
                #expect(want["chunks"]?.arrayValue?.compactMap(\.intValue) == chunks, "\(path) chunks")
                #expect(want["filters"]?.arrayValue?.compactMap(\.intValue) == filters.map(\.id), "\(path) filters")
            }
            if let value = want["value"] {
                let got = try h5.value(of: dataset)
                #expect(Self.same(Self.tagged(got), value), "\(path) value \(Self.tagged(got)) ≠ \(value)")
            }
            if let nbytes = want["nbytes"]?.intValue, let crc = want["crc32"]?.intValue {
                let source = try h5.source(of: dataset)
                #expect(source.byteCount == nbytes, "\(path) bytes")
                // Streamed in odd pieces, and as a whole: the same bytes as h5py's.
                let sink = CollectingSink()
                try source.stream(0..<source.byteCount, chunkSize: 333, to: sink)
                #expect(sink.bytes.count == nbytes)
                #expect(Int(sink.bytes.withUnsafeBytes { CRC32.checksum($0) }) == crc, "\(path) crc32")
                // A window in the middle reads the same bytes as the whole.
                if nbytes > 10 {
                    let window = (nbytes / 3)..<(nbytes - 5)
                    let part = CollectingSink()
                    try source.stream(window, chunkSize: 1 << 20, to: part)
                    #expect(part.bytes == Array(sink.bytes[window]), "\(path) window")
                }
            }
        }
    }

    @Test("the many-attribute root group keeps every attribute across its continuation blocks")
    func manyAttributes() throws {
        let h5 = try Self.open("hdf5/many-attrs.h5")
        #expect(h5.root.attributes.count == 1500)
        #expect(h5.root.attribute("k1499")?.value == .integer(1499 * 1_000_003))
        #expect(h5.root.attribute("k1490.__metadata__")?.value.text == "{\"i\": 1490}")
    }

    @Test("Cerebras' object datasets (OHDR v2 header, tracked order, opaque __BYTES__) read")
    func opaqueObject() throws {
        let h5 = try Self.open("hdf5/groups.h5")
        let object = try #require(h5.root.datasets["opaque_object"])
        #expect(object.dataspace == .null)
        #expect(object.attribute("__BYTES__")?.value == .bytes([0x80, 0x04, 0x4B, 0x07, 0x2E]))
        #expect(object.attribute("__BYTES__")?.value.rawBytes == [0x80, 0x04, 0x4B, 0x07, 0x2E])
        #expect(HDF5Value.array([.bytes([1]), .bytes([2, 3])], shape: [2]).rawBytes == [1, 2, 3])
        #expect(HDF5Value.array([.bytes([1]), .integer(2)], shape: [2]).rawBytes == nil)
        #expect(object.attribute("__TYPE__")?.value.text == "ObjectSerializer")
        #expect(h5.root.groups["wide"]?.memberNames.count == 300)
    }

    struct HostileCase: CustomStringConvertible, Sendable {
        let name: String
        let error: String
        let contains: String
        let stage: String
        var description: String { name }
    }

    static let hostile: [HostileCase] = {
        let data = FileManager.default.contents(atPath: Fixtures.path("hdf5/hostile/expected.json")) ?? Data()
        let json = (try? JSONParser.parse([UInt8](data))) ?? .null
        return (json["files"]?.objectValue ?? []).map { name, entry in
            HostileCase(
                name: name, error: entry["error"]?.stringValue ?? "", contains: entry["contains"]?.stringValue ?? "",
                stage: entry["stage"]?.stringValue ?? "")
        }
    }()

    @Test("hostile fixtures give the error they must, at the stage they must", arguments: hostile)
    func hostileFixture(_ c: HostileCase) throws {
        var opened: HDF5File?
        var caught: Error?
        do {
            opened = try Self.open("hdf5/hostile/\(c.name)")
            if let h5 = opened {
                for dataset in h5.root.allDatasets where dataset.dataspace != .null {
                    let source = try h5.source(of: dataset)
                    try source.stream(0..<source.byteCount, chunkSize: 1 << 16, to: CollectingSink())
                }
            }
        } catch { caught = error }
        let error = try #require(caught as? CheckpointError, "\(c.name) must fail, got \(String(describing: caught))")
        #expect((opened == nil) == (c.stage == "open"), "\(c.name) fails at \(opened == nil ? "open" : "source"): \(error)")
        switch (c.error, error) {
        case ("malformed", .malformed), ("unsupported", .unsupported): break
        default: Issue.record("\(c.name): expected \(c.error), got \(error)")
        }
        #expect(error.description.contains(c.contains), "\(c.name): \(error)")
        #expect(error.exitCode == 3)
        if c.error == "malformed" { #expect(error.description.contains("offset") || error.description.contains("chunk at"), "\(error)") }
        if c.error == "unsupported" && c.stage == "open" { #expect(error.description.contains("unsupported HDF5 feature"), "\(error)") }
    }

    /// A sink that fails after `limit` writes (a full disk, say).
    final class FailingSink: ByteSink {
        var writes = 0
        let limit: Int
        init(limit: Int) { self.limit = limit }
        func write(_ bytes: UnsafeRawBufferPointer) throws {
            writes += 1
            if writes > limit { throw CheckpointError.io(path: "sink", operation: "write", detail: "disk full") }
        }
    }

    @Test("bands decoded by two workers arrive in order, any range, and a failing sink stops them without a hang")
    func bandPipeline() throws {
        let h5 = try Self.open("hdf5/chunked.h5")
        let dataset = try #require(h5.root.allDatasets.first { $0.path == "lz4_noise" })
        let source = try h5.source(of: dataset)
        let whole = CollectingSink()
        try source.stream(0..<source.byteCount, chunkSize: 1 << 20, to: whole)
        // Sub-ranges that start and end inside bands, read with small writes, equal the same bytes of the whole.
        for (lower, upper) in [(3, source.byteCount - 5), (1000, 1001), (0, 4 * 53 * 8 + 7), (source.byteCount / 2, source.byteCount)] {
            let part = CollectingSink()
            try source.stream(lower..<upper, chunkSize: 97, to: part)
            #expect(part.bytes == Array(whole.bytes[lower..<upper]), "bytes \(lower)..<\(upper)")
        }
        for limit in [0, 1, 3] {
            #expect(throws: CheckpointError.self) { try source.stream(0..<source.byteCount, chunkSize: 64, to: FailingSink(limit: limit)) }
        }
    }

    @Test("LZ4 framing: round trip over block sizes, raw blocks, and lies refused")
    func lz4Blocks() throws {
        var rng = SplitMix64(state: 7)
        let noise = (0..<5000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let smooth = (0..<5000).map { UInt8($0 % 7) }
        for data in [noise, smooth, [], [1]] {
            for block in [LZ4ChunkCompressor.defaultBlockSize, 1, 64, 4999, 5000, 1 << 20] {
                var framed: [UInt8] = []
                let length = try data.withUnsafeBytes { try LZ4ChunkCompressor.compress($0, into: &framed, blockSize: block, path: "test") }
                framed.removeSubrange(length...)
                var out = [UInt8](repeating: 0, count: data.count)
                try framed.withUnsafeBytes { f in try out.withUnsafeMutableBytes { try LZ4Blocks.decode(f, into: $0) } }
                #expect(out == data)
                var short = [UInt8](repeating: 0, count: max(data.count - 1, 0))
                if !data.isEmpty {
                    #expect(throws: LZ4Blocks.Failure.self) {
                        try framed.withUnsafeBytes { f in try short.withUnsafeMutableBytes { try LZ4Blocks.decode(f, into: $0) } }
                    }
                }
                var extra = framed + [0]
                #expect(throws: LZ4Blocks.Failure.self) {
                    try extra.withUnsafeBytes { f in try out.withUnsafeMutableBytes { try LZ4Blocks.decode(f, into: $0) } }
                }
                extra.removeAll()
            }
        }
    }

    @Test("lookup3 matches HDF5's checksums (known vectors)")
    func lookup3() {
        // Bob Jenkins' published hashlittle vectors: "" → 0xdeadbeef, "Four score and seven years ago" → 0x17770551.
        #expect([UInt8]().withUnsafeBytes { hdf5Lookup3($0) } == 0xdead_beef)
        #expect(Array("Four score and seven years ago".utf8).withUnsafeBytes { hdf5Lookup3($0) } == 0x1777_0551)
    }
}

/// Throughput of the chunked source on a large h5py file named by `DITKIT_HDF5_BENCH` (not run otherwise).
@Suite("HDF5 throughput")
struct HDF5ThroughputTests {
    @Test("stream every dataset of $DITKIT_HDF5_BENCH", .enabled(if: ProcessInfo.processInfo.environment["DITKIT_HDF5_BENCH"] != nil))
    func throughput() throws {
        let path = try #require(ProcessInfo.processInfo.environment["DITKIT_HDF5_BENCH"])
        let start = Date()
        let h5 = try HDF5File(file: try MappedFile(path: path))
        let opened = Date().timeIntervalSince(start)
        var bytes = 0
        for dataset in h5.root.allDatasets {
            let source = try h5.source(of: dataset)
            let sink = CountingSink()
            try source.stream(0..<source.byteCount, chunkSize: 1 << 20, to: sink)
            bytes += sink.count
        }
        let seconds = Date().timeIntervalSince(start)
        print("HDF5 throughput: opened in \(opened * 1000) ms; \(bytes) bytes in \(seconds) s, \(Double(bytes) / seconds / 1e9) GB/s")
    }
}

extension HDF5ThroughputTests {
    @Test("dump the tree of $DITKIT_HDF5_DUMP", .enabled(if: ProcessInfo.processInfo.environment["DITKIT_HDF5_DUMP"] != nil))
    func dump() throws {
        let path = try #require(ProcessInfo.processInfo.environment["DITKIT_HDF5_DUMP"])
        let h5 = try HDF5File(file: try MappedFile(path: path))
        func show(_ g: HDF5Group, _ indent: String) throws {
            print("\(indent)group \"\(g.path)\" @\(g.headerOffset)")
            for a in g.attributes { print("\(indent)  @\(a.name) = \(a.value)") }
            for name in g.memberNames {
                if let child = g.groups[name] { try show(child, indent + "  ") }
                if let d = g.datasets[name] {
                    print("\(indent)  dataset \"\(d.path)\" \(d.datatype) \(d.dataspace) \(d.storage)")
                    for a in d.attributes { print("\(indent)    @\(a.name) = \(a.value)") }
                    if d.dataspace.elementCount <= 16 { print("\(indent)    value \(try h5.value(of: d))") }
                    if case .variableString = d.datatype { continue }
                    let source = try h5.source(of: d)
                    let sink = CountingSink()
                    try source.stream(0..<source.byteCount, chunkSize: 1 << 20, to: sink)
                    print("\(indent)    streamed \(sink.count) bytes")
                }
            }
        }
        try show(h5.root, "")
    }
}
