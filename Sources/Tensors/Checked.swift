/// Overflow-checked arithmetic for every count, size, offset and stride that comes from a file.
///
/// Swift traps on overflow and on converting a value that does not fit (`Int(UInt64.max)`), and a trap is a crash:
/// a value read from a file goes through these helpers, which return nil instead (the caller throws an error
/// naming the file and the field), or saturate where a total may legitimately exceed `Int.max` (see `saturating`).
public enum Checked {
    /// `a + b`, or nil on overflow.
    @inlinable public static func add(_ a: Int, _ b: Int) -> Int? {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : sum
    }

    /// `a · b`, or nil on overflow.
    @inlinable public static func multiply(_ a: Int, _ b: Int) -> Int? {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : product
    }

    /// The product of `values` (1 when empty), or nil on overflow. Any zero makes the product 0, whatever the other
    /// factors are (an empty tensor of shape `[0, 2^40, 2^40]` is valid), so zeros are looked for before multiplying.
    @inlinable public static func product(_ values: [Int]) -> Int? {
        if values.contains(0) { return 0 }
        var result = 1
        for value in values {
            guard let next = multiply(result, value) else { return nil }
            result = next
        }
        return result
    }

    /// A file's unsigned 64-bit field as an `Int`, or nil when it does not fit (≥ 2^63).
    @inlinable public static func int(_ value: UInt64) -> Int? {
        value <= UInt64(Int.max) ? Int(value) : nil
    }

    /// Whether `offset ..< offset + count` lies inside `0 ..< size`, without overflowing on any input.
    @inlinable public static func fits(offset: Int, count: Int, in size: Int) -> Bool {
        offset >= 0 && count >= 0 && offset <= size && count <= size - offset
    }

    /// `a + b` of non-negative values, or `Int.max` on overflow: for totals that are only reported, never used to
    /// size an allocation or locate bytes (the logical bytes of expanded views summed over a checkpoint).
    @inlinable public static func saturatingAdd(_ a: Int, _ b: Int) -> Int { add(a, b) ?? .max }

    /// `a · b` of non-negative values, or `Int.max` on overflow (reported totals only, as `saturatingAdd`).
    @inlinable public static func saturatingMultiply(_ a: Int, _ b: Int) -> Int { multiply(a, b) ?? .max }
}
