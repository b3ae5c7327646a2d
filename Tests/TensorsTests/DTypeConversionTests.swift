import Tensors
import Testing

@Suite("dtype conversion")
struct ConversionTests {
    @Test("f16 decoding is exact and encoding round-trips every one of the 65536 patterns")
    func halfExhaustive() {
        for bits in 0...UInt16.max {
            let value = DTypeConversion.float32(half: bits)
            #if arch(x86_64) || arch(arm64)
            let reference = Float(Float16(bitPattern: bits))
            #expect(value.bitPattern == reference.bitPattern || (value.isNaN && reference.isNaN))
            #endif
            let back = DTypeConversion.halfBits(value)
            if value.isNaN { #expect(DTypeConversion.float32(half: back).isNaN) } else { #expect(back == bits) }
        }
    }

    #if arch(x86_64) || arch(arm64)
    @Test("f32 → f16 rounds to nearest even like Swift's Float16 (IEEE) on 2 million values")
    func halfRounding() {
        var generator = SplitMix64(state: 1)
        for _ in 0..<2_000_000 {
            let state = generator.next()
            let bits = UInt32(truncatingIfNeeded: state >> 32)
            // Concentrate on the f16 range (exponents 100…145) half of the time.
            let f = Float(bitPattern: state & 1 == 0 ? bits : (bits & 0x807F_FFFF) | (UInt32(100 + (bits >> 23) % 46) << 23))
            let ours = DTypeConversion.halfBits(f)
            let reference = Float16(f).bitPattern
            if f.isNaN { #expect(DTypeConversion.float32(half: ours).isNaN) } else { #expect(ours == reference, "\(f)") }
        }
    }
    #endif

    @Test("bf16: round-to-nearest-even, ties to even, NaN stays NaN, overflow to inf", arguments: [
        (Float(1.0).bitPattern, UInt16(0x3F80)),
        (UInt32(0x3F80_8000), UInt16(0x3F80)),  // tie, even stays
        (UInt32(0x3F81_8000), UInt16(0x3F82)),  // tie, odd rounds up
        (UInt32(0x3F80_8001), UInt16(0x3F81)),  // above tie
        (UInt32(0x7F7F_FFFF), UInt16(0x7F80)),  // max float → inf
        (UInt32(0xFF80_0000), UInt16(0xFF80)),  // -inf
        (UInt32(0x0000_0001), UInt16(0x0000)),  // tiny subnormal → 0
        (UInt32(0x8000_0000), UInt16(0x8000)),  // -0
    ])
    func bfloat16(_ c: (UInt32, UInt16)) {
        #expect(DTypeConversion.bfloat16Bits(Float(bitPattern: c.0)) == c.1)
    }

    @Test("bf16 NaN payloads stay NaN, including ones whose top bits would round to inf")
    func bfloat16NaN() {
        for bits: UInt32 in [0x7FC0_0000, 0x7F80_0001, 0xFF80_0001, 0x7FFF_FFFF] {
            let out = DTypeConversion.bfloat16Bits(Float(bitPattern: bits))
            #expect(DTypeConversion.float32(bfloat16: out).isNaN)
            #expect((out & 0x8000 != 0) == (bits & 0x8000_0000 != 0))
        }
    }

    @Test("f8 e4m3fn: known values, 448 max, ties to even, overflow to NaN")
    func e4m3() {
        #expect(DTypeConversion.float32(f8e4m3: 0x7E) == 448)
        #expect(DTypeConversion.float32(f8e4m3: 0x7F).isNaN)
        #expect(DTypeConversion.float32(f8e4m3: 0x01) == 0x1p-9)
        #expect(DTypeConversion.float32(f8e4m3: 0x08) == 0x1p-6)
        #expect(DTypeConversion.float32(f8e4m3: 0xC0) == -2)
        #expect(DTypeConversion.f8e4m3Byte(464) == 0x7E)  // tie between 448 (even) and NaN slot
        #expect(DTypeConversion.f8e4m3Byte(470) == 0x7F)
        #expect(DTypeConversion.f8e4m3Byte(.infinity) == 0x7F)
        #expect(DTypeConversion.f8e4m3Byte(-1.5) == 0xBC)
        for byte in 0...UInt8.max where byte & 0x7F != 0x7F {
            #expect(DTypeConversion.f8e4m3Byte(DTypeConversion.float32(f8e4m3: byte)) == byte || byte == 0x80)
        }
    }

    @Test("f8 e5m2: known values, inf, overflow to inf, round trip")
    func e5m2() {
        #expect(DTypeConversion.float32(f8e5m2: 0x7B) == 57344)
        #expect(DTypeConversion.float32(f8e5m2: 0x7C) == .infinity)
        #expect(DTypeConversion.f8e5m2Byte(61440) == 0x7C)  // tie between 57344 (odd mantissa) and inf
        #expect(DTypeConversion.f8e5m2Byte(59000) == 0x7B)
        #expect(DTypeConversion.f8e5m2Byte(.nan) & 0x7F == 0x7F)
        for byte in 0...UInt8.max where !DTypeConversion.float32(f8e5m2: byte).isNaN {
            #expect(DTypeConversion.f8e5m2Byte(DTypeConversion.float32(f8e5m2: byte)) == byte || byte == 0x80)
        }
    }

    @Test("bulk conversion of every convertible dtype to f32, unaligned source")
    func bulk() throws {
        let values: [Float] = [-1.5, 0, 2, 3.5]
        for dtype in [DType.f64, .f32, .f16, .bf16, .f8e4m3, .f8e5m2] {
            var encoded = [UInt8](repeating: 0, count: values.count * dtype.size + 1)
            try values.withUnsafeBufferPointer { src in
                try encoded.withUnsafeMutableBytes { try DTypeConversion.fromFloat32(src, to: dtype, into: UnsafeMutableRawBufferPointer(rebasing: $0[1...])) }
            }
            var decoded = [Float](repeating: 0, count: values.count)
            try encoded.withUnsafeBytes { raw in
                try decoded.withUnsafeMutableBufferPointer {
                    try DTypeConversion.toFloat32(UnsafeRawBufferPointer(rebasing: raw[1...]), dtype: dtype, count: values.count, into: $0)
                }
            }
            #expect(decoded == values, "\(dtype)")
        }
        let ints: [Int64] = [-5, 7, 1 << 40]
        var out = [Float](repeating: 0, count: 3)
        try ints.withUnsafeBytes { raw in
            try out.withUnsafeMutableBufferPointer { try DTypeConversion.toFloat32(raw, dtype: .i64, count: 3, into: $0) }
        }
        #expect(out == [-5, 7, Float(1 << 40)])
        #expect(throws: TensorsError.unsupportedConversion(.c64)) {
            try out.withUnsafeMutableBufferPointer { try DTypeConversion.toFloat32(UnsafeRawBufferPointer(start: nil, count: 0), dtype: .c64, count: 0, into: $0) }
        }
        #expect(throws: TensorsError.self) {
            try out.withUnsafeMutableBufferPointer { try DTypeConversion.toFloat32(UnsafeRawBufferPointer(start: nil, count: 0), dtype: .f32, count: 3, into: $0) }
        }
    }

    @Test("byte swapping reverses each lane", arguments: [2, 4, 8, 16])
    func swap(_ unit: Int) {
        var bytes = (0..<(unit * 3)).map { UInt8($0) }
        bytes.withUnsafeMutableBytes { DTypeConversion.swapBytes($0, unit: unit) }
        let expected = (0..<3).flatMap { lane in (0..<unit).reversed().map { UInt8(lane * unit + $0) } }
        #expect(bytes == expected)
    }
}

@Suite("layouts and mapped files")
struct LayoutTests {
    @Test("sizes overflow-check, views are bounds-checked, contiguity is recognised")
    func layouts() throws {
        #expect(throws: TensorsError.self) { try TensorGeometry(contiguous: [1 << 32, 1 << 32]) }
        #expect(throws: TensorsError.self) { try TensorGeometry(contiguous: [Int.max / 2 + 1]).byteCount(of: .f32) }
        #expect(throws: TensorsError.self) { try TensorGeometry(shape: [2, -1], strides: [1, 1]) }
        #expect(throws: TensorsError.self) { try TensorGeometry(shape: [2], strides: [1, 1]) }
        #expect(throws: TensorsError.self) { try TensorGeometry(shape: [3, 2], strides: [Int.max / 2, 2]) }
        let view = try TensorGeometry(shape: [8, 6], strides: [1, 8], offset: 3)
        #expect(!view.isContiguous)
        #expect(view.storageExtent == 3 + 7 + 40 + 1)
        #expect(throws: TensorsError.self) { try view.checkFits(storageElements: 50) }
        try view.checkFits(storageElements: 51)
        #expect(try TensorGeometry(contiguous: [2, 3]).isContiguous)
        #expect(try TensorGeometry(shape: [1, 3], strides: [99, 1]).isContiguous)
        #expect(try TensorGeometry(shape: [4, 3], strides: [0, 1]).isContiguous == false)
        #expect(try TensorGeometry(contiguous: []).elementCount == 1)
        #expect(try TensorGeometry(contiguous: [0, 5]).elementCount == 0)
    }

    @Test("mapping: empty files map to an empty buffer; a missing file names the call")
    func mapping() throws {
        let path = "/tmp/ditkit-empty-\(UInt32.random(in: 0...UInt32.max))"
        FILE_create(path)
        defer { FILE_remove(path) }
        let file = try MappedFile(path: path)
        #expect(file.size == 0 && file.bytes.isEmpty)
        #expect {
            try MappedFile(path: path + ".missing")
        } throws: { error in
            "\(error)".contains("open failed")
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

private func FILE_create(_ path: String) { close(open(path, O_CREAT | O_WRONLY, 0o644)) }
private func FILE_remove(_ path: String) { unlink(path) }

@Suite("kernel copies")
struct CopyTests {
    @Test("MappedFile.copy moves an exact byte range into another file at its current position")
    func copyRange() throws {
        let source = "/tmp/ditkit-copy-src-\(UInt32.random(in: 0...UInt32.max))", target = source + ".out"
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 31) }
        let fd = open(source, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        defer { unlink(source); unlink(target) }
        let file = try MappedFile(path: source)
        let out = open(target, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
        _ = write(out, "ab", 2)
        #expect(file.copy(offset: 1234, count: 50_000, to: out) == 50_000)
        #expect(file.copy(offset: 99_000, count: 5_000, to: out) == 0, "a range past the end copies nothing")
        close(out)
        let copied = try MappedFile(path: target)
        #expect(Array(copied.bytes) == Array("ab".utf8) + Array(bytes[1234..<51_234]))
    }
}
