import Checkpoints
import Foundation
import Tensors
import DitkitTestSupport
import Testing

@Suite("safetensors writer and sharded index")
struct SafetensorsTests {
    @Test("writing every tensor of dtypes.safetensors reproduces it tensor for tensor, header padded to 8, format pt")
    func roundTrip() throws {
        let source = try Checkpoint.open(Fixtures.path("checkpoints/original/dtypes.safetensors"))
        let dir = TemporaryDirectory()
        let out = dir.file("copy.safetensors")
        let written = try SafetensorsWriter.write(
            source.tensors.map { SafetensorsWriter.Entry(name: $0.name, tensor: $0) }, metadata: [("note", "test")], to: out)
        let copy = try Checkpoint.open(out)
        #expect(copy.format == .safetensors)
        #expect(copy.tensors.map(\.name) == source.tensors.map(\.name))
        for (a, b) in zip(source.tensors, copy.tensors) {
            #expect(a.dtype == b.dtype && a.shape == b.shape)
            #expect(try a.contiguousBytes() == b.contiguousBytes(), "\(a.name)")
        }
        #expect(copy.metadata.map(\.0) == ["format", "note"])
        #expect(copy.metadata.first?.1 == "pt")
        let data = try #require(FileManager.default.contents(atPath: out))
        #expect(data.count == written)
        let headerLength = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
        #expect(headerLength % 8 == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["copy.safetensors"], "no temporary file left")
    }

    @Test("non-contiguous and big-endian tensors are written as contiguous little-endian data")
    func viewsAreGathered() throws {
        let views = try Checkpoint.open(Fixtures.path("checkpoints/original/views.pt"))
        let big = try Checkpoint.open(Fixtures.path("checkpoints/original/bigendian.pt"))
        let dir = TemporaryDirectory()
        let tensors = views.tensors + big.tensors.prefix(3).map {
            TensorInfo(name: "big." + $0.name, dtype: $0.dtype, geometry: $0.geometry, storage: $0.storage)
        }
        try SafetensorsWriter.write(tensors.map { SafetensorsWriter.Entry(name: $0.name, tensor: $0) }, to: dir.file("v.safetensors"))
        let copy = try Checkpoint.open(dir.file("v.safetensors"))
        for tensor in tensors {
            let mine = try #require(copy.tensor(named: tensor.name))
            #expect(mine.geometry.isContiguous)
            #expect(try mine.contiguousBytes() == tensor.contiguousBytes(), "\(tensor.name)")
        }
    }

    @Test("an existing file is not replaced without overwrite, and a failed write leaves nothing behind")
    func atomic() throws {
        let dir = TemporaryDirectory()
        let out = dir.file("x.safetensors")
        try Data("keep".utf8).write(to: URL(fileURLWithPath: out))
        #expect(throws: CheckpointError.self) {
            try SafetensorsWriter.write([], to: out)
        }
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "keep")
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try SafetensorsWriter.write(
                [SafetensorsWriter.Entry(name: "a", dtype: .f32, shape: [2]) { _ in throw Boom() }], to: out, overwrite: true)
        }
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "keep")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["x.safetensors"])
    }

    @Test("sharded writing splits by size, names shards as diffusers does, and reads back through the index",
          arguments: [nil, "fp16"] as [String?])
    func sharded(_ variant: String?) throws {
        let source = try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.safetensors"))
        let dir = TemporaryDirectory()
        let files = try ShardedSafetensors.write(
            source.tensors.map { SafetensorsWriter.Entry(name: $0.name, tensor: $0) }, directory: dir.path,
            baseName: "diffusion_pytorch_model", variant: variant, maxShardBytes: 64 * 1024)
        let expectedIndex = variant == nil ? "diffusion_pytorch_model.safetensors.index.json" : "diffusion_pytorch_model.safetensors.index.fp16.json"
        #expect(files.last == expectedIndex)
        #expect(files.count >= 4)
        let firstShard = variant == nil ? "diffusion_pytorch_model-00001-of-0000\(files.count - 1).safetensors"
            : "diffusion_pytorch_model.fp16-00001-of-0000\(files.count - 1).safetensors"
        #expect(files.first == firstShard)
        let sharded = try ShardedSafetensors(indexPath: dir.file(expectedIndex))
        #expect(sharded.tensors.map(\.name) == source.tensors.map(\.name))
        for (a, b) in zip(source.tensors, sharded.tensors) { #expect(try a.contiguousBytes() == b.contiguousBytes()) }
        #expect(sharded.notes.isEmpty, "total_size agrees")
    }
}

@Suite("JSON")
struct JSONTests {
    @Test("parses nested values with escapes and keeps key order")
    func parse() throws {
        let value = try JSONParser.parse(#"{"b": [1, -2.5e3, true, null], "a": "x\u00e9\ud83d\ude00\n", "c": {}}"#)
        #expect(value.objectValue?.map(\.0) == ["b", "a", "c"])
        #expect(value["a"]?.stringValue == "xé😀\n")
        #expect(value["b"]?.arrayValue?[1] == .double(-2500))
        #expect(try JSONParser.parse(value.serialized()) == value)
        #expect(try JSONParser.parse(value.serialized(pretty: true)) == value)
    }

    @Test("rejects duplicates, trailing text, deep nesting and bad escapes", arguments: [
        #"{"a": 1, "a": 2}"#, #"{"a": 1} x"#, String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
        #""\x""#, #"{"a" 1}"#, "[1,]", "01",
    ])
    func rejects(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }
}
