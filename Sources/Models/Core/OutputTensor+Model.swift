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
            let sink = Float32Sink(destination: buffer, dtype: dtype)
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
