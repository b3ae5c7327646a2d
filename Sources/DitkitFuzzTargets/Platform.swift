// The C library calls of the fuzz targets, in one place (the swift-argument-parser `Platform.swift` habit): no other
// file of the module imports Glibc or Darwin.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#else
#error("DitkitFuzzTargets needs Glibc or Darwin")
#endif

/// Thin wrappers over libc, named after the calls they make.
enum Platform {
    /// `getenv`, as a String.
    static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    /// `strerror(errno)`.
    static var lastError: String { String(cString: strerror(errno)) }

    /// `mkdtemp` on `template` (ending in XXXXXX): the folder made, or nil.
    static func makeTemporaryFolder(_ template: String) -> String? {
        var bytes = Array(template.utf8CString)
        guard bytes.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else { return nil }
        return bytes.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// `atexit`.
    static func atExit(_ body: @escaping @convention(c) () -> Void) { atexit(body) }

    /// `pthread_self`, as a number for a folder name.
    static var threadID: String { "\(pthread_self())" }

    /// `mkdir(path, 0755)`; an existing folder is fine.
    static func makeFolder(_ path: String) { mkdir(path, 0o755) }

    /// `unlink`; a missing file is fine.
    static func removeFile(_ path: String) { unlink(path) }

    /// Writes `bytes` to `path` (created or truncated, mode 0644) with `open`/`write`; the error text on failure.
    static func writeFile(_ path: String, _ bytes: [UInt8]) -> String? {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return "cannot write \(path): \(lastError)" }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            guard n > 0 else { return "short write to \(path): \(lastError)" }
            done += n
        }
        return nil
    }
}
