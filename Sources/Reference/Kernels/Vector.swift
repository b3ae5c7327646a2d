/// The Swift side of ditkit's exp, accurate to about 2 ulp over float32's range: the element-wise kernels run it in
/// C (`Kernels`, CDitkitKernels' elementwise.h) with the same polynomial, constants and order of operations, and a
/// test proves both bit-identical at every level the CPU runs.
package enum Vector {
    /// Eight float32 lanes: the width every element-wise kernel works in.
    package typealias V = SIMD8<Float>

    /// e^x lane-wise: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for exactness), e^r by a degree-6
    /// polynomial (Cephes expf coefficients), 2^n by building the exponent bits. Only plain arithmetic and bit
    /// casts, so every step is a vector instruction: n is rounded by adding and subtracting 1.5·2²³, and its
    /// integer value is read from the low bits of that sum. Inputs are clamped to [−87.3, 88.7] (below, the
    /// result is ~1e-38 rather than 0; above, ~3e38 rather than inf — harmless for softmax and GELU).
    @inline(__always)
    package static func exp(_ x: V) -> V {
        let low = V(repeating: -87.33654), high = V(repeating: 88.72283)
        let clamped = x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
        let magic = V(repeating: 12582912)  // 1.5 · 2^23
        let shifted = clamped * 1.44269504088896341 + magic
        let n = shifted - magic
        var r = clamped - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * r * r + r + 1
        // The low 22 bits of `shifted` hold n + 2^22 (two's complement offset); n + 127 lands in the exponent.
        let integer = unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &- 0x4B40_0000
        let scale = unsafeBitCast((integer &+ 127) &<< 23, to: V.self)
        return p * scale
    }

    /// The same e^x for one float, in straight-line arithmetic a loop vectoriser turns into vector code.
    @inline(__always)
    package static func exp(_ x: Float) -> Float {
        let clamped = Swift.min(Swift.max(x, -87.33654), 88.72283)
        let shifted = clamped * 1.44269504088896341 + 12582912
        let n = shifted - 12582912
        var r = clamped - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p: Float = 1.9875691500e-4
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * r * r + r + 1
        let integer = shifted.bitPattern &- 0x4B40_0000
        return p * Float(bitPattern: (integer &+ 127) &<< 23)
    }

    @inline(__always)
    package static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    @inline(__always)
    package static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }
}
