import Models
import Reference

/// Numerics a caller can force on a forward pass: a named source's, or one side's of a comparison.
///
/// The weights stay what they are; only the numeric choices that change the function (timestep frequency shift,
/// each norm's eps, GELU form) are replaced, so "the weights were mapped wrong" can be told from "the
/// implementations differ".
public enum SemanticsChoice: String, Sendable, Equatable, CaseIterable {
    /// The original (facebookresearch) numerics: frequency shift 0, norm eps 1e-6, tanh GELU.
    case original
    /// diffusers' numerics: frequency shift 1, MLP norm eps 1e-5.
    case diffusers
    /// Side A's numerics (in a trace, the checkpoint's own).
    case a
    /// Side B's numerics (against a trace, the trace's recorded semantics; side A's when there is no B).
    case b

    /// `config` with this choice's numerics; `a` and `b` are the two sides' configs (`b` nil when there is none).
    public func apply(to config: DiTConfig, a: DiTConfig, b: DiTConfig?) -> DiTConfig {
        switch self {
        case .original: return config.withOriginalSemantics()
        case .diffusers: return config.withDiffusersSemantics()
        case .a: return config.withNumerics(of: a)
        case .b: return config.withNumerics(of: b ?? a)
        }
    }
}

/// How a forward pass is run: its inputs (batch, seed, timesteps, classes), the budget it must stay within, and the
/// kernels that run its matrix products. Shared by `Verifier` and `Tracer`.
public struct ForwardOptions: Sendable, Equatable {
    /// Batch size N (at least 1).
    public var batch: Int
    /// Seed of the random latents x ~ N(0, 1).
    public var seed: UInt64
    /// Timesteps cycled over the batch; nil for 0, 999, 500, 250.
    public var timesteps: [Float]?
    /// Class ids cycled over the batch; nil for 0, the null class K, 1, 2.
    public var classes: [Int]?
    /// Bytes of activations a pass may take (`ForwardCost.defaultMemoryBudget` by default).
    public var memoryBudget: Double
    /// Multiply-adds a pass may take (`ForwardCost.defaultWorkBudget` by default).
    public var workBudget: Double
    /// Which code runs the matrix products.
    public var kernels: KernelChoice

    /// Options with the given values; every default is the CLI's.
    public init(
        batch: Int = 4, seed: UInt64 = 0, timesteps: [Float]? = nil, classes: [Int]? = nil,
        memoryBudget: Double = ForwardCost.defaultMemoryBudget, workBudget: Double = ForwardCost.defaultWorkBudget,
        kernels: KernelChoice = .automatic
    ) {
        self.batch = batch
        self.seed = seed
        self.timesteps = timesteps
        self.classes = classes
        self.memoryBudget = memoryBudget
        self.workBudget = workBudget
        self.kernels = kernels
    }

    /// The inputs these options describe for a model of `config`: deterministic latents from `seed`, the timesteps
    /// and classes cycled over `batch`. Throws `VerificationError.invalidInputs` naming each value the model cannot
    /// take (a class past the label table, a timestep outside a timestep table, a value that is not finite).
    /// Check the budget first (`checkBudget`): the latents are allocated here.
    public func inputs(for config: DiTConfig) throws -> DiTInputs {
        let inputs = DiTInputs.make(config: config, batch: batch, seed: seed, timesteps: timesteps, classes: classes)
        let problems = inputs.problems(for: config)
        guard problems.isEmpty else { throw VerificationError.invalidInputs(problems: problems) }
        return inputs
    }

    /// Throws `ModelError.budget` when a pass of `config` on `batch` samples (these options' batch when nil),
    /// recording a trace when `tracing`, needs more than the budget. Nothing is allocated.
    public func checkBudget(_ config: DiTConfig, batch: Int? = nil, tracing: Bool) throws {
        try ForwardCost(config: config, batch: batch ?? self.batch, tracing: tracing, kernels: kernels)
            .check(memoryBudget: memoryBudget, workBudget: workBudget)
    }

    /// The float32 weights of `view`, once a traced pass of `batch` samples (these options' batch when nil) is known
    /// to fit the budget: the check comes before any weight, table or activation is allocated.
    public func weights(_ view: ModelView, batch: Int? = nil) throws -> DiTWeights {
        try checkBudget(view.config, batch: batch, tracing: true)
        return try DiTWeights(view)
    }
}
