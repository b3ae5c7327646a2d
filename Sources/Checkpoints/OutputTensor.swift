import Tensors

/// Where streamed tensor bytes go (a file being written, a checksum, a converter).
public protocol ByteSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Copies a byte range of a file without passing it through memory, when the sink can (a plain output file);
    /// returns false to be given the bytes through `write` instead.
    func copy(from file: MappedFile, offset: Int, count: Int) throws -> Bool
}

extension ByteSink {
    public func copy(from file: MappedFile, offset: Int, count: Int) throws -> Bool { false }
}

extension AtomicFileWriter: ByteSink {}

/// A tensor to write: name, dtype, shape, and a producer that streams its elements, row-major and
/// little-endian, into a sink. Producers read their source only when called, so writers hold one tensor
/// (or less) in memory at a time.
public struct OutputTensor: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let produce: @Sendable (ByteSink) throws -> Void

    public init(name: String, dtype: DType, shape: [Int], produce: @escaping @Sendable (ByteSink) throws -> Void) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.produce = produce
    }

    /// A tensor of a checkpoint written as it is (zero-copy for contiguous mapped data), under `name`,
    /// optionally viewed with another `shape` of the same element count.
    public init(name: String, tensor: TensorInfo, shape: [Int]? = nil) {
        self.init(name: name, dtype: tensor.dtype, shape: shape ?? tensor.shape) { sink in
            try tensor.write(to: sink)
        }
    }

    /// Bytes the producer must write.
    public var byteCount: Int { (try? TensorLayout(contiguous: shape).byteCount(of: dtype)) ?? 0 }

    public func renamed(_ newName: String) -> OutputTensor {
        OutputTensor(name: newName, dtype: dtype, shape: shape, produce: produce)
    }

    /// The same values cast to `target` (floating-point types only; round-to-nearest-even), converted in
    /// chunks as they stream. Returns `self` when the dtype already matches.
    public func casting(to target: DType) -> OutputTensor {
        guard target != dtype else { return self }
        let source = dtype
        let produce = self.produce
        return OutputTensor(name: name, dtype: target, shape: shape) { sink in
            let converter = CastingSink(from: source, to: target, downstream: sink)
            try produce(converter)
            try converter.finish()
        }
    }
}

/// Splits a byte stream into runs of whole elements, carrying an element that is split across writes over to
/// the next write. Shared by the sinks that convert elements as they stream.
public struct ElementChunker {
    public let elementSize: Int
    private var pending: [UInt8] = []

    public init(elementSize: Int) { self.elementSize = elementSize }

    /// Whether the stream so far ended on an element boundary.
    public var isAligned: Bool { pending.isEmpty }

    /// Hands `body` the whole elements of `bytes` (plus any completed carried-over element), in runs of at most
    /// `maxElements`.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, maxElements: Int = .max, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
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

/// Converts a stream of `from` elements into `to` elements chunk by chunk (through float32).
final class CastingSink: ByteSink {
    let from: DType, to: DType
    let downstream: ByteSink
    private var chunker: ElementChunker
    private var floats: [Float] = []
    private var converted: [UInt8] = []
    static let chunkElements = 1 << 16

    init(from: DType, to: DType, downstream: ByteSink) {
        self.from = from
        self.to = to
        self.downstream = downstream
        chunker = ElementChunker(elementSize: from.size)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
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
                try DTypeConversion.fromFloat32(UnsafeBufferPointer(slice), to: to, into: UnsafeMutableRawBufferPointer(rebasing: out[0..<(count * to.size)]))
                try downstream.write(UnsafeRawBufferPointer(rebasing: out[0..<(count * to.size)]))
            }
        }
    }

    func finish() throws {
        guard chunker.isAligned else {
            throw CheckpointError.malformed(path: "(conversion)", location: "cast", reason: "stream ended inside an element")
        }
    }
}
