import CDitkitSystem
import Tensors

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few file-system operations readers and writers need, each turned into a `CheckpointError` naming the path.
///
/// Paths a checkpoint names are never trusted: a name from a file must be a plain name (`isPlainName`), a file
/// inside a checkpoint folder is reached only through `entry(_:root:)` (no symlink out of the folder, no FIFO or
/// device), and removing never follows a symlink (`removeTree`).
public enum FileSystem {
    /// Whether anything is at `path`, without following a final symlink (a dangling link exists).
    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// The last component of a path.
    public static func fileName(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }
    public static func isDirectory(_ path: String) -> Bool { FormatSniffer.isDirectory(path) }

    /// Whether `name` (a component, shard or file name read from a checkpoint) names an entry directly inside a
    /// folder: not empty, not `.` or `..`, no `/` and no NUL (which would cut the path short in a system call).
    public static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(UInt8(ascii: "/")) && !name.utf8.contains(0)
    }

    /// Throws `CheckpointError.escapes` unless `name` is a plain name; `file` and `location` say where it was read.
    public static func requirePlainName(_ name: String, file: String, location: String) throws {
        guard isPlainName(name) else {
            throw CheckpointError.escapes(
                path: file, location: location,
                reason: "\(JSONValue.string(name).serialized()) is not a plain name inside the folder "
                    + "(it must be non-empty, not . or .., without / or NUL)")
        }
    }

    /// What `entry(_:root:)` found.
    public enum EntryKind: Sendable { case file, directory }

    /// What is at `path`, a file or folder inside the checkpoint folder `root`, or nil when nothing is.
    ///
    /// A symlink is followed only when it stays inside `root`, or, for a folder in a Hugging Face cache snapshot
    /// (`<repo>/snapshots/<revision>/…`), inside the same repository's `blobs/` folder where the cache keeps the
    /// files its links point to. Throws `CheckpointError.escapes` for a symlink that leads elsewhere (a token file, another
    /// checkpoint) and `.unsupported` for anything but a regular file or folder (a FIFO would block a reader
    /// forever, a device would never end). Nothing is opened.
    public static func entry(_ path: String, root: String) throws -> EntryKind? {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw CheckpointError.io(path: path, operation: "lstat", detail: describeErrno(errno))
        }
        if (info.st_mode & S_IFMT) == S_IFLNK {
            let target = realPath(path)
            let inside = allowedRoots(root).contains { target == $0 || target.hasPrefix($0 == "/" ? "/" : $0 + "/") }
            guard inside else {
                throw CheckpointError.escapes(
                    path: path, location: "symlink",
                    reason: "leads to \(target), outside the checkpoint folder \(root); ditkit follows no link out of it "
                        + "(copy the file into the folder instead of linking it)")
            }
            guard stat(path, &info) == 0 else {
                if errno == ENOENT { return nil }
                throw CheckpointError.io(path: path, operation: "stat", detail: describeErrno(errno))
            }
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        default:
            throw CheckpointError.unsupported(
                path: path, kind: "not a regular file (\(typeName(info.st_mode)))",
                advice: "ditkit reads regular files only; a pipe or device could block or never end")
        }
    }

    /// The resolved root and, when it lies in a Hugging Face cache snapshot (`<repo>/snapshots/<revision>/…`),
    /// that repository's `blobs/` folder.
    static func allowedRoots(_ root: String) -> [String] {
        let resolved = realPath(root)
        let parts = resolved.split(separator: "/", omittingEmptySubsequences: true)
        guard let i = parts.dropLast().lastIndex(of: "snapshots"), i > 0 else { return [resolved] }
        return [resolved, "/" + parts[..<i].joined(separator: "/") + "/blobs"]
    }

    static func typeName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a named pipe"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symlink"
        default: return "mode \(String(mode, radix: 8))"
        }
    }

    /// `path` with every symlink of its existing part resolved and `.`/`..` removed, absolute. The part that does
    /// not exist yet (an output to be created) is appended as written, normalised.
    public static func realPath(_ path: String) -> String {
        var absolute = path
        if !path.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let cwd = getcwd(&buffer, buffer.count).map { _ in
                String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            } ?? "."
            absolute = cwd + "/" + path
        }
        var existing = absolute.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var rest: [String] = []
        while true {
            let candidate = "/" + existing.joined(separator: "/")
            if let resolved = realpath(candidate, nil) {
                defer { free(resolved) }
                var parts = String(cString: resolved).split(separator: "/").map(String.init)
                for part in rest.reversed() {
                    if part == ".." { _ = parts.popLast() } else if part != "." { parts.append(part) }
                }
                return "/" + parts.joined(separator: "/")
            }
            guard let last = existing.popLast() else { return absolute }
            rest.append(last)
        }
    }

    /// Why `output` must not be written when `input` is read, or nil when they are apart: the output would be the
    /// input, contain it (replacing a folder deletes what is in it) or lie inside it. Compares real paths, after
    /// resolving the symlinks of the parts that exist.
    public static func overlap(output: String, input: String) -> String? {
        let out = realPath(output), source = realPath(input)
        func isInside(_ a: String, _ b: String) -> Bool { b == "/" || a.hasPrefix(b + "/") }
        if out == source { return "the output \(output) is the input \(input)" + (out == output ? "" : " (\(out))") }
        if isInside(source, out) { return "the output \(output) contains the input \(input) (\(source)); replacing it would delete the input" }
        if isInside(out, source) { return "the output \(output) lies inside the input \(input) (\(source))" }
        return nil
    }

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

    /// Removes a file, a symlink or a folder and everything in it, never following a symlink: a link is removed
    /// itself, never what it points to, and no folder is entered through one, nor one on another file system (a
    /// mount point inside is left alone, as `rm --one-file-system` does). Best effort (errors are ignored).
    public static func removeTree(_ path: String) {
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
    static func removeContents(of fd: Int32, device: dev_t) {
        let listing = dup(fd)
        guard listing >= 0, let dir = fdopendir(listing) else {
            if listing >= 0 { close(listing) }
            return
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
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

    /// Copies a file through a 1 MiB buffer (atomically: temporary name, then rename).
    public static func copyFile(_ from: String, _ to: String) throws {
        let source: MappedFile
        do { source = try MappedFile(path: from) } catch { throw CheckpointError.mapping(error, path: from) }
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

    /// Replaces `destination` with the finished folder `staged`. When `destination` exists (a folder, a file or a
    /// symlink, which is replaced itself, never followed) and `overwrite` is set, the two are swapped in one
    /// atomic rename (`renameat2` `RENAME_EXCHANGE`; two renames where the file system cannot) and the old one is
    /// removed after, so `destination` is never missing or partial. Without `overwrite` an existing destination
    /// throws `CheckpointError.outputExists`. `staged` is gone afterwards either way.
    public static func replaceFolder(_ destination: String, with staged: String, overwrite: Bool) throws {
        guard exists(destination) else {
            do { try rename(staged, destination) } catch {
                removeTree(staged)
                throw error
            }
            return
        }
        guard overwrite else {
            removeTree(staged)
            throw CheckpointError.outputExists(path: destination)
        }
        if ditkit_rename_exchange(staged, destination) == 0 {
            removeTree(staged)  // now the old destination
            return
        }
        guard errno == ENOSYS || errno == EINVAL else {
            let code = errno
            removeTree(staged)
            throw CheckpointError.io(path: destination, operation: "replace", detail: describeErrno(code))
        }
        let old: String
        do {
            old = try temporaryDirectory(beside: destination)
            rmdir(old)
            try rename(destination, old)
        } catch {
            removeTree(staged)
            throw error
        }
        do { try rename(staged, destination) } catch {
            try? rename(old, destination)
            removeTree(staged)
            throw error
        }
        removeTree(old)
    }
}
