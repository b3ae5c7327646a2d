import Tensors

/// Where a storage's bytes are: a range of a mapped file (zero-copy), or a deflated entry of a mapped zip archive,
/// inflated from the archive's bytes when read.
public enum StorageBacking: @unchecked Sendable {
    case mapped(MappedFile, offset: Int)
    /// An entry of `archive`'s zip directory (method 8), validated by `ZipDirectory`.
    case compressedZipEntry(archive: MappedFile, entry: ZipEntry)
}

/// A run of bytes that one or more tensors view (a torch storage, or one safetensors tensor's data).
public final class TensorStorage: @unchecked Sendable {
    /// How the file names it: `archive/data/3`, a legacy storage key, or the tensor name in a safetensors file.
    public let key: String
    public let byteCount: Int
    /// The storage holds big-endian elements (torch `byteorder` = "big", or legacy `little_endian` False).
    public let bigEndian: Bool
    public let backing: StorageBacking
    /// The file the bytes come from (for messages).
    public let file: String

    public init(key: String, byteCount: Int, bigEndian: Bool, backing: StorageBacking, file: String) {
        self.key = key
        self.byteCount = byteCount
        self.bigEndian = bigEndian
        self.backing = backing
        self.file = file
    }

    /// A view of bytes `range` of this storage. Mapped storages are handed out without copying; compressed
    /// entries are inflated up to `range.upperBound` (into memory that grows only as real bytes arrive).
    public func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= byteCount)
        switch backing {
        case .mapped(let file, let offset):
            return try file.withBytes { all in
                try body(UnsafeRawBufferPointer(rebasing: all[(offset + range.lowerBound)..<(offset + range.upperBound)]))
            }
        case .compressedZipEntry(let archive, let entry):
            let data = try Inflater.bytes(entry, of: archive, limit: range.upperBound)
            return try data.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
        }
    }
}

/// One named tensor of a checkpoint: metadata only; its bytes are read on demand from its storage.
public struct TensorInfo: Sendable {
    /// Path such as `ema.blocks.0.attn.qkv.weight` or `opt.state.3.exp_avg`.
    public let name: String
    public let dtype: DType
    /// View into the storage, in elements of `dtype`; validated to fit.
    public let layout: TensorLayout
    public let storage: TensorStorage
    /// From the pickle (`.pt` files); nil for formats that do not record it.
    public let requiresGrad: Bool?
    /// Pickled as a `torch.nn.Parameter`.
    public let isParameter: Bool

    public init(
        name: String, dtype: DType, layout: TensorLayout, storage: TensorStorage, requiresGrad: Bool? = nil,
        isParameter: Bool = false
    ) {
        self.name = name
        self.dtype = dtype
        self.layout = layout
        self.storage = storage
        self.requiresGrad = requiresGrad
        self.isParameter = isParameter
    }

    public var shape: [Int] { layout.shape }
    public var elementCount: Int { layout.elementCount }
    /// Bytes of the tensor's own elements (not of its whole storage); saturates at `Int.max` for a view whose
    /// logical size does not fit (reading such a view throws; `Checkpoint` refuses them on open).
    public var byteCount: Int { Checked.saturatingMultiply(layout.elementCount, dtype.size) }

    /// Whether `withContiguousBytes` can hand out the mapped bytes without copying.
    public var isZeroCopy: Bool {
        guard case .mapped = storage.backing else { return false }
        return layout.isContiguous && (!storage.bigEndian || dtype.swapUnit == 1)
    }

    /// The tensor's elements, row-major and little-endian. Zero-copy when `isZeroCopy`; otherwise gathered
    /// (strided views), inflated (compressed entries) and byte-swapped (big-endian storages) into a buffer.
    public func withContiguousBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let count = try checkedByteCount()
        if count == 0 { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        if isZeroCopy {
            let firstByte = layout.offset * dtype.size
            return try storage.withBytes(firstByte..<(firstByte + count), body)
        }
        var gathered: [UInt8] = []
        gathered.reserveCapacity(count)
        try stream { gathered.append(contentsOf: $0) }
        return try gathered.withUnsafeBytes(body)
    }

    /// Streams bytes `range` (default: all) of the tensor's elements, row-major and little-endian, to `write` in
    /// chunks of at most `chunk` bytes: memory is one chunk, whatever the tensor's logical size. Contiguous
    /// little-endian tensors of a mapped file are read with `pread` into one reused buffer (as `cp` does: no page
    /// faults, nothing left resident); deflated entries are inflated as they stream; strided views (stride 0
    /// included) and big-endian storages are gathered and swapped a chunk at a time.
    public func stream(bytes range: Range<Int>? = nil, chunk: Int = 8 << 20, _ write: (UnsafeRawBufferPointer) throws -> Void) throws {
        let total = try checkedByteCount()
        let range = range ?? 0..<total
        precondition(range.lowerBound >= 0 && range.upperBound <= total)
        guard !range.isEmpty else { return }
        let elementSize = dtype.size
        let littleEndian = !storage.bigEndian || dtype.swapUnit == 1
        if layout.isContiguous && littleEndian {
            let start = layout.offset * elementSize + range.lowerBound
            switch storage.backing {
            case .mapped(let file, let base):
                try streamMapped(file, from: base + start, count: range.count, chunk: chunk, write)
                return
            case .compressedZipEntry(let archive, let entry):
                var position = 0
                let end = start + range.count
                try Inflater.read(entry, of: archive, limit: end) { piece in
                    let lower = max(start, position), upper = min(end, position + piece.count)
                    if lower < upper { try write(UnsafeRawBufferPointer(rebasing: piece[(lower - position)..<(upper - position)])) }
                    position += piece.count
                }
                return
            }
        }
        let extentBytes = layout.storageExtent * elementSize
        let firstElement = range.lowerBound / elementSize
        let endElement = (range.upperBound + elementSize - 1) / elementSize
        let perChunk = max(1, chunk / elementSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: min(perChunk, endElement - firstElement) * elementSize, alignment: 64)
        defer { buffer.deallocate() }
        try storage.withBytes(0..<extentBytes) { source in
            var element = firstElement
            while element < endElement {
                let count = min(perChunk, endElement - element)
                let out = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(count * elementSize)])
                gather(source, elements: element..<(element + count), into: out)
                if !littleEndian { DTypeConversion.swapBytes(out, unit: dtype.swapUnit) }
                let lower = max(range.lowerBound, element * elementSize) - element * elementSize
                let upper = min(range.upperBound, (element + count) * elementSize) - element * elementSize
                try write(UnsafeRawBufferPointer(rebasing: out[lower..<upper]))
                element += count
            }
        }
    }

    /// Reads `count` bytes at `offset` of `file` with `pread` through one reused buffer of at most `chunk` bytes.
    private func streamMapped(
        _ file: MappedFile, from offset: Int, count total: Int, chunk: Int, _ write: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: min(chunk, max(total, 1)), alignment: 64)
        defer { buffer.deallocate() }
        var done = 0
        while done < total {
            let want = min(buffer.count, total - done)
            let got = file.read(at: offset + done, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            guard got == want else {
                throw CheckpointError.io(path: file.path, operation: "read", detail: "short read of tensor \(name) at byte \(offset + done)")
            }
            try write(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            done += got
        }
    }

    /// The byte count of the tensor's elements, after checking that it fits in `Int` and that the view stays
    /// inside its storage (the readers check this on open; this keeps every read path safe on its own).
    private func checkedByteCount() throws -> Int {
        let fail = { (reason: String) in
            CheckpointError.malformed(path: storage.file, location: "tensor \(name)", reason: reason)
        }
        guard let count = Checked.multiply(layout.elementCount, dtype.size) else {
            throw fail("\(layout) of \(dtype.rawValue) has more than 2^63 bytes")
        }
        guard count > 0 else { return 0 }
        guard let extent = Checked.multiply(layout.storageExtent, dtype.size), extent <= storage.byteCount else {
            throw fail(
                "\(layout) reaches element \(layout.storageExtent) but storage \(storage.key) holds \(storage.byteCount) "
                    + "bytes of \(dtype.rawValue)")
        }
        return count
    }

    /// Writes bytes `range` (default: all) of the tensor's elements to `sink`: copied inside the kernel when the
    /// sink is a plain file and the tensor a contiguous little-endian range of a mapped file, else streamed.
    public func write(bytes range: Range<Int>? = nil, to sink: ByteSink) throws {
        let total = try checkedByteCount()
        let range = range ?? 0..<total
        precondition(range.lowerBound >= 0 && range.upperBound <= total)
        guard !range.isEmpty else { return }
        if case .mapped(let file, let base) = storage.backing, layout.isContiguous, !storage.bigEndian || dtype.swapUnit == 1,
            try sink.copy(from: file, offset: base + layout.offset * dtype.size + range.lowerBound, count: range.count)
        {
            return
        }
        try stream(bytes: range) { try sink.write($0) }
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
        let shape = layout.shape, strides = layout.strides
        let rank = shape.count
        let elementSize = dtype.size
        guard !elements.isEmpty, let src = source.baseAddress, let dst = destination.baseAddress else { return }
        if layout.isContiguous {  // a big-endian storage: one copy, swapped by the caller
            dst.copyMemory(from: src + (layout.offset + elements.lowerBound) * elementSize, byteCount: elements.count * elementSize)
            return
        }
        var index = [Int](repeating: 0, count: rank)
        var position = layout.offset
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
