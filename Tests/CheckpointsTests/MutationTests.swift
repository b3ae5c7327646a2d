import Checkpoints
import Foundation
import TestSupport
import Testing

/// Damaged copies of real fixtures must give an error or a checkpoint whose every tensor reads — never a crash
/// or a hang. Seeded, so a failure reproduces.
@Suite("Mutated fixtures")
struct MutationTests {
    static let sources = [
        "checkpoints/original/tiny-dit.pt", "checkpoints/original/tiny-dit-legacy.pt", "checkpoints/original/views.pt",
        "checkpoints/original/deflate.pt", "checkpoints/original/dtypes.safetensors", "checkpoints/original/train-ckpt.pt",
        "checkpoints/original/views-legacy.pt", "checkpoints/original/tiny-dit-p5.pt",
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
}
