#if canImport(Glibc)
import Glibc
#endif
import Reference
import Testing

@Suite("vector kernels")
struct KernelTests {
    @Test("SIMD exp is within 3 ulp of expf from −87 to 88, and saturates without NaN beyond")
    func exp() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let lanes = Vector.V((0..<8).map { x + Float($0) * 1e-3 })
            let ours = Vector.exp(lanes)
            for i in 0..<8 {
                let reference = expf(lanes[i])
                worst = max(worst, abs(ours[i] - reference) / reference.ulp)
            }
            x += 0.0731
        }
        #expect(worst <= 3, "worst error \(worst) ulp")
        let extreme = Vector.exp(Vector.V(-1000, -88, 89, 1000, 0, 1, -1, 0.5))
        #expect(extreme[0] < 1e-37 && extreme[1] < 1e-37 && extreme[2] > 1e38 && extreme[3] > 1e38 && !extreme[3].isNaN)
        #expect(extreme[4] == 1 && abs(extreme[5] - Float(M_E)) <= Float(M_E).ulp)
    }

    @Test("GELU tanh form equals 0.5x(1+tanh(√(2/π)(x+0.044715x³))) within 1e-6 relative; erf form equals 0.5x(1+erf(x/√2))")
    func gelu() {
        var values = (0..<4099).map { Float($0 - 2049) / 256 }
        let input = values
        values.withUnsafeMutableBufferPointer { Kernels.gelu($0.baseAddress!, count: $0.count, exact: false) }
        for (x, y) in zip(input, values) {
            let reference = Float(0.5 * Double(x) * (1 + tanh(0.7978845608028654 * (Double(x) + 0.044715 * Double(x) * Double(x) * Double(x)))))
            #expect(abs(y - reference) <= 1e-6 * max(abs(reference), 1e-3), "x = \(x): \(y) vs \(reference)")
        }
        var exact = input
        exact.withUnsafeMutableBufferPointer { Kernels.gelu($0.baseAddress!, count: $0.count, exact: true) }
        for (x, y) in zip(input, exact) { #expect(abs(y - Float(0.5 * Double(x) * (1 + erf(Double(x) / 2.0.squareRoot())))) <= 1e-6) }
    }

    @Test("softmax rows sum to 1, are stable for large inputs, and match the scalar definition")
    func softmax() {
        var rows: [Float] = (0..<(3 * 37)).map { Float(($0 * 7919) % 101) * 0.37 } + [1000, 1001, 999] + Array(repeating: 0, count: 34)
        let original = rows
        rows.withUnsafeMutableBufferPointer { Kernels.softmaxRows($0.baseAddress!, rows: 4, cols: 37, ld: 37, scale: 0.5) }
        for r in 0..<4 {
            let row = Array(rows[(r * 37)..<((r + 1) * 37)]), input = Array(original[(r * 37)..<((r + 1) * 37)])
            #expect(abs(row.reduce(0, +) - 1) < 1e-6)
            let m = input.max()!
            let e = input.map { Foundation_exp(Double(($0 - m) * 0.5)) }
            let total = e.reduce(0, +)
            for (ours, reference) in zip(row, e.map { $0 / total }) { #expect(abs(Double(ours) - reference) < 1e-7) }
        }
    }
}

private func Foundation_exp(_ x: Double) -> Double { Glibc.exp(x) }
