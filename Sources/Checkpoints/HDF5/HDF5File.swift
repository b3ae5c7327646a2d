import Tensors

/// An HDF5 file opened for reading: the subset h5py writes (superblock v0, object headers v1 with continuation
/// blocks, symbol-table groups, compact attributes, contiguous/compact/chunked layouts, filter pipeline v1 with LZ4
/// and deflate/shuffle where supported), parsed by ditkit itself with every offset, size and count validated
/// before a byte is touched. Anything outside the subset is `CheckpointError.unsupported` ("unsupported HDF5 feature
/// X at offset Y"); damaged structures are `.malformed` naming the offset.
///
/// CONTRACT STUB — the reader work replaces the bodies.
package final class HDF5File: Sendable {
    /// The mapped file.
    package let file: MappedFile
    /// The root group, with every member group and dataset (metadata only: no dataset's elements are read).
    package let root: HDF5Group

    /// Parses the superblock and the whole group tree of `file` (metadata only).
    package init(file: MappedFile) throws {
        self.file = file
        throw CheckpointError.unsupported(path: file.path, kind: "an HDF5 file", advice: "the HDF5 reader is not built yet")
    }

    /// The raw elements of `dataset` as stored (row-major, the datatype's byte order), dataspace element count ×
    /// element size bytes, streamed chunk by chunk (each chunk decompressed into a bounded buffer). Validated
    /// before any element is read: the stored data covers exactly that many bytes (a contiguous block of the right
    /// size inside the file; every chunk present, in bounds, with a decompressed size matching the chunk).
    package func source(of dataset: HDF5Dataset) throws -> ByteSource {
        throw CheckpointError.unsupported(path: file.path, kind: "an HDF5 file", advice: "the HDF5 reader is not built yet")
    }

    /// The elements of a small dataset decoded as a value (scalars, strings; at most `limit` bytes read).
    package func value(of dataset: HDF5Dataset, limit: Int = 1 << 20) throws -> HDF5Value {
        throw CheckpointError.unsupported(path: file.path, kind: "an HDF5 file", advice: "the HDF5 reader is not built yet")
    }
}
