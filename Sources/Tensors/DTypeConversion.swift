/// Bulk conversion between stored element types and float32, and the scalar codecs behind it.
///
/// Rounding is round-to-nearest-even everywhere, NaN stays NaN (quieted), as PyTorch's casts do.
/// Narrow floats follow PyTorch's c10 types: f16 and bf16 overflow to ±inf; f8e5m2 overflows to ±inf;
/// f8e4m3 (the "fn" variant, no infinities) turns anything past its largest finite value (448) into NaN.
public enum DTypeConversion {

    // MARK: scalar codecs

    /// bf16 bits → float32: the bits shifted left by 16 (exact).
    @inlinable public static func float32(bfloat16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// float32 → bf16 bits, round-to-nearest-even; NaN becomes a quiet NaN with the same sign.
    @inlinable public static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// IEEE binary16 bits → float32 (exact, subnormals and NaN payloads kept).
    @inlinable public static func float32(half bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits) & 0x3FF
        if exponent == 0 {
            let magnitude = Float(mantissa) * 0x1p-24
            return Float(bitPattern: sign | magnitude.bitPattern)
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// float32 → IEEE binary16 bits, round-to-nearest-even, overflow to ±inf.
    @inlinable public static func halfBits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        if value.isNaN { return sign | 0x7E00 | UInt16(truncatingIfNeeded: (bits & 0x7F_FFFF) >> 13) }
        if value.isInfinite { return sign | 0x7C00 }
        let code = minifloatMagnitude(bits, exponentBits: 5, mantissaBits: 10, bias: 15)
        return sign | UInt16(min(code, 0x7C00))
    }

    /// f8 E4M3 (fn) byte → float32.
    @inlinable public static func float32(f8e4m3 byte: UInt8) -> Float {
        let sign: Float = byte & 0x80 != 0 ? -1 : 1
        let exponent = Int((byte >> 3) & 0xF)
        let mantissa = Float(byte & 0x7)
        if exponent == 15 && byte & 0x7 == 7 { return .nan * sign }
        if exponent == 0 { return sign * mantissa * 0x1p-9 }
        return sign * (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
    }

    /// float32 → f8 E4M3 (fn) byte: round-to-nearest-even; beyond 448 (and ±inf) → NaN.
    @inlinable public static func f8e4m3Byte(_ value: Float) -> UInt8 {
        let bits = value.bitPattern
        let sign = UInt8(truncatingIfNeeded: bits >> 24) & 0x80
        if !value.isFinite { return sign | 0x7F }
        let code = minifloatMagnitude(bits, exponentBits: 4, mantissaBits: 3, bias: 7)
        return sign | (code > 0x7E ? 0x7F : UInt8(code))
    }

    /// f8 E5M2 byte → float32.
    @inlinable public static func float32(f8e5m2 byte: UInt8) -> Float {
        // E5M2 is the top byte of an IEEE half.
        float32(half: UInt16(byte) << 8)
    }

    /// float32 → f8 E5M2 byte: round-to-nearest-even, overflow to ±inf, NaN → 0x7F with the sign.
    @inlinable public static func f8e5m2Byte(_ value: Float) -> UInt8 {
        let bits = value.bitPattern
        let sign = UInt8(truncatingIfNeeded: bits >> 24) & 0x80
        if value.isNaN { return sign | 0x7F }
        if value.isInfinite { return sign | 0x7C }
        let code = minifloatMagnitude(bits, exponentBits: 5, mantissaBits: 2, bias: 15)
        return sign | UInt8(min(code, 0x7C))
    }

    /// The magnitude code (exponent and mantissa fields, sign excluded) of a finite float32 rounded
    /// to nearest-even in a narrower binary format. A result past the largest exponent means overflow;
    /// callers clamp it to their infinity or NaN.
    @inlinable static func minifloatMagnitude(_ bits: UInt32, exponentBits: Int, mantissaBits: Int, bias: Int) -> UInt32 {
        let exponent = Int((bits >> 23) & 0xFF)
        let fraction = bits & 0x7F_FFFF
        if exponent == 0 { return 0 }  // float32 subnormals are far below every narrow format's range
        let target = exponent - 127 + bias
        let mantissa = fraction | 0x80_0000
        let shift: Int
        var base: UInt32
        if target >= 1 {
            shift = 23 - mantissaBits
            base = UInt32(target) << UInt32(mantissaBits)
            let maxCode = UInt32((1 << (exponentBits + mantissaBits)) - 1)
            if target >= (1 << exponentBits) + 1 { return maxCode + 1 }
            base |= (fraction >> UInt32(shift))
            let remainder = fraction & ((1 << UInt32(shift)) - 1)
            let half = UInt32(1) << UInt32(shift - 1)
            if remainder > half || (remainder == half && base & 1 == 1) { base += 1 }
            return base
        }
        shift = 23 - mantissaBits + (1 - target)
        if shift > 24 { return 0 }
        base = mantissa >> UInt32(shift)
        let remainder = mantissa & ((1 << UInt32(shift)) - 1)
        let half = UInt32(1) << UInt32(shift - 1)
        if remainder > half || (remainder == half && base & 1 == 1) { base += 1 }
        return base
    }

    // MARK: bulk

    /// Converts `count` little-endian elements of `dtype` at `source` into float32.
    ///
    /// `source` may be unaligned. Needs `source.count ≥ count·dtype.size` and `destination.count ≥ count`.
    /// Throws for complex dtypes. Integers convert with rounding to nearest; bool to 0/1.
    public static func toFloat32(
        _ source: UnsafeRawBufferPointer, dtype: DType, count: Int, into destination: UnsafeMutableBufferPointer<Float>
    ) throws {
        guard dtype.convertsToFloat32 else { throw TensorsError.unsupportedConversion(dtype) }
        guard source.count >= count * dtype.size else {
            throw TensorsError.bufferTooSmall(needed: count * dtype.size, available: source.count)
        }
        guard destination.count >= count else {
            throw TensorsError.bufferTooSmall(needed: count * 4, available: destination.count * 4)
        }
        guard count > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return }
        func each<T>(_ type: T.Type, _ convert: (T) -> Float) {
            let stride = MemoryLayout<T>.size
            for i in 0..<count { dst[i] = convert(src.loadUnaligned(fromByteOffset: i * stride, as: T.self)) }
        }
        switch dtype {
        case .f32: UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .f64: each(UInt64.self) { Float(Double(bitPattern: UInt64(littleEndian: $0))) }
        case .f16: each(UInt16.self) { float32(half: UInt16(littleEndian: $0)) }
        case .bf16: each(UInt16.self) { float32(bfloat16: UInt16(littleEndian: $0)) }
        case .f8e4m3: each(UInt8.self) { float32(f8e4m3: $0) }
        case .f8e5m2: each(UInt8.self) { float32(f8e5m2: $0) }
        case .i64: each(Int64.self) { Float(Int64(littleEndian: $0)) }
        case .i32: each(Int32.self) { Float(Int32(littleEndian: $0)) }
        case .i16: each(Int16.self) { Float(Int16(littleEndian: $0)) }
        case .i8: each(Int8.self) { Float($0) }
        case .u64: each(UInt64.self) { Float(UInt64(littleEndian: $0)) }
        case .u32: each(UInt32.self) { Float(UInt32(littleEndian: $0)) }
        case .u16: each(UInt16.self) { Float(UInt16(littleEndian: $0)) }
        case .u8: each(UInt8.self) { Float($0) }
        case .bool: each(UInt8.self) { $0 != 0 ? 1 : 0 }
        case .c64, .c128: throw TensorsError.unsupportedConversion(dtype)
        }
    }

    /// Converts float32 values into little-endian elements of a floating-point `dtype` at `destination`.
    ///
    /// Only floating-point targets are supported (a cast to an integer type is never what a checkpoint
    /// conversion wants); `destination` may be unaligned and must hold `source.count · dtype.size` bytes.
    public static func fromFloat32(
        _ source: UnsafeBufferPointer<Float>, to dtype: DType, into destination: UnsafeMutableRawBufferPointer
    ) throws {
        guard dtype.isFloatingPoint else { throw TensorsError.unsupportedConversion(dtype) }
        let count = source.count
        guard destination.count >= count * dtype.size else {
            throw TensorsError.bufferTooSmall(needed: count * dtype.size, available: destination.count)
        }
        guard count > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return }
        func each<T>(_ type: T.Type, _ convert: (Float) -> T) {
            let stride = MemoryLayout<T>.size
            for i in 0..<count { dst.storeBytes(of: convert(src[i]), toByteOffset: i * stride, as: T.self) }
        }
        switch dtype {
        case .f32: dst.copyMemory(from: src, byteCount: count * 4)
        case .f64: each(UInt64.self) { Double($0).bitPattern.littleEndian }
        case .f16: each(UInt16.self) { halfBits($0).littleEndian }
        case .bf16: each(UInt16.self) { bfloat16Bits($0).littleEndian }
        case .f8e4m3: each(UInt8.self) { f8e4m3Byte($0) }
        case .f8e5m2: each(UInt8.self) { f8e5m2Byte($0) }
        default: throw TensorsError.unsupportedConversion(dtype)
        }
    }

    /// Reverses the byte order of every `unit`-byte lane in place (big-endian storages).
    /// `unit` of 1 is a no-op; `buffer.count` must be a multiple of `unit`.
    public static func swapBytes(_ buffer: UnsafeMutableRawBufferPointer, unit: Int) {
        guard unit > 1, let base = buffer.baseAddress else { return }
        let lanes = buffer.count / unit
        switch unit {
        case 2:
            for i in 0..<lanes {
                let v = base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
                base.storeBytes(of: v.byteSwapped, toByteOffset: i * 2, as: UInt16.self)
            }
        case 4:
            for i in 0..<lanes {
                let v = base.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)
                base.storeBytes(of: v.byteSwapped, toByteOffset: i * 4, as: UInt32.self)
            }
        case 8:
            for i in 0..<lanes {
                let v = base.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
                base.storeBytes(of: v.byteSwapped, toByteOffset: i * 8, as: UInt64.self)
            }
        default:
            let bytes = base.assumingMemoryBound(to: UInt8.self)
            for i in 0..<lanes {
                var lo = i * unit, hi = lo + unit - 1
                while lo < hi { let t = bytes[lo]; bytes[lo] = bytes[hi]; bytes[hi] = t; lo += 1; hi -= 1 }
            }
        }
    }
}
