import Models
import Reference

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
    public func inputs<C: FamilyConfig>(for config: C) throws -> C.Family.Inputs where C.Family: RunnableFamily {
        let inputs = C.Family.makeInputs(InputSpec(batch: batch, seed: seed, timesteps: timesteps, classes: classes), config: config)
        let problems = C.Family.inputProblems(inputs, config: config)
        guard problems.isEmpty else { throw VerificationError.invalidInputs(problems: problems) }
        return inputs
    }

    /// Throws `ModelError.overBudget` when a pass of `config` on `batch` samples (these options' batch when nil),
    /// recording a trace when `tracing`, needs more than the budget. Nothing is allocated.
    public func checkBudget<C: FamilyConfig>(_ config: C, batch: Int? = nil, tracing: Bool) throws where C.Family: RunnableFamily {
        try C.Family.checkBudget(
            config, batch: batch ?? self.batch, tracing: tracing, kernels: kernels, memoryBudget: memoryBudget, workBudget: workBudget)
    }

    /// The float32 weights of `view`, once a traced pass of `batch` samples (these options' batch when nil) is known
    /// to fit the budget: the check comes before any weight, table or activation is allocated.
    public func weights<F: RunnableFamily>(_ view: ModelView<F>, batch: Int? = nil) throws -> F.Weights {
        try checkBudget(view.config, batch: batch, tracing: true)
        return try F.loadWeights(view)
    }
}
