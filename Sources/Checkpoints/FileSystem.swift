import Tensors

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few file-system operations writers need, each turned into a `CheckpointError.io` naming the path.
public enum FileSystem {
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The last component of a path.
    public static func fileName(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }
    public static func isDirectory(_ path: String) -> Bool { FormatSniffer.isDirectory(path) }

    public static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw CheckpointError.io(path: path, operation: "mkdir", detail: describeErrno(errno))
        }
    }

    /// A new empty directory beside `path` (same file system, so it can be renamed onto `path`).
    public static func temporaryDirectory(beside path: String) throws -> String {
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        let slash = trimmed.lastIndex(of: "/")
        let parent = slash.map { String(trimmed[..<$0]) } ?? "."
        let base = slash.map { String(trimmed[trimmed.index(after: $0)...]) } ?? trimmed
        var template = Array("\(parent.isEmpty ? "/" : parent)/.\(base).tmp-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw CheckpointError.io(path: path, operation: "create a temporary folder", detail: describeErrno(errno))
        }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    public static func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else {
            throw CheckpointError.io(path: to, operation: "rename", detail: describeErrno(errno))
        }
    }

    /// Removes a file or a folder and everything in it.
    public static func removeTree(_ path: String) {
        if isDirectory(path), let names = try? FormatSniffer.listDirectory(path) {
            for name in names { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// Copies a file through a 1 MiB buffer (atomically: temporary name, then rename).
    public static func copyFile(_ from: String, _ to: String) throws {
        let source = try MappedFile(path: from)
        let out = try AtomicFileWriter(destination: to)
        do {
            var offset = 0
            while offset < source.size {
                let end = min(source.size, offset + (1 << 20))
                try out.write(UnsafeRawBufferPointer(rebasing: source.bytes[offset..<end]))
                offset = end
            }
            try out.commit()
        } catch {
            out.abort()
            throw error
        }
    }

    /// Replaces `destination` with the finished folder `staged` (renaming; the old one is removed after).
    public static func replaceFolder(_ destination: String, with staged: String, overwrite: Bool) throws {
        if exists(destination) {
            guard overwrite else {
                removeTree(staged)
                throw CheckpointError.io(path: destination, operation: "create", detail: "it exists (use --force to replace it)")
            }
            let old = try temporaryDirectory(beside: destination)
            rmdir(old)
            try rename(destination, old)
            try rename(staged, destination)
            removeTree(old)
        } else {
            try rename(staged, destination)
        }
    }
}
