import CDitkitZip
import Tensors

/// Inflates a DEFLATE zip entry straight from the mapped archive bytes the directory validated, through zlib, in
/// bounded chunks: one zip reader (ours), so the bytes inflated are always those of the entry the directory chose,
/// and memory is one output chunk, never the size an entry declares.
enum Inflater {
    /// Output chunk size.
    static let chunk = 1 << 20

    /// Streams the first `limit` (default: all) inflated bytes of `entry` to `body`, in chunks of at most 1 MiB.
    ///
    /// Needs a deflated entry of `archive`'s directory (method 8). Reading the whole entry checks that its DEFLATE
    /// stream ends exactly at its declared uncompressed size; any read stops with an error naming the entry as soon
    /// as the stream inflates past that size, ends early, or is corrupt. Calls `inflateInit2_`, `inflate`, `inflateEnd`.
    static func read(
        _ entry: ZipEntry, of archive: MappedFile, limit: Int? = nil, _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let declared = entry.uncompressedSize
        let wanted = min(limit ?? declared, declared)
        func fail(_ reason: String) -> CheckpointError {
            .malformed(path: archive.path, location: "entry \(entry.name) (data at offset \(entry.dataOffset))", reason: reason)
        }
        guard wanted > 0 || limit == nil else { return }
        var z = z_stream()
        guard inflateInit2_(&z, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw fail("zlib cannot start inflating: \(z.msg.map { String(cString: $0) } ?? "no memory")")
        }
        defer { inflateEnd(&z) }
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { output.deallocate() }
        try archive.withBytes { all in
            let input = UnsafeRawBufferPointer(rebasing: all[entry.dataOffset..<(entry.dataOffset + entry.compressedSize)])
            var consumed = 0
            var produced = 0
            while true {
                if z.avail_in == 0, consumed < input.count, let base = input.baseAddress {
                    let take = min(input.count - consumed, 1 << 30)  // zlib counts in 32 bits
                    z.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self) + consumed)
                    z.avail_in = UInt32(take)
                    consumed += take
                }
                z.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
                z.avail_out = UInt32(output.count)
                let status = inflate(&z, Z_NO_FLUSH)
                let got = output.count - Int(z.avail_out)
                guard status == Z_OK || status == Z_STREAM_END || (status == Z_BUF_ERROR && got > 0) else {
                    if status == Z_BUF_ERROR {
                        throw fail("the compressed data ends after \(produced) of \(declared) bytes (truncated)")
                    }
                    let message = z.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    throw fail("corrupt DEFLATE data after \(produced) bytes: \(message)")
                }
                guard got <= declared - produced else {
                    throw fail("inflates to more than the \(declared) bytes it declares")
                }
                let useful = min(got, wanted - produced)
                if useful > 0 { try body(UnsafeRawBufferPointer(rebasing: output[0..<useful])) }
                produced += got
                if status == Z_STREAM_END {
                    guard produced == declared else { throw fail("inflates to \(produced) bytes, \(declared) declared") }
                    return
                }
                if produced >= wanted && limit != nil { return }
            }
        }
    }

    /// The first `limit` (default: all) inflated bytes of `entry`, in an array that grows only as real bytes arrive.
    static func bytes(_ entry: ZipEntry, of archive: MappedFile, limit: Int? = nil) throws -> [UInt8] {
        var data: [UInt8] = []
        try read(entry, of: archive, limit: limit) { data.append(contentsOf: $0) }
        return data
    }
}
