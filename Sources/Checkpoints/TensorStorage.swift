import CZip
import Tensors

/// Where a storage's bytes are: a range of a mapped file (zero-copy), or a compressed zip entry that is
/// inflated through libzip when read.
public enum StorageBacking: @unchecked Sendable {
    case mapped(MappedFile, offset: Int)
    case compressedZipEntry(archivePath: String, entryName: String)
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

    /// A view of bytes `range` of this storage. Mapped storages are handed out without copying;
    /// compressed entries are inflated first.
    public func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= byteCount)
        switch backing {
        case .mapped(let file, let offset):
            return try file.withBytes { all in
                try body(UnsafeRawBufferPointer(rebasing: all[(offset + range.lowerBound)..<(offset + range.upperBound)]))
            }
        case .compressedZipEntry(let archivePath, let entryName):
            let data = try LibZip.readEntry(archivePath: archivePath, entryName: entryName, expectedSize: byteCount)
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
    /// Bytes of the tensor's own elements (not of its whole storage).
    public var byteCount: Int { layout.elementCount * dtype.size }

    /// Whether `withContiguousBytes` can hand out the mapped bytes without copying.
    public var isZeroCopy: Bool {
        guard case .mapped = storage.backing else { return false }
        return layout.isContiguous && (!storage.bigEndian || dtype.swapUnit == 1)
    }

    /// The tensor's elements, row-major and little-endian. Zero-copy when `isZeroCopy`; otherwise gathered
    /// (strided views) and byte-swapped (big-endian storages) into a temporary buffer.
    public func withContiguousBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let elementSize = dtype.size
        let count = byteCount
        let firstByte = layout.offset * elementSize
        if layout.isContiguous {
            return try storage.withBytes(firstByte..<(firstByte + count)) { raw in
                if !storage.bigEndian || dtype.swapUnit == 1 { return try body(raw) }
                var copy = [UInt8](raw)
                copy.withUnsafeMutableBytes { DTypeConversion.swapBytes($0, unit: dtype.swapUnit) }
                return try copy.withUnsafeBytes(body)
            }
        }
        let extentBytes = layout.storageExtent * elementSize
        var gathered = [UInt8](repeating: 0, count: count)
        try storage.withBytes(0..<extentBytes) { raw in
            gathered.withUnsafeMutableBytes { out in
                gather(raw, into: out, elementSize: elementSize)
            }
        }
        if storage.bigEndian && dtype.swapUnit > 1 {
            gathered.withUnsafeMutableBytes { DTypeConversion.swapBytes($0, unit: dtype.swapUnit) }
        }
        return try gathered.withUnsafeBytes(body)
    }

    /// Streams bytes `range` (default: all) of the tensor's elements, row-major and little-endian, to `write` in
    /// chunks of at most `chunk` bytes. Contiguous little-endian tensors of a mapped file are read with `pread`
    /// into one reused buffer (as `cp` does: no page faults, nothing left resident); others go through
    /// `withContiguousBytes`.
    public func stream(bytes range: Range<Int>? = nil, chunk: Int = 8 << 20, _ write: (UnsafeRawBufferPointer) throws -> Void) throws {
        let range = range ?? 0..<byteCount
        precondition(range.lowerBound >= 0 && range.upperBound <= byteCount)
        guard case .mapped(let file, let base) = storage.backing, layout.isContiguous, !storage.bigEndian || dtype.swapUnit == 1 else {
            try withContiguousBytes { try write(UnsafeRawBufferPointer(rebasing: $0[range])) }
            return
        }
        let start = base + layout.offset * dtype.size + range.lowerBound
        let total = range.count
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: min(chunk, max(total, 1)), alignment: 64)
        defer { buffer.deallocate() }
        var done = 0
        while done < total {
            let want = min(buffer.count, total - done)
            let got = file.read(at: start + done, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            guard got == want else {
                throw CheckpointError.io(path: file.path, operation: "read", detail: "short read of tensor \(name) at byte \(start + done)")
            }
            try write(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            done += got
        }
    }

    /// Writes bytes `range` (default: all) of the tensor's elements to `sink`: copied inside the kernel when the
    /// sink is a plain file and the tensor a contiguous little-endian range of a mapped file, else streamed.
    public func write(bytes range: Range<Int>? = nil, to sink: ByteSink) throws {
        let range = range ?? 0..<byteCount
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

    /// Copies a strided view element by element (innermost dimension in a tight loop).
    private func gather(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer, elementSize: Int) {
        let shape = layout.shape, strides = layout.strides
        let rank = shape.count
        guard layout.elementCount > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return }
        if rank == 0 {
            dst.copyMemory(from: src + layout.offset * elementSize, byteCount: elementSize)
            return
        }
        var index = [Int](repeating: 0, count: rank)
        var written = 0
        let inner = shape[rank - 1], innerStride = strides[rank - 1] * elementSize
        while true {
            var base = layout.offset
            for d in 0..<(rank - 1) { base += index[d] * strides[d] }
            var from = src + base * elementSize
            for _ in 0..<inner {
                (dst + written).copyMemory(from: from, byteCount: elementSize)
                written += elementSize
                from += innerStride
            }
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
            if d < 0 { return }
        }
    }
}
