import Tensors

/// Where streamed tensor bytes go: a file being written, a checksum, a converter, a counter.
///
/// Writers call `write` with consecutive pieces of one stream, of any size (an element may be split across two
/// calls). A sink that can take a byte range of a mapped file without passing it through memory (a plain output
/// file) says so in `copy`.
public protocol ByteSink: AnyObject {
    /// Takes the next bytes of the stream. Throws when they cannot be written or are not what the sink expects.
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Copies `count` bytes at `offset` of `file` as the next bytes of the stream without passing them through
    /// memory, when the sink can (a plain output file); returns false, having taken nothing, to be given the bytes
    /// through `write` instead. The default returns false.
    func copy(from file: MappedFile, offset: Int, count: Int) throws -> Bool
}

extension ByteSink {
    /// Returns false: the bytes come through `write`.
    public func copy(from file: MappedFile, offset: Int, count: Int) throws -> Bool { false }

    /// Takes the bytes of `bytes` as the next bytes of the stream.
    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }
}

/// Splits a byte stream into runs of whole elements, carrying an element that is split across writes over to
/// the next write. Shared by the sinks that convert elements as they stream.
package struct ElementChunker {
    /// Bytes of one element.
    package let elementSize: Int
    private var pending: [UInt8] = []

    package init(elementSize: Int) { self.elementSize = elementSize }

    /// Whether the stream so far ended on an element boundary.
    package var isAligned: Bool { pending.isEmpty }

    /// Hands `body` the whole elements of `bytes` (plus any completed carried-over element), in runs of at most
    /// `maxElements`.
    package mutating func feed(
        _ bytes: UnsafeRawBufferPointer, maxElements: Int = .max, _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var input = bytes
        if !pending.isEmpty {
            let take = min(elementSize - pending.count, input.count)
            pending += input.prefix(take)
            input = UnsafeRawBufferPointer(rebasing: input[take...])
            if pending.count == elementSize {
                let element = pending
                pending = []
                try element.withUnsafeBytes { try body($0) }
            }
        }
        let whole = input.count / elementSize * elementSize
        let run = maxElements == .max ? whole : maxElements * elementSize
        var offset = 0
        while offset < whole {
            let length = min(run, whole - offset)
            try body(UnsafeRawBufferPointer(rebasing: input[offset..<(offset + length)]))
            offset += length
        }
        pending += input[whole...]
    }
}

/// Converts a stream of `from` elements into `to` elements chunk by chunk (through float32), into `downstream`.
package final class CastingSink: ByteSink {
    package let from: DType, to: DType
    package let downstream: ByteSink
    private var chunker: ElementChunker
    private var floats: [Float] = []
    private var converted: [UInt8] = []
    /// Elements converted per step: the sink's memory, whatever the stream's length.
    package static let chunkElements = 1 << 16

    package init(from: DType, to: DType, downstream: ByteSink) {
        self.from = from
        self.to = to
        self.downstream = downstream
        chunker = ElementChunker(elementSize: from.size)
    }

    package func write(_ bytes: UnsafeRawBufferPointer) throws {
        try chunker.feed(bytes, maxElements: CastingSink.chunkElements) { try convert($0) }
    }

    private func convert(_ chunk: UnsafeRawBufferPointer) throws {
        let count = chunk.count / from.size
        if floats.count < count { floats = [Float](repeating: 0, count: count) }
        if converted.count < count * to.size { converted = [UInt8](repeating: 0, count: count * to.size) }
        try floats.withUnsafeMutableBufferPointer { f in
            let slice = UnsafeMutableBufferPointer(rebasing: f[0..<count])
            try DTypeConversion.toFloat32(chunk, dtype: from, count: count, into: slice)
            try converted.withUnsafeMutableBytes { out in
                let bytes = UnsafeMutableRawBufferPointer(rebasing: out[0..<(count * to.size)])
                try DTypeConversion.fromFloat32(UnsafeBufferPointer(slice), to: to, into: bytes)
                try downstream.write(UnsafeRawBufferPointer(bytes))
            }
        }
    }

    /// Throws when the stream ended inside an element.
    package func finish() throws {
        guard chunker.isAligned else {
            throw CheckpointError.malformed(path: "(conversion)", location: "cast", reason: "stream ended inside an element")
        }
    }
}

/// Passes bytes through to `downstream`, computing their CRC-32 (zip entries).
package final class CRCSink: ByteSink {
    package let downstream: ByteSink
    /// The CRC-32 of the bytes so far.
    package private(set) var crc: UInt32 = 0
    package init(downstream: ByteSink) { self.downstream = downstream }
    package func write(_ bytes: UnsafeRawBufferPointer) throws {
        crc = CRC32.checksum(bytes, initial: crc)
        try downstream.write(bytes)
    }
}

/// Collects the stream in memory (small tensors only: heads, biases, test data).
package final class CollectingSink: ByteSink {
    /// The bytes so far.
    package private(set) var bytes: [UInt8] = []
    package init() {}
    package func write(_ chunk: UnsafeRawBufferPointer) throws { bytes += chunk }
}

/// Forwards to `downstream` only the bytes of the stream that fall in `range` (stream positions).
package final class WindowSink: ByteSink {
    package let range: Range<Int>
    package let downstream: ByteSink
    private var position = 0
    package init(range: Range<Int>, downstream: ByteSink) {
        self.range = range
        self.downstream = downstream
    }
    package func write(_ chunk: UnsafeRawBufferPointer) throws {
        let start = position, end = position + chunk.count
        position = end
        let lo = max(start, range.lowerBound), hi = min(end, range.upperBound)
        guard lo < hi else { return }
        try downstream.write(UnsafeRawBufferPointer(rebasing: chunk[(lo - start)..<(hi - start)]))
    }
}

/// Converts a stream of little-endian `dtype` elements into float32 in `destination`, as it goes; `finish` checks
/// that exactly `destination.count` elements arrived.
package final class Float32Sink: ByteSink {
    package let destination: UnsafeMutableBufferPointer<Float>
    package let dtype: DType
    /// Elements converted so far.
    package private(set) var written = 0
    private var chunker: ElementChunker

    package init(destination: UnsafeMutableBufferPointer<Float>, dtype: DType) {
        self.destination = destination
        self.dtype = dtype
        chunker = ElementChunker(elementSize: dtype.size)
    }

    package func write(_ chunk: UnsafeRawBufferPointer) throws {
        try chunker.feed(chunk) { bytes in
            let count = bytes.count / dtype.size
            guard written + count <= destination.count else {
                throw CheckpointError.malformed(
                    path: "(conversion)", location: "float32", reason: "a tensor produced more elements than its shape holds")
            }
            try DTypeConversion.toFloat32(
                bytes, dtype: dtype, count: count,
                into: UnsafeMutableBufferPointer(rebasing: destination[written..<(written + count)]))
            written += count
        }
    }

    /// Throws unless the stream ended on an element boundary after exactly `destination.count` elements.
    package func finish() throws {
        guard chunker.isAligned, written == destination.count else {
            throw CheckpointError.malformed(
                path: "(conversion)", location: "float32", reason: "a tensor produced \(written) of \(destination.count) elements")
        }
    }
}

/// Counts the bytes of a stream, passing them on to `downstream` when there is one (kernel copies included) and
/// telling `onWrite` the size of each piece (progress reports).
package final class CountingSink: ByteSink {
    package let downstream: ByteSink?
    private let onWrite: ((Int) -> Void)?
    /// Bytes so far.
    package private(set) var count = 0

    package init(downstream: ByteSink? = nil, onWrite: ((Int) -> Void)? = nil) {
        self.downstream = downstream
        self.onWrite = onWrite
    }

    package func write(_ bytes: UnsafeRawBufferPointer) throws {
        try downstream?.write(bytes)
        count += bytes.count
        onWrite?(bytes.count)
    }

    package func copy(from file: MappedFile, offset: Int, count: Int) throws -> Bool {
        guard let downstream, try downstream.copy(from: file, offset: offset, count: count) else { return false }
        self.count += count
        onWrite?(count)
        return true
    }
}

/// Hands each piece of the stream to a closure (`TensorInfo.stream`).
final class ClosureSink: ByteSink {
    private let body: (UnsafeRawBufferPointer) throws -> Void
    init(_ body: @escaping (UnsafeRawBufferPointer) throws -> Void) { self.body = body }
    func write(_ bytes: UnsafeRawBufferPointer) throws { try body(bytes) }
}
