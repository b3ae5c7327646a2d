import Tensors

/// A run of bytes that one or more tensors view (a torch storage, or one safetensors tensor's data), read from its
/// `ByteSource`.
public final class TensorStorage: Sendable {
    /// How the file names it: `archive/data/3`, a legacy storage key, or the tensor name in a safetensors file.
    public let key: String
    /// The storage holds big-endian elements (torch `byteorder` = "big", or legacy `little_endian` False).
    public let bigEndian: Bool
    /// Where the bytes come from.
    public let source: ByteSource

    /// A storage of the bytes of `source`, named `key`.
    public init(key: String, bigEndian: Bool = false, source: ByteSource) {
        self.key = key
        self.bigEndian = bigEndian
        self.source = source
    }

    /// Bytes of the storage.
    public var byteCount: Int { source.byteCount }
    /// The file the bytes come from (for messages).
    public var file: String { source.path }
}

/// One named tensor of a checkpoint: metadata only; its bytes are read on demand from its storage.
public struct TensorInfo: Sendable {
    /// Path such as `ema.blocks.0.attn.qkv.weight` or `opt.state.3.exp_avg`.
    public let name: String
    /// Element type.
    public let dtype: DType
    /// View into the storage, in elements of `dtype`; validated to fit.
    public let geometry: TensorGeometry
    /// The bytes it views.
    public let storage: TensorStorage
    /// From the pickle (`.pt` files); nil for formats that do not record it.
    public let requiresGrad: Bool?
    /// Pickled as a `torch.nn.Parameter`.
    public let isParameter: Bool

    /// A tensor viewing `storage` with `geometry` (validated by the caller to fit: every read checks again).
    public init(
        name: String, dtype: DType, geometry: TensorGeometry, storage: TensorStorage, requiresGrad: Bool? = nil,
        isParameter: Bool = false
    ) {
        self.name = name
        self.dtype = dtype
        self.geometry = geometry
        self.storage = storage
        self.requiresGrad = requiresGrad
        self.isParameter = isParameter
    }

    /// Dimensions.
    public var shape: [Int] { geometry.shape }
    /// Number of elements (1 for a scalar).
    public var elementCount: Int { geometry.elementCount }
    /// Bytes of the tensor's own elements (not of its whole storage); saturates at `Int.max` for a view whose
    /// logical size does not fit (reading such a view throws; `Checkpoint` refuses them on open).
    public var byteCount: Int { Checked.saturatingMultiply(geometry.elementCount, dtype.size) }

    /// Whether the elements are stored as they are read (row-major, little-endian or single-byte), so a read
    /// needs no gather and no swap.
    private var isPlain: Bool { geometry.isContiguous && (!storage.bigEndian || dtype.swapUnit == 1) }

    /// Bytes `range` of the tensor's elements as a range of its storage (only for `isPlain` tensors).
    private func storageRange(_ range: Range<Int>) -> Range<Int> {
        let first = geometry.offset * dtype.size
        return (first + range.lowerBound)..<(first + range.upperBound)
    }

    /// Whether `withContiguousBytes` can hand out the mapped bytes without copying.
    public var isZeroCopy: Bool {
        guard isPlain else { return false }
        guard let count = Checked.multiply(geometry.elementCount, dtype.size), count > 0 else { return isMappedSource }
        guard let extent = Checked.multiply(geometry.storageExtent, dtype.size), extent <= storage.byteCount else { return false }
        return storage.source.mappedSpan(storageRange(0..<count)) != nil
    }

    /// Whether the storage's source maps its bytes unchanged (asked of its first byte; for an empty storage,
    /// whether it is a mapped-file source).
    private var isMappedSource: Bool {
        storage.byteCount > 0 ? storage.source.mappedSpan(0..<1) != nil : storage.source is MappedFileSource
    }

    /// The tensor's elements, row-major and little-endian. Zero-copy when `isZeroCopy`; otherwise gathered
    /// (strided views), read from the source (compressed entries) and byte-swapped (big-endian storages) into a
    /// buffer.
    public func withContiguousBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let count = try checkedByteCount()
        if count == 0 { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        if isPlain, let span = storage.source.mappedSpan(storageRange(0..<count)) { return try span.withBytes(body) }
        var gathered: [UInt8] = []
        gathered.reserveCapacity(count)
        try stream { gathered.append(contentsOf: $0) }
        return try gathered.withUnsafeBytes(body)
    }

    /// Streams bytes `range` (default: all) of the tensor's elements, row-major and little-endian, to `write` in
    /// chunks of at most `chunk` bytes: memory is one chunk, whatever the tensor's logical size. Contiguous
    /// little-endian tensors stream straight from their source (a mapped file with `pread` into one reused buffer;
    /// a deflated entry inflated as it streams); strided views (stride 0 included) and big-endian storages are
    /// gathered and swapped a chunk at a time from the source's bytes.
    public func stream(bytes range: Range<Int>? = nil, chunk: Int = 8 << 20, _ write: (UnsafeRawBufferPointer) throws -> Void) throws {
        try withoutActuallyEscaping(write) { write in
            try self.write(bytes: range, to: ClosureSink(write), chunk: chunk)
        }
    }

    /// Writes bytes `range` (default: all) of the tensor's elements to `sink`, in writes of at most `chunk` bytes:
    /// copied inside the kernel when the sink is a plain file and the tensor a contiguous little-endian range of a
    /// mapped file, else streamed as `stream` does.
    public func write(bytes range: Range<Int>? = nil, to sink: ByteSink, chunk: Int = 8 << 20) throws {
        let total = try checkedByteCount()
        let range = range ?? 0..<total
        precondition(range.lowerBound >= 0 && range.upperBound <= total)
        guard !range.isEmpty else { return }
        if isPlain {
            try storage.source.stream(storageRange(range), chunkSize: chunk, to: sink)
            return
        }
        let elementSize = dtype.size
        let littleEndian = !storage.bigEndian || dtype.swapUnit == 1
        let extentBytes = geometry.storageExtent * elementSize
        let firstElement = range.lowerBound / elementSize
        let endElement = (range.upperBound + elementSize - 1) / elementSize
        let perChunk = max(1, chunk / elementSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: min(perChunk, endElement - firstElement) * elementSize, alignment: 64)
        defer { buffer.deallocate() }
        try storage.source.withBytes(0..<extentBytes) { source in
            var element = firstElement
            while element < endElement {
                let count = min(perChunk, endElement - element)
                let out = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(count * elementSize)])
                gather(source, elements: element..<(element + count), into: out)
                if !littleEndian { DTypeConversion.swapBytes(out, unit: dtype.swapUnit) }
                let lower = max(range.lowerBound, element * elementSize) - element * elementSize
                let upper = min(range.upperBound, (element + count) * elementSize) - element * elementSize
                try sink.write(UnsafeRawBufferPointer(rebasing: out[lower..<upper]))
                element += count
            }
        }
    }

    /// The byte count of the tensor's elements, after checking that it fits in `Int` and that the view stays
    /// inside its storage (the readers check this on open; this keeps every read path safe on its own).
    func checkedByteCount() throws -> Int {
        let fail = { (reason: String) in
            CheckpointError.malformed(path: storage.file, location: "tensor \(name)", reason: reason)
        }
        guard let count = Checked.multiply(geometry.elementCount, dtype.size) else {
            throw fail("\(geometry) of \(dtype.rawValue) has more than 2^63 bytes")
        }
        guard count > 0 else { return 0 }
        guard let extent = Checked.multiply(geometry.storageExtent, dtype.size), extent <= storage.byteCount else {
            throw fail(
                "\(geometry) reaches element \(geometry.storageExtent) but storage \(storage.key) holds \(storage.byteCount) "
                    + "bytes of \(dtype.rawValue)")
        }
        return count
    }

    /// A copy of the tensor's elements, row-major and little-endian.
    public func contiguousBytes() throws -> [UInt8] {
        try withContiguousBytes { [UInt8]($0) }
    }

    /// The tensor's elements widened (or narrowed) to float32. Throws for complex dtypes.
    public func float32() throws -> [Float] {
        var result = [Float](repeating: 0, count: elementCount)
        try withContiguousBytes { raw in
            try result.withUnsafeMutableBufferPointer {
                try DTypeConversion.toFloat32(raw, dtype: dtype, count: elementCount, into: $0)
            }
        }
        return result
    }

    /// Copies elements `elements` (row-major positions) of a strided view element by element. Every position
    /// stays inside the view's extent, which was checked to fit, so no step overflows.
    private func gather(_ source: UnsafeRawBufferPointer, elements: Range<Int>, into destination: UnsafeMutableRawBufferPointer) {
        let shape = geometry.shape, strides = geometry.strides
        let rank = shape.count
        let elementSize = dtype.size
        guard !elements.isEmpty, let src = source.baseAddress, let dst = destination.baseAddress else { return }
        if geometry.isContiguous {  // a big-endian storage: one copy, swapped by the caller
            dst.copyMemory(from: src + (geometry.offset + elements.lowerBound) * elementSize, byteCount: elements.count * elementSize)
            return
        }
        var index = [Int](repeating: 0, count: rank)
        var position = geometry.offset
        var remainder = elements.lowerBound
        for d in stride(from: rank - 1, through: 0, by: -1) {
            index[d] = remainder % shape[d]
            remainder /= shape[d]
            position += index[d] * strides[d]
        }
        var written = 0
        for _ in elements {
            (dst + written).copyMemory(from: src + position * elementSize, byteCount: elementSize)
            written += elementSize
            var d = rank - 1
            while d >= 0 {
                if index[d] + 1 < shape[d] {
                    index[d] += 1
                    position += strides[d]
                    break
                }
                position -= (shape[d] - 1) * strides[d]
                index[d] = 0
                d -= 1
            }
        }
    }
}
