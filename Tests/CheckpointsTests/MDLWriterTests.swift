@testable import Checkpoints
import CDitkitLZ4
import Foundation
import Tensors
import DitkitTestSupport
import Testing

/// The `.mdl` writer: h5py's chunk guess, hdf5plugin's LZ4 framing, the saver's JSON, the HDF5 structures (parsed
/// here field by field), streaming and atomicity. Interop with h5py and `cerebras.pytorch.load` is scripts/interop.
@Suite("MDL writer: Cerebras .mdl format 0.5")
struct MDLWriterTests {
    /// `h5py._hl.filters.guess_chunk(shape, None, typesize)` from h5py 3.16, one line per case:
    /// shape, element size, chunk shape (made by a loop over these shapes and 60 random ones).
    static let h5pyChunks = """
300,70 2 150,35
300,70 4 75,35
300,70 8 75,18
1000,300 2 125,75
1000,300 4 125,38
1000,300 8 63,38
0,5 2 1024,5
0,5 4 512,5
0,5 8 256,3
100,3,3 2 100,3,3
100,3,3 4 100,3,3
100,3,3 8 100,3,3
4 2 4
4 4 4
4 8 4
1 2 1
1 4 1
1 8 1
1152,1152 2 72,144
1152,1152 4 72,72
1152,1152 8 72,72
4608,1152 2 288,72
4608,1152 4 144,72
4608,1152 8 144,36
1152,4608 2 72,288
1152,4608 4 36,288
1152,4608 8 36,144
1000,256 2 125,64
1000,256 4 125,32
1000,256 8 63,32
1001 2 1001
1001 4 1001
1001 8 1001
1000 2 1000
1000 4 1000
1000 8 1000
2048,8192 2 64,512
2048,8192 4 64,256
2048,8192 8 32,256
8192,2048 2 256,128
8192,2048 4 256,64
8192,2048 8 128,64
32,4,2,2 2 32,4,2,2
32,4,2,2 4 32,4,2,2
32,4,2,2 8 32,4,2,2
1152,4,2,2 2 576,2,2,2
1152,4,2,2 4 576,2,1,2
1152,4,2,2 8 576,2,1,1
3456,1152 2 216,72
3456,1152 4 108,72
3456,1152 8 108,72
6912,1152 2 216,72
6912,1152 4 216,72
6912,1152 8 216,36
1,256,1152 2 1,32,288
1,256,1152 4 1,32,144
1,256,1152 8 1,16,144
1152,256 2 144,64
1152,256 4 144,32
1152,256 8 72,32
0 2 1024
0 4 1024
0 8 1024
0,0 2 64,128
0,0 4 64,128
0,0 8 64,64
7,0,3 2 4,512,2
7,0,3 4 2,512,2
7,0,3 8 2,256,2
3,100 2 3,100
3,100 4 3,100
3,100 8 3,100
9999 2 5000
9999 4 2500
9999 8 1250
9999,1024,31,5 2 625,64,2,1
9999,1024,31,5 4 625,64,2,1
9999,1024,31,5 8 313,64,2,1
1,1024,1152,1 2 1,64,144,1
1,1024,1152,1 4 1,64,144,1
1,1024,1152,1 8 1,64,72,1
100,64,5,384 2 13,8,2,96
100,64,5,384 4 13,8,1,96
100,64,5,384 8 13,8,1,96
1 2 1
1 4 1
1 8 1
1 2 1
1 4 1
1 8 1
31,1152,1,64 2 4,288,1,16
31,1152,1,64 4 4,144,1,16
31,1152,1,64 8 4,144,1,8
9999,64,1000,64 2 313,4,63,4
9999,64,1000,64 4 313,2,63,4
9999,64,1000,64 8 313,2,32,4
4096,255 2 256,32
4096,255 4 256,32
4096,255 8 256,16
1152 2 1152
1152 4 1152
1152 8 1152
16 2 16
16 4 16
16 8 16
5,384,1152 2 1,48,288
5,384,1152 4 1,48,144
5,384,1152 8 1,48,144
255,255 2 64,64
255,255 4 32,64
255,255 8 32,64
1024,2,9999,64 2 32,1,625,4
1024,2,9999,64 4 32,1,313,4
1024,2,9999,64 8 32,1,313,4
1152,16,1000,1000 2 72,1,63,63
1152,16,1000,1000 4 36,1,63,63
1152,16,1000,1000 8 36,1,32,63
4096 2 4096
4096 4 2048
4096 8 1024
16 2 16
16 4 16
16 8 16
1000,9999,1,9999 2 16,157,1,157
1000,9999,1,9999 4 8,157,1,157
1000,9999,1,9999 8 8,79,1,157
255 2 255
255 4 255
255 8 255
16,16,64,1 2 8,8,64,1
16,16,64,1 4 8,8,32,1
16,16,64,1 8 4,8,32,1
64,1024 2 16,256
64,1024 4 8,256
64,1024 8 8,256
1000,4096,100 2 32,256,7
1000,4096,100 4 32,128,7
1000,4096,100 8 32,128,7
1024 2 1024
1024 4 1024
1024 8 1024
31,1152 2 8,576
31,1152 4 8,288
31,1152 8 4,288
9999 2 5000
9999 4 2500
9999 8 1250
31,1152,9999 2 1,72,625
31,1152,9999 4 1,72,625
31,1152,9999 8 1,36,625
1152,1000,1 2 72,125,1
1152,1000,1 4 72,125,1
1152,1000,1 8 72,63,1
4096,1,64 2 512,1,16
4096,1,64 4 512,1,8
4096,1,64 8 256,1,8
16,3 2 16,3
16,3 4 16,3
16,3 8 16,3
2,3,3 2 2,3,3
2,3,3 4 2,3,3
2,3,3 8 2,3,3
4096 2 4096
4096 4 2048
4096 8 1024
100 2 100
100 4 100
100 8 100
100,5 2 100,5
100,5 4 100,5
100,5 8 100,5
1000,255 2 125,64
1000,255 4 125,32
1000,255 8 63,32
16 2 16
16 4 16
16 8 16
100,16 2 100,16
100,16 4 100,16
100,16 8 50,16
255,4096,384 2 8,256,24
255,4096,384 4 8,256,24
255,4096,384 8 8,128,24
9999,5,1,255 2 625,1,1,32
9999,5,1,255 4 625,1,1,16
9999,5,1,255 8 625,1,1,16
384,1152,31,100 2 24,72,4,13
384,1152,31,100 4 24,72,2,13
384,1152,31,100 8 24,72,2,13
100 2 100
100 4 100
100 8 100
1152,1 2 1152,1
1152,1 4 1152,1
1152,1 8 1152,1
1,1024 2 1,1024
1,1024 4 1,1024
1,1024 8 1,1024
2,16 2 2,16
2,16 4 2,16
2,16 8 2,16
1152,64,4096,64 2 36,4,256,4
1152,64,4096,64 4 36,4,256,4
1152,64,4096,64 8 36,2,256,4
1024 2 1024
1024 4 1024
1024 8 1024
1152,2,255 2 144,1,64
1152,2,255 4 144,1,32
1152,2,255 8 144,1,32
31,2 2 31,2
31,2 4 31,2
31,2 8 31,2
3,3,255 2 3,3,255
3,3,255 4 3,3,255
3,3,255 8 2,3,255
16,1152,100 2 2,288,25
16,1152,100 4 2,144,25
16,1152,100 8 2,144,13
1,2 2 1,2
1,2 4 1,2
1,2 8 1,2
4096,16 2 1024,4
4096,16 4 512,4
4096,16 8 512,4
1024 2 1024
1024 4 1024
1024 8 1024
1000,5 2 1000,5
1000,5 4 500,5
1000,5 8 500,3
1152,31 2 288,16
1152,31 4 288,8
1152,31 8 144,8
5,1024,255,9999 2 1,32,8,625
5,1024,255,9999 4 1,32,8,313
5,1024,255,9999 8 1,32,8,313
384 2 384
384 4 384
384 8 384
255,1,16,31 2 64,1,4,16
255,1,16,31 4 64,1,4,16
255,1,16,31 8 64,1,4,8
7,384,1152 2 1,48,288
7,384,1152 4 1,48,144
7,384,1152 8 1,48,144
100,5 2 100,5
100,5 4 100,5
100,5 8 100,5
"""

    @Test("chunk shapes equal h5py's guess_chunk for 249 shapes and element sizes")
    func chunkGuess() {
        for line in Self.h5pyChunks.split(separator: "\n") {
            let parts = line.split(separator: " ")
            func ints(_ s: Substring) -> [Int] { s.split(separator: ",").map { Int($0)! } }
            let shape = ints(parts[0]), size = Int(parts[1])!, expected = ints(parts[2])
            #expect(HDF5ChunkGuess.chunkShape(for: shape, elementSize: size) == expected, "\(shape) × \(size)")
        }
    }

    @Test("LZ4 chunks are framed as hdf5plugin frames them and decompress to the input")
    func lz4Framing() throws {
        var out: [UInt8] = []
        let zeros = [UInt8](repeating: 0, count: 19_000)
        let n = try zeros.withUnsafeBytes { try LZ4ChunkCompressor.compress($0, into: &out, path: "x") }
        // hdf5plugin 5.1 wrote this chunk (125 × 38 float32 zeros) as 101 bytes: header, then one 85-byte block.
        #expect(n == 101)
        #expect(Array(out[0..<16]) == [0, 0, 0, 0, 0, 0, 0x4a, 0x38, 0, 0, 0x4a, 0x38, 0, 0, 0, 0x55])
        var decoded = [UInt8](repeating: 1, count: 19_000)
        let got = out.withUnsafeBytes { src in decoded.withUnsafeMutableBytes { dst in
            LZ4_decompress_safe(src.baseAddress!.advanced(by: 16).assumingMemoryBound(to: CChar.self),
                                dst.baseAddress!.assumingMemoryBound(to: CChar.self), 85, 19_000) } }
        #expect(got == 19_000 && decoded == zeros)
        // Incompressible: stored raw, stored size = block size.
        var rng = SplitMix64(state: 7)
        let noise = (0..<3600).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let m = try noise.withUnsafeBytes { try LZ4ChunkCompressor.compress($0, into: &out, path: "x") }
        #expect(m == 3616)
        #expect(Array(out[8..<16]) == [0, 0, 0x0e, 0x10, 0, 0, 0x0e, 0x10])
        #expect(Array(out[16..<3616]) == noise)
    }

    @Test("the spec and per-leaf metadata JSON are byte for byte what cerebras.pytorch.save wrote")
    func savedJSON() {
        let root = MDLNode.dict([("model", .dict([("w", .tensor(Self.tensor("w", .f32, [3, 5])))])), ("global_step", .int(12)),
                                 ("lst", .list([.int(1), .dict([("k.dot", .float(0.5))])]))])
        // From a file the real saver (cerebras-pytorch 2.10) wrote for this structure.
        let spec = "[\n    {\n        \"model\": {\n            \"w\": \"*\"\n        },\n        \"global_step\": \"*\",\n        \"lst\": [\n            \"*\",\n            {\n                \"k.dot\": \"*\"\n            }\n        ]\n    },\n    \"[1, {\\\"type\\\": \\\"builtins.dict\\\", \\\"context\\\": \\\"[\\\\\\\"model\\\\\\\", \\\\\\\"global_step\\\\\\\", \\\\\\\"lst\\\\\\\"]\\\", \\\"children_spec\\\": [{\\\"type\\\": \\\"builtins.dict\\\", \\\"context\\\": \\\"[\\\\\\\"w\\\\\\\"]\\\", \\\"children_spec\\\": [{\\\"type\\\": null, \\\"context\\\": null, \\\"children_spec\\\": []}]}, {\\\"type\\\": null, \\\"context\\\": null, \\\"children_spec\\\": []}, {\\\"type\\\": \\\"builtins.list\\\", \\\"context\\\": \\\"null\\\", \\\"children_spec\\\": [{\\\"type\\\": null, \\\"context\\\": null, \\\"children_spec\\\": []}, {\\\"type\\\": \\\"builtins.dict\\\", \\\"context\\\": \\\"[\\\\\\\"k.dot\\\\\\\"]\\\", \\\"children_spec\\\": [{\\\"type\\\": null, \\\"context\\\": null, \\\"children_spec\\\": []}]}]}]}]\"\n]"
        #expect(MDLWriter.specJSON(root) == spec)
        let leaf = "{\n    \"__spec__\": [\n        {\n            \"global_step\": \"*\"\n        },\n        \"[1, {\\\"type\\\": \\\"builtins.dict\\\", \\\"context\\\": \\\"[\\\\\\\"global_step\\\\\\\"]\\\", \\\"children_spec\\\": [{\\\"type\\\": null, \\\"context\\\": null, \\\"children_spec\\\": []}]}]\"\n    ],\n    \"__objects__\": [\n        \"global_step\"\n    ],\n    \"global_step.__metadata__\": {\n        \"scalar_value\": 12,\n        \"__TYPE__\": \"ScalarSerializer\",\n        \"__NONE__\": true\n    }\n}"
        #expect(MDLWriter.leafJSON(key: "global_step", metadata: MDLWriter.leafMetadata(.int(12))) == leaf)
        let tensorMeta = MDLWriter.leafMetadata(.tensor(Self.tensor("s", .bf16, []))).dumps(indent: 4)
        #expect(tensorMeta == "{\n    \"__TORCH__\": true,\n    \"shapes\": [\n        []\n    ],\n    \"dtypes\": [\n        \"torch.bfloat16\"\n    ],\n    \"rtfx_dtypes\": [\n        15\n    ],\n    \"__TYPE__\": \"TorchTensorSerializer\",\n    \"__NUMPY__\": true,\n    \"compressed\": false\n}")
    }

    @Test("floats and strings are written as Python's json writes them")
    func pythonJSON() {
        let cases: [(Double, String)] = [(0.5, "0.5"), (1e-06, "1e-06"), (100.0, "100.0"), (1e16, "1e+16"), (1e-05, "1e-05"),
                                         (0.0001, "0.0001"), (1234567890123456.0, "1234567890123456.0"), (1.5e300, "1.5e+300"),
                                         (-2.5e-7, "-2.5e-07"), (.nan, "NaN"), (-.infinity, "-Infinity")]
        for (value, text) in cases { #expect(PythonJSON.repr(value) == text) }
        #expect(PythonJSON.string("a\"b\\\n\u{1}é😀").dumps() == #""a\"b\\\n\u0001\u00e9\ud83d\ude00""#)
    }

    // MARK: files

    static func tensor(_ name: String, _ dtype: DType, _ shape: [Int], seed: UInt64 = 1) -> OutputTensor {
        OutputTensor(name: name, dtype: dtype, shape: shape) { sink in
            let count = shape.reduce(1, *) * dtype.size
            var rng = SplitMix64(state: seed)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 7) }
            if dtype == .bool { bytes = bytes.map { $0 & 1 } }
            // Stream in odd pieces, to cut elements and bands across writes.
            var i = 0
            while i < bytes.count {
                let n = min(777, bytes.count - i)
                try sink.write(Array(bytes[i..<(i + n)]))
                i += n
            }
        }
    }

    static func bytes(of t: OutputTensor) throws -> [UInt8] {
        let sink = CollectingSink()
        try t.produce(sink)
        return sink.bytes
    }

    /// A trainer-shaped state with the edge cases: edge chunks, 0-d, empty, bf16, many tensors, a "/" key, scalars.
    static func sample() -> MDLNode {
        var model: [(String, MDLNode)] = [
            ("model.w", .tensor(tensor("w", .f32, [300, 70]))),
            ("model.b", .tensor(tensor("b", .bf16, [7], seed: 2))),
            ("model.s", .tensor(tensor("s", .f32, [], seed: 3))),
            ("model.e", .tensor(tensor("e", .f32, [0, 5]))),
            ("model.r", .tensor(tensor("r", .f16, [100, 3, 3], seed: 4))),
            ("model.z", .tensor(OutputTensor(name: "z", dtype: .f32, shape: [1000, 300]) { try $0.write([UInt8](repeating: 0, count: 1_200_000)) })),
            ("a/b", .tensor(tensor("ab", .i64, [2, 3], seed: 5))),
            ("mask", .tensor(tensor("m", .bool, [9], seed: 6))),
        ]
        for i in 0..<300 { model.append(("model.t\(i)", .tensor(tensor("t", .f32, [4], seed: UInt64(100 + i))))) }
        // 128 chunks, edge chunks in every dimension: a two-level chunk B-tree (64 chunks per node).
        model.append(("model.many", .tensor(tensor("many", .u8, [100, 100, 200], seed: 9))))
        if ProcessInfo.processInfo.environment["MDLW_BIG"] != nil {
            // 8,064 chunks of zeros: a three-level chunk B-tree (for scripts/interop by hand).
            model.append(("model.huge", .tensor(OutputTensor(name: "huge", dtype: .f32, shape: [300_000, 1000]) { sink in
                let zeros = [UInt8](repeating: 0, count: 1 << 20)
                for _ in 0..<1144 { try sink.write(zeros) }
                try sink.write([UInt8](repeating: 0, count: 1_200_000_000 - 1144 * (1 << 20)))
            })))
        }
        return .dict([("model", .dict(model)), ("global_step", .int(12)), ("lr", .float(0.5)), ("name", .string("x")),
                      ("none", .none), ("flag", .bool(true)), ("lst", .list([.int(1), .dict([("k.dot", .int(2))])]))])
    }

    @Test("a sample state writes (and can be kept for scripts/interop with MDLW_KEEP)", arguments: MDLWriteOptions.Compression.allCases)
    func writes(_ compression: MDLWriteOptions.Compression) throws {
        let dir = TemporaryDirectory()
        let path = dir.file("x.mdl")
        try MDLWriter.write(Self.sample(), to: path, options: MDLWriteOptions(compression: compression))
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(Array(data[0..<8]) == [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])
        func u64(_ o: Int) -> Int { (0..<8).reduce(0) { $0 | Int(data[o + $1]) << (8 * $1) } }
        #expect(u64(40) == data.count)  // end-of-file address
        // The root entry caches the root's B-tree and heap, which its header's symbol table message names.
        let header = u64(64)
        #expect(data[header] == 1)
        #expect(Array(data[(header + 16)..<(header + 20)]) == [0x11, 0, 16, 0])
        #expect(u64(header + 24) == u64(80) && u64(header + 32) == u64(88))
        #expect(Array(data[u64(80)..<(u64(80) + 4)]) == Array("TREE".utf8))
        #expect(Array(data[u64(88)..<(u64(88) + 4)]) == Array("HEAP".utf8))
        if let keep = ProcessInfo.processInfo.environment["MDLW_KEEP"] {
            try? FileManager.default.removeItem(atPath: "\(keep)-\(compression).mdl")
            try FileManager.default.copyItem(atPath: path, toPath: "\(keep)-\(compression).mdl")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["x.mdl"])
    }

    @Test("a failing producer leaves no file and no temporary; an existing file is kept without overwrite")
    func atomicity() throws {
        struct Boom: Error {}
        let dir = TemporaryDirectory()
        let path = dir.file("y.mdl")
        let bad = MDLNode.dict([("a", .tensor(Self.tensor("a", .f32, [10]))), ("b", .tensor(OutputTensor(name: "b", dtype: .f32, shape: [4]) { _ in throw Boom() }))])
        #expect(throws: Boom.self) { try MDLWriter.write(bad, to: path) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
        let short = MDLNode.dict([("a", .tensor(OutputTensor(name: "a", dtype: .f32, shape: [400, 70]) { try $0.write([1, 2, 3]) }))])
        #expect(throws: CheckpointError.self) { try MDLWriter.write(short, to: path) }
        #expect(throws: CheckpointError.self) { try MDLWriter.write(short, to: path, options: MDLWriteOptions(compression: .none)) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
        try MDLWriter.write(.dict([("a", .int(1))]), to: path)
        #expect(throws: CheckpointError.self) { try MDLWriter.write(.dict([("a", .int(2))]), to: path) }
        try MDLWriter.write(.dict([("a", .int(2))]), to: path, options: MDLWriteOptions(overwrite: true))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["y.mdl"])
    }

    @Test("dtypes the format cannot hold and clashing names are refused before anything is renamed into place")
    func refusals() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("z.mdl")
        #expect(throws: CheckpointError.self) { try MDLWriter.write(.dict([("a", .tensor(Self.tensor("a", .i8, [3])))]), to: path) }
        #expect(throws: CheckpointError.self) {
            try MDLWriter.write(.dict([("a", .tensor(Self.tensor("a", .f32, [3]))), ("a/b", .tensor(Self.tensor("b", .f32, [3])))]), to: path)
        }
        #expect(throws: CheckpointError.self) { try MDLWriter.write(.dict([("a.b", .int(1)), ("a", .dict([("b", .int(2))]))]), to: path) }
        #expect(throws: CheckpointError.self) { try MDLWriter.write(.list([.int(1)]), to: path) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}

/// Read-back through `Checkpoint.open` (the `.mdl` reader): every tensor under its flat key, bit for bit.
@Suite("MDL writer: read back through Checkpoint.open")
struct MDLWriterReadBackTests {
    @Test("the metadata after tensor data ending at any alignment keeps a many-node chunk B-tree where its header says",
          arguments: 0..<8)
    func misalignedMetadata(_ tail: Int) throws {
        // 128 chunks (a two-level chunk B-tree, the first structure of the metadata), then `tail` one-byte 0-d
        // tensors (contiguous), so the metadata starts at every offset modulo 8.
        var model: [(String, MDLNode)] = [("many", .tensor(MDLWriterTests.tensor("many", .u8, [100, 100, 200], seed: 9)))]
        for i in 0..<tail { model.append(("b\(i)", .tensor(MDLWriterTests.tensor("b", .u8, [], seed: UInt64(i))))) }
        let dir = TemporaryDirectory()
        let path = dir.file("x.mdl")
        let root = MDLNode.dict([("model", .dict(model))])
        try MDLWriter.write(root, to: path, options: MDLWriteOptions(compression: .lz4))
        let checkpoint = try Checkpoint.open(path)
        for case let (key, .tensor(t)) in model {
            let info = try #require(checkpoint.tensor(named: "model." + key), "\(key)")
            let sink = CollectingSink()
            try info.write(to: sink)
            #expect(sink.bytes == (try MDLWriterTests.bytes(of: t)), "\(key)")
        }
    }

    @Test("every tensor reads back bit for bit with its flat key, dtype and shape (LZ4 and none)",
          arguments: MDLWriteOptions.Compression.allCases)
    func readBack(_ compression: MDLWriteOptions.Compression) throws {
        let dir = TemporaryDirectory()
        let path = dir.file("x.mdl")
        let root = MDLWriterTests.sample()
        try MDLWriter.write(root, to: path, options: MDLWriteOptions(compression: compression))
        var leaves: [(key: String, node: MDLNode)] = []
        MDLWriter.flatten(root, prefix: nil, into: &leaves)
        let checkpoint = try Checkpoint.open(path)
        for case let (key, .tensor(t)) in leaves {
            let info = try #require(checkpoint.tensor(named: key), "\(key)")
            #expect(info.dtype == t.dtype && info.shape == t.shape, "\(key)")
            let sink = CollectingSink()
            try info.write(to: sink)
            #expect(sink.bytes == (try MDLWriterTests.bytes(of: t)), "\(key)")
        }
    }
}

/// A minimal walker over the structures `HDF5Writer` emits (no validation: the files are our own), so CI checks the
/// written bytes before the `.mdl` reader is on the branch: group B-trees and symbol table nodes, object headers
/// with continuations, layouts, chunk B-trees, LZ4 chunks.
struct WrittenHDF5 {
    let data: [UInt8]

    func u(_ o: Int, _ n: Int) -> Int { (0..<n).reduce(0) { $0 | Int(data[o + $1]) << (8 * $1) } }
    func tag(_ o: Int) -> String { String(decoding: data[o..<(o + 4)], as: UTF8.self) }
    func cString(_ o: Int) -> String { String(decoding: data[o...].prefix { $0 != 0 }, as: UTF8.self) }

    /// (type, body offset, body size) of every message of the v1 object header at `address`, continuations followed.
    func messages(_ address: Int) -> [(type: Int, body: Int, size: Int)] {
        var out: [(Int, Int, Int)] = []
        var blocks = [(address + 16, u(address + 8, 4))]
        while !blocks.isEmpty {
            var (o, length) = blocks.removeFirst()
            let end = o + length
            while o < end {
                let type = u(o, 2), size = u(o + 2, 2)
                if type == 0x10 { blocks.append((u(o + 8, 8), u(o + 16, 8))) }
                out.append((type, o + 8, size))
                o += 8 + size
            }
        }
        return out
    }

    /// name → (object header, cache type) of the group whose header is at `address`.
    func members(_ address: Int) -> [String: Int] {
        let stab = messages(address).first { $0.type == 0x11 }!
        let btree = u(stab.body, 8), heap = u(stab.body + 8, 8)
        let heapData = u(heap + 24, 8)
        var out: [String: Int] = [:]
        func walk(_ node: Int) {
            precondition(tag(node) == "TREE" && data[node + 4] == 0)
            let level = Int(data[node + 5]), entries = u(node + 6, 2)
            for i in 0..<entries {
                let child = u(node + 24 + i * 16 + 8, 8)
                if level > 0 { walk(child); continue }
                precondition(tag(child) == "SNOD")
                for k in 0..<u(child + 6, 2) {
                    let e = child + 8 + k * 40
                    out[cString(heapData + u(e, 8))] = u(e + 8, 8)
                }
            }
        }
        walk(btree)
        return out
    }

    /// The elements of the dataset whose header is at `address`, reassembled from its chunks (or contiguous block).
    func elements(_ address: Int, shape: [Int], elementSize: Int) -> [UInt8] {
        let layout = messages(address).first { $0.type == 0x8 }!
        let total = shape.reduce(elementSize, *)
        if data[layout.body + 1] == 1 {
            let at = u(layout.body + 2, 8), size = u(layout.body + 10, 8)
            return total == 0 ? [] : Array(data[at..<(at + size)])
        }
        let rank = Int(data[layout.body + 2]) - 1
        let chunk = (0..<rank).map { u(layout.body + 11 + 4 * $0, 4) }
        var out = [UInt8](repeating: 0, count: total)
        guard total > 0 else { return out }
        let keySize = 8 + 8 * (rank + 1)
        func walk(_ node: Int) {
            precondition(tag(node) == "TREE" && data[node + 4] == 1)
            let level = Int(data[node + 5])
            for i in 0..<u(node + 6, 2) {
                let key = node + 24 + i * (keySize + 8)
                let child = u(key + keySize, 8)
                if level > 0 { walk(child); continue }
                let stored = u(key, 4)
                let offsets = (0..<rank).map { u(key + 8 + 8 * $0, 8) }
                let raw = chunk.reduce(elementSize, *)
                precondition((0..<8).reduce(0) { $0 << 8 | Int(data[child + $1]) } == raw)
                let blockSize = (8..<12).reduce(0) { $0 << 8 | Int(data[child + $1]) }
                precondition(blockSize == raw)
                let compressed = (12..<16).reduce(0) { $0 << 8 | Int(data[child + $1]) }
                precondition(stored == 16 + compressed)
                var plain = [UInt8](repeating: 0, count: raw)
                if compressed == raw {
                    plain = Array(data[(child + 16)..<(child + 16 + raw)])
                } else {
                    let n = data.withUnsafeBytes { src in plain.withUnsafeMutableBytes { dst in
                        LZ4_decompress_safe(src.baseAddress!.advanced(by: child + 16).assumingMemoryBound(to: CChar.self),
                                            dst.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(compressed), Int32(raw)) } }
                    precondition(Int(n) == raw)
                }
                // Scatter the chunk's in-range part, row by row of its last dimension.
                var index = [Int](repeating: 0, count: rank)
                let inner = min(chunk[rank - 1], shape[rank - 1] - offsets[rank - 1])
                outer: while true {
                    if zip(zip(index, offsets), shape).dropLast().allSatisfy({ $0.0 + $0.1 < $1 }) {
                        var s = 0, t = 0
                        for d in 0..<rank {
                            s = s * chunk[d] + index[d]
                            t = t * shape[d] + offsets[d] + index[d]
                        }
                        for b in 0..<(inner * elementSize) { out[t * elementSize + b] = plain[s * elementSize + b] }
                    }
                    var d = rank - 2
                    while d >= 0 {
                        index[d] += 1
                        if index[d] < chunk[d] { continue outer }
                        index[d] = 0
                        d -= 1
                    }
                    break
                }
            }
        }
        walk(u(layout.body + 3, 8))
        return out
    }
}

@Suite("MDL writer: the written HDF5 structures, walked")
struct MDLWriterStructureTests {
    @Test("groups, headers, continuations, chunk B-trees and LZ4 chunks hold every tensor bit for bit", arguments: MDLWriteOptions.Compression.allCases)
    func walk(_ compression: MDLWriteOptions.Compression) throws {
        let dir = TemporaryDirectory()
        let path = dir.file("w.mdl")
        let root = MDLWriterTests.sample()
        try MDLWriter.write(root, to: path, options: MDLWriteOptions(compression: compression))
        let file = WrittenHDF5(data: try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
        let rootHeader = file.u(64, 8)
        var leaves: [(key: String, node: MDLNode)] = []
        MDLWriter.flatten(root, prefix: nil, into: &leaves)
        // Root attributes: spec, version, cstorch version, one per leaf, __written_by__, and __SUCCESS__ last.
        let names = file.messages(rootHeader).filter { $0.type == 0xC }.map { file.cString($0.body + 8) }
        #expect(names.count == 3 + leaves.count + 2)
        #expect(names.prefix(3) == ["__spec__", "__version__", "__cstorch_version__"] && names.last == "__SUCCESS__")
        #expect(file.messages(rootHeader).filter { $0.type == 0x10 }.count >= 1, "attributes in continuation chunks")
        let members = file.members(rootHeader)
        let tensors = leaves.compactMap { leaf -> (String, OutputTensor)? in
            if case .tensor(let t) = leaf.node { return (leaf.key, t) } else { return nil }
        }
        #expect(members.count == tensors.count)  // "model.a/b" is the group "model.a"
        for (key, t) in tensors {
            let parts = key.split(separator: "/").map(String.init)
            var header = rootHeader
            for part in parts { header = try #require(file.members(header)[part], "\(key)") }
            let got = file.elements(header, shape: t.shape, elementSize: t.dtype.size)
            #expect(got == (try MDLWriterTests.bytes(of: t)), "\(key)")
            let layoutClass = file.data[file.messages(header).first { $0.type == 0x8 }!.body + 1]
            #expect(layoutClass == (compression == .lz4 && !t.shape.isEmpty ? 2 : 1), "\(key)")
        }
    }
}

@Suite("MDL writer: read back by ditkit's HDF5 reader")
struct MDLWriterHDF5ReaderTests {
    @Test("HDF5File parses every written structure and streams every tensor bit for bit", arguments: MDLWriteOptions.Compression.allCases)
    func readBack(_ compression: MDLWriteOptions.Compression) throws {
        let dir = TemporaryDirectory()
        let path = dir.file("r.mdl")
        let root = MDLWriterTests.sample()
        try MDLWriter.write(root, to: path, options: MDLWriteOptions(compression: compression))
        let file = try HDF5File(file: try MappedFile(path: path))
        #expect(file.root.attribute("__version__")?.value == .float(0.5))
        #expect(file.root.attribute("__cstorch_version__")?.value.text == MDLWriter.cstorchVersion)
        #expect(file.root.attribute("__SUCCESS__")?.value == .enumerated(name: "TRUE", value: 1))
        #expect(file.root.attributes.last?.name == "__SUCCESS__")
        #expect(file.root.attribute("__spec__")?.value.text == MDLWriter.specJSON(root))
        var leaves: [(key: String, node: MDLNode)] = []
        MDLWriter.flatten(root, prefix: nil, into: &leaves)
        for leaf in leaves {
            #expect(file.root.attribute(leaf.key + ".__metadata__")?.value.text
                == MDLWriter.leafJSON(key: leaf.key, metadata: MDLWriter.leafMetadata(leaf.node)), "\(leaf.key)")
            guard case .tensor(let t) = leaf.node else { continue }
            let dataset = try #require(file.root.dataset(at: leaf.key), "\(leaf.key)")
            #expect(dataset.dataspace == (t.shape.isEmpty ? .scalar : .simple(t.shape)), "\(leaf.key)")
            if case .chunked(_, let chunk, let filters) = dataset.storage {
                #expect(compression == .lz4 && chunk == HDF5ChunkGuess.chunkShape(for: t.shape, elementSize: t.dtype.size))
                #expect(filters == [HDF5Filter(id: 32004, name: HDF5Encode.lz4FilterName, optional: true, clientData: [0])])
            } else {
                #expect(compression == .none || t.shape.isEmpty, "\(leaf.key) contiguous")
            }
            #expect(dataset.attribute("dtypes")?.value == .array([.string(MDLDTypes.torchName(t.dtype))], shape: [1]), "\(leaf.key)")
            let source = try file.source(of: dataset)
            let sink = CollectingSink()
            try source.stream(0..<source.byteCount, chunkSize: 1 << 16, to: sink)
            #expect(sink.bytes == (try MDLWriterTests.bytes(of: t)), "\(leaf.key)")
        }
    }
}

extension MDLWriterTests {
    @Test("a key too long for an HDF5 header message is refused, not truncated")
    func longKey() throws {
        let dir = TemporaryDirectory()
        let key = String(repeating: "k", count: 70_000)
        #expect(throws: CheckpointError.self) { try MDLWriter.write(.dict([(key, .tensor(Self.tensor("a", .f32, [2])))]), to: dir.file("l.mdl")) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}
