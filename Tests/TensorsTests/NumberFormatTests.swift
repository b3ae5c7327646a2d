import Tensors
import Testing

/// The one number formatter: each spelling, its rounding, its signs, its edges and the non-finite values.
@Suite("number formatting")
struct NumberFormatTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let value: Double
        let digits: Int
        let text: String
        var testDescription: String { "\(value) (\(digits)) → \(text)" }
        init(_ value: Double, _ digits: Int, _ text: String) { (self.value, self.digits, self.text) = (value, digits, text) }
    }

    @Test("fixed: exactly N decimals, rounded half away from zero, no -0", arguments: [
        Case(3.14159, 2, "3.14"), Case(2, 1, "2.0"), Case(7.5, 0, "8"), Case(-7.5, 0, "-8"), Case(0.125, 2, "0.13"),
Case(-1.005, 1, "-1.0"), Case(-0.001, 2, "0.00"), Case(0, 3, "0.000"),
        Case(1234.5678, 3, "1234.568"), Case(0.05, 2, "0.05"), Case(99.996, 2, "100.00"), Case(-12.34, 2, "-12.34"),
        Case(1e-7, 6, "0.000000"), Case(123.0, 15, "123.000000000000000"),
    ])
    func fixed(_ c: Case) {
        #expect(NumberFormat.fixed(c.value, fractionDigits: c.digits) == c.text)
    }

    @Test("fixed, trimming zeros: as few decimals as the value needs, up to N")
    func fixedTrimmed() {
        #expect(NumberFormat.fixed(2.5, fractionDigits: 2, trimmingZeros: true) == "2.5")
        #expect(NumberFormat.fixed(2.001, fractionDigits: 2, trimmingZeros: true) == "2")
        #expect(NumberFormat.fixed(0.25, fractionDigits: 2, trimmingZeros: true) == "0.25")
        #expect(NumberFormat.fixed(-0.004, fractionDigits: 2, trimmingZeros: true) == "0")
        #expect(NumberFormat.fixed(1200, fractionDigits: 0, trimmingZeros: true) == "1200")
    }

    @Test("fixed: a value too big to scale exactly, and non-finite values")
    func fixedEdges() {
        #expect(NumberFormat.fixed(1e20, fractionDigits: 2) == "1e+20")
        #expect(NumberFormat.fixed(.nan, fractionDigits: 2) == "nan")
        #expect(NumberFormat.fixed(.infinity, fractionDigits: 2) == "inf")
        #expect(NumberFormat.fixed(-.infinity, fractionDigits: 2) == "-inf")
    }

    @Test("grouped: thousands separated by commas, sign kept", arguments: [
        (0, "0"), (999, "999"), (1000, "1,000"), (1_234_567, "1,234,567"), (-1000, "-1,000"), (-999_999, "-999,999"),
        (Int.max, "9,223,372,036,854,775,807"), (Int.min, "-9,223,372,036,854,775,808"),
    ])
    func grouped(_ c: (Int, String)) {
        #expect(NumberFormat.grouped(c.0) == c.1)
    }

    @Test("scientific: a mantissa in [1, 10), a signed exponent of at least two digits, as %.2e", arguments: [
        Case(0.0000123, 2, "1.23e-05"), Case(123456, 2, "1.23e+05"), Case(1, 2, "1.00e+00"), Case(1e-5, 2, "1.00e-05"),
        Case(2e-5, 2, "2.00e-05"), Case(9.999e-6, 2, "1.00e-05"), Case(9.994e-6, 2, "9.99e-06"), Case(-0.5, 2, "-5.00e-01"),
        Case(1e100, 2, "1.00e+100"), Case(1.5e-300, 1, "1.5e-300"), Case(.leastNonzeroMagnitude, 2, "4.94e-324"),
        Case(1.7976931348623157e308, 3, "1.798e+308"), Case(0.000314159, 0, "3e-04"), Case(0, 2, "0"),
    ])
    func scientific(_ c: Case) {
        #expect(NumberFormat.scientific(c.value, fractionDigits: c.digits) == c.text)
    }

    @Test("scientific: non-finite values and trimmed mantissas")
    func scientificEdges() {
        #expect(NumberFormat.scientific(.nan) == "nan" && NumberFormat.scientific(.infinity) == "inf")
        #expect(NumberFormat.scientific(-.infinity) == "-inf")
        #expect(NumberFormat.scientific(1.5e9, trimmingZeros: true) == "1.5e+09")
        #expect(NumberFormat.scientific(2e12, trimmingZeros: true) == "2e+12")
    }

    @Test("significant: N significant digits in fixed notation, carrying into the next decade", arguments: [
        Case(0.012345, 3, "0.0123"), Case(0.05, 3, "0.0500"), Case(0.099999, 3, "0.100"), Case(123.456, 2, "120"),
        Case(123.456, 5, "123.46"), Case(1, 1, "1"), Case(0, 3, "0.00"), Case(-0.00123456, 2, "-0.0012"),
        Case(9.96, 2, "10"), Case(1e-301, 3, "0.00"),
    ])
    func significant(_ c: Case) {
        #expect(NumberFormat.significant(c.value, digits: c.digits) == c.text)
    }

    @Test("fixed or significant: N decimals, or M significant digits where N decimals would show fewer than two",
          arguments: [
              Case(118.6448, 2, "118.64"), Case(0.5, 2, "0.50"), Case(0.1, 2, "0.10"), Case(0.0999, 2, "0.0999"),
              Case(0.0123, 2, "0.0123"), Case(0.05, 2, "0.0500"), Case(0, 2, "0.00"), Case(0.00001234, 2, "0.0000123"),
              Case(0.0123, 1, "0.0123"), Case(0.5, 1, "0.500"), Case(12.34, 1, "12.3"),
          ])
    func fixedOrSignificant(_ c: Case) {
        #expect(NumberFormat.fixedOrSignificant(c.value, fractionDigits: c.digits, significantDigits: 3) == c.text)
    }

    @Test("binary bytes: exact below 1 KiB, one decimal above, a rounded 1024 carried to the next unit", arguments: [
        (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (1_048_524, "1023.9 KiB"),
        (1_048_575, "1.0 MiB"), (3 << 30, "3.0 GiB"), (1 << 40, "1.0 TiB"), (Int.max, "8.0 EiB"), (-2048, "-2.0 KiB"),
    ])
    func binaryBytes(_ c: (Int, String)) {
        #expect(NumberFormat.binaryBytes(c.0) == c.1)
    }

    @Test("shortest: integral values without a point, others as Swift spells them")
    func shortest() {
        #expect(NumberFormat.shortest(3) == "3" && NumberFormat.shortest(-0.0) == "0" && NumberFormat.shortest(-42) == "-42")
        #expect(NumberFormat.shortest(0.1) == "0.1" && NumberFormat.shortest(1e-6) == "1e-06")
        #expect(NumberFormat.shortest(1e20) == "1e+20" && NumberFormat.shortest(.nan) == "nan")
    }
}
