// Every system call of the Checkpoints module, and its only platform imports (one `#if` ladder, as
// swift-argument-parser's `Utilities/Platform.swift`). Each wrapper names the C function it calls and returns
// plain Swift values (a Bool, an optional) with `errno` left for the caller, which throws a `CheckpointError`
// naming the path at once.

import CDitkitSystem
import Tensors

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The system calls behind `FileSystem`, `FormatSniffer` and `AtomicFileWriter`.
enum Platform {
    // MARK: errno

    /// The calling thread's `errno`.
    static var errno: Int32 { currentErrno() }

    /// `errno` is `EINTR` (retry the call).
    static var interrupted: Bool { errno == EINTR }
    /// `errno` is `ENOENT`.
    static var notFound: Bool { errno == ENOENT }
    /// `errno` is `ENOENT` or `ENOTDIR` (a path through a file).
    static var missing: Bool { errno == ENOENT || errno == ENOTDIR }
    /// `errno` is `EEXIST`.
    static var alreadyExists: Bool { errno == EEXIST }

    // MARK: file status

    /// What a path is.
    enum FileType: Equatable {
        case regular, directory, symlink
        /// Anything else, in words: `a named pipe`, `a character device`, `a block device`, `a socket`, `mode …`.
        case other(String)
    }

    /// `lstat(2)` (or `stat(2)` when `followingSymlink`): the type and device of `path`, or nil with `errno` set.
    static func status(_ path: String, followingSymlink: Bool) -> (type: FileType, device: UInt64)? {
        var info = stat()
        guard (followingSymlink ? stat(path, &info) : lstat(path, &info)) == 0 else { return nil }
        return (fileType(info.st_mode), UInt64(info.st_dev))
    }

    static func fileType(_ mode: mode_t) -> FileType {
        switch mode & S_IFMT {
        case S_IFREG: return .regular
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        case S_IFIFO: return .other("a named pipe")
        case S_IFCHR: return .other("a character device")
        case S_IFBLK: return .other("a block device")
        case S_IFSOCK: return .other("a socket")
        default: return .other("mode \(String(mode, radix: 8))")
        }
    }

    /// `access(path, F_OK)`: whether the path exists (following a final symlink).
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    // MARK: paths

    /// `realpath(3)`: `path` resolved, or nil when some part of it does not exist.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// `getcwd(3)`.
    static func currentDirectory() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: creating, renaming, removing

    /// `mkdir(path, 0755)`: true when made or already there.
    static func makeDirectory(_ path: String) -> Bool { mkdir(path, 0o755) == 0 || errno == EEXIST }

    /// `mkdtemp(3)` of `<parent>/.<base>.tmp-XXXXXX`: the new folder's path, or nil with `errno` set.
    static func makeTemporaryDirectory(parent: String, base: String) -> String? {
        var template = Array("\(parent.isEmpty ? "/" : parent)/.\(base).tmp-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else { return nil }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// `mkstemp(3)` of `<folder of destination>/.<name>.tmp-XXXXXX`: the open descriptor and path, or nil with
    /// `errno` set.
    static func makeTemporaryFile(beside destination: String) -> (Int32, String)? {
        let slash = destination.lastIndex(of: "/")
        let directory = slash.map { String(destination[..<$0]) } ?? "."
        let base = slash.map { String(destination[destination.index(after: $0)...]) } ?? destination
        var template = Array("\(directory.isEmpty ? "/" : directory)/.\(base).tmp-XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else { return nil }
        return (descriptor, template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }

    /// `rename(2)`: true on success.
    static func rename(_ from: String, _ to: String) -> Bool {
        #if canImport(Glibc)
        return Glibc.rename(from, to) == 0
        #elseif canImport(Musl)
        return Musl.rename(from, to) == 0
        #else
        return Darwin.rename(from, to) == 0
        #endif
    }

    /// `renameat2(a, b, RENAME_EXCHANGE)` (through CDitkitSystem): swaps two paths atomically. true on success;
    /// `exchangeUnsupported` tells a kernel or file system that cannot from a real failure.
    static func exchange(_ a: String, _ b: String) -> Bool { ditkit_rename_exchange(a, b) == 0 }

    /// `errno` is `ENOSYS` or `EINVAL`: the last `exchange` failed because it is not supported here.
    static var exchangeUnsupported: Bool { errno == ENOSYS || errno == EINVAL }

    /// `unlink(2)`, errors ignored.
    static func unlink(_ path: String) {
        #if canImport(Glibc)
        _ = Glibc.unlink(path)
        #elseif canImport(Musl)
        _ = Musl.unlink(path)
        #else
        _ = Darwin.unlink(path)
        #endif
    }

    /// `rmdir(2)`, errors ignored.
    static func removeDirectory(_ path: String) { _ = rmdir(path) }

    /// Removes a file, a symlink or a folder and everything in it, never following a symlink and never leaving
    /// `path`'s file system (see `FileSystem.removeTree`): `lstat`, `unlink`, `open(O_DIRECTORY | O_NOFOLLOW)`,
    /// `fdopendir`/`readdir`, `fstatat`, `openat`, `unlinkat`, `rmdir`. Errors are ignored.
    static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            unlink(path)
            return
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        removeContents(of: fd, device: info.st_dev)
        close(fd)
        rmdir(path)
    }

    /// Empties the folder open as `fd`, entering subfolders on `device` relative to it with `O_NOFOLLOW` so that
    /// a folder swapped for a symlink meanwhile is not entered either.
    private static func removeContents(of fd: Int32, device: dev_t) {
        guard let names = entryNames(descriptor: fd) else { return }
        for name in names {
            var info = stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                guard info.st_dev == device else { continue }
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { continue }
                removeContents(of: child, device: device)
                close(child)
                unlinkat(fd, name, AT_REMOVEDIR)
            } else {
                unlinkat(fd, name, 0)
            }
        }
    }

    // MARK: listing

    /// The names in the folder `path` (without `.` and `..`, unsorted), through `opendir`/`readdir`; nil with
    /// `errno` set when it cannot be opened.
    static func listDirectory(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        return names(in: dir)
    }

    /// Every name `readdir` gives for the open `dir`, without `.` and `..`.
    private static func names(in dir: OpaquePointer) -> [String] {
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The names in the folder open as `fd` (which stays open), through `dup` + `fdopendir`.
    private static func entryNames(descriptor fd: Int32) -> [String]? {
        let listing = dup(fd)
        guard listing >= 0 else { return nil }
        guard let dir = fdopendir(listing) else {
            close(listing)
            return nil
        }
        defer { closedir(dir) }
        return names(in: dir)
    }

    // MARK: writing a descriptor

    /// `write(2)`: bytes written, or -1 with `errno` set.
    static func write(_ fd: Int32, _ pointer: UnsafeRawPointer?, _ count: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.write(fd, pointer, count)
        #elseif canImport(Musl)
        return Musl.write(fd, pointer, count)
        #else
        return Darwin.write(fd, pointer, count)
        #endif
    }

    /// `pwrite(2)` at `offset`: bytes written, or -1 with `errno` set.
    static func write(_ fd: Int32, _ pointer: UnsafeRawPointer?, _ count: Int, at offset: Int) -> Int {
        pwrite(fd, pointer, count, off_t(offset))
    }

    /// `fsync(2)`: true on success or where the file cannot be synchronised (`EINVAL`: a pipe, some file systems).
    static func synchronize(_ fd: Int32) -> Bool { fsync(fd) == 0 || errno == EINVAL }

    /// `fchmod(fd, 0644)` (mkstemp creates 0600), errors ignored.
    static func makeReadable(_ fd: Int32) { _ = fchmod(fd, 0o644) }

    /// `close(2)`, errors ignored.
    static func close(_ fd: Int32) {
        #if canImport(Glibc)
        _ = Glibc.close(fd)
        #elseif canImport(Musl)
        _ = Musl.close(fd)
        #else
        _ = Darwin.close(fd)
        #endif
    }
}

/// A mutual-exclusion lock (a heap-allocated `pthread_mutex_t`) for the few values a reader computes once on first
/// use from several threads (a chunked dataset's index).
final class PlatformLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` holding the lock.
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
