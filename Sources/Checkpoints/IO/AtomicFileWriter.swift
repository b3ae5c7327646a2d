import Tensors

/// A file written to a temporary name beside its destination and renamed into place only when complete,
/// so a crash or error never leaves a half-written output (or damages an existing one).
///
/// The one way Checkpoints writes a file. `write(_:to:overwrite:durable:)` writes a byte array in one call;
/// `withFile(at:overwrite:durable:_:)` streams into the writer and commits when the body returns (discarding the
/// temporary file when it throws): every writer of Checkpoints goes through one of the two. `init`, `commit` and
/// `abort` remain for a caller that must hold the file open across calls.
public final class AtomicFileWriter: ByteSink {
    /// Where the file goes when committed.
    public let destination: String
    /// The temporary file being written, beside `destination`.
    public let temporaryPath: String
    private var fd: Int32
    private var finished = false
    /// Bytes written so far.
    public private(set) var bytesWritten = 0
    /// `fsync` before the rename, so the file survives a power loss (the rename alone already guarantees that a
    /// crash or error never leaves a partial file under the destination name).
    public let durable: Bool

    /// Creates the temporary file. Throws `CheckpointError.outputExists` when `destination` exists and `overwrite`
    /// is not set, `.io` when the temporary file cannot be created.
    public init(destination: String, overwrite: Bool = false, durable: Bool = false) throws {
        self.destination = destination
        self.durable = durable
        if !overwrite && Platform.exists(destination) { throw CheckpointError.outputExists(path: destination) }
        guard let (descriptor, temporary) = Platform.makeTemporaryFile(beside: destination) else {
            throw CheckpointError.io(path: destination, operation: "create a temporary file", detail: describeErrno(Platform.errno))
        }
        fd = descriptor
        temporaryPath = temporary
    }

    deinit { if !finished { abort() } }

    /// Writes `bytes` to `path` atomically (see the type): the whole file in one call.
    public static func write(_ bytes: [UInt8], to path: String, overwrite: Bool = false, durable: Bool = false) throws {
        try withFile(at: path, overwrite: overwrite, durable: durable) { try $0.write(bytes) }
    }

    /// Creates the file at `path`, lets `body` write it, and commits it when `body` returns; discards it when
    /// `body` (or the commit) throws, rethrowing the error. Returns what `body` returns.
    @discardableResult
    public static func withFile<R>(
        at path: String, overwrite: Bool = false, durable: Bool = false, _ body: (AtomicFileWriter) throws -> R
    ) throws -> R {
        let out = try AtomicFileWriter(destination: path, overwrite: overwrite, durable: durable)
        do {
            let result = try body(out)
            try out.commit()
            return result
        } catch {
            out.abort()
            throw error
        }
    }

    /// Appends `bytes`. Throws `.io` naming the destination when the system cannot write them.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var pointer = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let n = Platform.write(fd, pointer, remaining)
            if n < 0 {
                if Platform.interrupted { continue }
                throw CheckpointError.io(path: destination, operation: "write", detail: describeErrno(Platform.errno))
            }
            remaining -= n
            pointer += n
            bytesWritten += n
        }
    }

    /// Appends `bytes`.
    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Copies in the kernel (`copy_file_range`); false when the kernel cannot, before anything was written.
    public func copy(from file: MappedFile, offset: Int, count: Int) throws -> Bool {
        let copied = file.copy(offset: offset, count: count, to: fd)
        bytesWritten += copied
        if copied == count { return true }
        if copied == 0 { return false }
        throw CheckpointError.io(path: destination, operation: "copy_file_range", detail: describeErrno(Platform.errno))
    }

    /// Overwrites bytes already written at `offset` (e.g. a zip local header's sizes), without moving the end.
    public func patch(at offset: Int, _ bytes: [UInt8]) throws {
        precondition(offset >= 0 && offset + bytes.count <= bytesWritten)
        let n = bytes.withUnsafeBytes { Platform.write(fd, $0.baseAddress, $0.count, at: offset) }
        guard n == bytes.count else {
            throw CheckpointError.io(path: destination, operation: "pwrite", detail: describeErrno(Platform.errno))
        }
    }

    /// Closes (after `fsync` when `durable`) and renames the temporary file onto the destination.
    public func commit() throws {
        guard !finished else { return }
        guard !durable || Platform.synchronize(fd) else {
            throw CheckpointError.io(path: destination, operation: "fsync", detail: describeErrno(Platform.errno))
        }
        Platform.makeReadable(fd)
        Platform.close(fd)
        finished = true
        guard Platform.rename(temporaryPath, destination) else {
            let detail = describeErrno(Platform.errno)
            Platform.unlink(temporaryPath)
            throw CheckpointError.io(path: destination, operation: "rename", detail: detail)
        }
    }

    /// Discards the temporary file.
    public func abort() {
        guard !finished else { return }
        finished = true
        Platform.close(fd)
        Platform.unlink(temporaryPath)
    }
}
