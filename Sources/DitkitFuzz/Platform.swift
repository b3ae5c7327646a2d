// The C library calls of the fuzz program, in one place (the swift-argument-parser `Platform.swift` habit): no other
// file of the module imports Glibc or Darwin.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#else
#error("DitkitFuzz needs Glibc or Darwin")
#endif

/// Thin wrappers over libc, named after the calls they make.
enum Platform {
    /// `getenv`, as a String.
    static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    /// `exit`.
    static func exit(_ code: Int32) -> Never { libcExit(code) }

    /// `write` to standard error (one call; a short write is not retried).
    static func writeStandardError(_ text: String) {
        var copy = text
        copy.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// The names in folder `path` (`opendir`/`readdir`, "." and ".." included), nil when it is not a folder.
    static func folderEntries(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            names.append(withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) })
        }
        return names
    }

    /// The bytes of file `path` (`fopen`/`fread`), nil when it cannot be opened.
    static func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            bytes += chunk[0..<n]
            if n < chunk.count { break }
        }
        return bytes
    }
}

private func libcExit(_ code: Int32) -> Never { exit(code) }
