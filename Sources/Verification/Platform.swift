// The C library calls of the Verification module, in one place (the swift-argument-parser `Platform.swift` habit):
// no other file of the module imports Glibc or Darwin.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#else
#error("Verification needs Glibc or Darwin (libm)")
#endif

/// Thin wrappers over libm, named after the calls they make.
enum Platform {
    /// libm `log10`.
    static func log10(_ x: Double) -> Double { libmLog10(x) }
    /// libm `pow`.
    static func pow(_ x: Double, _ y: Double) -> Double { libmPow(x, y) }
}

// libm under names of their own, so that `Platform`'s members of the same names can call them.
private func libmLog10(_ x: Double) -> Double { log10(x) }
private func libmPow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
