import Checkpoints
import Tensors

/// Renders tensor elements the way fixtures/expected/manifest.json records them ("head"): floats as numbers
/// or "nan"/"inf"/"-inf", integers as numbers, bool as 0/1, complex as [re, im].
public enum TensorValues {
    public static func head(_ tensor: TensorInfo, count: Int = 4) throws -> [JSONValue] {
        let n = min(count, tensor.elementCount)
        guard n > 0 else { return [] }
        let bytes = try tensor.contiguousBytes()
        return try bytes.withUnsafeBytes { raw -> [JSONValue] in
            func load<T>(_ i: Int, _ type: T.Type) -> T { raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self) }
            func float(_ d: Double) -> JSONValue {
                if d.isNaN { return .string("nan") }
                if d.isInfinite { return .string(d < 0 ? "-inf" : "inf") }
                return .double(d)
            }
            return try (0..<n).map { i -> JSONValue in
                switch tensor.dtype {
                case .f64: return float(Double(bitPattern: load(i, UInt64.self)))
                case .f32, .f16, .bf16, .f8e4m3, .f8e5m2:
                    var one: [Float] = [0]
                    try one.withUnsafeMutableBufferPointer {
                        try DTypeConversion.toFloat32(
                            UnsafeRawBufferPointer(rebasing: raw[(i * tensor.dtype.size)...]), dtype: tensor.dtype, count: 1, into: $0)
                    }
                    return float(Double(one[0]))
                case .i64: return .int(Int(load(i, Int64.self)))
                case .i32: return .int(Int(load(i, Int32.self)))
                case .i16: return .int(Int(load(i, Int16.self)))
                case .i8: return .int(Int(load(i, Int8.self)))
                case .u64:
                    let v = load(i, UInt64.self)
                    return v <= UInt64(Int.max) ? .int(Int(v)) : .double(Double(v))
                case .u32: return .int(Int(load(i, UInt32.self)))
                case .u16: return .int(Int(load(i, UInt16.self)))
                case .u8, .bool: return .int(Int(load(i, UInt8.self)))
                case .c64:
                    let re = Float(bitPattern: load(2 * i, UInt32.self)), im = Float(bitPattern: load(2 * i + 1, UInt32.self))
                    return .array([float(Double(re)), float(Double(im))])
                case .c128:
                    let re = Double(bitPattern: load(2 * i, UInt64.self)), im = Double(bitPattern: load(2 * i + 1, UInt64.self))
                    return .array([float(re), float(im)])
                }
            }
        }
    }

    /// Equality of manifest numbers: exact, with ints and doubles compared by value and huge integers
    /// (beyond 2^63, parsed as doubles) compared as doubles.
    public static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case let (.array(x), .array(y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case let (.string(x), .string(y)): return x == y
        default:
            guard let x = a.doubleValue, let y = b.doubleValue else { return a == b }
            return x == y
        }
    }
}

/// Deterministic test inputs, all from the one splitmix64 (`Tensors.SplitMix64`).
public enum TestValues {
    /// `count` floats uniform in [−1, 1) from `seed`.
    public static func uniform(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SplitMix64(state: seed)
        return (0..<count).map { _ in Float(generator.nextUnit() * 2 - 1) }
    }
}
