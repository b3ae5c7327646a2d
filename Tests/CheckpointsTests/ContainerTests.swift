import Checkpoints
import Foundation
import Tensors
import DitkitTestSupport
import Testing

/// The mechanisms behind the hostile container cases (fixtures/hostile/containers): regular files only, views
/// streamed in bounded chunks, reads that check their sizes, deflated entries inflated from the validated bytes,
/// duplicate zip names refused, expansion bombs refused.
@Suite("Containers: regular files, streaming views, declared sizes")
struct ContainerTests {
    static let hostile = Fixtures.path("hostile/containers")

    // MARK: regular files only

    /// A FIFO as the checkpoint, as a component's config.json and as its weights file: each refused at once by
    /// kind (exit 3), where opening it used to wait forever for a writer.
    @Test("named pipes are refused by the CLI within seconds, wherever they appear", arguments: ["input", "config", "weights"])
    func fifo(_ place: String) throws {
        let dir = TemporaryDirectory()
        let target: String
        let pipe: String
        switch place {
        case "input":
            pipe = dir.file("model.pt")
            target = pipe
        case "config":
            try FileManager.default.createDirectory(atPath: dir.file("c"), withIntermediateDirectories: true)
            pipe = dir.file("c/config.json")
            FileManager.default.createFile(atPath: dir.file("c/diffusion_pytorch_model.safetensors"), contents: Data())
            target = dir.file("c")
        default:
            try FileManager.default.createDirectory(atPath: dir.file("c"), withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: dir.file("c/config.json"), contents: Data("{}".utf8))
            pipe = dir.file("c/diffusion_pytorch_model.safetensors")
            target = dir.file("c")
        }
        #expect(mkfifo(pipe, 0o600) == 0)
        #expect(throws: CheckpointError.self) { try Checkpoint.open(target) }
        let result = try DitkitBinary.run(["inspect", target], timeout: 10)
        #expect(!result.timedOut && !result.signaled)
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains(pipe) && result.stderr.contains("named pipe"), "\(result.stderr)")
        #expect(result.seconds < 5)
    }

    // MARK: empty tensors

    @Test("a safetensors tensor of shape [0, 2^40, 2^40] opens, writes and reads back unchanged")
    func hugeEmpty() throws {
        let source = try Checkpoint.open(Self.hostile + "/st-empty-2e40.safetensors")
        let tensor = try #require(source.tensor(named: "empty"))
        #expect(tensor.shape == [0, 1 << 40, 1 << 40] && tensor.byteCount == 0 && tensor.isZeroCopy)
        #expect(try tensor.contiguousBytes().isEmpty && (try tensor.float32()).isEmpty)
        let dir = TemporaryDirectory()
        try SafetensorsWriter.write([OutputTensor(name: "empty", tensor: tensor)], to: dir.file("out.safetensors"))
        let back = try #require(try Checkpoint.open(dir.file("out.safetensors")).tensor(named: "empty"))
        #expect(back.shape == tensor.shape && back.dtype == .f32)
    }

    // MARK: streaming views

    /// A storage of `values` f32 in a temporary file, and a tensor viewing it with `layout`.
    static func tensor(_ values: [Float], _ layout: TensorGeometry, in dir: TemporaryDirectory, bigEndian: Bool = false) throws -> TensorInfo {
        let path = dir.file("storage-\(UUID().uuidString)")
        let bytes = values.flatMap { v -> [UInt8] in
            let bits = bigEndian ? v.bitPattern.bigEndian : v.bitPattern.littleEndian
            return withUnsafeBytes(of: bits) { Array($0) }
        }
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let file = try MappedFile(path: path)
        let storage = TensorStorage(key: "s", bigEndian: bigEndian, source: MappedFileSource(file: file, offset: 0, count: bytes.count))
        return TensorInfo(name: "t", dtype: .f32, geometry: layout, storage: storage)
    }

    /// The elements of a view computed naively, row-major.
    static func expected(_ values: [Float], _ layout: TensorGeometry) -> [Float] {
        var out: [Float] = []
        func visit(_ d: Int, _ position: Int) {
            if d == layout.rank { out.append(values[position]); return }
            for i in 0..<layout.shape[d] { visit(d + 1, position + i * layout.strides[d]) }
        }
        visit(0, layout.offset)
        return out
    }

    static func floats(_ bytes: [UInt8]) -> [Float] {
        bytes.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
    }

    @Test("strided, stride-0 and big-endian views stream in chunks no larger than asked, with the right bytes")
    func chunkedViews() throws {
        let dir = TemporaryDirectory()
        let values = (0..<24).map { Float($0) + 0.5 }
        let layouts = [
            try TensorGeometry(shape: [1000, 3], strides: [0, 1], offset: 2),  // expanded rows
            try TensorGeometry(shape: [4, 6], strides: [1, 4]),  // transpose
            try TensorGeometry(shape: [2, 3, 2], strides: [12, 1, 6], offset: 0),
            try TensorGeometry(shape: [], strides: [], offset: 5),  // scalar
            try TensorGeometry(shape: [7, 1, 5], strides: [0, 99, 0], offset: 23),
        ]
        for bigEndian in [false, true] {
            for layout in layouts {
                let tensor = try Self.tensor(values, layout, in: dir, bigEndian: bigEndian)
                let want = Self.expected(values, layout)
                var chunks: [Int] = []
                var streamed: [UInt8] = []
                try tensor.stream(chunk: 40) { chunks.append($0.count); streamed += $0 }
                #expect(Self.floats(streamed) == want, "\(layout) big-endian \(bigEndian)")
                #expect(chunks.allSatisfy { $0 <= 40 }, "\(layout): chunks \(chunks.prefix(4))")
                #expect(Self.floats(try tensor.contiguousBytes()) == want)
                // Byte ranges that start and end inside elements give exactly that slice.
                let all = try tensor.contiguousBytes()
                for range in [1..<7, 3..<all.count, 0..<1, (all.count / 2)..<(all.count - 1)] where range.upperBound <= all.count {
                    var part: [UInt8] = []
                    try tensor.stream(bytes: range, chunk: 12) { part += $0 }
                    #expect(part == Array(all[range]), "\(layout) bytes \(range)")
                }
            }
        }
    }

    @Test("an empty view reads no storage, however far its offset")
    func emptyView() throws {
        let dir = TemporaryDirectory()
        let tensor = try Self.tensor([1], try TensorGeometry(shape: [0, 3], strides: [3, 1], offset: 1 << 62), in: dir)
        #expect(try tensor.contiguousBytes().isEmpty)
        var calls = 0
        try tensor.stream { _ in calls += 1 }
        #expect(calls == 0 && tensor.byteCount == 0)
    }

    @Test("a view past its storage or past 2^63 bytes throws when read, naming the tensor; byteCount saturates")
    func checkedReads() throws {
        let dir = TemporaryDirectory()
        let outside = try Self.tensor([1, 2], try TensorGeometry(shape: [3], strides: [1]), in: dir)
        #expect { try outside.contiguousBytes() } throws: { "\($0)".contains("tensor t") && "\($0)".contains("reaches element 3") }
        let huge = try Self.tensor([1], try TensorGeometry(shape: [1 << 31, 1 << 31], strides: [0, 0]), in: dir)
        #expect(huge.byteCount == .max)
        #expect { try huge.stream { _ in } } throws: { "\($0)".contains("more than 2^63 bytes") }
    }

    // MARK: zip

    @Test("deflated entries stream from the archive's own bytes: the tiny DiT deflated reads as the stored one")
    func deflated() throws {
        let deflated = try Checkpoint.open(Fixtures.path("checkpoints/original/deflate.pt"))
        let stored = try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.pt"))
        #expect(deflated.tensors.map(\.name) == stored.tensors.map(\.name))
        for (a, b) in zip(deflated.tensors, stored.tensors) {
            guard a.storage.source is DeflatedEntrySource else { Issue.record("\(a.name) is not deflated"); continue }
            let bytes = try b.contiguousBytes()
            #expect(try a.contiguousBytes() == bytes, "\(a.name)")
            var chunks: [UInt8] = []
            let range = (bytes.count / 3)..<(bytes.count - 1)
            try a.stream(bytes: range) { chunks += $0 }
            #expect(chunks == Array(bytes[range]), "\(a.name) partial")
        }
        #expect(deflated.notes.contains { $0.contains("compressed") })
    }

    @Test("duplicate entry names are refused naming the name and both local header offsets")
    func duplicates() throws {
        let file = try MappedFile(path: Self.hostile + "/duplicate-data-pkl.pt")
        #expect { try ZipDirectory(file: file) } throws: { error in
            let text = "\(error)"
            return text.contains("entry a/data.pkl") && text.contains("appears twice") && text.contains("offsets 0 and")
        }
    }

    @Test("deflate claims past 1032:1, stored size lies and unknown methods are refused before any allocation",
        arguments: [
            ("deflate-claims-4gib.pt", "1032"), ("deflate-zip64-claims-1tib.pt", "1099511627776"),
            ("stored-size-lie.pt", "declares 1073741824"), ("method-bzip2.pt", "compression method 12"),
            ("encrypted.pt", "encrypted"),
        ])
    func declaredSizes(_ c: (String, String)) throws {
        let file = try MappedFile(path: Self.hostile + "/" + c.0)
        #expect { try ZipDirectory(file: file) } throws: { "\($0)".contains(c.1) }
    }

    @Test("every cut of a ZIP64 end record and locator is an error, never a trap")
    func zip64Cuts() throws {
        let bytes = [UInt8](try #require(FileManager.default.contents(atPath: Self.hostile + "/zip64-record-2e63.pt")))
        for cut in 0..<bytes.count {
            for piece in [Array(bytes[..<cut]), Array(bytes[cut...])] {
                #expect(throws: CheckpointError.self) { try piece.withUnsafeBytes { try ZipDirectory(bytes: $0, path: "cut.pt") } }
            }
        }
    }

    // MARK: expansion

    @Test("a stride-0 view within 16x the file + 64 MiB opens and streams; past it, the checkpoint is refused")
    func expansion() throws {
        let fine = try Checkpoint.open(Self.hostile + "/expand-label-table.pt")
        let table = try #require(fine.tensor(named: "y_embedder.embedding_table.weight"))
        #expect(table.shape == [200_001, 32] && table.geometry.strides == [0, 1])
        var total = 0
        var largest = 0
        try table.stream(chunk: 1 << 20) { total += $0.count; largest = max(largest, $0.count) }
        #expect(total == 200_001 * 32 * 4 && largest <= 1 << 20)
        #expect(fine.tensorBytes > fine.storageSummary.bytes)
        #expect { try Checkpoint.open(Self.hostile + "/expand-many.pt") } throws: { error in
            let text = "\(error)"
            return text.contains("expansion bomb") && text.contains("tensor w64")
        }
    }
}
