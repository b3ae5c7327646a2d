import Checkpoints
import Models
import Reference

/// A family whose verification can say WHY two runs part: its likely-cause rules. A family conforms here (in
/// `Verification/<Family>/`) once it is runnable.
public protocol VerifiableFamily: RunnableFamily {
    /// The numeric choices on which the two sides' numerics `a` and `b` differ that can make `layer` diverge first
    /// (one line each, `layer: what a vs b`); empty when none does. `configA`/`configB` are the models' own configs.
    static func likelyCauses(layer: String, _ a: Config, _ b: Config, configA: Config?, configB: Config?) -> [String]
    /// Later layers whose causes are named too ("(also)") after a first divergence.
    static var causeFollowUps: [String] { get }

    /// Two sides' configs with each value one side assumed replaced by the other side's read value where the
    /// weights allow it (same sizes), and a note for each replacement. Default: unchanged.
    static func reconcile(_ a: Config, assumed assumedA: [Assumption], _ b: Config, assumed assumedB: [Assumption])
        -> (a: Config, b: Config, notes: [String])

    /// Values of `config` to try when an assumed one may be wrong and `layer` diverged: each a config and what was
    /// changed (DiT: every head count dividing D when the head count was assumed and the first attention diverged).
    static func alternatives(_ config: Config, assumed: [Assumption], divergedAt layer: String) -> [(config: Config, change: String)]

    /// The config a trace's metadata describes, when it carries one (`ditkit.config`, `ditkit.trace.model`).
    static func traceConfig(_ metadata: [(String, String)], like config: Config) -> Config?
}

extension VerifiableFamily {
    /// Default: nothing to reconcile.
    public static func reconcile(_ a: Config, assumed assumedA: [Assumption], _ b: Config, assumed assumedB: [Assumption])
        -> (a: Config, b: Config, notes: [String])
    { (a, b, []) }
    /// Default: no alternatives to try.
    public static func alternatives(_ config: Config, assumed: [Assumption], divergedAt layer: String) -> [(config: Config, change: String)] { [] }
    /// Default: traces carry no config the family reads.
    public static func traceConfig(_ metadata: [(String, String)], like config: Config) -> Config? { nil }
}
