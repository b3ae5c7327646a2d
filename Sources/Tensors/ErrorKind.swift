/// What kind of failure an error is. The kind alone decides the CLI's exit code: 1 verification failed, 2 usage,
/// 3 unreadable or hostile input, 4 I/O.
public enum ErrorKind: String, Sendable, Equatable, CaseIterable {
    /// Two computations disagree beyond their tolerance (or a check compared nothing).
    case verification
    /// The caller asked for something impossible (an unknown preset, an output that would overwrite the input).
    case usage
    /// The input cannot be read as what it claims to be: truncated, malformed, inconsistent, unsupported.
    case input
    /// The input tries to execute code or to reach outside itself. Nothing was executed.
    case hostile
    /// A system call failed: a missing file, permissions, a full disk, an output that exists.
    case io

    /// The exit code of this kind: 1 verification, 2 usage, 3 input or hostile, 4 I/O.
    public var exitCode: Int32 {
        switch self {
        case .verification: return 1
        case .usage: return 2
        case .input, .hostile: return 3
        case .io: return 4
        }
    }
}

/// The one protocol every ditkit error conforms to: its kind (which maps to an exit code), the file it is about
/// and where in that file. `description` reads as a sentence that names the file and location itself, so it can
/// be shown as is; `file` and `location` are for programs that want them apart.
public protocol DitkitError: Error, CustomStringConvertible {
    /// What kind of failure this is.
    var kind: ErrorKind { get }
    /// The file or folder the error is about, when there is one.
    var file: String? { get }
    /// Where in `file` (an entry, a tensor, a byte offset), when known.
    var location: String? { get }
}

extension TensorsError: DitkitError {
    /// Mapping failures are I/O; every other tensor-layer failure is a shape or size the input declared.
    public var kind: ErrorKind {
        if case .mapFailed = self { return .io }
        return .input
    }

    /// The path of a mapping failure; nil for size and geometry errors, which name no file.
    public var file: String? {
        if case .mapFailed(let path, _, _) = self { return path }
        return nil
    }

    /// Always nil: tensor-layer errors carry no location of their own.
    public var location: String? { nil }
}
