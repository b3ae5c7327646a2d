import Checkpoints
import Tensors

/// The files a target hands to path-taking readers: one private folder per process under `$TMPDIR` (default
/// `/tmp`), removed when the process exits normally, with a subfolder per thread (tests run targets in parallel, and
/// rewriting a file another thread has mapped would fault it). Inputs are rewritten in place each run, so a run costs
/// a write and an open, not a folder.
enum Scratch {
    /// The folder, created on first use.
    static let folder: String = {
        let base = Platform.environment("TMPDIR").flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        guard let path = Platform.makeTemporaryFolder("\(base)/ditkit-fuzz-XXXXXX") else {
            fatalError("ditkit-fuzz: cannot create a scratch folder under \(base): \(Platform.lastError)")
        }
        Platform.atExit { FileSystem.removeTree(Scratch.folder) }
        return path
    }()

    /// This thread's subfolder.
    static var threadFolder: String { folder + "/" + Platform.threadID }

    /// `relative` in this thread's subfolder, with its parent folders made.
    static func path(_ relative: String) -> String {
        let base = threadFolder
        var parent = base
        Platform.makeFolder(parent)
        for part in relative.split(separator: "/").dropLast() {
            parent += "/" + part
            Platform.makeFolder(parent)
        }
        return base + "/" + relative
    }

    /// Writes `bytes` to `relative` in this thread's subfolder (replacing it) and returns the path.
    @discardableResult
    static func store(_ relative: String, _ bytes: [UInt8]) -> String {
        let target = path(relative)
        if let problem = Platform.writeFile(target, bytes) { fatalError("ditkit-fuzz: \(problem)") }
        return target
    }

    /// Removes `relative` from this thread's subfolder if it exists.
    static func remove(_ relative: String) { Platform.removeFile(threadFolder + "/" + relative) }

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
