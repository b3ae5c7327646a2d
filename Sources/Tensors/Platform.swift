// Every system call of the Tensors module, and its only platform imports (one `#if` ladder, as
// swift-argument-parser's `Utilities/Platform.swift`). Each wrapper names the C function it calls and hands back
// plain Swift values; callers turn failures into `TensorsError` at once.

import CDitkitSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `strerror` text for an errno value.
package func describeErrno(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}

/// The calling thread's `errno` (for the platform seams of ditkit's modules).
package func currentErrno() -> Int32 {
    #if canImport(Glibc)
    return Glibc.errno
    #elseif canImport(Musl)
    return Musl.errno
    #else
    return Darwin.errno
    #endif
}

/// The system calls behind `MappedFile`.
enum Platform {
    /// The calling thread's `errno`.
    static var errno: Int32 { currentErrno() }

    /// `open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)`: a descriptor, or -1 with `errno` set. Non-blocking so that
    /// opening a named pipe does not wait for a writer.
    static func openForReading(_ path: String) -> Int32 {
        open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    }

    /// `close(2)`.
    static func close(_ fd: Int32) { _ = closeDescriptor(fd) }

    private static func closeDescriptor(_ fd: Int32) -> Int32 {
        #if canImport(Glibc)
        return Glibc.close(fd)
        #elseif canImport(Musl)
        return Musl.close(fd)
        #else
        return Darwin.close(fd)
        #endif
    }

    /// What `fstat(2)` says of `fd`: its size and, when it is not a regular file, what it is in words.
    /// nil with `errno` set when `fstat` fails.
    static func describe(descriptor fd: Int32) -> (size: Int, nonRegularKind: String?)? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        return (Int(info.st_size), kind(of: info.st_mode))
    }

    /// What `stat(2)` says `path` is, in words, when it exists and is not a regular file; nil otherwise.
    static func nonRegularKind(path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return kind(of: info.st_mode)
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

    /// `mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)`, then `madvise(MADV_RANDOM)` (checkpoints are read in
    /// scattered small pieces: no read-ahead or fault-around). nil with `errno` set when `mmap` fails.
    static func mapReadOnly(_ fd: Int32, size: Int) -> UnsafeMutableRawPointer? {
        let pointer = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let pointer, pointer != MAP_FAILED else { return nil }
        _ = madvise(pointer, size, MADV_RANDOM)
        return pointer
    }

    /// `munmap(2)`.
    static func unmap(_ pointer: UnsafeMutableRawPointer, size: Int) { _ = munmap(pointer, size) }

    /// `pread(2)` until `count` bytes are read, the file ends or an error other than `EINTR`; the bytes read.
    static func readFully(_ fd: Int32, into base: UnsafeMutableRawPointer, count: Int, at offset: Int) -> Int {
        var filled = 0
        while filled < count {
            let n = pread(fd, base + filled, count - filled, off_t(offset + filled))
            if n > 0 { filled += n } else if n < 0 && errno == EINTR { continue } else { break }
        }
        return filled
    }

    /// `copy_file_range(2)` (through CDitkitSystem, which Glibc does not export) until `count` bytes are copied
    /// from `input` at `offset` to the current position of `output`, or an error other than `EINTR`; the bytes copied.
    static func copyFileRange(from input: Int32, offset: Int, count: Int, to output: Int32) -> Int {
        var position = Int64(offset)
        var copied = 0
        while copied < count {
            let n = ditkit_copy_file_range(input, &position, output, UInt(count - copied))
            if n > 0 { copied += n } else if n < 0 && errno == EINTR { continue } else { break }
        }
        return copied
    }
}
