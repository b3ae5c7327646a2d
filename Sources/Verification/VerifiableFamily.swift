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
}
