// The C library calls of the ditkit command, in one place (the swift-argument-parser `Platform.swift` habit): no
// other file of the module imports Glibc or Darwin.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#else
#error("the ditkit command needs Glibc or Darwin")
#endif

/// Thin wrappers over libc, named after the calls they make.
enum Platform {
    /// `getenv`, as a String.
    static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    /// `fflush(NULL)`: every open output stream.
    static func flushAll() { fflush(nil) }

    /// `exit`.
    static func exit(_ code: Int32) -> Never { libcExit(code) }

    /// `isatty`.
    static func isTerminal(_ descriptor: Int32) -> Bool { isatty(descriptor) == 1 }

    /// Writes all of `bytes` to `descriptor` with `write`, retrying short writes; stops at the first failure.
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let n = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if n <= 0 { break }
            offset += n
        }
    }

    /// Seconds on `CLOCK_MONOTONIC`.
    static func monotonicSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// The lines of a text file (`fopen`/`fgets`, lines up to 255 bytes), nil when it cannot be opened.
    static func lines(ofFile path: String) -> [String]? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        var lines: [String] = []
        while fgets(&line, Int32(line.count), file) != nil {
            lines.append(String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return lines
    }
}

private func libcExit(_ code: Int32) -> Never { exit(code) }
