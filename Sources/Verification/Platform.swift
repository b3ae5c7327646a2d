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
    /// libc `memcmp` of two buffers of the same length: whether their bytes are equal.
    static func bytesEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0, let x = a.baseAddress, let y = b.baseAddress else { return true }
        return memcmp(x, y, a.count) == 0
    }
}

// libm under names of their own, so that `Platform`'s members of the same names can call them.
private func libmLog10(_ x: Double) -> Double { log10(x) }
private func libmPow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
