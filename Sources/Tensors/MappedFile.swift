/// A read-only memory mapping of a whole file; the mapping lives exactly as long as this object.
///
/// Needs: a regular file the process can read. Throws `TensorsError.mapFailed` naming the failing call.
/// An empty file maps to an empty buffer (mmap of length 0 is not allowed).
/// Views handed out by `bytes` are valid only while the `MappedFile` is alive; keep a reference (every
/// `Checkpoint` does) or use `withBytes`.
public final class MappedFile: @unchecked Sendable {
    /// The path the file was opened at.
    public let path: String
    /// The file's size in bytes when it was mapped.
    public let size: Int
    private let base: UnsafeMutableRawPointer?
    /// Kept open for `read(at:count:)`.
    private let descriptor: Int32

    /// Opens and maps `path`: the one gate every file ditkit reads goes through.
    ///
    /// Opens with `O_NONBLOCK` (opening a named pipe would otherwise wait forever for a writer), then refuses
    /// anything `fstat` does not call a regular file — FIFO, device, socket, directory — before reading a byte.
    /// Throws `TensorsError.notRegularFile` for those, `.mapFailed` naming the failing call otherwise.
    public init(path: String) throws {
        self.path = path
        let fd = Platform.openForReading(path)
        guard fd >= 0 else {
            let code = Platform.errno
            // A socket cannot be opened at all (ENXIO): name its kind rather than the errno.
            if let kind = Platform.nonRegularKind(path: path) { throw TensorsError.notRegularFile(path: path, kind: kind) }
            throw TensorsError.mapFailed(path: path, operation: "open", errno: code)
        }
        var keep = false
        defer { if !keep { Platform.close(fd) } }
        guard let info = Platform.describe(descriptor: fd) else {
            throw TensorsError.mapFailed(path: path, operation: "fstat", errno: Platform.errno)
        }
        if let kind = info.nonRegularKind { throw TensorsError.notRegularFile(path: path, kind: kind) }
        size = info.size
        descriptor = fd
        if size == 0 {
            base = nil
            keep = true
            return
        }
        guard let pointer = Platform.mapReadOnly(fd, size: size) else {
            throw TensorsError.mapFailed(path: path, operation: "mmap", errno: Platform.errno)
        }
        base = pointer
        keep = true
    }

    deinit {
        if let base { Platform.unmap(base, size: size) }
        Platform.close(descriptor)
    }

    /// Copies `count` bytes at `offset` with `pread`, without touching the mapping. For small scattered reads
    /// (zip local headers) this keeps the kernel from mapping a fault-around window of pages for each one.
    /// Returns fewer bytes only at the end of the file.
    package func read(at offset: Int, count: Int) -> [UInt8] {
        guard offset >= 0, offset < size, count > 0 else { return [] }
        let wanted = min(count, size - offset)
        var buffer = [UInt8](repeating: 0, count: wanted)
        let filled = buffer.withUnsafeMutableBytes { Platform.readFully(descriptor, into: $0.baseAddress!, count: wanted, at: offset) }
        if filled < wanted {  // fall back to the mapping (e.g. the file shrank, or a read error)
            return [UInt8](bytes[offset..<(offset + wanted)])
        }
        return buffer
    }

    /// The mapped bytes. Valid while `self` is alive (a raw pointer into the mapping: package-internal; library
    /// users read through `withBytes`).
    package var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base.map { UnsafeRawPointer($0) }, count: size)
    }

    /// Runs `body` with the mapped bytes, keeping the mapping alive for the call.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(bytes) }
    }

    /// Copies `count` bytes at `offset` to the current position of `destination` inside the kernel
    /// (`copy_file_range`), as `cp` does. Returns the bytes copied; 0 when the kernel cannot copy between these
    /// files (the caller then copies through memory), fewer than `count` only on an error after some progress.
    package func copy(offset: Int, count: Int, to destination: Int32) -> Int {
        guard offset >= 0, count > 0, offset + count <= size else { return 0 }
        return Platform.copyFileRange(from: descriptor, offset: offset, count: count, to: destination)
    }

    /// Reads up to `buffer.count` bytes at `offset` with `pread` into `buffer`; returns the bytes read (fewer
    /// only at the end of the file or on an error, which the caller treats as a short read).
    package func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress, offset >= 0, offset < size else { return 0 }
        return Platform.readFully(descriptor, into: base, count: min(buffer.count, size - offset), at: offset)
    }
}
