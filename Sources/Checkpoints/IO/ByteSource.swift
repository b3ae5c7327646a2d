import Tensors

/// Where a storage's bytes come from: a range of a mapped file, a deflated zip entry, or whatever a new container
/// stores (HDF5 chunks, LZ4 blocks) — each implemented in its container's own folder, with nothing to change in
/// `TensorInfo` or in the other readers.
///
/// A source needs to do one thing, `stream`: hand the bytes of a range to a sink in bounded pieces. A source whose
/// bytes lie unchanged in a mapped file also answers `mappedSpan`, which gives zero-copy reads; the default says
/// no. `withBytes` (random access for strided views) defaults to the span when there is one, else to collecting
/// the range through `stream` in memory that grows only as real bytes arrive.
public protocol ByteSource: AnyObject, Sendable {
    /// How many bytes the source holds.
    var byteCount: Int { get }
    /// The file the bytes come from, for messages.
    var path: String { get }

    /// Streams bytes `range` (inside `0..<byteCount`) to `sink`, in writes of at most `chunkSize` bytes: memory is
    /// bounded by the chunk, never by the range. Throws (naming `path`) when the bytes cannot be read or are not
    /// what the container declared.
    func stream(_ range: Range<Int>, chunkSize: Int, to sink: ByteSink) throws

    /// The bytes of `range` as a region of a mapped file, when they are stored there unchanged; nil when they are
    /// not (compressed, scrambled, elsewhere). The default is nil.
    func mappedSpan(_ range: Range<Int>) -> MappedSpan?

    /// Runs `body` with bytes `range` contiguous in memory.
    func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
}

extension ByteSource {
    /// nil: the bytes are not mapped unchanged.
    public func mappedSpan(_ range: Range<Int>) -> MappedSpan? { nil }

    /// The mapped span when there is one; otherwise the range streamed into a buffer that grows as bytes arrive
    /// (never sized by a declared count).
    public func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let span = mappedSpan(range) { return try span.withBytes(body) }
        let collector = CollectingSink()
        try stream(range, chunkSize: 1 << 20, to: collector)
        guard collector.bytes.count == range.count else {
            throw CheckpointError.io(
                path: path, operation: "read", detail: "got \(collector.bytes.count) of the \(range.count) bytes at \(range.lowerBound)")
        }
        return try collector.bytes.withUnsafeBytes(body)
    }
}

/// Bytes stored unchanged in a mapped file: `count` bytes at `offset` of `file`.
public struct MappedSpan: Sendable {
    /// The mapped file (kept alive by this value).
    public let file: MappedFile
    /// First byte in the file.
    public let offset: Int
    /// Bytes in the span.
    public let count: Int

    /// Runs `body` with the span's bytes, keeping the mapping alive for the call.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try file.withBytes { all in try body(UnsafeRawBufferPointer(rebasing: all[offset..<(offset + count)])) }
    }

    /// The span's first byte in memory, valid while `file` is alive.
    package var baseAddress: UnsafeRawPointer? { file.bytes.baseAddress.map { $0 + offset } }
}

/// `count` bytes at `offset` of a mapped file, as they are: safetensors data, stored (uncompressed) zip entries,
/// legacy torch storages. Streams with `pread` through one reused buffer (as `cp` does: no page faults, nothing
/// left resident), or inside the kernel when the sink is a plain file; reads in place through `mappedSpan`.
package final class MappedFileSource: ByteSource {
    package let file: MappedFile
    /// First byte of the source in the file.
    package let offset: Int
    package let byteCount: Int
    package var path: String { file.path }

    /// Needs `offset ..< offset + count` inside the file for the bytes to be readable; a range past the file's end
    /// is never read out of bounds (streaming it throws a short read; `mappedSpan` is nil).
    package init(file: MappedFile, offset: Int, count: Int) {
        self.file = file
        self.offset = offset
        self.byteCount = count
    }

    package func mappedSpan(_ range: Range<Int>) -> MappedSpan? {
        guard range.lowerBound >= 0, range.upperBound <= byteCount, let start = Checked.add(offset, range.lowerBound),
            Checked.fits(offset: start, count: range.count, in: file.size)
        else { return nil }
        return MappedSpan(file: file, offset: start, count: range.count)
    }

    package func stream(_ range: Range<Int>, chunkSize: Int, to sink: ByteSink) throws {
        precondition(range.lowerBound >= 0 && range.upperBound <= byteCount)
        guard !range.isEmpty else { return }
        let start = offset + range.lowerBound
        if Checked.fits(offset: start, count: range.count, in: file.size),
            try sink.copy(from: file, offset: start, count: range.count)
        {
            return
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: min(max(chunkSize, 1), range.count), alignment: 64)
        defer { buffer.deallocate() }
        var done = 0
        while done < range.count {
            let want = min(buffer.count, range.count - done)
            let got = file.read(at: start + done, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            guard got == want else {
                throw CheckpointError.io(path: file.path, operation: "read", detail: "short read at byte \(start + done)")
            }
            try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            done += got
        }
    }
}

/// Bytes `range` of another source (a legacy torch storage that views part of another): reads go to the base
/// source, shifted; the span is the base's, when it has one.
package final class SliceSource: ByteSource {
    package let base: ByteSource
    package let range: Range<Int>
    package var byteCount: Int { range.count }
    package var path: String { base.path }

    /// Needs `range` inside `0..<base.byteCount`.
    package init(_ base: ByteSource, range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= base.byteCount)
        self.base = base
        self.range = range
    }

    private func shifted(_ part: Range<Int>) -> Range<Int> {
        precondition(part.lowerBound >= 0 && part.upperBound <= range.count)
        return (range.lowerBound + part.lowerBound)..<(range.lowerBound + part.upperBound)
    }

    package func stream(_ part: Range<Int>, chunkSize: Int, to sink: ByteSink) throws {
        try base.stream(shifted(part), chunkSize: chunkSize, to: sink)
    }

    package func mappedSpan(_ part: Range<Int>) -> MappedSpan? { base.mappedSpan(shifted(part)) }

    package func withBytes<R>(_ part: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try base.withBytes(shifted(part), body)
    }
}
