import CDitkitSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file; the mapping lives exactly as long as this object.
///
/// Needs: a regular file the process can read. Throws `TensorsError.mapFailed` naming the failing call.
/// An empty file maps to an empty buffer (mmap of length 0 is not allowed).
/// Views handed out by `bytes` are valid only while the `MappedFile` is alive; keep a reference (every
/// `Checkpoint` does) or use `withBytes`.
public final class MappedFile: @unchecked Sendable {
    public let path: String
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
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            // A socket cannot be opened at all (ENXIO): name its kind rather than the errno.
            var info = stat()
            if stat(path, &info) == 0, let kind = MappedFile.kind(of: info.st_mode) {
                throw TensorsError.notRegularFile(path: path, kind: kind)
            }
            throw TensorsError.mapFailed(path: path, operation: "open", errno: code)
        }
        var keep = false
        defer { if !keep { close(fd) } }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw TensorsError.mapFailed(path: path, operation: "fstat", errno: errno)
        }
        if let kind = MappedFile.kind(of: info.st_mode) {
            throw TensorsError.notRegularFile(path: path, kind: kind)
        }
        size = Int(info.st_size)
        descriptor = fd
        if size == 0 {
            base = nil
            keep = true
            return
        }
        let pointer = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw TensorsError.mapFailed(path: path, operation: "mmap", errno: errno)
        }
        base = pointer
        keep = true
        // Checkpoints are read in scattered small pieces (headers, one tensor at a time): no read-ahead or
        // fault-around, which would make every 30-byte zip header cost a 64 KiB window of resident pages.
        _ = madvise(pointer, size, MADV_RANDOM)
    }

    /// What a file of mode `mode` is, in words, when it is not a regular file; nil for a regular file.
    static func kind(of mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFIFO: return "a named pipe (FIFO)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFDIR: return "a directory"
        case S_IFLNK: return "a symbolic link"
        default: return "a file of unknown type (mode \(String(mode, radix: 8)))"
        }
    }

    deinit {
        if let base { munmap(base, size) }
        close(descriptor)
    }

    /// Copies `count` bytes at `offset` with `pread`, without touching the mapping. For small scattered reads
    /// (zip local headers) this keeps the kernel from mapping a fault-around window of pages for each one.
    /// Returns fewer bytes only at the end of the file.
    public func read(at offset: Int, count: Int) -> [UInt8] {
        guard offset >= 0, offset < size, count > 0 else { return [] }
        let wanted = min(count, size - offset)
        var buffer = [UInt8](repeating: 0, count: wanted)
        var filled = 0
        while filled < wanted {
            let n = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + filled, wanted - filled, off_t(offset + filled)) }
            if n > 0 { filled += n } else if n < 0 && errno == EINTR { continue } else { break }
        }
        if filled < wanted {  // fall back to the mapping (e.g. the file shrank, or a read error)
            return [UInt8](bytes[offset..<(offset + wanted)])
        }
        return buffer
    }

    /// The mapped bytes. Valid while `self` is alive.
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base.map { UnsafeRawPointer($0) }, count: size)
    }

    /// Runs `body` with the mapped bytes, keeping the mapping alive for the call.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(bytes) }
    }

    /// Copies `count` bytes at `offset` to the current position of `destination` inside the kernel
    /// (`copy_file_range`), as `cp` does. Returns the bytes copied; 0 when the kernel cannot copy between these
    /// files (the caller then copies through memory), fewer than `count` only on an error after some progress.
    public func copy(offset: Int, count: Int, to destination: Int32) -> Int {
        guard offset >= 0, count > 0, offset + count <= size else { return 0 }
        var input = Int64(offset)
        var copied = 0
        while copied < count {
            let n = ditkit_copy_file_range(descriptor, &input, destination, UInt(count - copied))
            if n > 0 { copied += n } else if n < 0 && errno == EINTR { continue } else { break }
        }
        return copied
    }

    /// Reads up to `buffer.count` bytes at `offset` with `pread` into `buffer`; returns the bytes read (fewer
    /// only at the end of the file or on an error, which the caller treats as a short read).
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress, offset >= 0, offset < size else { return 0 }
        let wanted = min(buffer.count, size - offset)
        var filled = 0
        while filled < wanted {
            let n = pread(descriptor, base + filled, wanted - filled, off_t(offset + filled))
            if n > 0 { filled += n } else if n < 0 && errno == EINTR { continue } else { break }
        }
        return filled
    }
}
