/// The one way ditkit spells numbers in text: fixed decimals, grouped thousands, scientific notation, significant
/// digits, binary byte sizes and the shortest exact spelling of a value. Pure Swift (no libm, no Foundation, no
/// locale): the same value gives the same text on every platform.
///
/// Rounding is of the Double value · 10^digits, to nearest, ties away from zero (`Double.rounded()`):
/// `fixed(0.125, 2)` is "0.13". A value that rounds to zero prints without a minus sign. Non-finite values print as "nan", "inf" and "-inf".
package enum NumberFormat {
    /// `value` with exactly `fractionDigits` decimals (0…15): `fixed(3.14159, fractionDigits: 2)` is "3.14",
    /// `fixed(2, fractionDigits: 1)` is "2.0", `fixed(7.5, fractionDigits: 0)` is "8". With `trimmingZeros`,
    /// trailing zeros after the point go, and the point too when nothing follows it ("2.50" → "2.5", "2.00" → "2").
    /// A value too large to scale exactly (|value| · 10^fractionDigits ≥ 2^63) prints as Swift's shortest spelling.
    package static func fixed(_ value: Double, fractionDigits: Int, trimmingZeros: Bool = false) -> String {
        if let special = nonFinite(value) { return special }
        let digits = min(max(fractionDigits, 0), 15)
        let scaled = (value * powerOfTen(digits)).rounded()
        guard scaled.magnitude < 0x1p63 else { return shortest(value) }
        let units = Int(scaled), divisor = UInt(powerOfTen(digits))
        var fraction = digits == 0 ? "" : String(units.magnitude % divisor)
        fraction = String(repeating: "0", count: digits - fraction.count) + fraction
        if trimmingZeros { while fraction.last == "0" { fraction.removeLast() } }
        let whole = String(units.magnitude / divisor)
        return (units < 0 ? "-" : "") + whole + (fraction.isEmpty ? "" : "." + fraction)
    }

    /// `value` with its digits grouped in thousands by commas: 1234567 → "1,234,567", -1000 → "-1,000".
    package static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return value < 0 ? "-" + out : out
    }

    /// `value` as a mantissa in [1, 10) with `fractionDigits` decimals and a signed exponent of at least two digits,
    /// as C's `%.2e` spells it: `scientific(0.0000123)` is "1.23e-05", `scientific(123456)` is "1.23e+05".
    /// A mantissa that rounds up to 10 carries into the exponent (9.999e-6 → "1.00e-05"). Zero is "0".
    /// With `trimmingZeros`, trailing zeros of the mantissa go ("1.50e+09" → "1.5e+09", "2.00e+12" → "2e+12").
    package static func scientific(_ value: Double, fractionDigits: Int = 2, trimmingZeros: Bool = false) -> String {
        if let special = nonFinite(value) { return special }
        if value == 0 { return "0" }
        let digits = min(max(fractionDigits, 0), 15)
        var exponent = decimalExponent(value.magnitude)
        var mantissa = mantissa(value, exponent)
        let scale = powerOfTen(digits)
        if (mantissa.magnitude * scale).rounded() >= 10 * scale {  // 9.996 → 10.00: carry
            exponent += 1
            mantissa = self.mantissa(value, exponent)
        }
        let sign = exponent < 0 ? "-" : "+"
        let exponentDigits = String(exponent.magnitude)
        return fixed(mantissa, fractionDigits: digits, trimmingZeros: trimmingZeros) + "e" + sign
            + (exponentDigits.count < 2 ? "0" : "") + exponentDigits
    }

    /// `value` rounded to `digits` significant digits (1…15), in fixed notation: `significant(0.012345, digits: 3)`
    /// is "0.0123", `significant(0.05, digits: 3)` is "0.0500", `significant(123.456, digits: 2)` is "120".
    /// Zero is "0" followed by `digits - 1` decimals. Values below 1e-300 print as zero.
    package static func significant(_ value: Double, digits: Int) -> String {
        if let special = nonFinite(value) { return special }
        let digits = min(max(digits, 1), 15)
        guard value.magnitude >= 1e-300 else { return fixed(0, fractionDigits: digits - 1) }
        var exponent = decimalExponent(value.magnitude)
        // 0.099999 at 3 digits rounds to 0.100: one decimal fewer.
        if (value.magnitude / powerOfTen(exponent - digits + 1)).rounded() >= powerOfTen(digits) { exponent += 1 }
        let decimals = digits - 1 - exponent
        if decimals >= 0 { return fixed(value, fractionDigits: decimals) }
        let unit = powerOfTen(-decimals)
        return fixed((value / unit).rounded() * unit, fractionDigits: 0)
    }

    /// `fixed` with `fractionDigits` decimals where that shows at least two significant digits
    /// (|value| ≥ 10^(1 − fractionDigits)), else `significant` with `significantDigits`, so a small figure does not
    /// read as zero: with 2 and 3, 118.6448 is "118.64", 0.5 is "0.50", 0.0123 is "0.0123" and 0 is "0.00".
    package static func fixedOrSignificant(_ value: Double, fractionDigits: Int, significantDigits: Int) -> String {
        if value != 0 && value.isFinite && value.magnitude < 10 / powerOfTen(max(fractionDigits, 0)) {
            return significant(value, digits: significantDigits)
        }
        return fixed(value, fractionDigits: fractionDigits)
    }

    /// A byte count in binary units with one decimal ("1.5 GiB", "512.0 KiB"), exact below 1 KiB ("1023 B").
    /// A value that rounds to 1024 of a unit is shown in the next unit ("1.0 MiB", not "1024.0 KiB").
    package static func binaryBytes(_ value: Int) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        guard value.magnitude >= 1024 else { return "\(value) B" }
        var amount = Double(value.magnitude) / 1024
        var unit = 0
        while (amount * 10).rounded() >= 10240 && unit < units.count - 1 { amount /= 1024; unit += 1 }
        return (value < 0 ? "-" : "") + fixed(amount, fractionDigits: 1) + " " + units[unit]
    }

    /// The shortest text that reads back as `value`: an integral value without a decimal point ("3", "-0" is "0"),
    /// any other as Swift's `description` ("1e-06", "0.1", "1e+20" for integral values past 2^63).
    package static func shortest(_ value: Double) -> String {
        if let special = nonFinite(value) { return special }
        if value.rounded() == value, value.magnitude < 0x1p63 { return String(Int(value)) }
        return "\(value)"
    }

    // MARK: helpers

    private static func nonFinite(_ value: Double) -> String? {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        return nil
    }

    /// 10^`exponent` correctly rounded (exact up to 10^22), for any exponent a finite Double can need.
    private static func powerOfTen(_ exponent: Int) -> Double {
        if (0...22).contains(exponent) {
            var result = 1.0
            for _ in 0..<exponent { result *= 10 }
            return result
        }
        return Double("1e\(exponent)")!
    }

    /// `value` / 10^`exponent`, in two steps where 10^`exponent` is subnormal or zero.
    private static func mantissa(_ value: Double, _ exponent: Int) -> Double {
        exponent < -290 ? value * powerOfTen(300) / powerOfTen(exponent + 300) : value / powerOfTen(exponent)
    }

    /// The e with 10^e ≤ `magnitude` < 10^(e+1), for a finite positive `magnitude`.
    private static func decimalExponent(_ magnitude: Double) -> Int {
        // log10(2) · binary exponent is within one of the answer; the comparisons settle it exactly.
        var exponent = Int((Double(magnitude.exponent) * 0.30102999566398120).rounded(.down))
        while exponent < 308 && powerOfTen(exponent + 1) <= magnitude { exponent += 1 }
        while exponent > -324 && powerOfTen(exponent) > magnitude { exponent -= 1 }
        return exponent
    }
}
