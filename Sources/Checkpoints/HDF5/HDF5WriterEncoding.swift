import Tensors

// The byte encodings of the HDF5 structures ditkit writes: exactly the messages h5py 3.13 (HDF5 1.14, default
// "earliest" file format) writes for the Cerebras saver's files, read back from files the real saver wrote
// (datatype class/version/bit fields, dataspace v1 with maximum dimensions, fill value v2, filter pipeline v1, layout
// v3, attribute v1 with 8-byte padded parts).

/// An attribute value ditkit writes, in the HDF5 type h5py gives the Python value: `str` → a scalar variable-length
/// UTF-8 string, `float` → float64, `bool` → h5py's enum over int8 (`FALSE = 0`, `TRUE = 1`), lists → simple arrays.
package enum HDF5WriteValue: Sendable, Equatable {
    /// A scalar variable-length UTF-8 string (h5py's `str`).
    case string(String)
    /// An array of variable-length UTF-8 strings with `shape` (h5py's list of `str`).
    case strings([String], shape: [Int])
    /// A scalar float64.
    case float64(Double)
    /// A float64 array with `shape` (numpy's default dtype for an empty nested list: `[()]` → shape (1, 0)).
    case float64s([Double], shape: [Int])
    /// An int64 array with `shape`.
    case int64s([Int64], shape: [Int])
    /// A scalar bool (h5py's enum over int8).
    case bool(Bool)
}

/// One attribute to write: its name and value.
package struct HDF5WriteAttribute: Sendable, Equatable {
    /// The attribute's name (UTF-8, no NUL).
    package let name: String
    /// Its value.
    package let value: HDF5WriteValue

    /// An attribute called `name` holding `value`.
    package init(_ name: String, _ value: HDF5WriteValue) {
        self.name = name
        self.value = value
    }
}

/// Little-endian byte building for the HDF5 encoder.
struct HDF5ByteBuilder {
    var bytes: [UInt8] = []

    mutating func u8(_ v: Int) { bytes.append(UInt8(truncatingIfNeeded: v)) }
    mutating func u16(_ v: Int) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u32(_ v: Int) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    /// An address or length; nil is HDF5's undefined address (all bits set).
    mutating func address(_ v: Int?) { u64(v.map { UInt64($0) } ?? UInt64.max) }
    mutating func append(_ other: [UInt8]) { bytes += other }
    /// Zero bytes up to the next multiple of `alignment`.
    mutating func pad(to alignment: Int) {
        let r = bytes.count % alignment
        if r != 0 { bytes += [UInt8](repeating: 0, count: alignment - r) }
    }
    var count: Int { bytes.count }
}

/// Encoders for the HDF5 messages the writer emits.
enum HDF5Encode {
    /// HDF5's undefined address.
    static let undefined: Int? = nil

    /// Datatype message body for a tensor element type as numpy stores it (bf16 → int16, as the Cerebras saver
    /// stores it; bool → h5py's enum). Nil for a dtype the `.mdl` format cannot hold (the real saver refuses int8,
    /// float8 and complex: no RtFx dtype).
    static func datatype(for dtype: DType) -> [UInt8]? {
        switch dtype {
        case .f64: return float(size: 8)
        case .f32: return float(size: 4)
        case .f16: return float(size: 2)
        case .bf16, .i16: return integer(size: 2, signed: true)
        case .i64: return integer(size: 8, signed: true)
        case .i32: return integer(size: 4, signed: true)
        case .u8: return integer(size: 1, signed: false)
        case .bool: return boolEnum()
        default: return nil
        }
    }

    /// A little-endian IEEE float of `size` bytes (2, 4, 8), class 1 version 1, as HDF5's native types encode it.
    static func float(size: Int) -> [UInt8] {
        // (sign location, exponent location, exponent size, mantissa size, bias)
        let p: (Int, Int, Int, Int, Int)
        switch size {
        case 2: p = (15, 10, 5, 10, 15)
        case 4: p = (31, 23, 8, 23, 127)
        default: p = (63, 52, 11, 52, 1023)
        }
        var b = HDF5ByteBuilder()
        b.u8(0x11); b.u8(0x20); b.u8(p.0); b.u8(0)
        b.u32(size)
        b.u16(0); b.u16(size * 8)
        b.u8(p.1); b.u8(p.2); b.u8(0); b.u8(p.3)
        b.u32(p.4)
        return b.bytes
    }

    /// A little-endian integer of `size` bytes, class 0 version 1.
    static func integer(size: Int, signed: Bool) -> [UInt8] {
        var b = HDF5ByteBuilder()
        b.u8(0x10); b.u8(signed ? 0x08 : 0); b.u8(0); b.u8(0)
        b.u32(size)
        b.u16(0); b.u16(size * 8)
        return b.bytes
    }

    /// h5py's bool: an enum (class 8 version 1) over signed int8 with members `FALSE = 0`, `TRUE = 1`.
    static func boolEnum() -> [UInt8] {
        var b = HDF5ByteBuilder()
        b.u8(0x18); b.u8(2); b.u8(0); b.u8(0)
        b.u32(1)
        b.append(integer(size: 1, signed: true))
        b.append(Array("FALSE".utf8) + [0, 0, 0])
        b.append(Array("TRUE".utf8) + [0, 0, 0, 0])
        b.u8(0); b.u8(1)
        return b.bytes
    }

    /// A variable-length UTF-8 string (class 9 version 1, null-terminated padding) over unsigned bytes.
    static func variableString() -> [UInt8] {
        var b = HDF5ByteBuilder()
        b.u8(0x19); b.u8(0x01); b.u8(0x01); b.u8(0)
        b.u32(16)
        b.append(integer(size: 1, signed: false))
        return b.bytes
    }

    /// Dataspace message version 1: scalar for `[]`, else simple with maximum dimensions equal to the dimensions.
    static func dataspace(_ shape: [Int]) -> [UInt8] {
        var b = HDF5ByteBuilder()
        b.u8(1); b.u8(shape.count); b.u8(shape.isEmpty ? 0 : 1); b.u8(0)
        b.u32(0)
        for d in shape { b.u64(UInt64(d)) }
        for d in shape { b.u64(UInt64(d)) }
        return b.bytes
    }

    /// Fill value message version 2 as h5py leaves it: allocation time (2 late for contiguous, 3 incremental for
    /// chunked), fill time "if set", fill value defined with size 0 (the default, zero).
    static func fillValue(chunked: Bool) -> [UInt8] {
        [2, chunked ? 3 : 2, 2, 1, 0, 0, 0, 0]
    }

    /// The name the LZ4 filter registers and h5py records in the filter pipeline message.
    static let lz4FilterName = "HDF5 lz4 filter; see http://www.hdfgroup.org/services/contributions.html"

    /// Filter pipeline message version 1 with the one LZ4 filter: id 32004, optional, client data `(0)` (hdf5plugin's
    /// default block size), as `hdf5plugin.LZ4()` sets it.
    static func lz4Pipeline() -> [UInt8] {
        var b = HDF5ByteBuilder()
        b.u8(1); b.u8(1); b.u16(0); b.u32(0)
        var name = Array(lz4FilterName.utf8) + [0]
        while name.count % 8 != 0 { name.append(0) }
        b.u16(32004); b.u16(name.count); b.u16(1); b.u16(1)
        b.append(name)
        b.u32(0)
        b.u32(0)  // padding after an odd number of client data values
        return b.bytes
    }

    /// Data layout message version 3, contiguous: `size` bytes at `address` (undefined when nothing is stored).
    static func contiguousLayout(address: Int?, size: Int) -> [UInt8] {
        var b = HDF5ByteBuilder()
        b.u8(3); b.u8(1)
        b.address(address)
        b.u64(UInt64(size))
        return b.bytes
    }

    /// Data layout message version 3, chunked: the chunk B-tree at `btree` (undefined when no chunk is written), the
    /// chunk dimensions and the element size as the last dimension.
    static func chunkedLayout(btree: Int?, chunk: [Int], elementSize: Int) -> [UInt8] {
        var b = HDF5ByteBuilder()
        b.u8(3); b.u8(2); b.u8(chunk.count + 1)
        b.address(btree)
        for c in chunk { b.u32(c) }
        b.u32(elementSize)
        return b.bytes
    }

    /// Symbol table message: the group's B-tree and local heap.
    static func symbolTable(btree: Int, heap: Int) -> [UInt8] {
        var b = HDF5ByteBuilder()
        b.address(btree)
        b.address(heap)
        return b.bytes
    }

    /// Attribute message version 1 for `attribute`, its variable-length strings already placed at `references`
    /// (16-byte global heap references, in element order).
    static func attribute(_ attribute: HDF5WriteAttribute, references: [[UInt8]]) -> [UInt8] {
        let name = Array(attribute.name.utf8) + [0]
        let datatype: [UInt8], space: [UInt8], data: [UInt8]
        switch attribute.value {
        case .string:
            datatype = variableString(); space = dataspace([]); data = references.flatMap { $0 }
        case .strings(_, let shape):
            datatype = variableString(); space = dataspace(shape); data = references.flatMap { $0 }
        case .float64(let v):
            datatype = float(size: 8); space = dataspace([]); data = littleEndian(v.bitPattern)
        case .float64s(let values, let shape):
            datatype = float(size: 8); space = dataspace(shape); data = values.flatMap { littleEndian($0.bitPattern) }
        case .int64s(let values, let shape):
            datatype = integer(size: 8, signed: true); space = dataspace(shape)
            data = values.flatMap { littleEndian(UInt64(bitPattern: $0)) }
        case .bool(let v):
            datatype = boolEnum(); space = dataspace([]); data = [v ? 1 : 0]
        }
        var b = HDF5ByteBuilder()
        b.u8(1); b.u8(0)
        b.u16(name.count); b.u16(datatype.count); b.u16(space.count)
        b.append(name); b.pad(to: 8)
        b.append(datatype); b.pad(to: 8)
        b.append(space); b.pad(to: 8)
        b.append(data)
        return b.bytes
    }

    /// The variable-length strings of `value`, in element order (to be placed in the global heap).
    static func strings(of value: HDF5WriteValue) -> [String] {
        switch value {
        case .string(let s): return [s]
        case .strings(let s, _): return s
        default: return []
        }
    }

    static func littleEndian(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
}
