/// The splitmix64 generator (Steele, Lea and Flood 2014): ditkit's one source of deterministic pseudo-random
/// numbers (synthetic weights, forward inputs, tests), so the same seed gives the same bits everywhere.
public struct SplitMix64: Sendable {
    /// The increment: 2^64 / φ, odd.
    public static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// The 64-bit state; the next output is a function of it alone.
    public var state: UInt64

    /// A generator starting from `state` (the seed).
    public init(state: UInt64) { self.state = state }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= SplitMix64.golden
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A double uniform in [0, 1) from the top 53 bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }
}
