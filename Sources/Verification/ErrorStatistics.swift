/// The statistic a layer's pass/fail verdict is taken on (`ditkit verify --metric`). Each is a score compared with
/// `Tolerance.rtol`, or an absolute error compared with `Tolerance.atol` (``Tolerance/passes(_:)``):
///
/// | metric | score ≤ rtol | or absolute ≤ atol |
/// |---|---|---|
/// | `rel-l2` (default) | ‖a−b‖₂ / ‖b‖₂ | max \|a−b\| |
/// | `max-abs` | max \|a−b\| / max \|b\| | max \|a−b\| |
/// | `cosine` | 1 − cos(a, b) | max \|a−b\| |
/// | `p99` | p99 \|a−b\| / max \|b\| | p99 \|a−b\| |
public enum ErrorMetric: String, Sendable, Equatable, CaseIterable {
    /// Relative L2 error ‖a−b‖₂ / ‖b‖₂.
    case relativeL2 = "rel-l2"
    /// Largest |a−b|, relative to the reference's largest magnitude.
    case maxAbs = "max-abs"
    /// 1 − the cosine similarity of a and b.
    case cosine
    /// The 99th percentile of |a−b|, relative to the reference's largest magnitude.
    case p99

    /// The metric's relative score of `s` (what `rtol` bounds; also what the SVG plots).
    public func score(_ s: ErrorStatistics) -> Double {
        switch self {
        case .relativeL2: return s.relativeL2
        case .maxAbs: return ErrorStatistics.ratio(s.maxAbs, s.referenceMaxAbs)
        case .cosine: return s.nonFinite ? .infinity : max(0, 1 - s.cosine)
        case .p99: return ErrorStatistics.ratio(s.p99Abs, s.referenceMaxAbs)
        }
    }

    /// The metric's absolute error of `s` (what `atol` bounds).
    public func absolute(_ s: ErrorStatistics) -> Double { self == .p99 ? s.p99Abs : s.maxAbs }

    /// How the score is written in reports ("rel L2", "max|a−b|/max|b|", …).
    public var scoreName: String {
        switch self {
        case .relativeL2: return "rel L2"
        case .maxAbs: return "max |a−b| / max |b|"
        case .cosine: return "1 − cos"
        case .p99: return "p99 |a−b| / max |b|"
        }
    }

    /// How the absolute error is written in reports.
    public var absoluteName: String { self == .p99 ? "p99 |a−b|" : "max |a−b|" }
}

/// Error statistics of one layer, side A against reference side B, at the level of NVIDIA Polygraphy's
/// `--check-error-stat` (max, mean, median, quantile) plus relative L2, cosine similarity and SNR. Everything is
/// accumulated in float64. Pairs where either value is not finite are left out of every statistic; when they differ
/// (one NaN, or different infinities) `nonFinite` is set and every error is infinite.
public struct ErrorStatistics: Sendable, Equatable {
    /// Values compared (finite pairs).
    public let count: Int
    /// Largest |a−b|.
    public let maxAbs: Double
    /// Mean |a−b|.
    public let meanAbs: Double
    /// Median |a−b| (exact: the order statistic, interpolated linearly between the two middle values as numpy's
    /// `percentile` does).
    public let medianAbs: Double
    /// 99th percentile of |a−b| (exact, numpy's default linear interpolation: position 0.99·(n−1) of the sorted errors).
    public let p99Abs: Double
    /// ‖a−b‖₂ / ‖b‖₂ (0 when both are zero, infinity when only b is).
    public let relativeL2: Double
    /// a·b / (‖a‖₂‖b‖₂) in [−1, 1]; exactly 1 when a = b (both zero included), 0 when only one is zero.
    public let cosine: Double
    /// Signal-to-noise ratio 10·log10(Σb² / Σ(a−b)²) in dB: +infinity when a = b, −infinity when b is zero and a not.
    public let snrDecibels: Double
    /// Largest |b|: the scale `max-abs` and `p99` are relative to.
    public let referenceMaxAbs: Double
    /// Non-finite values differ (one side NaN or infinite where the other is not the same).
    public let nonFinite: Bool

    /// The statistics of `a` against reference `b` (same count). Memory: one float64 per element, for the exact
    /// order statistics.
    public init(_ a: [Float], _ b: [Float]) {
        precondition(a.count == b.count, "ErrorStatistics needs two arrays of the same count")
        var deltas: [Double] = []
        deltas.reserveCapacity(a.count)
        var sum = 0.0, diff2 = 0.0, ref2 = 0.0, own2 = 0.0, dot = 0.0, maxAbs = 0.0, refMax = 0.0
        var nonFinite = false
        for i in 0..<a.count {
            let u = Double(a[i]), v = Double(b[i])
            if !u.isFinite || !v.isFinite {
                if !(u.isNaN && v.isNaN) && u != v { nonFinite = true }
                continue
            }
            let delta = abs(u - v)
            deltas.append(delta)
            sum += delta
            maxAbs = max(maxAbs, delta)
            refMax = max(refMax, abs(v))
            diff2 += delta * delta
            ref2 += v * v
            own2 += u * u
            dot += u * v
        }
        deltas.sort()
        count = deltas.count
        referenceMaxAbs = refMax
        self.nonFinite = nonFinite
        if nonFinite {
            (self.maxAbs, meanAbs, medianAbs, p99Abs, relativeL2) = (.infinity, .infinity, .infinity, .infinity, .infinity)
            cosine = -.infinity
            snrDecibels = -.infinity
            return
        }
        self.maxAbs = maxAbs
        meanAbs = deltas.isEmpty ? 0 : sum / Double(deltas.count)
        medianAbs = Self.percentile(sorted: deltas, 0.5)
        p99Abs = Self.percentile(sorted: deltas, 0.99)
        relativeL2 = ref2 > 0 ? (diff2 / ref2).squareRoot() : (diff2 > 0 ? .infinity : 0)
        if diff2 == 0 { cosine = 1 }  // equal: exactly 1, not 1 − an ulp of rounding
        else if own2 == 0 || ref2 == 0 { cosine = 0 }
        else { cosine = max(-1, min(1, dot / (own2.squareRoot() * ref2.squareRoot()))) }
        snrDecibels = diff2 == 0 ? .infinity : (ref2 == 0 ? -.infinity : 10 * Platform.log10(ref2 / diff2))
    }

    /// The statistics of a layer whose values could not be compared (shapes differ): every error infinite.
    static let incomparable = ErrorStatistics(infinite: ())

    private init(infinite: Void) {
        (count, maxAbs, meanAbs, medianAbs, p99Abs, relativeL2) = (0, .infinity, .infinity, .infinity, .infinity, .infinity)
        (cosine, snrDecibels, referenceMaxAbs, nonFinite) = (-.infinity, -.infinity, 0, false)
    }

    /// The `q`-quantile (0…1) of ascending `sorted` values, interpolated linearly (numpy's default): the value at
    /// position q·(n−1). 0 for no values.
    public static func percentile(sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down)), upper = min(lower + 1, sorted.count - 1)
        let fraction = position - Double(lower)
        return sorted[lower] + fraction * (sorted[upper] - sorted[lower])
    }

    /// `x / scale` with 0/0 = 0 and x/0 = infinity.
    static func ratio(_ x: Double, _ scale: Double) -> Double { scale > 0 ? x / scale : (x > 0 ? .infinity : 0) }

    /// The relative L2 error of each token of a layer of shape (N, T, D) — ‖a−b‖ / ‖b‖ over the token's D values —
    /// averaged over the N samples: T values. Infinite for a token whose reference is zero and values are not, or
    /// whose non-finite values differ.
    public static func perToken(_ a: [Float], _ b: [Float], samples n: Int, tokens t: Int, width d: Int) -> [Double] {
        precondition(a.count == n * t * d && b.count == a.count, "perToken needs two (N, T, D) arrays")
        var out = [Double](repeating: 0, count: t)
        guard n > 0 else { return out }
        for token in 0..<t {
            var total = 0.0
            for sample in 0..<n {
                var diff2 = 0.0, ref2 = 0.0
                var bad = false
                let base = (sample * t + token) * d
                for k in base..<(base + d) {
                    let u = Double(a[k]), v = Double(b[k])
                    if !u.isFinite || !v.isFinite { if !(u.isNaN && v.isNaN) && u != v { bad = true }; continue }
                    diff2 += (u - v) * (u - v)
                    ref2 += v * v
                }
                total += bad ? .infinity : (ref2 > 0 ? (diff2 / ref2).squareRoot() : (diff2 > 0 ? .infinity : 0))
            }
            out[token] = total / Double(n)
        }
        return out
    }
}

/// Where a trace layer sits in its family's forward pass, for the error each layer ADDS and for the SVG's series.
public struct LayerLink: Sendable, Equatable {
    /// The chain the layer belongs to, drawn as one line (`embeddings`, `blocks`); layers of different chains are
    /// never joined.
    public var series: String
    /// The layers of the same chain whose outputs this one reads; empty for the first layer of a chain.
    public var feeders: [String]

    /// A layer of chain `series` reading `feeders`.
    public init(series: String, feeders: [String]) {
        self.series = series
        self.feeders = feeders
    }

    /// Without a family's topology: every layer but the inputs (`input.*`) in one chain, each fed by the layer
    /// before it in `names` (trace order).
    public static func sequential(_ layer: String, _ names: [String]) -> LayerLink? {
        if layer.hasPrefix("input.") { return nil }
        let chain = names.filter { !$0.hasPrefix("input.") }
        guard let i = chain.firstIndex(of: layer) else { return nil }
        return LayerLink(series: "layers", feeders: i > 0 ? [chain[i - 1]] : [])
    }
}

/// A family whose trace layers form chains (separate from `VerifiableFamily`, which names causes): the error a
/// layer adds is measured against the layers feeding it, and the SVG draws each chain as its own line.
public protocol TraceTopology {
    /// Where `layer` sits among the trace's layer names `names` (trace order); nil for an input layer.
    static func link(of layer: String, among names: [String]) -> LayerLink?
}

/// A layer's token grid (rows × columns) for the heat map of its per-token error.
public struct TokenGrid: Sendable, Equatable {
    /// Rows of tokens.
    public var rows: Int
    /// Columns of tokens.
    public var columns: Int

    /// A grid of `rows` × `columns` tokens.
    public init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
    }

    /// The grid of a layer of shape (N, T, D) whose T is a perfect square (DiT: T = (S/p)², row-major patches);
    /// nil for any other shape.
    public static func square(_ shape: [Int]) -> TokenGrid? {
        guard shape.count == 3, shape[1] > 0 else { return nil }
        var side = Int(Double(shape[1]).squareRoot())
        while side * side > shape[1] { side -= 1 }
        while (side + 1) * (side + 1) <= shape[1] { side += 1 }
        return side * side == shape[1] ? TokenGrid(rows: side, columns: side) : nil
    }
}
