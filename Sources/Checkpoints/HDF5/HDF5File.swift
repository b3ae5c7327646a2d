import Tensors

/// An HDF5 file opened for reading: the subset h5py writes (superblock v0/v1, object headers v1 — and v2 for
/// objects with tracked attribute order — with continuation blocks, symbol-table groups, compact attributes,
/// contiguous/compact/chunked layouts, filter pipeline v1/v2 with LZ4, deflate and shuffle), parsed by ditkit
/// itself with every offset, size and count validated before a byte is touched. Anything outside the subset is
/// `CheckpointError.unsupported` ("unsupported HDF5 feature X at offset Y"); damaged structures are `.malformed`
/// naming the offset.
///
/// The signature must be at offset 0 (h5py writes no user block); a file whose signature is at 512, 1024, … is
/// refused as unsupported.
package final class HDF5File: Sendable {
    /// The mapped file.
    package let file: MappedFile
    /// The root group, with every member group and dataset (metadata only: no dataset's elements are read).
    package let root: HDF5Group
    /// The superblock's version (0 or 1).
    package let superblockVersion: Int
    /// K of chunk B-tree nodes (superblock 1 stores it; HDF5's default 32 otherwise).
    let chunkK: Int

    /// The 8-byte HDF5 signature.
    package static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Parses the superblock and the whole group tree of `file` (metadata only). Throws `.malformed` for a damaged
    /// or truncated file, `.unsupported` for valid HDF5 outside the subset.
    package init(file: MappedFile) throws {
        self.file = file
        let bytes = HDF5Bytes(bytes: file.bytes, path: file.path)
        guard bytes.size >= 8, Array(file.bytes[0..<8]) == Self.signature else {
            for userBlock in [512, 1024, 2048, 4096] where bytes.size >= userBlock + 8 && Array(file.bytes[userBlock..<(userBlock + 8)]) == Self.signature {
                throw bytes.unsupported("user block (the HDF5 signature is at offset \(userBlock))", at: 0)
            }
            throw bytes.malformed("superblock", at: 0, "no HDF5 signature")
        }
        var r = try bytes.region(0, min(bytes.size, 96), "superblock")
        try r.skip(8)
        let version = try r.u8("superblock version")
        guard version <= 1 else { throw bytes.unsupported("superblock version \(version)", at: 0) }
        try r.skip(4)
        let offsetSize = try r.u8("size of offsets"), lengthSize = try r.u8("size of lengths")
        guard offsetSize == 8, lengthSize == 8 else {
            throw bytes.unsupported("sizes of offsets \(offsetSize) and lengths \(lengthSize) (ditkit reads 8 and 8)", at: 13)
        }
        try r.skip(1)
        let leafK = try r.u16("group leaf node K"), internalK = try r.u16("group internal node K")
        guard leafK > 0, internalK > 0 else { throw bytes.malformed("superblock", at: 0, "group B-tree K of 0") }
        _ = try r.u32("file consistency flags")
        var chunkK = 32
        if version == 1 {
            chunkK = try r.u16("indexed storage K")
            guard chunkK > 0 else { throw bytes.malformed("superblock", at: 0, "indexed storage K of 0") }
            try r.skip(2)
        }
        let base = try r.address("base address")
        guard base == 0 else { throw bytes.unsupported("base address \(base.map(String.init) ?? "undefined") (user block)", at: 0) }
        _ = try r.address("free-space address")
        guard let end = try r.address("end-of-file address") else { throw bytes.malformed("superblock", at: 0, "undefined end-of-file address") }
        guard end <= bytes.size else {
            throw bytes.malformed("superblock", at: 0, "truncated: the superblock says the file has \(end) bytes, it has \(bytes.size)")
        }
        if try r.address("driver information address") != nil { throw bytes.unsupported("file driver information block", at: 0) }
        // The root group's symbol table entry.
        _ = try r.length("root link name offset")
        guard let rootHeader = try r.address("root object header address") else {
            throw bytes.malformed("superblock", at: 0, "undefined root group object header address")
        }
        var builder = HDF5TreeBuilder(file: bytes, leafK: leafK, internalK: internalK)
        root = try builder.group(at: rootHeader, path: "", ancestors: [])
        superblockVersion = version
        self.chunkK = chunkK
    }

    private var bytes: HDF5Bytes { HDF5Bytes(bytes: file.bytes, path: file.path) }

    /// The raw elements of `dataset` as stored (row-major, the datatype's byte order), dataspace element count ×
    /// element size bytes, streamed chunk by chunk (each chunk decompressed into a bounded buffer). Validated
    /// before any element is read: the stored data covers exactly that many bytes (a contiguous block of the right
    /// size inside the file; every chunk present, in bounds, with a decompressed size matching the chunk). Unknown
    /// filters are `.unsupported` naming the filter and the dataset; variable-length strings have no raw elements
    /// to stream (`.unsupported`: read them with `value(of:)`).
    package func source(of dataset: HDF5Dataset) throws -> ByteSource {
        if case .variableString = dataset.datatype {
            throw CheckpointError.unsupported(
                path: file.path, kind: "variable-length strings as raw elements (dataset \"\(dataset.path)\")",
                advice: "read them as values")
        }
        switch dataset.storage {
        case .contiguous(let address, let size):
            // Validated when the tree was read: size is the element count × element size, inside the file.
            return MappedFileSource(file: file, offset: address ?? 0, count: size)
        case .compact(let bytes):
            return HDF5BytesSource(bytes: bytes, path: file.path)
        case .chunked(let btree, let chunkShape, let filters):
            guard case .simple(let shape) = dataset.dataspace else {
                throw bytes.malformed("dataset \"\(dataset.path)\"", at: dataset.headerOffset, "chunked storage without a simple dataspace")
            }
            for filter in filters where ![1, 2, 32004].contains(filter.id) {
                throw CheckpointError.unsupported(
                    path: file.path,
                    kind: "unsupported HDF5 filter id \(filter.id) (\(filter.name ?? HDF5ChunkedSource.filterName(filter.id))) on dataset \"\(dataset.path)\"",
                    advice: "ditkit decodes LZ4 (32004), deflate (1) and shuffle (2); rewrite the file with one of them or none")
            }
            // The chunk index is read and validated in full when the elements are first asked for, before any of
            // them is read: opening a file (inspect) reads no chunk B-tree.
            let file = self.file, k = chunkK, path = dataset.path
            return try HDF5ChunkedSource(
                file: file, dataset: dataset.path, shape: shape, chunk: chunkShape, elementSize: dataset.datatype.size,
                filters: filters
            ) {
                try HDF5ChunkIndex.read(HDF5Bytes(bytes: file.bytes, path: file.path), btree: btree, shape: shape, chunk: chunkShape, k: k, dataset: path)
            }
        }
    }

    /// The elements of a small dataset decoded as a value (scalars, strings, small arrays; at most `limit` bytes of
    /// elements read, else `.unsupported`).
    package func value(of dataset: HDF5Dataset, limit: Int = 1 << 20) throws -> HDF5Value {
        let count = dataset.dataspace.elementCount
        guard let total = Checked.multiply(count, dataset.datatype.size), total <= limit else {
            throw CheckpointError.unsupported(
                path: file.path, kind: "a dataset of \(count) elements read as a value (\"\(dataset.path)\")",
                advice: "values are read from datasets of at most \(limit) bytes")
        }
        var heaps = HDF5GlobalHeaps(fileSize: file.size)
        let location = "dataset \"\(dataset.path)\" (object header at offset \(dataset.headerOffset))"
        if case .null = dataset.dataspace { return .empty }
        let raw: [UInt8]
        switch dataset.storage {
        case .contiguous(let address, let size):
            raw = size == 0 ? [] : Array(file.bytes[(address ?? 0)..<((address ?? 0) + size)])
        case .compact(let bytes):
            raw = bytes
        case .chunked:
            var stored = dataset.datatype
            if case .variableString = stored { stored = .opaque(size: 16, tag: "") }
            let plain = HDF5Dataset(
                path: dataset.path, headerOffset: dataset.headerOffset, datatype: stored, dataspace: dataset.dataspace,
                storage: dataset.storage, attributes: [])
            let source = try self.source(of: plain)
            let sink = CollectingSink()
            try source.stream(0..<source.byteCount, chunkSize: 1 << 20, to: sink)
            raw = sink.bytes
        }
        guard raw.count == total else {
            throw CheckpointError.malformed(path: file.path, location: location, reason: "\(raw.count) bytes of elements, \(total) expected")
        }
        return try raw.withUnsafeBytes { data in
            try withExtendedLifetime(file) {
                try bytes.values(data, type: dataset.datatype, space: dataset.dataspace, heaps: &heaps, location: location)
            }
        }
    }
}
