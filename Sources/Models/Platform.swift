// The Models module's only platform import: the C math library functions its tables are defined by (the source
// code computes them with the same libm functions), in one `#if` ladder.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// libm, as the frozen tables use it.
enum LibM {
    static func sin(_ x: Double) -> Double { libm_sin(x) }
    static func cos(_ x: Double) -> Double { libm_cos(x) }
    static func exp(_ x: Double) -> Double { libm_exp(x) }
    static func log(_ x: Double) -> Double { libm_log(x) }
    static func pow(_ x: Double, _ y: Double) -> Double { libm_pow(x, y) }
    /// `cosf`: single-precision cosine.
    static func cos(_ x: Float) -> Float { libm_cosf(x) }
    /// `sinf`: single-precision sine.
    static func sin(_ x: Float) -> Float { libm_sinf(x) }
    /// `expf`: single-precision exponential.
    static func exp(_ x: Float) -> Float { libm_expf(x) }
}

// The module-qualified C functions, named apart from `LibM`'s own members.
private func libm_sin(_ x: Double) -> Double { sin(x) }
private func libm_cos(_ x: Double) -> Double { cos(x) }
private func libm_exp(_ x: Double) -> Double { exp(x) }
private func libm_log(_ x: Double) -> Double { log(x) }
private func libm_pow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
private func libm_cosf(_ x: Float) -> Float { cosf(x) }
private func libm_sinf(_ x: Float) -> Float { sinf(x) }
private func libm_expf(_ x: Float) -> Float { expf(x) }
