import Checkpoints
import Tensors

/// What the CLI adds after a library error's message: the flag that resolves it. Library errors say what is wrong
/// in library terms and carry the facts (the callables refused, the variants found); only the CLI knows its flags.
enum Advice {
    /// The advice for `error`, or nil when no flag resolves it.
    static func text(for error: any DitkitError) -> String? {
        switch error as? CheckpointError {
        case .outputExists?:
            return "use --force to replace it"
        case .variantNeeded(_, let variants)?:
            return variants.first.map { "pass --variant \($0) to read it" }
        case .notAllowed(_, _, _, let callables, false)?:
            guard !callables.isEmpty else { return nil }
            let flags = callables.map { "--allow \($0)" }.joined(separator: " ")
            return "pass \(flags) to keep \(callables.count == 1 ? "it as an opaque value" : "them as opaque values"); "
                + "nothing is ever executed"
        case .notAllowed(_, _, _, _, true)?:
            return "--strict keeps torch's weights-only set only; without it known data classes are kept and --allow NAME can keep others"
        default:
            return nil
        }
    }
}
