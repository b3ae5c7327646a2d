// The C library calls of the Reference module, in one place (the swift-argument-parser `Platform.swift` habit): no
// other file of the module imports Glibc or Darwin.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#else
#error("Reference needs Glibc or Darwin (libm, sysconf, dlopen)")
#endif

/// Thin wrappers over libc and libm, named after the calls they make.
enum Platform {
    /// Online processors, from `sysconf(_SC_NPROCESSORS_ONLN)` (at least 1).
    static var onlineProcessors: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// libm `expf`.
    static func exp(_ x: Float) -> Float { expf(x) }
    /// libm `log`.
    static func log(_ x: Double) -> Double { libmLog(x) }
    /// libm `cos`, `sin` (float and double).
    static func cos(_ x: Float) -> Float { libmCosf(x) }
    static func sin(_ x: Float) -> Float { libmSinf(x) }
    static func cos(_ x: Double) -> Double { libmCos(x) }
    static func sin(_ x: Double) -> Double { libmSin(x) }

    /// `getenv`, as a String.
    static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
    /// `setenv(name, value, 0)`: sets it unless it is set.
    static func setEnvironmentIfUnset(_ name: String, _ value: String) { setenv(name, value, 0) }

    /// `dlsym` in the process's global symbol table (`dlopen(nil, RTLD_NOW)`), nil when absent.
    static func processSymbol(_ name: String) -> UnsafeMutableRawPointer? {
        guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
        return dlsym(handle, name)
    }
}

// libm under names of their own, so that `Platform`'s members of the same names can call them.
private func libmLog(_ x: Double) -> Double { log(x) }
private func libmCosf(_ x: Float) -> Float { cosf(x) }
private func libmSinf(_ x: Float) -> Float { sinf(x) }
private func libmCos(_ x: Double) -> Double { cos(x) }
private func libmSin(_ x: Double) -> Double { sin(x) }
