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

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TensorsError.mapFailed(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw TensorsError.mapFailed(path: path, operation: "fstat", errno: errno)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw TensorsError.mapFailed(path: path, operation: "open (not a regular file)", errno: EINVAL)
        }
        size = Int(info.st_size)
        if size == 0 {
            base = nil
            return
        }
        let pointer = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw TensorsError.mapFailed(path: path, operation: "mmap", errno: errno)
        }
        base = pointer
    }

    deinit {
        if let base { munmap(base, size) }
    }

    /// The mapped bytes. Valid while `self` is alive.
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base.map { UnsafeRawPointer($0) }, count: size)
    }

    /// Runs `body` with the mapped bytes, keeping the mapping alive for the call.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(bytes) }
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
