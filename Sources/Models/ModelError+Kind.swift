import Tensors

extension ModelError: DitkitError {
    /// `.usage` for a preset name that does not exist; `.input` for a checkpoint whose names, shapes or config
    /// do not make a model, or that a conversion cannot hold without loss.
    public var kind: ErrorKind {
        if case .unknownPreset = self { return .usage }
        return .input
    }

    public var file: String? {
        if case .mapping(let path, _) = self { return path }
        return nil
    }

    public var location: String? { nil }
}
