import Tensors

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `write(2)`.
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, pointer, count)
    #else
    return Darwin.write(fd, pointer, count)
    #endif
}

/// A file written to a temporary name beside its destination and renamed into place only when complete,
/// so a crash or error never leaves a half-written output (or damages an existing one).
public final class AtomicFileWriter {
    public let destination: String
    public let temporaryPath: String
    private var fd: Int32
    private var finished = false
    public private(set) var bytesWritten = 0
    /// `fsync` before the rename, so the file survives a power loss (the rename alone already guarantees that a
    /// crash or error never leaves a partial file under the destination name).
    public let durable: Bool

    /// Creates the temporary file. Refuses to replace an existing `destination` unless `overwrite`.
    public init(destination: String, overwrite: Bool = false, durable: Bool = false) throws {
        self.destination = destination
        self.durable = durable
        if !overwrite && access(destination, F_OK) == 0 {
            throw CheckpointError.io(path: destination, operation: "create", detail: "the file exists (use --force to replace it)")
        }
        let slash = destination.lastIndex(of: "/")
        let directory = slash.map { String(destination[..<$0]) } ?? "."
        let base = slash.map { String(destination[destination.index(after: $0)...]) } ?? destination
        var template = Array("\(directory.isEmpty ? "/" : directory)/.\(base).tmp-XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else {
            throw CheckpointError.io(path: destination, operation: "create a temporary file", detail: describeErrno(errno))
        }
        fd = descriptor
        temporaryPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    deinit { if !finished { abort() } }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var pointer = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let n = systemWrite(fd, pointer, remaining)
            if n < 0 {
                if errno == EINTR { continue }
                throw CheckpointError.io(path: destination, operation: "write", detail: describeErrno(errno))
            }
            remaining -= n
            pointer += n
            bytesWritten += n
        }
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Copies in the kernel (`copy_file_range`); false when the kernel cannot, before anything was written.
    public func copy(from file: MappedFile, offset: Int, count: Int) throws -> Bool {
        let copied = file.copy(offset: offset, count: count, to: fd)
        bytesWritten += copied
        if copied == count { return true }
        if copied == 0 { return false }
        throw CheckpointError.io(path: destination, operation: "copy_file_range", detail: describeErrno(errno))
    }

    /// Overwrites bytes already written at `offset` (e.g. a zip local header's sizes), without moving the end.
    public func patch(at offset: Int, _ bytes: [UInt8]) throws {
        precondition(offset >= 0 && offset + bytes.count <= bytesWritten)
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        guard n == bytes.count else {
            throw CheckpointError.io(path: destination, operation: "pwrite", detail: describeErrno(errno))
        }
    }

    /// Closes (after `fsync` when `durable`) and renames the temporary file onto the destination.
    public func commit() throws {
        guard !finished else { return }
        guard !durable || fsync(fd) == 0 || errno == EINVAL else {
            throw CheckpointError.io(path: destination, operation: "fsync", detail: describeErrno(errno))
        }
        fchmod(fd, 0o644)
        close(fd)
        finished = true
        guard rename(temporaryPath, destination) == 0 else {
            let detail = describeErrno(errno)
            unlink(temporaryPath)
            throw CheckpointError.io(path: destination, operation: "rename", detail: detail)
        }
    }

    /// Discards the temporary file.
    public func abort() {
        guard !finished else { return }
        finished = true
        close(fd)
        unlink(temporaryPath)
    }
}

/// Writes safetensors files: a header padded with spaces to a multiple of 8 carrying `format: pt` metadata,
/// then each tensor's bytes, streamed one tensor at a time to a temporary file that is renamed at the end.
public struct SafetensorsWriter {
    /// One tensor to write; its bytes are produced when its turn comes.
    public typealias Entry = OutputTensor

    /// The header bytes (length prefix included) for `entries`, in the order given.
    public static func header(for entries: [Entry], metadata: [(String, String)]) throws -> [UInt8] {
        var pairs: [(String, JSONValue)] = []
        var meta = metadata
        if !meta.contains(where: { $0.0 == "format" }) { meta.insert(("format", "pt"), at: 0) }
        pairs.append(("__metadata__", .object(meta.map { ($0.0, .string($0.1)) })))
        var offset = 0
        var seen = Set<String>()
        for entry in entries {
            guard seen.insert(entry.name).inserted else {
                throw CheckpointError.malformed(path: "(output)", location: "tensor \(entry.name)", reason: "written twice")
            }
            guard let dtypeName = SafetensorsDType.name(entry.dtype) else {
                throw CheckpointError.malformed(
                    path: "(output)", location: "tensor \(entry.name)", reason: "\(entry.dtype.rawValue) has no safetensors dtype")
            }
            let bytes = try TensorLayout(contiguous: entry.shape).byteCount(of: entry.dtype)
            guard let end = Checked.add(offset, bytes) else {
                throw CheckpointError.malformed(
                    path: "(output)", location: "tensor \(entry.name)", reason: "the tensors before it and its \(bytes) bytes pass 2^63 bytes")
            }
            pairs.append(
                (entry.name, .object([
                    ("dtype", .string(dtypeName)), ("shape", .array(entry.shape.map { .int($0) })),
                    ("data_offsets", .array([.int(offset), .int(end)])),
                ])))
            offset = end
        }
        var json = Array(JSONValue.object(pairs).serialized().utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        return out
    }

    /// Writes `entries` to `path` atomically. Returns the number of bytes written.
    @discardableResult
    public static func write(
        _ entries: [Entry], metadata: [(String, String)] = [], to path: String, overwrite: Bool = false, durable: Bool = false
    ) throws -> Int {
        let out = try AtomicFileWriter(destination: path, overwrite: overwrite, durable: durable)
        do {
            try out.write(try header(for: entries, metadata: metadata))
            for entry in entries {
                let before = out.bytesWritten
                try entry.produce(out)
                let expected = try TensorLayout(contiguous: entry.shape).byteCount(of: entry.dtype)
                guard out.bytesWritten - before == expected else {
                    throw CheckpointError.malformed(
                        path: path, location: "tensor \(entry.name)",
                        reason: "produced \(out.bytesWritten - before) bytes, \(expected) expected")
                }
            }
            try out.commit()
        } catch {
            out.abort()
            throw error
        }
        return out.bytesWritten
    }
}
