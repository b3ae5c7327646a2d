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
}

// The module-qualified C functions, named apart from `LibM`'s own members.
private func libm_sin(_ x: Double) -> Double { sin(x) }
private func libm_cos(_ x: Double) -> Double { cos(x) }
private func libm_exp(_ x: Double) -> Double { exp(x) }
private func libm_log(_ x: Double) -> Double { log(x) }
private func libm_pow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
