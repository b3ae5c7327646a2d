import CDitkitLZ4
import Tensors

/// The framing of HDF5 filter 32004 (LZ4, as hdf5plugin's `H5Zlz4.c` and Cerebras' saver write it): a u64
/// big-endian original size, a u32 big-endian block size (clamped to the original size by the writer), then per
/// block a u32 big-endian compressed size and that many bytes of LZ4 BLOCK data (no frame). Each block holds
/// `min(blockSize, remaining)` bytes when decompressed; a block whose compressed size equals that is stored raw
/// (the writer stores a block raw when LZ4 does not make it smaller).
package enum LZ4Blocks {
    /// Why a framed buffer could not be decoded (the caller names the file and chunk).
    package struct Failure: Error, Sendable {
        /// What is wrong, as a sentence fragment.
        package let reason: String
    }

    /// The original size a framed buffer declares (its first 8 bytes), or a failure when it has fewer than 12 bytes
    /// or the size does not fit an `Int`.
    package static func originalSize(_ input: UnsafeRawBufferPointer) throws(Failure) -> Int {
        guard input.count >= 12 else { throw Failure(reason: "LZ4 header needs 12 bytes, the chunk has \(input.count)") }
        guard let size = Checked.int(readBE64(input, 0)) else { throw Failure(reason: "LZ4 original size \(readBE64(input, 0)) is too large") }
        return size
    }

    /// Decodes `input` into `output`, which must be exactly the declared original size: throws when the declared
    /// size is not `output.count`, a block's compressed size runs past the input, a block does not decompress to
    /// exactly its size (`LZ4_decompress_safe`, never writing past the block), or bytes are left over.
    package static func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(Failure) {
        let original = try originalSize(input)
        guard original == output.count else {
            throw Failure(reason: "LZ4 header declares \(original) decompressed bytes, the chunk holds \(output.count)")
        }
        var blockSize = Int(readBE32(input, 8))
        if blockSize > original { blockSize = original }
        guard blockSize > 0 || original == 0 else { throw Failure(reason: "LZ4 block size 0 for \(original) bytes") }
        var read = 12
        var written = 0
        var block = 0
        while written < original {
            let want = min(blockSize, original - written)
            guard input.count - read >= 4 else {
                throw Failure(reason: "LZ4 block \(block) header at byte \(read) is past the end of the \(input.count)-byte chunk")
            }
            let compressed = Int(readBE32(input, read))
            read += 4
            guard compressed <= input.count - read else {
                throw Failure(reason: "LZ4 block \(block) declares \(compressed) compressed bytes at byte \(read), only \(input.count - read) left in the chunk")
            }
            let source = input.baseAddress! + read
            let destination = output.baseAddress! + written
            if compressed == want {
                destination.copyMemory(from: source, byteCount: want)
            } else {
                guard compressed > 0, compressed <= Int(Int32.max), want <= Int(Int32.max) else {
                    throw Failure(reason: "LZ4 block \(block) has an impossible compressed size \(compressed) for \(want) bytes")
                }
                let got = LZ4_decompress_safe(
                    source.assumingMemoryBound(to: CChar.self), destination.assumingMemoryBound(to: CChar.self),
                    Int32(compressed), Int32(want))
                guard got == Int32(want) else {
                    throw Failure(reason: got < 0
                        ? "LZ4 block \(block) at byte \(read - 4) is corrupt (LZ4_decompress_safe failed)"
                        : "LZ4 block \(block) decompresses to \(got) bytes, \(want) expected")
                }
            }
            read += compressed
            written += want
            block += 1
        }
        guard read == input.count else {
            throw Failure(reason: "LZ4 data ends at byte \(read) of the \(input.count)-byte chunk (\(input.count - read) bytes left over)")
        }
    }

    private static func readBE64(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        UInt64(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }

    private static func readBE32(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }
}
