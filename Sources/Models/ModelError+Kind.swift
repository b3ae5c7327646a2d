import Tensors

extension ModelError: DitkitError {
    /// `.usage` for a preset name that does not exist; `.input` for a checkpoint, config or trace whose names,
    /// shapes or values do not make a model, a pass past its budget, or a conversion that cannot hold without loss.
    public var kind: ErrorKind {
        if case .unknownPreset = self { return .usage }
        return .input
    }

    public var file: String? {
        switch self {
        case .mapping(let path, _), .trace(let path, _): return path
        default: return nil
        }
    }

    /// For an invalid config, where it came from (a file and its entry, or an option).
    public var location: String? {
        if case .invalidConfig(let origin, _) = self { return origin }
        return nil
    }
}
