import Checkpoints
import Models
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
            if variants.count > 1 { return "pass one of " + variants.map { "--variant \($0)" }.joined(separator: ", ") }
            return variants.first.map { "pass --variant \($0) to read it" }
        case .notAllowed(_, _, _, let callables, false)?:
            guard !callables.isEmpty else { return nil }
            let flags = callables.map { "--allow \($0)" }.joined(separator: " ")
            return "pass \(flags) to keep \(callables.count == 1 ? "it as an opaque value" : "them as opaque values"); "
                + "nothing is ever executed"
        case .notAllowed(_, _, _, _, true)?:
            return "--strict keeps torch's weights-only set only; without it known data classes are kept and --allow NAME can keep others"
        default:
            break
        }
        switch error as? ModelError {
        case .sizeNeeded(_, "num_heads", _)?: return "pass --heads"
        case .sizeNeeded(_, "input_size", _)?: return "pass --input-size (32 for 256 px, 64 for 512 px)"
        case .sigmaChannels?: return "pass --drop-sigma to drop them"
        case .cannotHold(let tensor, _, _)?: return "pass --drop \(tensor) to convert without it"
        case .tableDiffers(let tensor, _, _, _, _)?: return "pass --drop \(tensor) to convert without it"
        case .copiesDiffer?: return "choose one with --embedder-block N"
        case .noModelUnderKey?: return "choose one with --key"
        case .unknownPreset?: return "see `ditkit params` for the list"
        case .overBudget(_, let fitting?)?: return "--batch \(fitting) fits; or raise --max-memory-gib, --max-multiply-adds"
        case .overBudget(_, nil)?: return "check --input-size; or raise --max-memory-gib, --max-multiply-adds"
        default: return nil
        }
    }
}
