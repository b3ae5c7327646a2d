import Checkpoints
import Foundation
import Tensors
import DitkitTestSupport
import Testing

/// Every non-hostile fixture opens with exactly the tensors, bytes and values PyTorch/diffusers recorded.
@Suite("Fixtures made by torch and diffusers")
struct FixtureTests {
    static let readable = Fixtures.entries().filter { $0.entry["problem"] == nil }

    @Test("format, tensor names, dtypes, shapes, strides and bytes match the manifest", arguments: readable)
    func tensorsMatch(_ fixture: FixtureCase) throws {
        let options = OpenOptions(variant: fixture.entry["variant"]?.stringValue, allow: Set(fixture.allow))
        let checkpoint = try Checkpoint.open(fixture.absolutePath, options: options)
        let kind = fixture.entry["kind"]!.stringValue!
        #expect(checkpoint.format.rawValue == kind)

        let expected = fixture.entry["tensors"]?.arrayValue ?? []
        var names = checkpoint.tensors.map(\.name)
        var expectedNames = expected.compactMap { $0["name"]?.stringValue }
        if fixture.entry["order"]?.stringValue == "sorted" {
            names.sort()
            expectedNames.sort()
        }
        #expect(names == expectedNames)

        let byName = Dictionary(checkpoint.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for item in expected {
            let name = item["name"]!.stringValue!
            guard let tensor = byName[name] else { continue }
            #expect(tensor.dtype.rawValue == item["dtype"]?.stringValue, "\(name) dtype")
            #expect(tensor.shape == item["shape"]?.arrayValue?.compactMap(\.intValue), "\(name) shape")
            if let strides = item["stride"]?.arrayValue?.compactMap(\.intValue), tensor.elementCount > 1 {
                // Strides of size-1 dimensions carry no meaning; compare the others.
                let meaningful = zip(tensor.shape, zip(tensor.geometry.strides, strides)).filter { $0.0 > 1 }
                #expect(meaningful.allSatisfy { $0.1.0 == $0.1.1 }, "\(name) strides \(tensor.geometry.strides) vs \(strides)")
            }
            if let offset = item["storage_offset"]?.intValue, kind != "torch-legacy" {
                #expect(tensor.geometry.offset == offset, "\(name) storage offset")
            }
            if let grad = item["requires_grad"]?.boolValue, let ours = tensor.requiresGrad {
                #expect(ours == grad, "\(name) requires_grad")
            }
            let crc = try tensor.withContiguousBytes { CRC32.checksum($0) }
            #expect(Int(crc) == item["crc32"]?.intValue, "\(name) crc32 of its little-endian contiguous bytes")
            let head = try TensorValues.head(tensor)
            let expectedHead = item["head"]?.arrayValue ?? []
            #expect(
                head.count == expectedHead.count && zip(head, expectedHead).allSatisfy { TensorValues.same($0, $1) },
                "\(name) first values \(head) vs \(expectedHead)")
            if let other = item["shares_storage_with"]?.stringValue, let otherTensor = byName[other] {
                #expect(tensor.storage === otherTensor.storage || tensor.storage.key == otherTensor.storage.key,
                        "\(name) shares its storage with \(other)")
            }
        }
    }

    @Test("non-tensor values match the manifest", arguments: readable.filter { ($0.entry["values"]?.objectValue?.count ?? 0) > 0 })
    func valuesMatch(_ fixture: FixtureCase) throws {
        let checkpoint = try Checkpoint.open(fixture.absolutePath)
        let expected = fixture.entry["values"]!.objectValue!
        let ours = Dictionary(checkpoint.values.filter { !$0.isOpaqueObject }.map { ($0.path, $0.json) }, uniquingKeysWith: { a, _ in a })
        #expect(Set(ours.keys) == Set(expected.map(\.0)))
        for (path, value) in expected {
            #expect(ours[path].map { TensorValues.same($0, value) } == true, "\(path): \(String(describing: ours[path])) vs \(value)")
        }
    }

    @Test("a DiT training checkpoint keeps its argparse.Namespace as an opaque value with its fields")
    func trainingArguments() throws {
        let checkpoint = try Checkpoint.open(Fixtures.path("checkpoints/original/train-ckpt.pt"))
        let args = try #require(checkpoint.values.first { $0.path == "args" })
        #expect(args.isOpaqueObject)
        #expect(args.kind == "argparse.Namespace")
        #expect(checkpoint.values.first { $0.path == "args.model" }?.json == .string("DiT-XL/2"))
        #expect(checkpoint.tensor(named: "opt.state.3.exp_avg") != nil)
        #expect(checkpoint.tensor(named: "ema.blocks.0.attn.qkv.weight")?.shape == [96, 32])
    }

    @Test("--strict refuses the Namespace of a training checkpoint, naming it")
    func strictRefusesNamespace() throws {
        #expect {
            try Checkpoint.open(Fixtures.path("checkpoints/original/train-ckpt.pt"), options: OpenOptions(strict: true))
        } throws: { error in
            guard let error = error as? CheckpointError, case .notAllowed = error else { return false }
            return error.exitCode == 3 && error.description.contains("argparse.Namespace")
        }
    }

    @Test("the same weights in every container hold the same bytes")
    func sameWeightsEverywhere() throws {
        let reference = try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.pt"))
        for other in [
            "tiny-dit-legacy.pt", "tiny-dit-p4.pt", "tiny-dit-p5.pt", "tiny-dit.safetensors", "bigendian.pt", "deflate.pt",
            "badcrc.pt", "nocrc.pt", "tiny-dit-sharded",
        ] {
            let path = Fixtures.path("checkpoints/original/" + other)
            guard FileManager.default.fileExists(atPath: path) else { continue }
            let checkpoint = try Checkpoint.open(path)
            #expect(checkpoint.tensors.count == reference.tensors.count, "\(other)")
            for tensor in reference.tensors {
                let mine = try #require(checkpoint.tensor(named: tensor.name), "\(other) lacks \(tensor.name)")
                #expect(try mine.contiguousBytes() == tensor.contiguousBytes(), "\(other): \(tensor.name)")
            }
        }
    }

    @Test("stored zip entries are read zero-copy; compressed ones are inflated")
    func zeroCopy() throws {
        let stored = try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.pt"))
        #expect(stored.tensors.allSatisfy { $0.isZeroCopy })
        let st = try Checkpoint.open(Fixtures.path("checkpoints/original/tiny-dit.safetensors"))
        #expect(st.tensors.allSatisfy { $0.isZeroCopy })
        let deflated = try Checkpoint.open(Fixtures.path("checkpoints/original/deflate.pt"))
        #expect(deflated.tensors.allSatisfy { !$0.isZeroCopy })
        let big = try Checkpoint.open(Fixtures.path("checkpoints/original/bigendian.pt"))
        #expect(big.tensors.allSatisfy { !$0.isZeroCopy })
        #expect(big.notes.contains { $0.contains("big-endian") })
    }
}
