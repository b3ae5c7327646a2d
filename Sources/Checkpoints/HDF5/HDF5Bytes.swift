import Tensors

// Bounded little-endian reading of an HDF5 file's bytes: every read goes through a region whose bounds were checked
// against the real file, and every field that becomes an offset, size or count is checked before use.

/// The bytes of a mapped HDF5 file with its path, and the errors every parser piece throws.
struct HDF5Bytes {
    /// The whole mapped file (valid while the owning `MappedFile` is alive).
    let bytes: UnsafeRawBufferPointer
    /// The file, for messages.
    let path: String

    /// Bytes in the file.
    var size: Int { bytes.count }

    /// `.malformed` naming `what` at `offset`.
    func malformed(_ what: String, at offset: Int, _ reason: String) -> CheckpointError {
        .malformed(path: path, location: "\(what) at offset \(offset)", reason: reason)
    }

    /// `.unsupported` with kind "unsupported HDF5 feature `feature` at offset `offset`".
    func unsupported(_ feature: String, at offset: Int) -> CheckpointError {
        .unsupported(
            path: path, kind: "unsupported HDF5 feature \(feature) at offset \(offset)",
            advice: "ditkit reads the HDF5 subset h5py writes with its default settings (superblock 0, symbol-table groups, compact attributes, contiguous/compact/chunked layouts); rewrite the file with h5py defaults")
    }

    /// A region of `count` bytes at `offset`, or `.malformed` naming `what` when it does not lie inside the file.
    func region(_ offset: Int, _ count: Int, _ what: String) throws -> HDF5Region {
        guard Checked.fits(offset: offset, count: count, in: size) else {
            throw malformed(what, at: offset, "needs \(count) bytes at offset \(offset), past the end of the \(size)-byte file (truncated or a bad offset)")
        }
        return HDF5Region(file: self, start: offset, end: offset + count, what: what)
    }

    /// A region of `count` bytes at `offset` that starts with the 4-byte `signature` of the structure `what` (`TREE`,
    /// `SNOD`, `HEAP`, `GCOL`), positioned after it; `.malformed` naming `what` when it is outside the file or
    /// the signature is not there.
    func signed(_ offset: Int, _ count: Int, _ what: String, signature: String) throws -> HDF5Region {
        var region = try self.region(offset, count, what)
        guard region.at(signature) else { throw malformed(what, at: offset, "no \"\(signature)\" signature") }
        try region.skip(4)
        return region
    }

    /// Whether the 4 bytes at `offset` are `signature` (false when they are outside the file).
    func hasSignature(_ signature: String, at offset: Int) -> Bool {
        guard Checked.fits(offset: offset, count: signature.utf8.count, in: size) else { return false }
        for (i, c) in signature.utf8.enumerated() where bytes[offset + i] != c { return false }
        return true
    }
}

/// A cursor over a bounds-checked range of the file: reads past `end` throw `.malformed` naming the structure.
struct HDF5Region {
    let file: HDF5Bytes
    /// First byte of the region in the file.
    let start: Int
    /// One past the last byte.
    let end: Int
    /// The structure being read, for messages ("object header", "B-tree node", …).
    let what: String
    /// The next byte to read (file offset).
    var position: Int

    init(file: HDF5Bytes, start: Int, end: Int, what: String) {
        self.file = file
        self.start = start
        self.end = end
        self.what = what
        position = start
    }

    /// Bytes left.
    var remaining: Int { end - position }

    /// `.malformed` naming this region's structure.
    func malformed(_ reason: String) -> CheckpointError { file.malformed(what, at: start, reason) }

    /// Throws unless `count` more bytes are inside the region.
    func need(_ count: Int, _ field: @autoclosure () -> String) throws {
        guard count >= 0, count <= end - position else {
            throw malformed("\(field()) needs \(count) bytes at offset \(position), only \(max(0, end - position)) left in the \(end - start)-byte structure")
        }
    }

    mutating func u8(_ field: @autoclosure () -> String = "field") throws -> Int {
        try need(1, field())
        defer { position += 1 }
        return Int(file.bytes[position])
    }

    mutating func u16(_ field: @autoclosure () -> String = "field") throws -> Int {
        try need(2, field())
        defer { position += 2 }
        return Int(UInt16(littleEndian: file.bytes.loadUnaligned(fromByteOffset: position, as: UInt16.self)))
    }

    mutating func u32(_ field: @autoclosure () -> String = "field") throws -> Int {
        try need(4, field())
        defer { position += 4 }
        return Int(UInt32(littleEndian: file.bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self)))
    }

    mutating func u64(_ field: @autoclosure () -> String = "field") throws -> UInt64 {
        try need(8, field())
        defer { position += 8 }
        return UInt64(littleEndian: file.bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
    }

    /// An 8-byte address: nil for HDF5's undefined address (all ones); `.malformed` when it does not fit an `Int`.
    mutating func address(_ field: @autoclosure () -> String) throws -> Int? {
        let at = position
        let raw = try u64(field())
        if raw == .max { return nil }
        guard let value = Checked.int(raw) else { throw malformed("\(field()) \(raw) at offset \(at) is not a valid address") }
        return value
    }

    /// An 8-byte length that fits an `Int`.
    mutating func length(_ field: @autoclosure () -> String) throws -> Int {
        let at = position
        let raw = try u64(field())
        guard let value = Checked.int(raw) else { throw malformed("\(field()) \(raw) at offset \(at) is too large") }
        return value
    }

    /// Skips `count` bytes.
    mutating func skip(_ count: Int, _ field: @autoclosure () -> String = "field") throws {
        try need(count, field())
        position += count
    }

    /// The next `count` bytes (a view into the mapping).
    mutating func take(_ count: Int, _ field: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try need(count, field())
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: file.bytes[position..<(position + count)])
    }

    /// A sub-region of the next `count` bytes (consumed from this one).
    mutating func sub(_ count: Int, _ what: String) throws -> HDF5Region {
        try need(count, what)
        defer { position += count }
        return HDF5Region(file: file, start: position, end: position + count, what: what)
    }

    /// Whether the next 4 bytes are `signature` (nothing consumed).
    func at(_ signature: String) -> Bool { remaining >= 4 && file.hasSignature(signature, at: position) }
}

/// `value` rounded up to a multiple of 8, or nil on overflow.
func hdf5Align8(_ value: Int) -> Int? {
    guard let v = Checked.add(value, 7) else { return nil }
    return v & ~7
}

/// Bob Jenkins' lookup3 `hashlittle` with initial value 0: the checksum of HDF5's version-2 metadata (object
/// headers "OHDR"/"OCHK"), as `H5_checksum_lookup3` computes it.
func hdf5Lookup3(_ data: UnsafeRawBufferPointer) -> UInt32 {
    @inline(__always) func rot(_ x: UInt32, _ k: UInt32) -> UInt32 { (x << k) | (x >> (32 - k)) }
    var length = data.count
    var a: UInt32 = 0xdead_beef &+ UInt32(truncatingIfNeeded: length)
    var b = a
    var c = a
    var k = 0
    @inline(__always) func byte(_ i: Int) -> UInt32 { UInt32(data[i]) }
    @inline(__always) func word(_ i: Int) -> UInt32 { byte(i) | byte(i + 1) << 8 | byte(i + 2) << 16 | byte(i + 3) << 24 }
    while length > 12 {
        a &+= word(k)
        b &+= word(k + 4)
        c &+= word(k + 8)
        a &-= c; a ^= rot(c, 4); c &+= b
        b &-= a; b ^= rot(a, 6); a &+= c
        c &-= b; c ^= rot(b, 8); b &+= a
        a &-= c; a ^= rot(c, 16); c &+= b
        b &-= a; b ^= rot(a, 19); a &+= c
        c &-= b; c ^= rot(b, 4); b &+= a
        length -= 12
        k += 12
    }
    if length == 0 { return c }
    for i in stride(from: length - 1, through: 0, by: -1) {
        let v = byte(k + i)
        switch i {
        case 8...11: c &+= v << UInt32((i - 8) * 8)
        case 4...7: b &+= v << UInt32((i - 4) * 8)
        default: a &+= v << UInt32(i * 8)
        }
    }
    c ^= b; c &-= rot(b, 14)
    a ^= c; a &-= rot(c, 11)
    b ^= a; b &-= rot(a, 25)
    c ^= b; c &-= rot(b, 16)
    a ^= c; a &-= rot(c, 4)
    b ^= a; b &-= rot(a, 14)
    c ^= b; c &-= rot(b, 24)
    return c
}
