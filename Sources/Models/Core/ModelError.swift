import Tensors

/// Failures of the model layer: configs that cannot be inferred or are out of range, names that do not map,
/// conversions that would lose something. Each case carries the facts a caller needs to act (a CLI turns them into
/// advice about its own flags); descriptions speak in library terms and name no command-line flag.
public enum ModelError: Error, CustomStringConvertible, Sendable {
    case config(String)
    /// A config (a file's metadata, a diffusers config.json, a trace's, inferred sizes, options) outside its ranges:
    /// `origin` names the file and entry, each problem the field, its value and what is allowed.
    case invalidConfig(origin: String, problems: [String])
    /// Work that would need more memory or computation than its budget (a table to recompute); the message says how much.
    case budget(String)
    /// A forward pass past its memory or work budget: the message says how much it needs; `fittingBatch` is the largest
    /// batch that fits (nil when one sample alone does not).
    case overBudget(message: String, fittingBatch: Int?)
    /// A trace that cannot be verified against: wrong dtype or shape for the model and batch, inputs out of range,
    /// or nothing beyond the inputs to compare.
    case trace(path: String, problems: [String])
    case mapping(path: String, problems: [String])
    case unknownPreset(String, nearest: [String])
    case lossy(String)
    /// The model option `key` selects no model; `found` lists the prefixes models were found under.
    case noModelUnderKey(path: String, key: String, found: [String])
    /// A model option's value does not fit this checkpoint (`name` as the caller names it, `ModelOptions.name(of:)`).
    case invalidOption(name: String, problem: String)
    /// Per-block copies of a non-block tensor differ (fine-tuned separately?); one must be chosen.
    case copiesDiffer(path: String, tensor: String, blocks: [Int])
    /// A size that cannot be read from the weights and has no source: `field` (`num_heads`, `input_size`) with why.
    case sizeNeeded(path: String, field: String, reason: String)
    /// The target layout cannot hold learned-sigma output channels (they can be dropped, lossily).
    case sigmaChannels(target: Layout, modelChannels: Int, targetChannels: Int)
    /// The target layout does not store canonical tensor `tensor`; `detail` says whether it differs from the table the
    /// target recomputes. Dropping it is the caller's choice (`ConversionOptions.drop`).
    case cannotHold(tensor: String, target: Layout, detail: String)
    /// The target layout does not store frozen table `tensor` and recomputes it, but the stored table is farther from
    /// the recomputed one than cos/sin rounding explains: `maxAbsDifference` and `ulps` (of the stored `dtype`) say how
    /// far. Dropping it anyway is the caller's choice (`ConversionOptions.drop`).
    case tableDiffers(tensor: String, target: Layout, maxAbsDifference: Float, ulps: Int, dtype: DType)
    /// A frozen buffer of a whole file (a diffusion schedule) that its model's code recomputes differs from the
    /// recomputed values: `tensor` (its source name), the first differing `index`, the `stored` and `expected` values.
    case bufferDiffers(tensor: String, index: Int, stored: Float, expected: Float, basis: String)

    /// The error as a sentence; several problems are listed one per line, at most 12 shown.
    public var description: String {
        switch self {
        case .config(let message): return "config: \(message)"
        case .invalidConfig(let origin, let problems): return "\(origin): invalid config: " + ModelError.list(problems)
        case .budget(let message), .overBudget(let message, _): return message
        case .trace(let path, let problems): return "\(path): unusable trace: " + ModelError.list(problems)
        case .mapping(let path, let problems):
            let shown = problems.prefix(12).map { "  " + $0 }.joined(separator: "\n")
            let more = problems.count > 12 ? "\n  … and \(problems.count - 12) more" : ""
            return "\(path): the tensor names do not map:\n\(shown)\(more)"
        case .unknownPreset(let name, let nearest):
            return "unknown preset '\(name)'" + (nearest.isEmpty ? "" : "; nearest: " + nearest.joined(separator: ", "))
        case .lossy(let message): return message
        case .noModelUnderKey(let path, let key, let found):
            return "\(path): no model under \"\(key.hasSuffix(".") ? key : key + ".")\"; found under: " + found.map { "\"\($0)\"" }.joined(separator: ", ")
        case .invalidOption(let name, let problem): return "\(name): \(problem)"
        case .copiesDiffer(let path, let tensor, let blocks):
            return "\(path): the tensor names do not map:\n  \(tensor): the per-block embedder copies differ from block 0's in blocks "
                + blocks.map(String.init).joined(separator: ", ")
                + " (fine-tuned separately?); diffusers conditions the final layer on block 0's copy, so one block's copy must be chosen"
        case .sizeNeeded(let path, let field, let reason): return "\(path): \(field) cannot be read from the weights: \(reason)"
        case .sigmaChannels(let target, let model, let targetChannels):
            return "the \(target) layout has no learned-sigma output: its head holds \(targetChannels) channels, this model predicts "
                + "\(model); dropping the \(model - targetChannels) sigma channels of final.linear would be lossy"
        case .cannotHold(let tensor, let target, let detail): return "the \(target) layout cannot hold \(tensor): \(detail)"
        case .tableDiffers(let tensor, let target, let maxAbs, let ulps, let dtype):
            let distance = ulps == Int.max ? "a non-finite value" : "\(ulps) ulps of \(dtype == .f64 ? "f32" : dtype.rawValue)"
            return "the \(target) layout cannot hold \(tensor): it differs from the table that layout recomputes "
                + "(max |Δ| \(maxAbs), \(distance); more than cos/sin rounding), so converting would change the model"
        case .bufferDiffers(let tensor, let index, let stored, let expected, let basis):
            return "\(tensor)[\(index)] is \(stored), but the model's code computes \(expected) (\(basis)); it is not the buffer "
                + "that model's code recomputes, so it cannot be dropped as recomputed and the conversion stops"
        }
    }

    static func list(_ problems: [String]) -> String {
        if problems.count == 1 { return problems[0] }
        let shown = problems.prefix(12).map { "\n  " + $0 }.joined()
        return shown + (problems.count > 12 ? "\n  … and \(problems.count - 12) more" : "")
    }
}

extension ModelError: DitkitError {
    /// `.usage` for a preset name that does not exist; `.input` for an option value that does not fit the checkpoint, a
    /// checkpoint, config or trace whose names, shapes or values do not make a model, a pass past its budget, or a
    /// conversion that cannot hold without loss.
    public var kind: ErrorKind {
        switch self {
        case .unknownPreset: return .usage
        default: return .input
        }
    }

    public var file: String? {
        switch self {
        case .mapping(let path, _), .trace(let path, _), .noModelUnderKey(let path, _, _), .copiesDiffer(let path, _, _),
            .sizeNeeded(let path, _, _):
            return path
        default: return nil
        }
    }

    /// For an invalid config, where it came from (a file and its entry, or an option).
    public var location: String? {
        if case .invalidConfig(let origin, _) = self { return origin }
        return nil
    }
}
