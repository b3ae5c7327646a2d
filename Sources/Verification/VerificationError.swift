import Checkpoints
import Tensors

/// What can stop a verification or a trace, beyond the errors of reading checkpoints and traces (`CheckpointError`,
/// `ModelError`) and of the forward budget (`ModelError.overBudget`). Messages name files, never CLI options.
public enum VerificationError: DitkitError, Equatable {
    /// The two models take inputs of different shapes (latent channels C, latent side S), so no input runs on both.
    case differentInputs(a: String, b: String)
    /// The requested timesteps or classes do not fit the model; each problem names the input, index and value.
    case invalidInputs(problems: [String])
    /// An output that is, contains or lies inside an input; `reason` names both (as `FileSystem.overlap` says).
    case outputOverlapsInput(output: String, reason: String)
    /// Nothing beyond the inputs was compared (`VerificationReport.isVacuous`): a trace at `trace` holding no other
    /// layer of this model, or two models sharing no layer of the same shape. `compared` lists the layers that were.
    case nothingCompared(trace: String?, compared: [String])
    /// The two checkpoints hold models of different families.
    case differentFamilies(a: String, b: String)
    /// The family has no reference forward (or no verification rules) yet.
    case notRunnable(family: String)
    /// The numbers disagree: `layer` is the first layer outside the tolerance (the trace compared against, if any).
    case diverged(layer: String, trace: String?)

    /// `.verification` for a divergence; `.usage` for inputs the caller chose that the model cannot take and for an
    /// output over an input; `.input` for models that cannot be compared or a comparison that proves nothing.
    public var kind: ErrorKind {
        switch self {
        case .diverged: return .verification
        case .invalidInputs, .outputOverlapsInput: return .usage
        case .differentInputs, .nothingCompared, .differentFamilies, .notRunnable: return .input
        }
    }

    /// The trace or output the error is about, when there is one.
    public var file: String? {
        switch self {
        case .outputOverlapsInput(let output, _): return output
        case .nothingCompared(let trace, _), .diverged(_, let trace): return trace
        case .differentInputs, .invalidInputs, .differentFamilies, .notRunnable: return nil
        }
    }

    /// The layer that diverged first.
    public var location: String? {
        if case .diverged(let layer, _) = self { return layer }
        return nil
    }

    /// A sentence naming the files, layers or values at fault, shown as is.
    public var description: String {
        switch self {
        case .differentInputs(let a, let b):
            return "the models take different inputs (\(a) vs \(b))"
        case .invalidInputs(let problems):
            return "the requested inputs do not fit the model: " + problems.joined(separator: "; ")
        case .outputOverlapsInput(_, let reason):
            return reason
        case .nothingCompared(let trace, let compared):
            return (trace.map { "\($0): the trace holds" } ?? "the two models share")
                + " no comparable layer beyond the inputs (compared: \(compared.joined(separator: ", "))), so nothing was verified"
        case .diverged(let layer, _):
            return "verification failed at \(layer)"
        case .differentFamilies(let a, let b):
            return "the checkpoints hold models of different families (\(a) and \(b)), which compute different functions"
        case .notRunnable(let family):
            return "ditkit has no reference forward for the \(family) family yet"
        }
    }
}
