import Tensors

// The Checkpoints module's errors that carry no file of their own: the reader that wraps them adds the file
// (`CheckpointError.pickle`, `.malformed`); one that escapes unwrapped still maps to the right exit code.

extension PickleError: DitkitError {
    /// `.hostile` for a call of a code-execution primitive, `.input` for everything else.
    package var kind: ErrorKind { isHostile ? .hostile : .input }
    package var file: String? { nil }
    package var location: String? { offset.map { "pickle byte \($0)" } }
}

extension JSONParseError: DitkitError {
    /// Always `.input`: the text is not the JSON it should be.
    package var kind: ErrorKind { .input }
    package var file: String? { nil }
    package var location: String? { "JSON byte \(offset)" }
}
