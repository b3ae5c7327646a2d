import Tensors

// Decoding of the header messages ditkit reads: datatype (0x0003), dataspace (0x0001), data layout (0x0008), filter
// pipeline (0x000B), attribute (0x000C), and the element values of attributes and small datasets (with the global
// heap for variable-length strings). Layouts follow the HDF5 file format specification, version 2 and 3 sections.

extension HDF5Bytes {
    /// Decodes a datatype message at the region's position; returns the type (the region advances past it).
    /// Classes 0 (integer), 1 (IEEE float), 3 (string), 5 (opaque), 8 (enum of an integer), 9 (variable-length
    /// string); anything else is `.unsupported`.
    func datatype(_ r: inout HDF5Region, nested: Bool = false) throws -> HDF5Datatype {
        let at = r.position
        let classAndVersion = try r.u8("datatype class")
        let b0 = try r.u8(), b1 = try r.u8(), b2 = try r.u8()
        let bits = b0 | b1 << 8 | b2 << 16
        let size = try r.u32("datatype size")
        let typeClass = classAndVersion & 0x0F
        let version = classAndVersion >> 4
        guard (1...3).contains(version) else { throw malformed("datatype", at: at, "version \(version), expected 1 to 3") }
        guard size > 0 else { throw malformed("datatype", at: at, "element size 0") }
        switch typeClass {
        case 0:
            guard [1, 2, 4, 8].contains(size) else { throw unsupported("\(size)-byte integer datatype", at: at) }
            let offset = try r.u16("bit offset"), precision = try r.u16("bit precision")
            guard offset == 0, precision == size * 8, bits & 0x06 == 0 else {
                throw unsupported("integer datatype with bit offset \(offset), precision \(precision), padding bits 0x\(String(bits & 6, radix: 16))", at: at)
            }
            return .integer(size: size, signed: bits & 0x08 != 0, bigEndian: bits & 0x01 != 0)
        case 1:
            let offset = try r.u16("bit offset"), precision = try r.u16("bit precision")
            let expLocation = try r.u8(), expSize = try r.u8(), mantLocation = try r.u8(), mantSize = try r.u8()
            let bias = try r.u32("exponent bias")
            let sign = (bits >> 8) & 0xFF
            let ieee: [Int: (Int, Int, Int, Int, Int)] = [2: (15, 10, 5, 10, 15), 4: (31, 23, 8, 23, 127), 8: (63, 52, 11, 52, 1023)]
            guard let layout = ieee[size], bits & 0x40 == 0, bits & 0x0E == 0, (bits >> 4) & 3 == 2, offset == 0,
                precision == size * 8, sign == layout.0, expLocation == layout.1, expSize == layout.2,
                mantLocation == 0, mantSize == layout.3, bias == layout.4
            else {
                throw unsupported("non-IEEE floating-point datatype (\(size) bytes, sign bit \(sign), exponent \(expSize) bits at \(expLocation), mantissa \(mantSize) bits at \(mantLocation), bias \(bias))", at: at)
            }
            return .float(size: size, bigEndian: bits & 0x01 != 0)
        case 3:
            let charset = (bits >> 4) & 0x0F
            // Null-terminated (0) and null-padded (1, numpy's `S`) only; space-padded (2, Fortran) strings are refused.
            guard charset <= 1, bits & 0x0F <= 1 else { throw unsupported("string datatype with padding \(bits & 0x0F), character set \(charset)", at: at) }
            return .fixedString(size: size, utf8: charset == 1)
        case 5:
            let tagLength = bits & 0xFF
            let tag = try r.take(tagLength, "opaque tag")
            return .opaque(size: size, tag: String(decoding: tag.prefix { $0 != 0 }, as: UTF8.self))
        case 8:
            guard !nested else { throw unsupported("nested enumeration datatype", at: at) }
            let count = bits & 0xFFFF
            let base = try datatype(&r, nested: true)
            guard case .integer(let baseSize, _, _) = base, baseSize == size else {
                throw unsupported("enumeration datatype over \(base)", at: at)
            }
            var names: [String] = []
            for _ in 0..<count {
                let start = r.position
                var end = start
                while true {
                    guard end < r.end else { throw malformed("datatype", at: at, "enum member name at offset \(start) is not terminated") }
                    if bytes[end] == 0 { break }
                    end += 1
                }
                names.append(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self))
                let used = end + 1 - start
                try r.skip(version >= 3 ? used : (hdf5Align8(used) ?? .max), "enum member name")
            }
            var members: [(name: String, value: Int64)] = []
            for name in names {
                let raw = try r.take(size, "enum member value")
                members.append((name, integerValue(raw, base)))
            }
            return .enumeration(base: base, members: members)
        case 9:
            let kind = bits & 0x0F, charset = (bits >> 8) & 0x0F
            guard kind == 1 else { throw unsupported("variable-length sequence datatype", at: at) }
            guard charset <= 1 else { throw unsupported("variable-length string with character set \(charset)", at: at) }
            guard size == 16 else { throw malformed("datatype", at: at, "variable-length string element of \(size) bytes, expected 16") }
            _ = try datatype(&r, nested: true)
            return .variableString(utf8: charset == 1)
        default:
            let names = [2: "time", 4: "bitfield", 6: "compound", 7: "reference", 10: "array", 11: "complex"]
            throw unsupported("\(names[typeClass] ?? "class \(typeClass)") datatype", at: at)
        }
    }

    /// Decodes a dataspace message (versions 1 and 2): null, scalar or simple; the element count is checked not to
    /// overflow. Maximum dimensions are skipped.
    func dataspace(_ r: inout HDF5Region) throws -> HDF5Dataspace {
        let at = r.position
        let version = try r.u8("dataspace version")
        let rank = try r.u8("dataspace rank")
        let flags = try r.u8("dataspace flags")
        var kind = rank == 0 ? 0 : 1
        switch version {
        case 1: try r.skip(5)
        case 2:
            kind = try r.u8("dataspace type")
            guard kind <= 2 else { throw malformed("dataspace", at: at, "type \(kind), expected 0 to 2") }
        default: throw malformed("dataspace", at: at, "version \(version), expected 1 or 2")
        }
        guard rank <= 32 else { throw malformed("dataspace", at: at, "rank \(rank), HDF5 allows at most 32") }
        var dims: [Int] = []
        for i in 0..<rank { dims.append(try r.length("dimension \(i)")) }
        if flags & 1 != 0 { try r.skip(8 * rank, "maximum dimensions") }
        guard Checked.product(dims) != nil else { throw malformed("dataspace", at: at, "dimensions \(dims) overflow an element count") }
        switch kind {
        case 0:
            guard rank == 0 else { throw malformed("dataspace", at: at, "scalar dataspace with rank \(rank)") }
            return .scalar
        case 2: return .null
        default:
            guard rank > 0 else { throw malformed("dataspace", at: at, "simple dataspace of rank 0") }
            return .simple(dims)
        }
    }

    /// Decodes a filter pipeline message (versions 1 and 2).
    func filters(_ r: inout HDF5Region) throws -> [HDF5Filter] {
        let at = r.position
        let version = try r.u8("filter pipeline version")
        let count = try r.u8("filter count")
        guard version == 1 || version == 2 else { throw malformed("filter pipeline", at: at, "version \(version), expected 1 or 2") }
        guard count <= 32 else { throw malformed("filter pipeline", at: at, "\(count) filters, HDF5 allows at most 32") }
        if version == 1 { try r.skip(6) }
        var result: [HDF5Filter] = []
        for _ in 0..<count {
            let id = try r.u16("filter id")
            let nameLength = version == 1 || id >= 256 ? try r.u16("filter name length") : 0
            let flags = try r.u16("filter flags")
            let valueCount = try r.u16("client data count")
            var name: String?
            if nameLength > 0 {
                let raw = try r.take(nameLength, "filter name")
                name = String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                if version == 1 { try r.skip((hdf5Align8(nameLength) ?? 0) - nameLength, "filter name padding") }
            }
            var values: [UInt32] = []
            for _ in 0..<valueCount { values.append(UInt32(try r.u32("client data"))) }
            if version == 1 && valueCount % 2 == 1 { try r.skip(4, "client data padding") }
            result.append(HDF5Filter(id: id, name: name, optional: flags & 1 != 0, clientData: values))
        }
        return result
    }

    /// A decoded data layout message (version 3 only).
    enum Layout {
        case contiguous(address: Int?, size: Int)
        case compact(offset: Int, size: Int)
        case chunked(btree: Int?, dims: [Int], elementSize: Int)
    }

    /// Decodes a data layout message; versions other than 3 are `.unsupported`.
    func layout(_ r: inout HDF5Region) throws -> Layout {
        let at = r.position
        let version = try r.u8("layout version")
        guard version == 3 else { throw unsupported("data layout message version \(version)", at: at) }
        let kind = try r.u8("layout class")
        switch kind {
        case 0:
            let size = try r.u16("compact size")
            let offset = r.position
            try r.skip(size, "compact data")
            return .compact(offset: offset, size: size)
        case 1:
            let address = try r.address("contiguous address")
            let size = try r.length("contiguous size")
            return .contiguous(address: address, size: size)
        case 2:
            let rank = try r.u8("chunk rank")
            guard (2...33).contains(rank) else { throw malformed("data layout", at: at, "chunk dimensionality \(rank), expected 2 to 33") }
            let btree = try r.address("chunk index address")
            var dims: [Int] = []
            for _ in 0..<rank { dims.append(try r.u32("chunk dimension")) }
            guard !dims.contains(0) else { throw malformed("data layout", at: at, "chunk dimensions \(dims) contain 0") }
            return .chunked(btree: btree, dims: Array(dims.dropLast()), elementSize: dims.last!)
        default:
            throw unsupported("data layout class \(kind)", at: at)
        }
    }

    /// Decodes an attribute message (versions 1 to 3): name, datatype, dataspace and value.
    func attribute(_ message: HDF5Message, heaps: inout HDF5GlobalHeaps) throws -> HDF5Attribute {
        var r = try region(message.offset, message.size, "attribute message")
        let version = try r.u8("attribute version")
        guard (1...3).contains(version) else { throw malformed("attribute message", at: message.offset, "version \(version), expected 1 to 3") }
        let flags = try r.u8("attribute flags")
        if version >= 2 && flags & 0x03 != 0 { throw unsupported("attribute with a shared datatype or dataspace", at: message.offset) }
        let nameSize = try r.u16("name size"), typeSize = try r.u16("datatype size"), spaceSize = try r.u16("dataspace size")
        if version == 3 { try r.skip(1, "name encoding") }
        func padded(_ n: Int) -> Int { version == 1 ? (hdf5Align8(n) ?? .max) : n }
        let nameBytes = try r.take(nameSize, "attribute name")
        try r.skip(padded(nameSize) - nameSize, "attribute name padding")
        guard let name = String(validating: nameBytes.prefix { $0 != 0 }, as: UTF8.self) else {
            throw malformed("attribute message", at: message.offset, "attribute name is not valid UTF-8")
        }
        var typeRegion = try r.sub(typeSize, "attribute datatype")
        try r.skip(padded(typeSize) - typeSize, "attribute datatype padding")
        var spaceRegion = try r.sub(spaceSize, "attribute dataspace")
        try r.skip(padded(spaceSize) - spaceSize, "attribute dataspace padding")
        let type = try datatype(&typeRegion)
        let space = try dataspace(&spaceRegion)
        let count = space.elementCount
        guard let total = Checked.multiply(count, type.size), total <= r.remaining else {
            throw malformed("attribute message", at: message.offset, "attribute \"\(name)\" needs \(count) × \(type.size) bytes of data, the message holds \(r.remaining)")
        }
        let data = try r.take(total, "attribute data")
        let value = try values(data, type: type, space: space, heaps: &heaps, location: "attribute \"\(name)\" at offset \(message.offset)")
        return HDF5Attribute(name: name, value: value, offset: message.offset)
    }

    /// Decodes `data` (the elements of `space`, each `type.size` bytes) as a value: `.empty` for a null dataspace,
    /// one element for a scalar, `.array` for a simple dataspace.
    func values(
        _ data: UnsafeRawBufferPointer, type: HDF5Datatype, space: HDF5Dataspace, heaps: inout HDF5GlobalHeaps,
        location: @autoclosure () -> String
    ) throws -> HDF5Value {
        switch space {
        case .null: return .empty
        case .scalar: return try element(data, type: type, heaps: &heaps, location: location())
        case .simple(let dims):
            var items: [HDF5Value] = []
            items.reserveCapacity(min(space.elementCount, data.count / max(type.size, 1)))
            for i in 0..<space.elementCount {
                let raw = UnsafeRawBufferPointer(rebasing: data[(i * type.size)..<((i + 1) * type.size)])
                items.append(try element(raw, type: type, heaps: &heaps, location: location()))
            }
            return .array(items, shape: dims)
        }
    }

    /// One element of `type` from exactly `type.size` bytes.
    func element(
        _ raw: UnsafeRawBufferPointer, type: HDF5Datatype, heaps: inout HDF5GlobalHeaps, location: @autoclosure () -> String
    ) throws -> HDF5Value {
        switch type {
        case .integer(_, let signed, _):
            let v = integerValue(raw, type)
            return signed ? .integer(v) : .unsigned(UInt64(bitPattern: v))
        case .float(let size, let bigEndian):
            let bits = UInt64(bitPattern: integerValue(raw, .integer(size: size, signed: false, bigEndian: bigEndian)))
            switch size {
            case 2: return .float(halfToDouble(UInt16(truncatingIfNeeded: bits)))
            case 4: return .float(Double(Float(bitPattern: UInt32(truncatingIfNeeded: bits))))
            default: return .float(Double(bitPattern: bits))
            }
        case .fixedString:
            // Trailing NULs are padding (what numpy's `S` strips, as h5py returns it); a NUL left inside means
            // bytes after a terminator, given as they are rather than guessed at.
            var bytes = Array(raw)
            while bytes.last == 0 { bytes.removeLast() }
            return bytes.contains(0) ? .bytes(bytes) : text(bytes)
        case .opaque:
            return .bytes(Array(raw))
        case .enumeration(let base, let members):
            let v = integerValue(raw, base)
            return .enumerated(name: members.first { $0.value == v }?.name, value: v)
        case .variableString:
            return text(try heaps.bytes(of: raw, in: self, location: location()))
        }
    }

    /// A string value, or `.bytes` when the bytes are not valid UTF-8 (never a lossy decode).
    func text(_ bytes: [UInt8]) -> HDF5Value {
        String(validating: bytes, as: UTF8.self).map { .string($0) } ?? .bytes(bytes)
    }

    /// The integer in `raw` (1, 2, 4 or 8 bytes of `type`), sign-extended when signed.
    func integerValue(_ raw: UnsafeRawBufferPointer, _ type: HDF5Datatype) -> Int64 {
        guard case .integer(let size, let signed, let bigEndian) = type else { return 0 }
        var v: UInt64 = 0
        for i in 0..<size {
            let byte = UInt64(raw[bigEndian ? i : size - 1 - i])
            v = v << 8 | byte
        }
        if signed && size < 8 && v & (1 << (UInt64(size) * 8 - 1)) != 0 { v |= ~0 << (UInt64(size) * 8) }
        return Int64(bitPattern: v)
    }

    private func halfToDouble(_ h: UInt16) -> Double {
        let sign: Double = h & 0x8000 != 0 ? -1 : 1
        let exponent = Int((h >> 10) & 0x1F), mantissa = Double(h & 0x3FF)
        switch exponent {
        case 0: return sign * mantissa * 0x1p-24
        case 31: return mantissa == 0 ? sign * .infinity : .nan
        default: return sign * (1 + mantissa / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }
}

/// The global heap collections ("GCOL") read so far: each parsed once, every object's bytes validated inside its
/// collection and the collection inside the file.
struct HDF5GlobalHeaps {
    private var collections: [Int: [Int: (offset: Int, size: Int)]] = [:]
    /// Collections parsed at most (each is at least 4 KiB in a real file; a hostile file cannot make us parse more).
    static let maxCollections = 1 << 16
    /// String bytes handed out so far, and the most a file may make us copy: a real file stores each string once,
    /// so its strings total less than the file; many references to one large object would multiply memory.
    private var produced = 0
    private let budget: Int

    /// Heaps of a file of `fileSize` bytes.
    init(fileSize: Int) { budget = fileSize + (1 << 20) }

    /// The bytes a 16-byte variable-length reference (u32 length, address, u32 object index) points to.
    mutating func bytes(of reference: UnsafeRawBufferPointer, in file: HDF5Bytes, location: @autoclosure () -> String) throws -> [UInt8] {
        let length = Int(UInt32(littleEndian: reference.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        let rawAddress = UInt64(littleEndian: reference.loadUnaligned(fromByteOffset: 4, as: UInt64.self))
        let index = Int(UInt32(littleEndian: reference.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
        if length == 0 { return [] }
        guard let address = Checked.int(rawAddress) else {
            throw CheckpointError.malformed(path: file.path, location: location(), reason: "variable-length string points to global heap address \(rawAddress), outside the file")
        }
        let objects = try collection(at: address, in: file)
        guard let object = objects[index] else {
            throw CheckpointError.malformed(path: file.path, location: location(), reason: "global heap collection at offset \(address) has no object \(index)")
        }
        guard length <= object.size else {
            throw CheckpointError.malformed(path: file.path, location: location(), reason: "string of \(length) bytes in global heap object \(index) of \(object.size) bytes (collection at offset \(address))")
        }
        produced += length
        guard produced <= budget else {
            throw CheckpointError.malformed(path: file.path, location: location(), reason: "variable-length strings reference more than the \(budget) bytes the file could hold (global heap objects referenced over and over)")
        }
        return Array(file.bytes[object.offset..<(object.offset + length)])
    }

    private mutating func collection(at address: Int, in file: HDF5Bytes) throws -> [Int: (offset: Int, size: Int)] {
        if let known = collections[address] { return known }
        guard collections.count < Self.maxCollections else {
            throw file.malformed("global heap collection", at: address, "more than \(Self.maxCollections) collections")
        }
        var head = try file.signed(address, 16, "global heap collection", signature: "GCOL")
        let version = try head.u8("version")
        guard version == 1 else { throw file.malformed("global heap collection", at: address, "version \(version), expected 1") }
        try head.skip(3)
        let size = try head.length("collection size")
        guard size >= 16 else { throw file.malformed("global heap collection", at: address, "size \(size), less than its header") }
        var r = try file.region(address, size, "global heap collection")
        try r.skip(16)
        var objects: [Int: (offset: Int, size: Int)] = [:]
        while r.remaining >= 16 {
            let index = try r.u16("object index")
            try r.skip(6)
            let objectSize = try r.length("object size")
            if index == 0 { break }  // free space: the rest of the collection
            let offset = r.position
            guard let padded = hdf5Align8(objectSize), padded <= r.remaining else {
                throw file.malformed("global heap collection", at: address, "object \(index) of \(objectSize) bytes at offset \(offset) runs past the collection's \(size) bytes")
            }
            try r.skip(padded)
            guard objects.updateValue((offset, objectSize), forKey: index) == nil else {
                throw file.malformed("global heap collection", at: address, "object index \(index) appears twice")
            }
        }
        collections[address] = objects
        return objects
    }
}
