import Checkpoints
import Foundation
import Tensors
import DitkitTestSupport
import Testing

/// A byte source no reader knows: bytes kept in memory in 7-byte blocks, each XOR-scrambled with its own key, as a
/// new container (chunked, transformed storage) would keep them. It implements only what `ByteSource` requires
/// (`stream`), and records the largest piece it was asked to hand out at once.
final class ScrambledBlockSource: ByteSource, @unchecked Sendable {
    static let block = 7
    private let blocks: [[UInt8]]
    let byteCount: Int
    let path = "(scrambled test source)"
    private let lock = NSLock()
    private var _largestWrite = 0
    private var _largestChunkAsked = 0
    var largestWrite: Int { lock.withLock { _largestWrite } }

    static func key(_ block: Int) -> UInt8 { UInt8(truncatingIfNeeded: 0x5A &+ block &* 31) }

    init(_ bytes: [UInt8]) {
        byteCount = bytes.count
        blocks = stride(from: 0, to: bytes.count, by: Self.block).map { start in
            let key = Self.key(start / Self.block)
            return bytes[start..<min(bytes.count, start + Self.block)].map { $0 ^ key }
        }
    }

    func stream(_ range: Range<Int>, chunkSize: Int, to sink: ByteSink) throws {
        precondition(range.lowerBound >= 0 && range.upperBound <= byteCount)
        var out: [UInt8] = []
        func flush() throws {
            guard !out.isEmpty else { return }
            lock.withLock { _largestWrite = max(_largestWrite, out.count) }
            try sink.write(out)
            out.removeAll(keepingCapacity: true)
        }
        for position in range {
            let block = position / Self.block
            out.append(blocks[block][position % Self.block] ^ Self.key(block))
            if out.count == chunkSize { try flush() }
        }
        try flush()
    }
}

/// `ByteSource` is open: a source defined outside Checkpoints is read through every public path of `TensorInfo`
/// exactly as a mapped file is, with the same chunk bounds.
@Suite("byte sources")
struct ByteSourceTests {
    /// Little-endian (or big-endian) f32 bytes of `values`.
    static func bytes(_ values: [Float], bigEndian: Bool = false) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: bigEndian ? v.bitPattern.bigEndian : v.bitPattern.littleEndian) { Array($0) } }
    }

    static let values = (0..<24).map { Float($0) * 0.75 - 3 }

    static func scrambled(_ layout: TensorGeometry, bigEndian: Bool = false) -> (TensorInfo, ScrambledBlockSource) {
        let source = ScrambledBlockSource(bytes(values, bigEndian: bigEndian))
        let storage = TensorStorage(key: "s", bigEndian: bigEndian, source: source)
        return (TensorInfo(name: "t", dtype: .f32, geometry: layout, storage: storage), source)
    }

    static let layouts: [TensorGeometry] = [
        try! TensorGeometry(contiguous: [4, 6]),
        try! TensorGeometry(shape: [3, 4], strides: [4, 1], offset: 5),  // contiguous at an offset
        try! TensorGeometry(shape: [6, 4], strides: [1, 6]),  // transpose
        try! TensorGeometry(shape: [500, 3], strides: [0, 1], offset: 2),  // stride 0
        try! TensorGeometry(shape: [], strides: [], offset: 7),  // scalar
    ]

    @Test("a test-only scrambled source reads through float32, contiguous bytes, streams, sinks and writers")
    func everyPath() throws {
        for bigEndian in [false, true] {
            for layout in Self.layouts {
                let (tensor, source) = Self.scrambled(layout, bigEndian: bigEndian)
                let want = ContainerTests.expected(Self.values, layout)
                let label = "\(layout) big-endian \(bigEndian)"
                #expect(!tensor.isZeroCopy, "\(label)")
                #expect(try tensor.float32() == want, "\(label)")
                #expect(ContainerTests.floats(try tensor.contiguousBytes()) == want, "\(label)")
                #expect(try tensor.withContiguousBytes { ContainerTests.floats(Array($0)) } == want, "\(label)")
                // Streams in bounded chunks, whole or by byte range.
                var chunks: [Int] = []
                var streamed: [UInt8] = []
                try tensor.stream(chunk: 40) { chunks.append($0.count); streamed += $0 }
                #expect(ContainerTests.floats(streamed) == want && chunks.allSatisfy { $0 <= 40 }, "\(label)")
                let all = try tensor.contiguousBytes()
                for range in [1..<7, 3..<all.count, (all.count / 2)..<(all.count - 1)] where range.upperBound <= all.count {
                    var part: [UInt8] = []
                    try tensor.stream(bytes: range, chunk: 12) { part += $0 }
                    #expect(part == Array(all[range]), "\(label) bytes \(range)")
                }
                // Into a sink.
                let sink = CollectingSink()
                try tensor.write(to: sink, chunk: 16)
                #expect(ContainerTests.floats(sink.bytes) == want, "\(label)")
                // As float32 storage: an owned copy, never a mapping.
                let storage = try tensor.float32Storage()
                #expect(!storage.isMapped && storage.array == want && tensor.mappedFloat32Storage() == nil, "\(label)")
                #expect(source.largestWrite <= 1 << 20, "\(label): the source handed out \(source.largestWrite) bytes at once")
            }
        }
    }

    @Test("contiguous reads ask the source for chunks no larger than the reader's")
    func sourceChunks() throws {
        let (tensor, source) = Self.scrambled(try TensorGeometry(contiguous: [24]))
        try tensor.stream(chunk: 8) { _ in }
        #expect(source.largestWrite <= 8)
    }

    @Test("deflated entries stream in pieces no larger than the reader asks, with the stored entry's bytes")
    func deflatedChunks() throws {
        let deflated = try Checkpoint.open(Fixtures.path("checkpoints/original/deflate.pt"))
        let stored = try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.pt"))
        for (a, b) in zip(deflated.tensors, stored.tensors) {
            #expect(a.storage.source is DeflatedEntrySource && b.storage.source is MappedFileSource)
            var pieces: [Int] = []
            var bytes: [UInt8] = []
            try a.stream(chunk: 100) { pieces.append($0.count); bytes += $0 }
            #expect(bytes == (try b.contiguousBytes()) && pieces.allSatisfy { $0 <= 100 }, "\(a.name)")
            #expect(!a.isZeroCopy && b.isZeroCopy == b.geometry.isContiguous)
        }
    }

    @Test("a tensor of a test-only source is written by the safetensors and torch writers and reads back equal")
    func writers() throws {
        let dir = TemporaryDirectory()
        let (plain, _) = Self.scrambled(try TensorGeometry(contiguous: [4, 6]))
        let (view, _) = Self.scrambled(try TensorGeometry(shape: [6, 4], strides: [1, 6]), bigEndian: true)
        let outputs = [
            OutputTensor(name: "plain", tensor: plain), OutputTensor(name: "view", tensor: view),
            OutputTensor(name: "half", tensor: plain).casting(to: .bf16),
        ]
        try SafetensorsWriter.write(outputs, to: dir.file("s.safetensors"))
        try TorchWriter.write(.dict(outputs.map { ($0.name, .tensor($0)) }), to: dir.file("t.pt"))
        for file in ["s.safetensors", "t.pt"] {
            let back = try Checkpoint.open(dir.file(file))
            #expect(try back.tensor(named: "plain")?.float32() == plain.float32(), "\(file)")
            #expect(try back.tensor(named: "view")?.float32() == view.float32(), "\(file)")
            let half = try #require(back.tensor(named: "half"))
            #expect(half.dtype == .bf16)
            let rounded = try plain.float32().map { DTypeConversion.float32(bfloat16: DTypeConversion.bfloat16Bits($0)) }
            #expect(try half.float32() == rounded, "\(file)")
        }
    }
}

/// `TensorInfo.float32Storage()`: in place for aligned f32 of a mapped file, else an owned copy.
@Suite("float32 storage")
struct Float32StorageTests {
    @Test("an aligned f32 tensor of a mapped file is viewed in place and outlives its checkpoint")
    func mapped() throws {
        var storage: Float32Storage?
        var expected: [Float] = []
        do {
            let checkpoint = try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.safetensors"))
            let tensor = try #require(checkpoint.tensors.first { $0.dtype == .f32 && $0.elementCount > 1 })
            storage = try tensor.float32Storage()
            expected = try tensor.float32()
            #expect(tensor.mappedFloat32Storage() != nil)
        }
        let view = try #require(storage)
        #expect(view.isMapped && view.count == expected.count)
        #expect(view.array == expected)
        #expect(view.withUnsafeBufferPointer { Array($0) } == expected && view[0] == expected[0])
    }

    @Test("unaligned, big-endian, strided and narrower tensors are copied; complex ones throw")
    func copies() throws {
        let dir = TemporaryDirectory()
        let values: [Float] = [1, -2, 3.5, 0.25, 8, -16]
        let path = dir.file("raw")
        let raw = [0, 0] + ByteSourceTests.bytes(values) + ByteSourceTests.bytes(values, bigEndian: true)
        FileManager.default.createFile(atPath: path, contents: Data(raw))
        let file = try MappedFile(path: path)
        let unaligned = TensorInfo(
            name: "u", dtype: .f32, geometry: try TensorGeometry(contiguous: [6]),
            storage: TensorStorage(key: "u", source: MappedFileSource(file: file, offset: 2, count: 24)))
        let big = TensorInfo(
            name: "b", dtype: .f32, geometry: try TensorGeometry(contiguous: [6]),
            storage: TensorStorage(key: "b", bigEndian: true, source: MappedFileSource(file: file, offset: 26, count: 24)))
        let strided = TensorInfo(
            name: "s", dtype: .f32, geometry: try TensorGeometry(shape: [3, 2], strides: [1, 3]),
            storage: TensorStorage(key: "s", source: MappedFileSource(file: file, offset: 2, count: 24)))
        for (tensor, want) in [(unaligned, values), (big, values), (strided, [1, 0.25, -2, 8, 3.5, -16])] {
            let storage = try tensor.float32Storage()
            #expect(!storage.isMapped && storage.array == want, "\(tensor.name)")
            #expect(tensor.mappedFloat32Storage() == nil)
        }
        let dtypes = try Checkpoint.open(Fixtures.path("checkpoints/original/dtypes.safetensors"))
        for name in ["bf16", "f16", "f64", "i32", "f8e4m3", "empty_f32", "scalar_f32"] {
            let tensor = try #require(dtypes.tensor(named: name))
            let storage = try tensor.float32Storage()
            // Bit patterns: the fixture holds NaNs and infinities.
            #expect(storage.array.map(\.bitPattern) == (try tensor.float32()).map(\.bitPattern), "\(name)")
            #expect(storage.isMapped == (tensor.dtype == .f32 && tensor.elementCount > 0), "\(name)")
        }
        #expect(throws: TensorsError.unsupportedConversion(.c64)) { try dtypes.tensor(named: "c64")!.float32Storage() }
    }
}

@Suite("byte sinks")
struct ByteSinkTests {
    @Test("Float32Sink converts elements split across writes and checks the count")
    func float32Sink() throws {
        let halves: [Float] = [1, -0.5, 65504, 0x1p-14]
        let bytes = halves.flatMap { v in withUnsafeBytes(of: DTypeConversion.halfBits(v).littleEndian) { Array($0) } }
        var out = [Float](repeating: 0, count: 4)
        try out.withUnsafeMutableBufferPointer { buffer in
            let sink = Float32Sink(destination: buffer, dtype: .f16)
            for cut in [0..<1, 1..<4, 4..<5, 5..<8] { try sink.write(Array(bytes[cut])) }
            try sink.finish()
            #expect(throws: CheckpointError.self) { try sink.write([0, 0]) }
        }
        #expect(out == halves)
        var short = [Float](repeating: 0, count: 3)
        try short.withUnsafeMutableBufferPointer { buffer in
            let sink = Float32Sink(destination: buffer, dtype: .f32)
            try sink.write([0, 0, 0x80, 0x3F, 0])
            #expect(throws: CheckpointError.self) { try sink.finish() }
        }
    }

    @Test("WindowSink forwards exactly its range; CountingSink counts and passes kernel copies on")
    func windowAndCounting() throws {
        let collected = CollectingSink()
        let window = WindowSink(range: 3..<9, downstream: collected)
        for piece in [[0, 1], [2, 3, 4, 5], [6], [7, 8, 9, 10]] as [[UInt8]] { try window.write(piece) }
        #expect(collected.bytes == [3, 4, 5, 6, 7, 8])

        var reported = 0
        let counter = CountingSink { reported += $0 }
        try counter.write([1, 2, 3])
        #expect(counter.count == 3 && reported == 3)
        #expect(try counter.copy(from: try MappedFile(path: Fixtures.path("checkpoints/original/dtypes.safetensors")), offset: 0, count: 8) == false)

        let dir = TemporaryDirectory()
        let source = try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.safetensors"))
        let tensor = try #require(source.tensors.first { $0.byteCount > 64 })
        let written = try AtomicFileWriter.withFile(at: dir.file("copy")) { out -> Int in
            let counting = CountingSink(downstream: out)
            try tensor.write(to: counting)
            return counting.count
        }
        #expect(written == tensor.byteCount)
        #expect([UInt8](try #require(FileManager.default.contents(atPath: dir.file("copy")))) == (try tensor.contiguousBytes()))
    }
}

@Suite("atomic file writer")
struct AtomicFileWriterTests {
    @Test("write(_:to:) writes in one call, refuses an existing file unless overwrite, and leaves no temporary file")
    func oneCall() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("out.bin")
        try AtomicFileWriter.write([1, 2, 3], to: path)
        #expect([UInt8](try #require(FileManager.default.contents(atPath: path))) == [1, 2, 3])
        #expect {
            try AtomicFileWriter.write([9], to: path)
        } throws: { error in
            guard case .outputExists(let p)? = error as? CheckpointError else { return false }
            return p == path && !"\(error)".contains("--")
        }
        try AtomicFileWriter.write([4], to: path, overwrite: true, durable: true)
        #expect([UInt8](try #require(FileManager.default.contents(atPath: path))) == [4])
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try AtomicFileWriter.withFile(at: path, overwrite: true) { out in
                try out.write([5, 6])
                throw Boom()
            }
        }
        #expect([UInt8](try #require(FileManager.default.contents(atPath: path))) == [4])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.bin"])
    }
}
