import Tensors

/// Everything that can go wrong opening a checkpoint. Each case names the file and, where it applies, the
/// entry, tensor or byte offset, and what was expected. Its `kind` (and so `exitCode`, README "Exit codes") is:
/// 3 unreadable or hostile input, 4 I/O.
public enum CheckpointError: DitkitError, Sendable {
    /// The path does not exist.
    case notFound(path: String)
    /// A system call failed (permissions, a directory where a file was expected, …).
    case io(path: String, operation: String, detail: String)
    /// The bytes are not any checkpoint format ditkit knows.
    case unrecognized(path: String, reason: String)
    /// A known kind of file that ditkit does not read as a checkpoint, with advice (empty file, git-lfs pointer,
    /// TorchScript archive, HDF5, tar).
    case unsupported(path: String, kind: String, advice: String)
    /// The structure is damaged or inconsistent: truncated, out of bounds, sizes that disagree.
    case malformed(path: String, location: String, reason: String)
    /// The file tries to execute code. Nothing was executed.
    case hostile(path: String, location: String, reason: String)
    /// `--strict` refused a non-allowlisted callable.
    case notAllowed(path: String, location: String, reason: String)
    /// A diffusers folder with a missing or mismatched file.
    case folder(path: String, reason: String)
    /// A folder or index names a file outside itself: a component or shard name that is not a plain name
    /// (`../x`, `a/b`, empty, NUL), or a symlink that leads out of the checkpoint's folder.
    case escapes(path: String, location: String, reason: String)
    /// A diffusers folder holds only variant weights (`fp16`, …) and none was chosen.
    case variantNeeded(path: String, variants: [String])
    /// An output exists and replacing it was not asked for.
    case outputExists(path: String)

    /// `.io` for a missing file, a failed system call or an existing output; `.hostile` for a file that tries to
    /// execute code or to reach outside its folder; `.input` for everything else.
    public var kind: ErrorKind {
        switch self {
        case .notFound, .io, .outputExists: return .io
        case .hostile, .escapes: return .hostile
        default: return .input
        }
    }

    /// The exit code of `kind` (`ErrorKind.exitCode`).
    public var exitCode: Int32 { kind.exitCode }

    public var file: String? { path }

    public var location: String? {
        switch self {
        case .malformed(_, let l, _), .hostile(_, let l, _), .notAllowed(_, let l, _), .escapes(_, let l, _): return l
        default: return nil
        }
    }

    public var path: String {
        switch self {
        case .notFound(let p), .io(let p, _, _), .unrecognized(let p, _), .unsupported(let p, _, _),
            .malformed(let p, _, _), .hostile(let p, _, _), .notAllowed(let p, _, _), .folder(let p, _),
            .escapes(let p, _, _), .variantNeeded(let p, _), .outputExists(let p):
            return p
        }
    }

    public var description: String {
        switch self {
        case .notFound(let path): return "\(path): no such file or folder"
        case .io(let path, let operation, let detail): return "\(path): \(operation) failed: \(detail)"
        case .unrecognized(let path, let reason): return "\(path): not a checkpoint ditkit can read: \(reason)"
        case .unsupported(let path, let kind, let advice): return "\(path): \(kind) — \(advice)"
        case .malformed(let path, let location, let reason): return "\(path): \(location): \(reason)"
        case .hostile(let path, let location, let reason): return "\(path): HOSTILE: \(location): \(reason)"
        case .notAllowed(let path, let location, let reason): return "\(path): \(location): \(reason)"
        case .folder(let path, let reason): return "\(path): \(reason)"
        case .escapes(let path, let location, let reason): return "\(path): HOSTILE: \(location): \(reason)"
        case .variantNeeded(let path, let variants):
            return "\(path): only variant weights are present (\(variants.joined(separator: ", "))); choose one of them to read"
        case .outputExists(let path): return "\(path): exists; not replaced"
        }
    }

    /// Wraps a pickle failure in `entry` (e.g. `archive/data.pkl`) of `path`.
    static func pickle(_ error: PickleError, path: String, entry: String) -> CheckpointError {
        let location = entry.isEmpty ? "pickle" : entry
        switch error {
        case .codeExecution: return .hostile(path: path, location: location, reason: error.description)
        case .notAllowlisted: return .notAllowed(path: path, location: location, reason: error.description)
        default: return .malformed(path: path, location: location, reason: error.description)
        }
    }

    /// Maps a mapping failure to an I/O error, or to `.unsupported` (exit 3) for a path that is not a regular file.
    static func mapping(_ error: Error, path: String) -> CheckpointError {
        if let t = error as? TensorsError, case .mapFailed(_, let operation, let code) = t {
            if code == 2 { return .notFound(path: path) }
            return .io(path: path, operation: operation, detail: describeErrno(code))
        }
        if let t = error as? TensorsError, case .notRegularFile(_, let kind) = t {
            return .unsupported(path: path, kind: kind, advice: "ditkit reads regular files only (not pipes, devices, sockets or folders)")
        }
        return .io(path: path, operation: "read", detail: "\(error)")
    }
}
