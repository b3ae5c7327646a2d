import Tensors

/// How far two tables are apart: the largest |Δ| and the largest distance in ulps of the stored dtype.
package struct TableDifference: Sendable, Equatable {
    /// The largest absolute difference.
    package var maxAbs: Float
    /// The largest difference in ulps of the stored dtype, at the larger magnitude of each pair (and of its angle, for
    /// a sin/cos table whose angles are given); `Int.max` when a pair is not comparable (NaN against a number, or ±inf
    /// against anything else).
    package var ulps: Int

    /// The differences between `actual` and `expected` (same count), in ulps of `dtype` (f32, f16, bf16, f64 as f32).
    /// With `angles` (a sin/cos table's angle per entry, rounded before cos/sin), an entry's unit is the ulp of its
    /// angle when that is larger: |Δcos a| ≤ |Δa|, so a platform that rounds an angle one ulp apart stays one ulp apart.
    package init(_ actual: [Float], _ expected: [Float], dtype: DType, angles: [Float]? = nil) {
        let mantissa: Int, minExponent: Int
        switch dtype {
        case .f16: (mantissa, minExponent) = (10, -14)
        case .bf16: (mantissa, minExponent) = (7, -126)
        case .f8e4m3: (mantissa, minExponent) = (3, -6)
        case .f8e5m2: (mantissa, minExponent) = (2, -14)
        default: (mantissa, minExponent) = (23, -126)
        }
        var worst: Float = 0, worstUlps = 0
        for (i, (a, e)) in zip(actual, expected).enumerated() {
            if a == e || (a.isNaN && e.isNaN) { continue }
            guard a.isFinite, e.isFinite else { worst = .infinity; worstUlps = Int.max; continue }
            let delta = abs(a - e)
            worst = max(worst, delta)
            var magnitude = max(abs(a), abs(e))
            if let angles, i < angles.count, angles[i].isFinite { magnitude = max(magnitude, abs(angles[i])) }
            let exponent = max(Int(magnitude.exponent), minExponent)
            let ulp = Float(sign: .plus, exponent: exponent - mantissa, significand: 1)
            let distance = (delta / ulp).rounded(.up)
            worstUlps = max(worstUlps, distance >= Float(Int.max / 2) ? Int.max : Int(distance))
        }
        maxAbs = worst
        ulps = worstUlps
    }

    /// A table within this many ulps of the recomputed one counts as equal: the platform's cos/sin rounding
    /// (libm and PyTorch's vectorised functions each round to within 1–2 ulps).
    package static var equalWithinUlps: Int { 4 }
}

extension ModelFamily {
    /// How `stored` (the values of a canonical tensor kept in `dtype`) differs from the frozen table this family
    /// recomputes for `template` — the table rounded to `dtype` first, ulps counted at each angle where the family
    /// gives them — with that rounded table; nil when `template` is no recomputed table or the counts differ. The one
    /// comparison conversion (`ConversionPlan.checkDroppable`) and `WeightDiff` both use: equal within
    /// `TableDifference.equalWithinUlps`.
    package static func tableDifference(_ template: String, config: Config, stored: [Float], dtype: DType) throws
        -> (difference: TableDifference, expected: [Float])?
    {
        guard var expected = recomputedTable(template, config: config), expected.count == stored.count else { return nil }
        if dtype != .f32, dtype.isFloatingPoint { expected = try ConversionPlan<Self>.rounded(expected, to: dtype) }
        return (TableDifference(stored, expected, dtype: dtype, angles: recomputedTableAngles(template, config: config)), expected)
    }
}
