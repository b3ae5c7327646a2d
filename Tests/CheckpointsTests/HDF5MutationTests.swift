@testable import Checkpoints
import DitkitTestSupport
import Foundation
import Tensors
import Testing

/// Damaged copies of real h5py files must give a `CheckpointError` (exit 3) or a tree whose every dataset streams
/// and decodes — never a trap, a hang or unbounded memory. Deterministic (seeded), bounded.
@Suite("HDF5 mutations")
struct HDF5MutationTests {
    /// Opens `bytes` as an HDF5 file and reads everything in it. Returns whether it opened.
    static func exercise(_ bytes: [UInt8], at path: String) throws -> Bool {
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let h5 = try HDF5File(file: try MappedFile(path: path))
            var firstError: CheckpointError?
            for dataset in h5.root.allDatasets {
                do {
                    if dataset.dataspace.elementCount <= 4096 { _ = try h5.value(of: dataset) }
                    if case .variableString = dataset.datatype { continue }
                    let source = try h5.source(of: dataset)
                    try source.stream(0..<source.byteCount, chunkSize: 4096, to: CountingSink())
                } catch let error as CheckpointError {
                    firstError = firstError ?? error
                }
            }
            if let firstError { throw firstError }
            return true
        } catch let error as CheckpointError {
            #expect(error.exitCode == 3, "\(error)")
            return false
        }
    }

    final class CountingSink: ByteSink {
        var count = 0
        func write(_ bytes: UnsafeRawBufferPointer) throws { count += bytes.count }
    }

    static let sources = ["hdf5/attrs.h5", "hdf5/types.h5", "hdf5/hdf5-1.14/types.h5", "hdf5/hostile/lz4-original-size-lies.h5"]

    @Test("1000 random mutations of each small h5py file open or fail cleanly", arguments: sources)
    func randomMutations(_ source: String) throws {
        let original = [UInt8](try #require(FileManager.default.contents(atPath: Fixtures.path(source))))
        let dir = TemporaryDirectory()
        var rng = MutationTests.Generator(state: UInt64(source.utf8.count) &* 104_729 &+ 3)
        var opened = 0, refused = 0
        for i in 0..<1000 {
            var bytes = original
            switch rng.below(4) {
            case 0:
                bytes.removeLast(1 + rng.below(bytes.count - 1))
            case 1:
                // Structure lives in the first few KiB (superblock, headers, B-trees, heaps): flip there mostly.
                for _ in 0..<(1 + rng.below(4)) {
                    let at = rng.below(2) == 0 ? rng.below(min(bytes.count, 4096)) : rng.below(bytes.count)
                    bytes[at] ^= UInt8(1 + rng.below(255))
                }
            case 2:
                let at = rng.below(min(bytes.count, 4096))
                let word: UInt64 = [UInt64.max, 1 << 63, 0xFFFF_FFFF, 1 << 40, 0x7FFF_FFFF, 0, UInt64(bytes.count)][rng.below(7)]
                for k in 0..<8 where at + k < bytes.count { bytes[at + k] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(k))) }
            default:
                let from = rng.below(bytes.count), to = rng.below(min(bytes.count, 4096)), length = 1 + rng.below(48)
                for k in 0..<length where from + k < bytes.count && to + k < bytes.count { bytes[to + k] = original[from + k] }
            }
            if try Self.exercise(bytes, at: dir.file("m\(i).h5")) { opened += 1 } else { refused += 1 }
        }
        #expect(opened + refused == 1000)
        #expect(refused > 0 && opened > 0, "opened \(opened), refused \(refused)")
    }

    @Test("every 4-byte position of attrs.h5's first 4 KiB set to 0, 2^32-1 and 2^64-1 opens or fails cleanly")
    func wordSweep() throws {
        let original = [UInt8](try #require(FileManager.default.contents(atPath: Fixtures.path("hdf5/attrs.h5"))))
        let dir = TemporaryDirectory()
        let words: [UInt64] = [0, 0xFFFF_FFFF, .max]
        var i = 0
        for offset in stride(from: 0, to: min(original.count - 8, 4096), by: 4) {
            for word in words {
                var bytes = original
                for k in 0..<8 { bytes[offset + k] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(k))) }
                _ = try Self.exercise(bytes, at: dir.file("w\(i).h5"))
                i += 1
            }
        }
    }
}
