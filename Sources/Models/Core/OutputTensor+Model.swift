import Checkpoints
import Tensors

extension OutputTensor {
    /// The producer's bytes collected in memory (small tensors only: heads, biases).
    public func contiguousBytes() throws -> [UInt8] {
        let collector = CollectingSink()
        try produce(collector)
        return collector.bytes
    }

    /// The elements as float32, streamed straight into the result (one pass over the source; non-f32 dtypes are
    /// widened chunk by chunk).
    public func float32() throws -> [Float] {
        let count = byteCount / dtype.size
        var failure: Error?
        let out = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            let sink = FloatSink(destination: buffer, dtype: dtype)
            do {
                try produce(sink)
                try sink.finish()
            } catch {
                failure = error
                buffer.initialize(repeating: 0)
            }
            initialized = count
        }
        if let failure { throw failure }
        return out
    }

    /// The same elements under a new name and a shape of the same size.
    func renamed(_ newName: String, shape: [Int]) -> OutputTensor {
        OutputTensor(name: newName, dtype: dtype, shape: shape, produce: produce)
    }

    /// Rows [k·n/parts, (k+1)·n/parts) of this tensor: read directly when the source is one checkpoint tensor,
    /// otherwise filtered from the stream.
    func rowSlice(_ k: Int, of parts: Int, name: String, shape: [Int], source: CanonicalSource?) -> OutputTensor {
        let total = byteCount
        let length = total / parts
        let range = (k * length)..<((k + 1) * length)
        if case .tensor(let t)? = source {
            return OutputTensor(name: name, dtype: dtype, shape: shape) { sink in
                try t.write(bytes: range, to: sink)
            }
        }
        let produce = self.produce
        return OutputTensor(name: name, dtype: dtype, shape: shape) { sink in
            let window = WindowSink(range: range, downstream: sink)
            try produce(window)
        }
    }
}

/// Writes a stream of little-endian `dtype` elements into a float32 buffer, converting as it goes.
final class FloatSink: ByteSink {
    let destination: UnsafeMutableBufferPointer<Float>
    let dtype: DType
    private var written = 0  // elements
    private var chunker: ElementChunker

    init(destination: UnsafeMutableBufferPointer<Float>, dtype: DType) {
        self.destination = destination
        self.dtype = dtype
        chunker = ElementChunker(elementSize: dtype.size)
    }

    func write(_ chunk: UnsafeRawBufferPointer) throws {
        try chunker.feed(chunk) { bytes in
            let count = bytes.count / dtype.size
            guard written + count <= destination.count else {
                throw ModelError.config("a tensor produced more elements than its shape holds")
            }
            try DTypeConversion.toFloat32(bytes, dtype: dtype, count: count, into: UnsafeMutableBufferPointer(rebasing: destination[written..<(written + count)]))
            written += count
        }
    }

    func finish() throws {
        guard chunker.isAligned, written == destination.count else {
            throw ModelError.config("a tensor produced \(written) of \(destination.count) elements")
        }
    }
}

/// Collects bytes in memory.
final class CollectingSink: ByteSink {
    var bytes: [UInt8] = []
    func write(_ chunk: UnsafeRawBufferPointer) throws { bytes += chunk }
}

/// Forwards only the bytes of a stream that fall in `range`.
final class WindowSink: ByteSink {
    let range: Range<Int>
    let downstream: ByteSink
    private var position = 0
    init(range: Range<Int>, downstream: ByteSink) {
        self.range = range
        self.downstream = downstream
    }
    func write(_ chunk: UnsafeRawBufferPointer) throws {
        let start = position, end = position + chunk.count
        position = end
        let lo = max(start, range.lowerBound), hi = min(end, range.upperBound)
        guard lo < hi else { return }
        try downstream.write(UnsafeRawBufferPointer(rebasing: chunk[(lo - start)..<(hi - start)]))
    }
}
