import Tensors

/// Writes safetensors files: a header padded with spaces to a multiple of 8 carrying `format: pt` metadata,
/// then each tensor's bytes, streamed one tensor at a time to a temporary file that is renamed at the end.
public struct SafetensorsWriter {
    /// One tensor to write; its bytes are produced when its turn comes.
    public typealias Entry = OutputTensor

    /// The header bytes (length prefix included) for `entries`, in the order given.
    public static func header(for entries: [Entry], metadata: [(String, String)]) throws -> [UInt8] {
        var pairs: [(String, JSONValue)] = []
        var meta = metadata
        if !meta.contains(where: { $0.0 == "format" }) { meta.insert(("format", "pt"), at: 0) }
        pairs.append(("__metadata__", .object(meta.map { ($0.0, .string($0.1)) })))
        var offset = 0
        var seen = Set<String>()
        for entry in entries {
            guard seen.insert(entry.name).inserted else {
                throw CheckpointError.malformed(path: "(output)", location: "tensor \(entry.name)", reason: "written twice")
            }
            guard let dtypeName = SafetensorsDType.name(entry.dtype) else {
                throw CheckpointError.malformed(
                    path: "(output)", location: "tensor \(entry.name)", reason: "\(entry.dtype.rawValue) has no safetensors dtype")
            }
            let bytes = try TensorGeometry(contiguous: entry.shape).byteCount(of: entry.dtype)
            guard let end = Checked.add(offset, bytes) else {
                throw CheckpointError.malformed(
                    path: "(output)", location: "tensor \(entry.name)", reason: "the tensors before it and its \(bytes) bytes pass 2^63 bytes")
            }
            pairs.append(
                (entry.name, .object([
                    ("dtype", .string(dtypeName)), ("shape", .array(entry.shape.map { .int($0) })),
                    ("data_offsets", .array([.int(offset), .int(end)])),
                ])))
            offset = end
        }
        var json = Array(JSONValue.object(pairs).serialized().utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        return out
    }

    /// Writes `entries` to `path` atomically. Returns the number of bytes written.
    @discardableResult
    public static func write(
        _ entries: [Entry], metadata: [(String, String)] = [], to path: String, overwrite: Bool = false, durable: Bool = false
    ) throws -> Int {
        try AtomicFileWriter.withFile(at: path, overwrite: overwrite, durable: durable) { out in
            try out.write(try header(for: entries, metadata: metadata))
            for entry in entries {
                let before = out.bytesWritten
                try entry.produce(out)
                let expected = try TensorGeometry(contiguous: entry.shape).byteCount(of: entry.dtype)
                guard out.bytesWritten - before == expected else {
                    throw CheckpointError.malformed(
                        path: path, location: "tensor \(entry.name)",
                        reason: "produced \(out.bytesWritten - before) bytes, \(expected) expected")
                }
            }
            return out.bytesWritten
        }
    }
}
