import CDitkitZip
import Checkpoints
import Foundation
import Tensors
import DitkitTestSupport
import Testing

@Suite("torch .pt writer")
struct TorchWriterTests {
    @Test("a written state dict reads back identically, passes libzip's consistency and CRC checks, data aligned to 64")
    func roundTrip() throws {
        let source = try Checkpoint.open(Fixtures.path("checkpoints/original/dtypes.pt"))
        let dir = TemporaryDirectory()
        let path = dir.file("out.pt")
        let tensors = source.tensors  // every dtype, complex and float8 (pickled with _rebuild_tensor_v3) included
        try TorchWriter.write(.dict(tensors.map { ($0.name, .tensor(OutputTensor(name: $0.name, tensor: $0))) } + [("step", .int(7))]), to: path)
        let back = try Checkpoint.open(path)
        #expect(back.tensors.map(\.name) == tensors.map(\.name))
        for (a, b) in zip(tensors, back.tensors) {
            #expect(a.dtype == b.dtype && a.shape == b.shape)
            let same = try a.contiguousBytes() == b.contiguousBytes()
            #expect(same, "\(a.name)")
        }
        #expect(back.values.first { $0.path == "step" }?.json == .int(7))

        let file = try MappedFile(path: path)
        let directory = try ZipDirectory(file: file)
        #expect(directory.entries.first?.name == "out/data.pkl")
        for entry in directory.entries where entry.name.contains("/data/") {
            #expect(entry.dataOffset % 64 == 0, "\(entry.name) at \(entry.dataOffset)")
        }
        var code: Int32 = 0
        let archive = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &code)
        #expect(archive != nil, "libzip consistency check failed with code \(code)")
        if let archive {
            defer { zip_discard(archive) }
            #expect(zip_get_num_entries(archive, 0) == Int64(directory.entries.count))
            // Reading each entry to its end makes libzip verify its CRC.
            for (index, entry) in directory.entries.enumerated() {
                let handle = zip_fopen_index(archive, zip_uint64_t(index), 0)
                #expect(handle != nil)
                var buffer = [UInt8](repeating: 0, count: entry.uncompressedSize + 1)
                let n = buffer.withUnsafeMutableBytes { zip_fread(handle, $0.baseAddress, zip_uint64_t($0.count)) }
                #expect(n == Int64(entry.uncompressedSize), "\(entry.name): libzip read \(n) bytes (CRC error?)")
                zip_fclose(handle)
            }
        }
    }

    @Test("nested dicts (the Cerebras layout's {\"model\": {...}}) and batches over 1000 keys")
    func nested() throws {
        let dir = TemporaryDirectory()
        let one = OutputTensor(name: "x", dtype: .f32, shape: [2]) { sink in try [Float(1), 2].withUnsafeBytes { try sink.write($0) } }
        let many = (0..<1500).map { ("k\($0)", TorchSaveValue.int($0)) }
        try TorchWriter.write(.dict([("model", .dict([("model.a", .tensor(one))])), ("many", .dict(many))]), to: dir.file("n.pt"))
        let back = try Checkpoint.open(dir.file("n.pt"))
        #expect(back.tensor(named: "model.model.a")?.shape == [2])
        #expect(back.values.filter { $0.path.hasPrefix("many.") }.count == 1500)
        #expect(back.values.first { $0.path == "many.k1499" }?.json == .int(1499))
    }
}
