import Tensors

/// Everything that can go wrong opening a checkpoint. Each case names the file and, where it applies, the
/// entry, tensor or byte offset, and what was expected. `exitCode` follows DESIGN.md: 3 unreadable or hostile
/// input, 4 I/O.
public enum CheckpointError: Error, CustomStringConvertible, Sendable {
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

    public var exitCode: Int32 {
        switch self {
        case .notFound, .io: return 4
        default: return 3
        }
    }

    public var path: String {
        switch self {
        case .notFound(let p), .io(let p, _, _), .unrecognized(let p, _), .unsupported(let p, _, _),
            .malformed(let p, _, _), .hostile(let p, _, _), .notAllowed(let p, _, _), .folder(let p, _):
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
