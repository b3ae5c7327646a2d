import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

/// Damaged copies of real fixtures must give an error or a checkpoint whose every tensor reads — never a crash
/// or a hang. Seeded, so a failure reproduces.
@Suite("Mutated fixtures")
struct MutationTests {
    static let sources = [
        "checkpoints/original/tiny-dit.pt", "checkpoints/original/tiny-dit-legacy.pt", "checkpoints/original/views.pt",
        "checkpoints/original/deflate.pt", "checkpoints/original/dtypes.safetensors", "checkpoints/original/train-ckpt.pt",
        "checkpoints/original/views-legacy.pt", "checkpoints/original/tiny-dit-p5.pt", "checkpoints/original/bigendian.pt",
        "hostile/containers/view-size1-stride-max.pt",
    ]

    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    }

    /// Where the structure is: the start (headers, pickles), the end (zip directory) and a few random places.
    static func mutate(_ original: [UInt8], _ rng: inout Generator) -> [UInt8] {
        var bytes = original
        let hot = { (rng: inout Generator) -> Int in
            switch rng.below(3) {
            case 0: return rng.below(min(bytes.count, 4096))
            case 1: return max(0, bytes.count - 1 - rng.below(min(bytes.count, 8192)))
            default: return rng.below(bytes.count)
            }
        }
        switch rng.below(4) {
        case 0:  // truncate
            bytes.removeLast(1 + rng.below(bytes.count - 1))
        case 1:  // flip bytes
            for _ in 0..<(1 + rng.below(8)) { bytes[hot(&rng)] ^= UInt8(1 + rng.below(255)) }
        case 2:  // splice a large or negative-looking integer
            let at = hot(&rng)
            let word: UInt64 = [UInt64.max, 1 << 63, 0xFFFF_FFFF, 1 << 40, 0x7FFF_FFFF][rng.below(5)]
            for i in 0..<8 where at + i < bytes.count { bytes[at + i] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(i))) }
        default:  // duplicate a slice over another place
            let from = hot(&rng), to = hot(&rng), length = 1 + rng.below(64)
            for i in 0..<length where from + i < bytes.count && to + i < bytes.count { bytes[to + i] = original[from + i] }
        }
        return bytes
    }

    @Test("400 mutations of each fixture open or fail cleanly, and whatever opens reads", arguments: sources)
    func mutations(_ source: String) throws {
        let original = [UInt8](try #require(FileManager.default.contents(atPath: Fixtures.path(source))))
        let dir = TemporaryDirectory()
        var rng = Generator(state: UInt64(source.utf8.count) &* 7919 &+ 17)
        var opened = 0, refused = 0
        for i in 0..<400 {
            let path = dir.file("m\(i)")
            FileManager.default.createFile(atPath: path, contents: Data(Self.mutate(original, &rng)))
            do {
                let checkpoint = try Checkpoint.open(path)
                for tensor in checkpoint.tensors { _ = try tensor.contiguousBytes() }
                opened += 1
            } catch let error as CheckpointError {
                #expect(error.exitCode == 3, "\(error)")
                refused += 1
            } catch {
                Issue.record("mutation \(i) of \(source) threw a non-checkpoint error: \(error)")
            }
            try? FileManager.default.removeItem(atPath: path)
        }
        #expect(opened + refused == 400)
        #expect(refused > 0)
    }

    /// Where a file keeps its sizes, counts and offsets: the safetensors header length; the zip end records, each
    /// central directory record's sizes, offset and name/extra lengths, each local header's sizes and name/extra
    /// lengths (first three and last two entries); a legacy file's per-storage element counts. Each is (offset,
    /// width in bytes).
    static func sizeFields(_ bytes: [UInt8], path: String) throws -> [(Int, Int)] {
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            guard let eocd = stride(from: bytes.count - 22, through: 0, by: -1).first(where: { u32($0) == 0x0605_4B50 }) else { return [] }
            var fields = [(eocd + 8, 2), (eocd + 10, 2), (eocd + 12, 4), (eocd + 16, 4)]
            if eocd >= 20, u32(eocd - 20) == 0x0706_4B50 {
                let record = u32(eocd - 12)
                fields += [(eocd - 12, 8), (record + 24, 8), (record + 32, 8), (record + 40, 8), (record + 48, 8)]
            }
            var records: [Int] = []
            var cursor = u32(eocd + 16)
            while cursor + 46 <= bytes.count, u32(cursor) == 0x0201_4B50 {
                records.append(cursor)
                cursor += 46 + u16(cursor + 28) + u16(cursor + 30) + u16(cursor + 32)
            }
            // The first entries (data.pkl and the small text entries) and the last two (storages, the id).
            for record in records.prefix(3) + records.suffix(2) {
                fields += [(record + 20, 4), (record + 24, 4), (record + 28, 2), (record + 30, 2), (record + 42, 4)]
                let local = u32(record + 42)
                if local + 30 <= bytes.count { fields += [(local + 18, 4), (local + 22, 4), (local + 26, 2), (local + 28, 2)] }
            }
            return fields
        }
        let checkpoint = try Checkpoint.open(path)
        if checkpoint.format == .torchLegacy {
            let offsets = Set(checkpoint.tensors.compactMap { t -> Int? in
                (t.storage.source as? MappedFileSource).map { $0.offset - 8 }
            })
            return offsets.sorted().map { ($0, 8) }
        }
        return [(0, 8)]
    }

    @Test("size fields set to 0, 1, 2^32-1, 2^40, 2^63-1, 2^63 and 2^64-1 open or fail cleanly", arguments: sources)
    func sizeFieldMutations(_ source: String) throws {
        let path = Fixtures.path(source)
        let original = [UInt8](try #require(FileManager.default.contents(atPath: path)))
        let fields = try Self.sizeFields(original, path: path)
        #expect(!fields.isEmpty)
        let words: [UInt64] = [0, 1, 0xFFFF_FFFF, 1 << 40, UInt64(Int64.max), 1 << 63, .max]
        let dir = TemporaryDirectory()
        let mutant = dir.file("m")
        for (offset, width) in fields where offset >= 0 && offset + width <= original.count {
            for word in words {
                var bytes = original
                for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(i))) }
                FileManager.default.createFile(atPath: mutant, contents: Data(bytes))
                do {
                    let checkpoint = try Checkpoint.open(mutant)
                    for tensor in checkpoint.tensors { _ = try tensor.contiguousBytes() }
                    _ = (checkpoint.tensorBytes, checkpoint.elementCount, checkpoint.storageSummary)
                } catch let error as CheckpointError {
                    #expect(error.exitCode == 3, "\(source) field at \(offset) = \(word): \(error)")
                } catch {
                    Issue.record("\(source) field at \(offset) = \(word) threw a non-checkpoint error: \(error)")
                }
            }
        }
    }
}
