import Tensors

/// A tensor to write: name, dtype, shape, and a producer that streams its elements, row-major and
/// little-endian, into a sink. Producers read their source only when called, so writers hold one tensor
/// (or less) in memory at a time.
public struct OutputTensor: Sendable {
    /// Name in the output file.
    public let name: String
    /// Element type written.
    public let dtype: DType
    /// Dimensions written.
    public let shape: [Int]
    /// Streams the elements, row-major and little-endian, into a sink (exactly `byteCount` bytes).
    public let produce: @Sendable (ByteSink) throws -> Void

    /// A tensor whose bytes `produce` streams when its turn comes.
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
    public var byteCount: Int { (try? TensorGeometry(contiguous: shape).byteCount(of: dtype)) ?? 0 }

    /// The same tensor under `newName`.
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
