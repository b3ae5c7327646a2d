import CDitkitLZ4
import Tensors

/// The compressing side of HDF5 filter 32004 (the LZ4 filter hdf5plugin registers and the Cerebras saver uses),
/// framed exactly as hdf5plugin's `H5Zlz4.c` frames a chunk: the original size as a big-endian u64, the block size
/// as a big-endian u32 (the filter's default block of 1 GiB, cut to the chunk's size: one block per chunk for every
/// chunk h5py's chunk guess makes), then per block its stored size as a big-endian u32 and the LZ4 block
/// (`LZ4_compress_default`, no frame); a block LZ4 does not shrink is stored raw with its stored size equal to the
/// block size. Checked against chunks hdf5plugin 5.1 wrote (a zero chunk of 19,000 bytes → 85-byte block; a random
/// chunk of 3,600 bytes → stored raw, 3,616 bytes in all).
package enum LZ4ChunkCompressor {
    /// hdf5plugin's default block size (cd_values[0] = 0): 1 GiB.
    package static let defaultBlockSize = 1 << 30

    /// Bytes `compress` may write for `count` input bytes in blocks of `blockSize` (header, block sizes, and LZ4's
    /// worst-case bound).
    package static func bound(_ count: Int, blockSize: Int = defaultBlockSize) -> Int {
        let blocks = max(1, (count + blockSize - 1) / max(blockSize, 1))
        return 12 + blocks * 4 + count + count / 255 + 16 * blocks
    }

    /// Compresses `input` (one whole chunk) into the start of `output` (grown when too small, so one buffer serves
    /// every chunk) in blocks of `blockSize` (the filter's `cd_values[0]`; the saver's default is one block), and
    /// returns the number of bytes written. Throws `.io` naming `path` when liblz4 fails (it does not on valid
    /// input: the output has LZ4's bound).
    package static func compress(
        _ input: UnsafeRawBufferPointer, into output: inout [UInt8], blockSize requested: Int = defaultBlockSize, path: String
    ) throws -> Int {
        let total = input.count
        let blockSize = max(1, min(requested, total))
        let needed = bound(total, blockSize: blockSize)
        if output.count < needed { output = [UInt8](repeating: 0, count: needed) }
        var length = 0
        try output.withUnsafeMutableBytes { out in
            func putBE(_ value: UInt64, _ bytes: Int) {
                for i in 0..<bytes { out[length + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(bytes - 1 - i))) }
                length += bytes
            }
            putBE(UInt64(total), 8)
            putBE(UInt64(blockSize), 4)
            var done = 0
            while done < total {
                let this = min(blockSize, total - done)
                let source = input.baseAddress! + done
                let sizeAt = length
                length += 4
                let capacity = out.count - length
                let written = Int(LZ4_compress_default(
                    source.assumingMemoryBound(to: CChar.self),
                    (out.baseAddress! + length).assumingMemoryBound(to: CChar.self),
                    Int32(this), Int32(min(capacity, Int(Int32.max)))))
                guard written > 0 else {
                    throw CheckpointError.io(path: path, operation: "LZ4_compress_default", detail: "compression of a \(this)-byte block failed")
                }
                var stored = written
                if written >= this {
                    (out.baseAddress! + length).copyMemory(from: source, byteCount: this)
                    stored = this
                }
                length += stored
                let saved = length
                length = sizeAt
                putBE(UInt64(stored), 4)
                length = saved
                done += this
            }
        }
        return length
    }
}
