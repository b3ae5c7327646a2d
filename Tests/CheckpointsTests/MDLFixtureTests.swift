@testable import Checkpoints
import Foundation
import Tensors
import DitkitTestSupport
import Testing

/// End to end over fixtures/cerebras-mdl (files written by the real cerebras.pytorch 2.10 saver, 0.4 by a faithful
/// imitation of its removed writer; fixtures/generate/cerebras_mdl.py): every flat key, dtype, shape and the
/// SHA-256 of every tensor's bytes as the real `cerebras.pytorch.load` returned them (expected.json), and the
/// hostile files refused with their exact kinds. Needs the HDF5 parser behind `HDF5File`; until it reads the
/// fixtures, these tests are skipped (the `.mdl` layer itself is tested over hand-built trees in MDLReaderTests).
@Suite("MDL fixtures: real Cerebras saver output against the real loader's view")
struct MDLFixtureTests {
    static let folder = Fixtures.path("cerebras-mdl")

    /// Whether `HDF5File` parses the fixtures (false while it is the contract stub).
    static let hdf5Ready: Bool = {
        guard let file = try? MappedFile(path: folder + "/dit-tiny-0.5-f32-none.mdl") else { return false }
        return (try? HDF5File(file: file)) != nil
    }()

    static func expected() -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: folder + "/expected.json"),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return json
    }

    static let normalFiles = [
        "dit-tiny-0.5-f32-lz4.mdl", "dit-tiny-0.5-bf16-lz4.mdl", "dit-tiny-0.5-f32-none.mdl",
        "dit-tiny-0.4-f32.mdl", "dit-tiny-0.4-bf16.mdl", "object-0.5-benign.mdl",
    ]

    static let dtypeNames: [String: DType] = [
        "float32": .f32, "float64": .f64, "float16": .f16, "bfloat16": .bf16, "int64": .i64, "int32": .i32,
        "int16": .i16, "int8": .i8, "uint8": .u8, "bool": .bool,
    ]

    @Test("every key, dtype, shape and tensor SHA-256 as cerebras.pytorch.load gives them", .enabled(if: hdf5Ready, "needs the HDF5 parser behind HDF5File (helper A)"), arguments: normalFiles)
    func matchesRealLoader(_ name: String) throws {
        let files = try #require(Self.expected()["files"] as? [String: Any])
        let entry = try #require(files[name] as? [String: Any])
        let entries = try #require(entry["entries"] as? [[String: Any]])
        let checkpoint = try Checkpoint.open(Self.folder + "/" + name)
        #expect(checkpoint.format == .mdl)
        var tensors = checkpoint.tensors.makeIterator()
        var values = checkpoint.values.makeIterator()
        let nextTensor: () -> TensorInfo? = { tensors.next() }
        let nextValue: () -> CheckpointValue? = { values.next() }
        for e in entries {
            let key = try #require(e["key"] as? String)
            let kind = try #require(e["kind"] as? String)
            if kind == "tensor" {
                let t = try #require(nextTensor(), "missing tensor \(key)")
                #expect(t.name == key)
                #expect(t.dtype == Self.dtypeNames[e["dtype"] as? String ?? ""], "\(key)")
                #expect(t.shape == (e["shape"] as? [Int]), "\(key)")
                let digest = try t.withContiguousBytes { SHA256.hex($0) }
                #expect(digest == e["sha256"] as? String, "\(key)")
            } else {
                let v = try #require(nextValue(), "missing value \(key)")
                #expect(v.path == key)
                switch kind {
                case "object":
                    #expect(v.isOpaqueObject)
                    #expect(v.kind == e["class"] as? String)
                case "float":
                    #expect(v.kind == "float")
                    #expect(v.text == e["repr"] as? String, "\(key)")
                case "int":
                    #expect(v.kind == "int")
                    #expect(v.json == .int(e["value"] as? Int ?? -1), "\(key)")
                case "bool":
                    #expect(v.kind == "bool")
                    #expect(v.json == .bool(e["value"] as? Bool ?? false), "\(key)")
                case "str":
                    #expect(v.kind == "str")
                    #expect(v.json == .string(e["value"] as? String ?? ""), "\(key)")
                default:
                    #expect(v.kind == "None", "\(key)")
                }
            }
        }
        #expect(nextTensor() == nil)
        #expect(nextValue() == nil)
        let version = try #require(entry["__version__"] as? Double)
        #expect(checkpoint.metadata.contains { $0.0 == "mdl.format_version" && $0.1 == (version == 0.5 ? "0.5" : "0.4") })
    }

    @Test("hostile .mdl files are refused with their exact kinds, and nothing runs", .enabled(if: hdf5Ready, "needs the HDF5 parser behind HDF5File (helper A)"), arguments: [
        ("hostile-0.5-spec-bad-json.mdl", "malformed", "attribute __spec__"),
        ("hostile-0.5-no-success.mdl", "malformed", "attribute __SUCCESS__"),
        ("hostile-0.5-link-missing.mdl", "malformed", "key tied"),
        ("hostile-0.5-link-cycle.mdl", "malformed", "cycle"),
        ("hostile-0.4-spec-non-hex.mdl", "malformed", "offset 40"),
        ("hostile-0.4-spec-os-system.mdl", "hostile", "os.system"),
        ("hostile-0.5-object-os-system.mdl", "hostile", "os.system"),
        // dill's own pickle of range(3) evaluates text from the file: dill._dill._eval_repr('range(0, 3)')
        ("hostile-0.5-object-dill-eval.mdl", "hostile", "dill._dill._eval_repr"),
    ])
    func hostile(_ name: String, _ kind: String, _ mentions: String) throws {
        let marker = "/tmp/ditkit-mdl-pwned"
        try? FileManager.default.removeItem(atPath: marker)
        do {
            _ = try Checkpoint.open(Self.folder + "/" + name)
            Issue.record("\(name) opened")
        } catch let e as CheckpointError {
            switch (kind, e) {
            case ("malformed", .malformed), ("hostile", .hostile): break
            default: Issue.record("\(name): \(e)")
            }
            #expect(e.description.contains(mentions), "\(e)")
            #expect(e.kind == (kind == "hostile" ? .hostile : .input))
        }
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test("a .mdl that is not HDF5 opens by its bytes: torch zip, safetensors (as Cerebras' loader falls back)")
    func nonHDF5() throws {
        let dir = TemporaryDirectory()
        let torch = dir.file("torch.mdl")
        try FileManager.default.copyItem(atPath: Fixtures.path("checkpoints/original/dtypes.pt"), toPath: torch)
        #expect(try Checkpoint.open(torch).format == .torchZip)
        let st = dir.file("st.mdl")
        try FileManager.default.copyItem(atPath: Fixtures.path("checkpoints/original/dtypes.safetensors"), toPath: st)
        #expect(try Checkpoint.open(st).format == .safetensors)
    }
}

/// Damaged `.mdl` files: byte mutations of real saver output (the HDF5 layer and the `.mdl` layer together), and
/// character mutations of the `.mdl` layer's own inputs (spec and leaf metadata JSON) over a hand-built tree. Each
/// gives a checkpoint whose every tensor reads, or a CheckpointError of exit code 3 — never a trap or a hang.
@Suite("MDL mutations")
struct MDLMutationTests {
    @Test("300 byte mutations of small real .mdl files open or fail cleanly", .enabled(if: MDLFixtureTests.hdf5Ready, "needs the HDF5 parser behind HDF5File"), arguments: [
        "object-0.5-benign.mdl", "hostile-0.5-link-missing.mdl", "hostile-0.4-spec-non-hex.mdl",
    ])
    func bytes(_ name: String) throws {
        let original = [UInt8](try #require(FileManager.default.contents(atPath: MDLFixtureTests.folder + "/" + name)))
        let dir = TemporaryDirectory()
        var rng = MutationTests.Generator(state: UInt64(name.utf8.count) &* 104_729 &+ 3)
        var refused = 0
        for i in 0..<300 {
            let path = dir.file("m\(i).mdl")
            FileManager.default.createFile(atPath: path, contents: Data(MutationTests.mutate(original, &rng)))
            do {
                let checkpoint = try Checkpoint.open(path)
                for tensor in checkpoint.tensors { _ = try tensor.withContiguousBytes { $0.count } }
            } catch let error as CheckpointError {
                #expect(error.exitCode == 3, "\(error)")
                refused += 1
            } catch {
                Issue.record("mutation \(i) of \(name) threw a non-checkpoint error: \(error)")
            }
            try? FileManager.default.removeItem(atPath: path)
        }
        #expect(refused > 0)
    }

    @Test("2000 character mutations of the spec and leaf metadata JSON read or fail as CheckpointErrors")
    func json() throws {
        let base = MDLReaderTests.tree05()
        var rng = MutationTests.Generator(state: 0x6d646c)
        let alphabet = Array("{}[]\",:0123456789-.eE truefalsnNaIiy\\*/".utf8)
        var opened = 0, refused = 0
        for _ in 0..<2000 {
            let attributes = base.attributes.map { a -> HDF5Attribute in
                guard case .string(let text) = a.value, a.name == "__spec__" || a.name.hasSuffix(".__metadata__"), rng.below(4) == 0 else { return a }
                var bytes = Array(text.utf8)
                for _ in 0..<(1 + rng.below(3)) {
                    let at = rng.below(bytes.count)
                    switch rng.below(3) {
                    case 0: bytes[at] = alphabet[rng.below(alphabet.count)]
                    case 1: bytes.remove(at: at)
                    default: bytes.insert(alphabet[rng.below(alphabet.count)], at: at)
                    }
                }
                return HDF5Attribute(name: a.name, value: .string(String(decoding: bytes, as: UTF8.self)), offset: 0)
            }
            let tree = MDLReaderTests.group(attributes: attributes, datasets: base.allDatasets)
            do {
                _ = try MDLReaderTests.read(tree)
                opened += 1
            } catch let error as CheckpointError {
                #expect(error.exitCode == 3, "\(error)")
                refused += 1
            }
        }
        #expect(opened > 0 && refused > 0)
    }
}

/// SHA-256 (FIPS 180-4), for comparing tensor bytes with the digests the Python side recorded.
enum SHA256 {
    static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var message = [UInt8](bytes)
        let bitLength = UInt64(message.count) * 8
        message.append(0x80)
        while message.count % 64 != 56 { message.append(0) }
        for i in (0..<8).reversed() { message.append(UInt8(truncatingIfNeeded: bitLength >> (UInt64(i) * 8))) }
        var w = [UInt32](repeating: 0, count: 64)
        for block in stride(from: 0, to: message.count, by: 64) {
            for i in 0..<16 {
                let j = block + 4 * i
                w[i] = UInt32(message[j]) << 24 | UInt32(message[j + 1]) << 16 | UInt32(message[j + 2]) << 8 | UInt32(message[j + 3])
            }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0..<64 {
                let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let ch = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ ch &+ k[i] &+ w[i]
                let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let maj = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ maj
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
        }
        return h.map { v in
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 8 - s.count) + s
        }.joined()
    }

    static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}

@Suite("MDL test support")
struct MDLSupportTests {
    @Test("SHA-256 of known inputs")
    func sha() {
        #expect([UInt8]().withUnsafeBytes { SHA256.hex($0) } == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Array("abc".utf8).withUnsafeBytes { SHA256.hex($0) } == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = [UInt8](repeating: 0x61, count: 1000)
        #expect(long.withUnsafeBytes { SHA256.hex($0) } == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}
