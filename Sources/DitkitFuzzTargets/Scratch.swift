import Checkpoints
import Tensors

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The files a target hands to path-taking readers: one private folder per process under `$TMPDIR` (default
/// `/tmp`), removed when the process exits normally, with a subfolder per thread (tests run targets in parallel, and
/// rewriting a file another thread has mapped would fault it). Inputs are rewritten in place each run, so a run costs
/// a write and an open, not a folder.
enum Scratch {
    /// The folder, created on first use.
    static let folder: String = {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/ditkit-fuzz-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            fatalError("ditkit-fuzz: cannot create a scratch folder under \(base): \(String(cString: strerror(errno)))")
        }
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        atexit { FileSystem.removeTree(Scratch.folder) }
        return path
    }()

    /// This thread's subfolder.
    static var threadFolder: String { folder + "/" + "\(pthread_self())" }

    /// `relative` in this thread's subfolder, with its parent folders made.
    static func path(_ relative: String) -> String {
        let base = threadFolder
        var parent = base
        mkdir(parent, 0o755)
        for part in relative.split(separator: "/").dropLast() {
            parent += "/" + part
            mkdir(parent, 0o755)
        }
        return base + "/" + relative
    }

    /// Writes `bytes` to `relative` in this thread's subfolder (replacing it) and returns the path.
    @discardableResult
    static func store(_ relative: String, _ bytes: [UInt8]) -> String {
        let target = path(relative)
        let fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { fatalError("ditkit-fuzz: cannot write \(target): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            guard n > 0 else { fatalError("ditkit-fuzz: short write to \(target): \(String(cString: strerror(errno)))") }
            done += n
        }
        return target
    }

    /// Removes `relative` from this thread's subfolder if it exists.
    static func remove(_ relative: String) { unlink(threadFolder + "/" + relative) }

    /// The package root, from this source file's place (`Sources/DitkitFuzzTargets/Scratch.swift`), for the
    /// committed fixtures some targets build on.
    static let packageRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    /// A committed fixture's bytes; a missing fixture is a broken checkout, not a finding.
    static func fixture(_ relative: String) -> [UInt8] {
        let path = packageRoot + "/fixtures/" + relative
        guard let file = try? MappedFile(path: path) else { fatalError("ditkit-fuzz: fixture \(path) is missing") }
        return [UInt8](file.bytes)
    }
}
