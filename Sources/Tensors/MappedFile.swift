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

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TensorsError.mapFailed(path: path, operation: "open", errno: errno) }
        var keep = false
        defer { if !keep { close(fd) } }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw TensorsError.mapFailed(path: path, operation: "fstat", errno: errno)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw TensorsError.mapFailed(path: path, operation: "open (not a regular file)", errno: EINVAL)
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

    /// Drops the pages wholly inside a byte range from this process's resident set (`madvise(MADV_DONTNEED)`).
    /// The mapping stays valid: the data is still in the page cache and faults back in if touched again. Used
    /// after streaming a tensor out, so converting a file larger than memory keeps a small footprint.
    public func releasePages(offset: Int, count: Int) {
        guard let base, count > 0, offset >= 0, offset < size else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (offset + page - 1) / page * page
        let end = min(size, offset + count) / page * page
        guard end > start else { return }
        _ = madvise(base + start, end - start, MADV_DONTNEED)
    }

    /// Tells the kernel a range will be read front to back soon (`madvise(MADV_SEQUENTIAL | MADV_WILLNEED)`).
    public func adviseSequential(offset: Int = 0, count: Int? = nil) {
        guard let base, size > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (offset / page) * page
        let end = min(size, offset + (count ?? (size - offset)))
        guard end > start else { return }
        _ = madvise(base + start, end - start, MADV_SEQUENTIAL)
        _ = madvise(base + start, end - start, MADV_WILLNEED)
    }
}
