import Tensors

/// The few file-system operations readers and writers need, each turned into a `CheckpointError` naming the path.
///
/// Paths a checkpoint names are never trusted: a name from a file must be a plain name (`isPlainName`), a file
/// inside a checkpoint folder is reached only through `entry(_:root:)` (no symlink out of the folder, no FIFO or
/// device), and removing never follows a symlink (`removeTree`).
package enum FileSystem {
    /// Whether anything is at `path`, without following a final symlink (a dangling link exists).
    package static func exists(_ path: String) -> Bool {
        Platform.status(path, followingSymlink: false) != nil
    }

    /// The last component of a path.
    package static func fileName(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }
    /// Whether `path` is a folder (following a final symlink).
    package static func isDirectory(_ path: String) -> Bool { FormatSniffer.isDirectory(path) }

    /// Whether `name` (a component, shard or file name read from a checkpoint) names an entry directly inside a
    /// folder: not empty, not `.` or `..`, no `/` and no NUL (which would cut the path short in a system call).
    package static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(UInt8(ascii: "/")) && !name.utf8.contains(0)
    }

    /// Throws `CheckpointError.escapes` unless `name` is a plain name; `file` and `location` say where it was read.
    package static func requirePlainName(_ name: String, file: String, location: String) throws {
        guard isPlainName(name) else {
            throw CheckpointError.escapes(
                path: file, location: location,
                reason: "\(JSONValue.string(name).serialized()) is not a plain name inside the folder "
                    + "(it must be non-empty, not . or .., without / or NUL)")
        }
    }

    /// What `entry(_:root:)` found.
    package enum EntryKind: Sendable { case file, directory }

    /// What is at `path`, a file or folder inside the checkpoint folder `root`, or nil when nothing is.
    ///
    /// A symlink is followed only when it stays inside `root`, or, for a folder in a Hugging Face cache snapshot
    /// (`<repo>/snapshots/<revision>/…`), inside the same repository's `blobs/` folder where the cache keeps the
    /// files its links point to. Throws `CheckpointError.escapes` for a symlink that leads elsewhere (a token file, another
    /// checkpoint) and `.unsupported` for anything but a regular file or folder (a FIFO would block a reader
    /// forever, a device would never end). Nothing is opened.
    package static func entry(_ path: String, root: String) throws -> EntryKind? {
        guard var status = Platform.status(path, followingSymlink: false) else {
            if Platform.missing { return nil }
            throw CheckpointError.io(path: path, operation: "lstat", detail: describeErrno(Platform.errno))
        }
        if status.type == .symlink {
            let target = realPath(path)
            let inside = allowedRoots(root).contains { target == $0 || target.hasPrefix($0 == "/" ? "/" : $0 + "/") }
            guard inside else {
                throw CheckpointError.escapes(
                    path: path, location: "symlink",
                    reason: "leads to \(target), outside the checkpoint folder \(root); ditkit follows no link out of it "
                        + "(copy the file into the folder instead of linking it)")
            }
            guard let followed = Platform.status(path, followingSymlink: true) else {
                if Platform.notFound { return nil }
                throw CheckpointError.io(path: path, operation: "stat", detail: describeErrno(Platform.errno))
            }
            status = followed
        }
        switch status.type {
        case .regular: return .file
        case .directory: return .directory
        case .symlink, .other:
            let name: String
            if case .other(let text) = status.type { name = text } else { name = "a symlink" }
            throw CheckpointError.unsupported(
                path: path, kind: "not a regular file (\(name))",
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

    /// `path` with every symlink of its existing part resolved and `.`/`..` removed, absolute. The part that does
    /// not exist yet (an output to be created) is appended as written, normalised.
    package static func realPath(_ path: String) -> String {
        var absolute = path
        if !path.hasPrefix("/") { absolute = (Platform.currentDirectory() ?? ".") + "/" + path }
        var existing = absolute.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var rest: [String] = []
        while true {
            if let resolved = Platform.realPath("/" + existing.joined(separator: "/")) {
                var parts = resolved.split(separator: "/").map(String.init)
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
    package static func overlap(output: String, input: String) -> String? {
        let out = realPath(output), source = realPath(input)
        func isInside(_ a: String, _ b: String) -> Bool { b == "/" || a.hasPrefix(b + "/") }
        if out == source { return "the output \(output) is the input \(input)" + (out == output ? "" : " (\(out))") }
        if isInside(source, out) { return "the output \(output) contains the input \(input) (\(source)); replacing it would delete the input" }
        if isInside(out, source) { return "the output \(output) lies inside the input \(input) (\(source))" }
        return nil
    }

    /// Creates the folder `path` (0755) unless it exists. Throws `.io` naming it otherwise.
    package static func makeDirectory(_ path: String) throws {
        guard Platform.makeDirectory(path) else {
            throw CheckpointError.io(path: path, operation: "mkdir", detail: describeErrno(Platform.errno))
        }
    }

    /// A new empty directory beside `path` (same file system, so it can be renamed onto `path`).
    package static func temporaryDirectory(beside path: String) throws -> String {
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        let slash = trimmed.lastIndex(of: "/")
        let parent = slash.map { String(trimmed[..<$0]) } ?? "."
        let base = slash.map { String(trimmed[trimmed.index(after: $0)...]) } ?? trimmed
        guard let made = Platform.makeTemporaryDirectory(parent: parent, base: base) else {
            throw CheckpointError.io(path: path, operation: "create a temporary folder", detail: describeErrno(Platform.errno))
        }
        return made
    }

    /// Renames `from` to `to`. Throws `.io` naming `to`.
    package static func rename(_ from: String, _ to: String) throws {
        guard Platform.rename(from, to) else {
            throw CheckpointError.io(path: to, operation: "rename", detail: describeErrno(Platform.errno))
        }
    }

    /// Removes a file, a symlink or a folder and everything in it, never following a symlink: a link is removed
    /// itself, never what it points to, and no folder is entered through one, nor one on another file system (a
    /// mount point inside is left alone, as `rm --one-file-system` does). Best effort (errors are ignored).
    package static func removeTree(_ path: String) { Platform.removeTree(path) }

    /// Copies a file through a 1 MiB buffer (atomically: temporary name, then rename).
    package static func copyFile(_ from: String, _ to: String) throws {
        let source: MappedFile
        do { source = try MappedFile(path: from) } catch { throw CheckpointError.mapping(error, path: from) }
        try AtomicFileWriter.withFile(at: to) { out in
            try source.withBytes { bytes in
                var offset = 0
                while offset < source.size {
                    let end = min(source.size, offset + (1 << 20))
                    try out.write(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
                    offset = end
                }
            }
        }
    }

    /// Replaces `destination` with the finished folder `staged`. When `destination` exists (a folder, a file or a
    /// symlink, which is replaced itself, never followed) and `overwrite` is set, the two are swapped in one
    /// atomic rename (`renameat2` `RENAME_EXCHANGE`; two renames where the file system cannot) and the old one is
    /// removed after, so `destination` is never missing or partial. Without `overwrite` an existing destination
    /// throws `CheckpointError.outputExists`. `staged` is gone afterwards either way.
    package static func replaceFolder(_ destination: String, with staged: String, overwrite: Bool) throws {
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
        if Platform.exchange(staged, destination) {
            removeTree(staged)  // now the old destination
            return
        }
        guard Platform.exchangeUnsupported else {
            let code = Platform.errno
            removeTree(staged)
            throw CheckpointError.io(path: destination, operation: "replace", detail: describeErrno(code))
        }
        let old: String
        do {
            old = try temporaryDirectory(beside: destination)
            Platform.removeDirectory(old)
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
