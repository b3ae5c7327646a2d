import Tensors

/// What a `torch.save`d object may hold when ditkit writes one: ordered string-keyed dicts, tensors, ints, floats,
/// bools, None and strings. Enough for a state dict, nested (`{"model": {...}}`) or not, and a training file's scalars.
public indirect enum TorchSaveValue {
    /// An ordered dict with string keys (`collections.OrderedDict`).
    case dict([(String, TorchSaveValue)])
    /// A tensor, streamed when written.
    case tensor(OutputTensor)
    /// A Python int.
    case int(Int)
    /// A Python str.
    case string(String)
    /// A Python float (any double, NaN and infinities included).
    case double(Double)
    /// A Python bool.
    case bool(Bool)
    /// Python's None.
    case none
}

/// Writes `torch.save` zip archives that `torch.load(weights_only=True)` reads: `data.pkl` (pickle protocol 2,
/// `collections.OrderedDict` + `torch._utils._rebuild_tensor_v2`, or `_v3` with an untyped storage for the
/// dtypes torch has no typed storage for), one STORED `data/<n>` record per tensor with its data aligned to 64
/// bytes, `byteorder`, `.format_version`, `.storage_alignment`, `version`, `.data/serialization_id`, and ZIP64 end
/// records. Tensors stream one at a time from their producers; the CRC is computed on the way.
public enum TorchWriter {
    /// Writes `value` to `path` atomically. `archiveName` is the archive's root folder (torch uses the file stem).
    public static func write(
        _ value: TorchSaveValue, to path: String, archiveName: String? = nil, overwrite: Bool = false, durable: Bool = false
    ) throws {
        let stem = archiveName ?? defaultArchiveName(path)
        var tensors: [OutputTensor] = []
        let pickle = try PickleEncoder.encode(value) { tensor in
            tensors.append(tensor)
            return String(tensors.count - 1)
        }
        try AtomicFileWriter.withFile(at: path, overwrite: overwrite, durable: durable) { out in
            let zip = ZipStreamWriter(out)
            try zip.addEntry(stem + "/data.pkl") { try $0.write(pickle) }
            try zip.addEntry(stem + "/.format_version") { try $0.write(Array("1".utf8)) }
            try zip.addEntry(stem + "/.storage_alignment") { try $0.write(Array("64".utf8)) }
            try zip.addEntry(stem + "/byteorder") { try $0.write(Array("little".utf8)) }
            for (i, tensor) in tensors.enumerated() {
                let expected = tensor.byteCount
                let written = try zip.addEntry(stem + "/data/\(i)") { try tensor.produce($0) }
                guard written == expected else {
                    throw CheckpointError.malformed(
                        path: path, location: "tensor \(tensor.name)", reason: "produced \(written) bytes, \(expected) expected")
                }
            }
            try zip.addEntry(stem + "/version") { try $0.write(Array("3\n".utf8)) }
            // torch writes a random id; a digest of the pickle keeps ditkit's output reproducible.
            let id = String(UInt64(CRC32.checksum(pickle)) << 32 | UInt64(tensors.count))
            try zip.addEntry(stem + "/.data/serialization_id") { try $0.write(Array(id.utf8)) }
            try zip.finish()
        }
    }

    static func defaultArchiveName(_ path: String) -> String {
        var name = path.split(separator: "/").last.map(String.init) ?? "archive"
        if let dot = name.lastIndex(of: "."), dot != name.startIndex { name = String(name[..<dot]) }
        let cleaned = name.filter { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        return cleaned.isEmpty ? "archive" : cleaned
    }
}

/// Pickle protocol 2 for `TorchSaveValue`, in the shape torch's own pickler produces.
enum PickleEncoder {
    /// `register` gives each tensor its storage key.
    static func encode(_ value: TorchSaveValue, register: (OutputTensor) -> String) throws -> [UInt8] {
        var out: [UInt8] = [0x80, 2]
        try emit(value, into: &out, register: register)
        out.append(0x2E)  // STOP
        return out
    }

    static func global(_ module: String, _ name: String, into out: inout [UInt8]) {
        out.append(0x63)
        out += Array("\(module)\n\(name)\n".utf8)
    }

    static func string(_ s: String, into out: inout [UInt8]) {
        let bytes = Array(s.utf8)
        out.append(0x58)  // BINUNICODE
        withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { out += $0 }
        out += bytes
    }

    static func int(_ i: Int, into out: inout [UInt8]) {
        if i >= 0 && i < 256 {
            out += [0x4B, UInt8(i)]  // BININT1
        } else if i >= Int(Int32.min) && i <= Int(Int32.max) {
            out.append(0x4A)  // BININT
            withUnsafeBytes(of: Int32(i).littleEndian) { out += $0 }
        } else {
            out += [0x8A, 8]  // LONG1, 8 bytes two's complement
            withUnsafeBytes(of: Int64(i).littleEndian) { out += $0 }
        }
    }

    static func emit(_ value: TorchSaveValue, into out: inout [UInt8], register: (OutputTensor) -> String) throws {
        switch value {
        case .int(let i): int(i, into: &out)
        case .string(let s): string(s, into: &out)
        case .double(let d):
            out.append(0x47)  // BINFLOAT: 8 bytes, big-endian IEEE 754
            withUnsafeBytes(of: d.bitPattern.bigEndian) { out += $0 }
        case .bool(let b): out.append(b ? 0x88 : 0x89)  // NEWTRUE / NEWFALSE
        case .none: out.append(0x4E)  // NONE
        case .dict(let pairs):
            global("collections", "OrderedDict", into: &out)
            out += [0x29, 0x52]  // EMPTY_TUPLE REDUCE
            var index = 0
            while index < pairs.count {
                out.append(0x28)  // MARK
                for (key, item) in pairs[index..<min(index + 1000, pairs.count)] {
                    string(key, into: &out)
                    try emit(item, into: &out, register: register)
                }
                out.append(0x75)  // SETITEMS
                index += 1000
            }
        case .tensor(let tensor):
            let key = register(tensor)
            let geometry = try TensorGeometry(contiguous: tensor.shape)
            let typed = storageClass(tensor.dtype)
            global("torch._utils", typed == nil ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2", into: &out)
            out.append(0x28)  // MARK: the argument tuple
            // Persistent id ('storage', class, key, location, numel) — typed storages count elements.
            out.append(0x28)
            string("storage", into: &out)
            global("torch", typed ?? "UntypedStorage", into: &out)
            string(key, into: &out)
            string("cpu", into: &out)
            int(typed == nil ? try geometry.byteCount(of: tensor.dtype) : geometry.elementCount, into: &out)
            out += [0x74, 0x51]  // TUPLE BINPERSID
            int(0, into: &out)  // storage offset
            out.append(0x28)
            for d in tensor.shape { int(d, into: &out) }
            out.append(0x74)
            out.append(0x28)
            for s in TensorGeometry.contiguousStrides(tensor.shape) { int(s, into: &out) }
            out.append(0x74)
            out.append(0x89)  // requires_grad False
            global("collections", "OrderedDict", into: &out)
            out += [0x29, 0x52]  // backward hooks: OrderedDict()
            if typed == nil {
                guard let name = torchDTypeName(tensor.dtype) else {
                    throw CheckpointError.malformed(path: "(output)", location: "tensor \(tensor.name)", reason: "\(tensor.dtype.rawValue) has no torch dtype")
                }
                global("torch", name, into: &out)
            }
            out += [0x74, 0x52]  // TUPLE REDUCE
        }
    }

    /// torch's typed storage class for a dtype, or nil when torch pickles it with an untyped storage.
    static func storageClass(_ dtype: DType) -> String? {
        switch dtype {
        case .f32: return "FloatStorage"
        case .f64: return "DoubleStorage"
        case .f16: return "HalfStorage"
        case .bf16: return "BFloat16Storage"
        case .i64: return "LongStorage"
        case .i32: return "IntStorage"
        case .i16: return "ShortStorage"
        case .i8: return "CharStorage"
        case .u8: return "ByteStorage"
        case .bool: return "BoolStorage"
        case .c64: return "ComplexFloatStorage"
        case .c128: return "ComplexDoubleStorage"
        case .f8e4m3, .f8e5m2, .u16, .u32, .u64: return nil
        }
    }

    static func torchDTypeName(_ dtype: DType) -> String? {
        switch dtype {
        case .f8e4m3: return "float8_e4m3fn"
        case .f8e5m2: return "float8_e5m2"
        case .u16: return "uint16"
        case .u32: return "uint32"
        case .u64: return "uint64"
        default: return nil
        }
    }
}

/// A streaming zip writer for STORED entries: data aligned to 64 bytes (padding in a local-header extra field,
/// as torch does), sizes and CRC patched into the local header once the entry is written, ZIP64 where offsets
/// pass 4 GiB, ZIP64 end records always, into an `AtomicFileWriter` that its owner commits.
final class ZipStreamWriter {
    struct Written { let name: [UInt8]; let offset: Int; let size: Int; let crc: UInt32 }
    private let out: AtomicFileWriter
    private var entries: [Written] = []
    static let alignment = 64

    init(_ out: AtomicFileWriter) { self.out = out }

    /// Streams one entry; returns its size.
    @discardableResult
    func addEntry(_ name: String, _ body: (ByteSink) throws -> Void) throws -> Int {
        let nameBytes = Array(name.utf8)
        let offset = out.bytesWritten
        let unpadded = offset + 30 + nameBytes.count + 4
        let padding = (ZipStreamWriter.alignment - unpadded % ZipStreamWriter.alignment) % ZipStreamWriter.alignment
        var header: [UInt8] = []
        func u16(_ v: Int) { header += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { header += $0 } }
        u32(0x0403_4B50); u16(20); u16(0x0800); u16(0); u16(0); u16(0x21)
        u32(0); u32(0); u32(0)  // crc, sizes: patched below
        u16(nameBytes.count); u16(4 + padding)
        header += nameBytes
        u16(0x4246); u16(padding)  // "FB" extra field holding the alignment padding
        header += [UInt8](repeating: 0x5A, count: padding)
        try out.write(header)
        let crc = CRCSink(downstream: out)
        try body(crc)
        let size = out.bytesWritten - offset - header.count
        guard size < 0xFFFF_FFFF else {
            throw CheckpointError.io(path: out.destination, operation: "write", detail: "zip entry \(name) is 4 GiB or more")
        }
        var patch: [UInt8] = []
        withUnsafeBytes(of: crc.crc.littleEndian) { patch += $0 }
        withUnsafeBytes(of: UInt32(size).littleEndian) { patch += $0 }
        withUnsafeBytes(of: UInt32(size).littleEndian) { patch += $0 }
        try out.patch(at: offset + 14, patch)
        entries.append(Written(name: nameBytes, offset: offset, size: size, crc: crc.crc))
        return size
    }

    /// Writes the central directory and the end records (the owner then commits the file).
    func finish() throws {
        let directoryStart = out.bytesWritten
        for entry in entries {
            var record: [UInt8] = []
            func u16(_ v: Int) { record += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
            func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { record += $0 } }
            let zip64 = entry.offset >= 0xFFFF_FFFF
            u32(0x0201_4B50); u16(zip64 ? 45 : 20); u16(zip64 ? 45 : 20); u16(0x0800); u16(0); u16(0); u16(0x21)
            u32(entry.crc); u32(UInt32(entry.size)); u32(UInt32(entry.size))
            u16(entry.name.count); u16(zip64 ? 12 : 0); u16(0); u16(0); u16(0); u32(0)
            u32(zip64 ? 0xFFFF_FFFF : UInt32(entry.offset))
            record += entry.name
            if zip64 {
                u16(1); u16(8)
                withUnsafeBytes(of: UInt64(entry.offset).littleEndian) { record += $0 }
            }
            try out.write(record)
        }
        let directorySize = out.bytesWritten - directoryStart
        let zip64End = out.bytesWritten
        var tail: [UInt8] = []
        func u16(_ v: Int) { tail += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { tail += $0 } }
        func u64(_ v: Int) { withUnsafeBytes(of: UInt64(v).littleEndian) { tail += $0 } }
        u32(0x0606_4B50); u64(44); u16(45); u16(45); u32(0); u32(0)
        u64(entries.count); u64(entries.count); u64(directorySize); u64(directoryStart)
        u32(0x0706_4B50); u32(0); u64(zip64End); u32(1)
        let count = min(entries.count, 0xFFFF)
        u32(0x0605_4B50); u16(0); u16(0); u16(count); u16(count)
        u32(directorySize >= 0xFFFF_FFFF ? 0xFFFF_FFFF : UInt32(directorySize))
        u32(directoryStart >= 0xFFFF_FFFF ? 0xFFFF_FFFF : UInt32(directoryStart))
        u16(0)
        try out.write(tail)
    }
}
