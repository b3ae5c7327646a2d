import Checkpoints
import Tensors

/// Builds small torch.save zip archives in memory: the fuzz targets need archives around arbitrary pickles and
/// tensors that only claim their shapes, which `TorchWriter` (which streams real tensor data to a file) does not
/// make.
enum TorchZip {
    /// `archive/data.pkl`, `archive/byteorder` and one zero-filled `archive/data/<key>` per storage, all STORED.
    static func archive(pickle: [UInt8], storages: [(key: String, bytes: Int)]) -> [UInt8] {
        var entries: [(String, [UInt8])] = [("archive/data.pkl", pickle), ("archive/byteorder", Array("little".utf8))]
        for storage in storages { entries.append(("archive/data/" + storage.key, [UInt8](repeating: 0, count: storage.bytes))) }
        return storedZip(entries)
    }

    /// A zip file of STORED entries (no ZIP64, no data descriptors).
    static func storedZip(_ entries: [(name: String, data: [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        var directory: [UInt8] = []
        func u16(_ v: Int, _ buffer: inout [UInt8]) { buffer += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: Int, _ buffer: inout [UInt8]) { for shift in stride(from: 0, to: 32, by: 8) { buffer.append(UInt8(v >> shift & 0xFF)) } }
        for (name, data) in entries {
            let nameBytes = Array(name.utf8)
            let crc = Int(CRC32.checksum(data))
            let offset = out.count
            u32(0x0403_4B50, &out)
            u16(20, &out); u16(0, &out); u16(0, &out); u16(0, &out); u16(0, &out)
            u32(crc, &out); u32(data.count, &out); u32(data.count, &out)
            u16(nameBytes.count, &out); u16(0, &out)
            out += nameBytes
            out += data
            u32(0x0201_4B50, &directory)
            u16(20, &directory); u16(20, &directory); u16(0, &directory); u16(0, &directory); u16(0, &directory); u16(0, &directory)
            u32(crc, &directory); u32(data.count, &directory); u32(data.count, &directory)
            u16(nameBytes.count, &directory); u16(0, &directory); u16(0, &directory); u16(0, &directory); u16(0, &directory)
            u32(0, &directory); u32(offset, &directory)
            directory += nameBytes
        }
        let directoryOffset = out.count
        out += directory
        u32(0x0605_4B50, &out)
        u16(0, &out); u16(0, &out); u16(entries.count, &out); u16(entries.count, &out)
        u32(directory.count, &out); u32(directoryOffset, &out); u16(0, &out)
        return out
    }

    /// Bytes per element of a torch typed-storage class (1 for untyped storages and names it does not know, which
    /// only makes the written entry the wrong size: a mismatch the reader must report).
    static func elementSize(ofStorageClass name: String) -> Int {
        storageClasses.first { $0.name == name }?.dtype.size ?? 1
    }

    static let storageClasses: [(name: String, dtype: DType)] = [
        ("FloatStorage", .f32), ("DoubleStorage", .f64), ("HalfStorage", .f16), ("BFloat16Storage", .bf16),
        ("LongStorage", .i64), ("IntStorage", .i32), ("ShortStorage", .i16), ("CharStorage", .i8),
        ("ByteStorage", .u8), ("BoolStorage", .bool),
    ]

    /// A pickle (protocol 2) of an `OrderedDict` of `_rebuild_tensor_v2` tensors, as `torch.save` writes a state dict.
    /// Each tensor views storage `storageKey(dtype)` with `strides` from `offset` 0.
    static func stateDictPickle(_ tensors: [(name: String, dtype: DType, shape: [Int], strides: [Int], storageElements: Int)]) -> [UInt8] {
        var out: [UInt8] = [0x80, 0x02]
        func global(_ module: String, _ name: String) { out += [0x63] + Array("\(module)\n\(name)\n".utf8) }
        func string(_ s: String) {
            let bytes = Array(s.utf8)
            out.append(0x58)  // BINUNICODE
            for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: bytes.count >> shift)) }
            out += bytes
        }
        func int(_ v: Int) {  // LONG1, 8 bytes two's complement
            out += [0x8A, 8]
            for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: v >> shift)) }
        }
        func tuple(_ values: [Int]) {
            out.append(0x28)  // MARK
            values.forEach(int)
            out.append(0x74)  // TUPLE
        }
        global("collections", "OrderedDict")
        out += [0x29, 0x52]  // EMPTY_TUPLE REDUCE
        for tensor in tensors {
            string(tensor.name)
            global("torch._utils", "_rebuild_tensor_v2")
            out.append(0x28)  // MARK (arguments)
            out.append(0x28)  // MARK (persistent id)
            string("storage")
            global("torch", storageClasses.first { $0.dtype == tensor.dtype }?.name ?? "FloatStorage")
            string(storageKey(tensor.dtype))
            string("cpu")
            int(tensor.storageElements)
            out += [0x74, 0x51]  // TUPLE BINPERSID
            int(0)
            tuple(tensor.shape)
            tuple(tensor.strides)
            out.append(0x89)  // NEWFALSE (requires_grad)
            global("collections", "OrderedDict")
            out += [0x29, 0x52]  // EMPTY_TUPLE REDUCE (backward hooks)
            out += [0x74, 0x52, 0x73]  // TUPLE REDUCE SETITEM
        }
        out.append(0x2E)  // STOP
        return out
    }

    static func storageKey(_ dtype: DType) -> String { dtype.rawValue }
}
