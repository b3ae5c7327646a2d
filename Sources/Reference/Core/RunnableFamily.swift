import Checkpoints
import Models

/// What inputs a reference forward pass runs on: a batch of deterministic inputs from a seed, optionally with the
/// timesteps and condition ids (DiT's class labels) to cycle through.
public struct InputSpec: Sendable, Equatable {
    /// Samples in the batch (at least 1).
    public var batch: Int
    /// Seed of the random latents; the same seed gives the same inputs.
    public var seed: UInt64
    /// Timesteps to cycle through over the batch; nil for the family's defaults.
    public var timesteps: [Float]?
    /// Condition ids (DiT: class ids) to cycle through over the batch; nil for the family's defaults.
    public var classes: [Int]?

    /// A batch of `batch` inputs from `seed`, cycling through `timesteps` and `classes` when given.
    public init(batch: Int, seed: UInt64, timesteps: [Float]? = nil, classes: [Int]? = nil) {
        self.batch = batch
        self.seed = seed
        self.timesteps = timesteps
        self.classes = classes
    }
}

/// A model family ditkit can run: its reference forward, as the source code computes it, recording the layers of its
/// trace format, and what a trace of it holds. A family conforms here (in `Reference/<Family>/`) once its forward
/// exists; `Verification` builds on this conformance.
public protocol RunnableFamily: ModelFamily {
    /// The weights in the form the forward reads (float32, mapped in place where the checkpoint allows).
    associatedtype Weights: Sendable
    /// One batch of inputs.
    associatedtype Inputs: Sendable

    /// Loads the weights of a view (call ``checkBudget(_:batch:tracing:kernels:memoryBudget:workBudget:)`` first).
    static func loadWeights(_ view: ModelView<Self>) throws -> Weights
    /// Deterministic inputs for `config`.
    static func makeInputs(_ spec: InputSpec, config: Config) -> Inputs
    /// The samples in a batch of inputs.
    static func batch(of inputs: Inputs) -> Int
    /// What makes `inputs` unusable for `config` (one line each, naming the input, index and value).
    static func inputProblems(_ inputs: Inputs, config: Config) -> [String]
    /// Runs the forward pass with the numerics of `semantics` (the weights' sizes), recording every layer into `trace`.
    static func run(_ weights: Weights, semantics: Config, inputs: Inputs, kernels: KernelChoice, trace: Trace?) -> [Float]
    /// Throws ``ModelError/overBudget(message:fittingBatch:)`` when a pass of `batch` samples would need more memory or work than allowed.
    static func checkBudget(_ config: Config, batch: Int, tracing: Bool, kernels: KernelChoice, memoryBudget: Double, workBudget: Double) throws

    /// The trace format: the layers in order, each layer's shape for a config and batch (nil: not a layer of it).
    static func traceOrder(_ names: [String]) -> [String]
    /// The shape of trace layer `layer` for `config` and a batch of `batch`, or nil when it is not a layer of the format.
    static func traceShape(_ layer: String, config: Config, batch: Int) -> [Int]?
    /// The input layers a trace must hold, and the inputs read back from them (nil with the problem when they are
    /// not inputs of this family).
    static var traceInputLayers: [String] { get }
    /// The input layer of shape (N) that gives a trace's batch (one of `traceInputLayers`).
    static var traceBatchLayer: String { get }
    /// The inputs a trace holds in its `traceInputLayers`, or the problem that keeps them from being inputs.
    static func inputs(fromTrace trace: Trace) -> Result<Inputs, TraceInputsProblem>

    /// The numerics a named source layout's code uses, with `config`'s sizes (`original`, `diffusers`), or nil.
    static func semantics(_ layout: Layout, of config: Config) -> Config?
    /// `config`'s sizes with the numerics of `other`.
    static func withNumerics(_ config: Config, of other: Config) -> Config
    /// The inputs a config takes, in one line (`4×32²`): two models can be compared only on the same inputs.
    static func inputSignature(_ config: Config) -> String

    /// Every matrix product a forward pass of `batch` samples performs, in order, weights named by their canonical
    /// names: the GEMM floor of `ditkit bench forward` (``GEMMFloor``). Default: none (the family has no floor).
    static func gemmShapes(_ config: Config, batch: Int) -> [GEMMShape]
    /// ``run(_:semantics:inputs:kernels:trace:)`` with activation buffers reused from `workspace` (a benchmark or a
    /// sampling loop). Default: the workspace is not used.
    static func run(_ weights: Weights, semantics: Config, inputs: Inputs, kernels: KernelChoice, workspace: Workspace) -> [Float]
}

extension RunnableFamily {
    /// Default: no matrix products are listed.
    public static func gemmShapes(_ config: Config, batch: Int) -> [GEMMShape] { [] }
    /// Default: runs without the workspace.
    public static func run(_ weights: Weights, semantics: Config, inputs: Inputs, kernels: KernelChoice, workspace: Workspace) -> [Float] {
        run(weights, semantics: semantics, inputs: inputs, kernels: kernels, trace: nil)
    }
}

/// Why a trace's input layers do not give inputs.
public struct TraceInputsProblem: Error, Sendable {
    /// What is wrong, one line (reported among the trace's problems, ``ModelError/trace(path:problems:)``).
    public let message: String
    /// A problem described by `message`.
    public init(_ message: String) { self.message = message }
}

/// Numerics a caller can force on a run: a named source layout's, or one side's of a comparison.
public enum SemanticsChoice: Sendable, Equatable, Hashable, RawRepresentable, CaseIterable {
    /// A named source layout's numerics (``RunnableFamily/semantics(_:of:)``).
    case layout(Layout)
    /// Side A's numerics (of two compared models).
    case a
    /// Side B's numerics (the second model, or the trace's).
    case b

    /// The original source code's numerics.
    public static let original = SemanticsChoice.layout(.original)
    /// diffusers' numerics.
    public static let diffusers = SemanticsChoice.layout(.diffusers)
    /// The named choices every DiT-like family offers, for help and completion.
    public static var allCases: [SemanticsChoice] { [.original, .diffusers, .a, .b] }

    /// `a`, `b`, or a layout's name; nil for the empty string.
    public init?(rawValue: String) {
        switch rawValue {
        case "a": self = .a
        case "b": self = .b
        case "": return nil
        default: self = .layout(Layout(rawValue))
        }
    }

    /// `a`, `b`, or the layout's name.
    public var rawValue: String {
        switch self {
        case .layout(let layout): return layout.rawValue
        case .a: return "a"
        case .b: return "b"
        }
    }

    /// `config`'s sizes with the chosen numerics; `a` and `b` are the two sides (`b` nil: A's). A layout the family
    /// has no numerics for leaves `config` as it is.
    public func apply<F: RunnableFamily>(to config: F.Config, a: F.Config, b: F.Config?, family: F.Type = F.self) -> F.Config {
        switch self {
        case .layout(let layout): return F.semantics(layout, of: config) ?? config
        case .a: return F.withNumerics(config, of: a)
        case .b: return F.withNumerics(config, of: b ?? a)
        }
    }
}
