import Tensors

/// A tensor's elements as float32 that stay valid as long as this value: either a zero-copy view of a mapped
/// file (a contiguous, little-endian, 4-byte-aligned f32 tensor; the mapping is kept alive by this value) or an
/// owned copy, widened (or narrowed) from the tensor's dtype as it streams.
public final class Float32Storage: @unchecked Sendable {
    /// Number of elements.
    public let count: Int
    /// Whether the elements are read in place from a mapped file (no copy was made).
    public let isMapped: Bool
    private let base: UnsafePointer<Float>?
    /// The mapping (mapped) or nothing (owned: `base` is allocated here and freed in `deinit`).
    private let mapping: MappedFile?

    private init(base: UnsafePointer<Float>?, count: Int, mapping: MappedFile?) {
        self.base = base
        self.count = count
        self.mapping = mapping
        isMapped = mapping != nil
    }

    deinit {
        if mapping == nil, let base { UnsafeMutablePointer(mutating: base).deallocate() }
    }

    /// The zero-copy view of `tensor`, or nil when it is not a contiguous little-endian f32 tensor whose bytes lie
    /// unchanged and 4-byte aligned in a mapped file.
    static func mapped(_ tensor: TensorInfo) -> Float32Storage? {
        guard tensor.dtype == .f32, tensor.geometry.isContiguous, !tensor.storage.bigEndian,
            let count = Checked.multiply(tensor.elementCount, 4), count > 0,
            let extent = Checked.multiply(tensor.geometry.storageExtent, 4), extent <= tensor.storage.byteCount
        else { return nil }
        let first = tensor.geometry.offset * 4
        guard let span = tensor.storage.source.mappedSpan(first..<(first + count)), let address = span.baseAddress,
            Int(bitPattern: address) % MemoryLayout<Float>.alignment == 0
        else { return nil }
        return Float32Storage(base: address.assumingMemoryBound(to: Float.self), count: tensor.elementCount, mapping: span.file)
    }

    /// An owned copy of `tensor`'s elements as float32, streamed from its storage and converted chunk by chunk.
    static func copy(_ tensor: TensorInfo) throws -> Float32Storage {
        guard tensor.dtype.convertsToFloat32 else { throw TensorsError.unsupportedConversion(tensor.dtype) }
        _ = try tensor.checkedByteCount()
        let count = tensor.elementCount
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(count, 1))
        buffer.initialize(repeating: 0)
        let storage = Float32Storage(base: UnsafePointer(buffer.baseAddress), count: count, mapping: nil)
        let sink = Float32Sink(destination: UnsafeMutableBufferPointer(rebasing: buffer[0..<count]), dtype: tensor.dtype)
        try tensor.write(to: sink)
        try sink.finish()
        return storage
    }

    /// Runs `body` with the elements.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(UnsafeBufferPointer(start: base, count: count)) }
    }

    /// Element `index` (row-major).
    public subscript(index: Int) -> Float {
        precondition(index >= 0 && index < count)
        return base![index]
    }

    /// The elements as an array (a copy).
    public var array: [Float] { withUnsafeBufferPointer { Array($0) } }

    /// The first element in memory, valid while `self` is alive (a raw pointer: package-internal).
    package var baseAddress: UnsafePointer<Float>? { base }
}

extension TensorInfo {
    /// The tensor's elements as float32: in place when the tensor is a contiguous, little-endian, aligned f32 range
    /// of a mapped file (`Float32Storage.isMapped`; the mapping stays alive with the result), else an owned copy
    /// converted from its dtype. Throws for complex dtypes and for views that do not fit their storage.
    public func float32Storage() throws -> Float32Storage {
        if let view = Float32Storage.mapped(self) { return view }
        return try Float32Storage.copy(self)
    }

    /// The zero-copy float32 view of the tensor, or nil when it cannot be read in place (see `float32Storage`).
    public func mappedFloat32Storage() -> Float32Storage? { Float32Storage.mapped(self) }
}
