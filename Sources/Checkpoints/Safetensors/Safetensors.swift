import Tensors

/// safetensors dtype spellings.
package enum SafetensorsDType {
    package static func dtype(_ name: String) -> DType? {
        switch name {
        case "F64": return .f64
        case "F32": return .f32
        case "F16": return .f16
        case "BF16": return .bf16
        case "F8_E4M3": return .f8e4m3
        case "F8_E5M2": return .f8e5m2
        case "I64": return .i64
        case "I32": return .i32
        case "I16": return .i16
        case "I8": return .i8
        case "U64": return .u64
        case "U32": return .u32
        case "U16": return .u16
        case "U8": return .u8
        case "BOOL": return .bool
        case "C64": return .c64
        default: return nil
        }
    }

    package static func name(_ dtype: DType) -> String? {
        switch dtype {
        case .f64: return "F64"
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .f8e4m3: return "F8_E4M3"
        case .f8e5m2: return "F8_E5M2"
        case .i64: return "I64"
        case .i32: return "I32"
        case .i16: return "I16"
        case .i8: return "I8"
        case .u64: return "U64"
        case .u32: return "U32"
        case .u16: return "U16"
        case .u8: return "U8"
        case .bool: return "BOOL"
        case .c64: return "C64"
        case .c128: return nil
        }
    }
}

/// A validated safetensors file: tensor entries in data order, each a zero-copy view of the mapped file.
package struct SafetensorsFile {
    /// Largest header accepted (the reference implementation's limit).
    package static let maxHeaderBytes = 100_000_000

    package let file: MappedFile
    package let tensors: [TensorInfo]
    /// `__metadata__`, in file order.
    package let metadata: [(String, String)]
    package let headerByteCount: Int

    /// Reads and validates the header; touches no tensor data.
    ///
    /// Checks (as the safetensors reference implementation validates): header length ≤ 100 MB and inside the file; valid UTF-8 JSON object; no
    /// duplicate names; each entry has a known dtype, a non-negative shape and `data_offsets` [begin, end)
    /// with end − begin = product(shape) · size(dtype), overflow-checked; sorted by offset the entries are
    /// contiguous from 0, without gaps or overlaps, and end exactly at the end of the file.
    package init(file: MappedFile) throws {
        self.file = file
        let path = file.path
        let bytes = file.bytes
        func fail(_ location: String, _ reason: String) -> CheckpointError {
            .malformed(path: path, location: location, reason: reason)
        }
        guard bytes.count >= 8 else { throw fail("header", "file of \(bytes.count) bytes has no 8-byte header length") }
        let declared = bytes.loadUnaligned(as: UInt64.self).littleEndian
        guard declared <= UInt64(SafetensorsFile.maxHeaderBytes) else {
            throw fail("header", "declares a \(declared)-byte JSON header; the limit is \(SafetensorsFile.maxHeaderBytes) bytes")
        }
        let headerLength = Int(declared)
        guard headerLength <= bytes.count - 8 else {
            throw fail("header", "declares a \(headerLength)-byte JSON header but the file has \(bytes.count - 8) bytes after the length")
        }
        headerByteCount = headerLength
        let json: JSONValue
        do {
            json = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)]))
        } catch let error as JSONParseError {
            if let key = error.duplicateKey {
                throw fail("header", "tensor name \"\(key)\" appears twice (at header byte \(error.offset))")
            }
            throw fail("header", "not valid JSON: \(error)")
        }
        guard case .object(let entries) = json else { throw fail("header", "the JSON header is not an object") }

        let dataStart = 8 + headerLength
        let bufferSize = bytes.count - dataStart
        var metadata: [(String, String)] = []
        struct Pending { let name: String; let dtype: DType; let shape: [Int]; let begin: Int; let end: Int }
        var pending: [Pending] = []
        for (name, value) in entries {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else { throw fail("__metadata__", "is not an object of strings") }
                for (k, v) in pairs {
                    guard case .string(let s) = v else { throw fail("__metadata__", "value of \"\(k)\" is not a string") }
                    metadata.append((k, s))
                }
                continue
            }
            let location = "tensor \(name)"
            guard case .object = value else { throw fail(location, "header entry is not an object") }
            guard let dtypeName = value["dtype"]?.stringValue else { throw fail(location, "has no dtype") }
            guard let dtype = SafetensorsDType.dtype(dtypeName) else {
                throw fail(location, "dtype \(dtypeName) is not one ditkit reads")
            }
            guard let shapeItems = value["shape"]?.arrayValue else { throw fail(location, "has no shape") }
            let shape = try shapeItems.map { item -> Int in
                guard case .int(let d) = item, d >= 0 else { throw fail(location, "shape \(shapeItems) has a negative or non-integer dimension") }
                return d
            }
            guard let offsets = value["data_offsets"]?.arrayValue, offsets.count == 2,
                case .int(let begin) = offsets[0], case .int(let end) = offsets[1], begin >= 0, end >= begin
            else { throw fail(location, "data_offsets must be two integers [begin, end) with 0 ≤ begin ≤ end") }
            let geometry: TensorGeometry
            let expected: Int
            do {
                geometry = try TensorGeometry(contiguous: shape)
                expected = try geometry.byteCount(of: dtype)
            } catch {
                throw fail(location, "shape \(shape) of \(dtype.rawValue) overflows: \(error)")
            }
            guard end - begin == expected else {
                throw fail(
                    location, "data_offsets [\(begin), \(end)) hold \(end - begin) bytes but shape \(shape) of "
                        + "\(dtypeName) needs \(expected)")
            }
            pending.append(Pending(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        pending.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(pending.count)
        for entry in pending {
            if entry.begin < cursor {
                throw fail(
                    "tensor \(entry.name)", "data_offsets [\(entry.begin), \(entry.end)) overlap the previous tensor, "
                        + "which ends at \(cursor)")
            }
            if entry.begin > cursor {
                throw fail("tensor \(entry.name)", "data_offsets start at \(entry.begin), leaving a gap after byte \(cursor)")
            }
            guard entry.end <= bufferSize else {
                throw fail(
                    "tensor \(entry.name)", "data_offsets [\(entry.begin), \(entry.end)) run past the end of the "
                        + "\(bufferSize)-byte data buffer (truncated file?)")
            }
            let storage = TensorStorage(
                key: entry.name, source: MappedFileSource(file: file, offset: dataStart + entry.begin, count: entry.end - entry.begin))
            tensors.append(
                TensorInfo(name: entry.name, dtype: entry.dtype, geometry: try TensorGeometry(contiguous: entry.shape), storage: storage))
            cursor = entry.end
        }
        if cursor < bufferSize {
            throw fail("data", "\(bufferSize - cursor) trailing bytes after the last tensor's data (which ends at buffer byte \(cursor))")
        }
        self.tensors = tensors
        self.metadata = metadata
    }
}
