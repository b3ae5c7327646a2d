/// Element types ditkit reads and writes.
///
/// The raw value is ditkit's short spelling (`f32`, `bf16`, `f8e4m3`, …), used in every text and JSON output.
/// Complex types are read-only: they can be inspected and copied, not converted to float32.
public enum DType: String, CaseIterable, Sendable, Hashable, Codable {
    /// IEEE binary64.
    case f64
    /// IEEE binary32.
    case f32
    /// IEEE binary16.
    case f16
    /// bfloat16: the top 16 bits of a float32.
    case bf16
    /// OCP FP8 E4M3 "fn" variant (PyTorch `float8_e4m3fn`): no infinities, one NaN pattern per sign, max 448.
    case f8e4m3
    /// OCP FP8 E5M2 (PyTorch `float8_e5m2`): IEEE-like, with infinities and NaNs, max 57344.
    case f8e5m2
    /// Signed 64-bit integer.
    case i64
    /// Signed 32-bit integer.
    case i32
    /// Signed 16-bit integer.
    case i16
    /// Signed 8-bit integer.
    case i8
    /// Unsigned 64-bit integer.
    case u64
    /// Unsigned 32-bit integer.
    case u32
    /// Unsigned 16-bit integer.
    case u16
    /// Unsigned 8-bit integer.
    case u8
    /// One byte, 0 or 1.
    case bool
    /// complex64: two float32 (real, imaginary).
    case c64
    /// complex128: two float64.
    case c128

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64, .u64, .c64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .f8e4m3, .f8e5m2, .i8, .u8, .bool: return 1
        case .c128: return 16
        }
    }

    /// The width of one scalar lane for byte swapping (complex types swap each half separately).
    public var swapUnit: Int {
        switch self {
        case .c64: return 4
        case .c128: return 8
        default: return size
        }
    }

    /// Whether this is a real floating-point type (f64 … f8e5m2).
    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16, .f8e4m3, .f8e5m2: return true
        default: return false
        }
    }

    /// Whether this is complex64 or complex128.
    public var isComplex: Bool { self == .c64 || self == .c128 }

    /// Whether bulk conversion to and from float32 is supported.
    public var convertsToFloat32: Bool { !isComplex }
}
