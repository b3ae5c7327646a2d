import Tensors

/// Reads `torch.save` files: the zip format (torch ≥ 1.6) and the legacy pickle-sequence format.
/// Produces the unpickled root object with tensors referring to zero-copy storages in the mapped file.
enum TorchArchive {
    struct Loaded {
        let root: PickleValue
        /// Name of the pickle entry (`archive/data.pkl`) or "legacy pickle", for messages.
        let pickleLocation: String
        let notes: [String]
    }

    /// Magic number pickled at the start of a legacy file: PROTO 2, LONG1 of 10 bytes, 0x1950a86a20f9469cfc6c.
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    // MARK: zip format

    static func loadZip(file: MappedFile, policy: PicklePolicy) throws -> Loaded {
        let path = file.path
        let directory = try ZipDirectory(file: file)
        // One root folder (the file stem or "archive") holding data.pkl.
        let candidates = directory.entries.filter { entry in
            let parts = entry.name.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1] == "data.pkl"
        }
        guard let pickleEntry = candidates.first else {
            if directory.entries.contains(where: { $0.name.hasSuffix("/constants.pkl") }) {
                throw torchScript(path)
            }
            let names = directory.entries.prefix(5).map(\.name).joined(separator: ", ")
            throw CheckpointError.unrecognized(
                path: path, reason: "a zip archive without a <root>/data.pkl entry, so not a torch.save file (entries: \(names)…)")
        }
        let root = String(pickleEntry.name.dropLast("data.pkl".count))
        if directory.entry(named: root + "constants.pkl") != nil
            || directory.entries.contains(where: { $0.name.hasPrefix(root + "code/") })
        {
            throw torchScript(path)
        }
        var notes: [String] = []
        var bigEndian = false
        if let order = directory.entry(named: root + "byteorder") {
            let text = try entryText(order, file: file, path: path).trimmingWhitespace()
            switch text {
            case "little": bigEndian = false
            case "big": bigEndian = true
            default:
                throw CheckpointError.malformed(
                    path: path, location: "entry \(order.name)", reason: "byte order '\(text)', expected 'little' or 'big'")
            }
            if bigEndian { notes.append("storages are big-endian (byteorder = big); values are swapped when read") }
        }
        if directory.entries.contains(where: { !$0.isStored }) {
            notes.append("some entries are compressed: their tensors are inflated when read (no zero-copy)")
        }

        let host = TorchPickleHost { key, byteCount, _, offset in
            let name = root + "data/" + key
            guard let entry = directory.entry(named: name) else {
                throw PickleError.malformed(offset: offset, reason: "storage \(key) has no zip entry \(name)")
            }
            guard entry.uncompressedSize == byteCount else {
                throw PickleError.malformed(
                    offset: offset, reason: "zip entry \(name) holds \(entry.uncompressedSize) bytes but the pickle "
                        + "declares storage \(key) with \(byteCount) bytes")
            }
            let source: ByteSource =
                entry.isStored
                ? MappedFileSource(file: file, offset: entry.dataOffset, count: byteCount)
                : DeflatedEntrySource(archive: file, entry: entry)
            return TensorStorage(key: name, bigEndian: bigEndian, source: source)
        }
        let pickleBytes = try entryBytes(pickleEntry, file: file, path: path)
        let value: PickleValue
        do {
            let unpickler = Unpickler(policy: policy, host: host)
            value = try pickleBytes.withUnsafeBytes { try unpickler.load($0).value }
        } catch let error as PickleError {
            throw CheckpointError.pickle(error, path: path, entry: pickleEntry.name)
        }
        return Loaded(root: value, pickleLocation: pickleEntry.name, notes: notes)
    }

    private static func torchScript(_ path: String) -> CheckpointError {
        .unsupported(
            path: path, kind: "a TorchScript archive (torch.jit.save), which holds code as well as weights",
            advice: "ditkit reads state dicts; in Python: torch.save(torch.jit.load(path).state_dict(), 'weights.pt')")
    }

    /// The bytes of `entry` (its sizes were validated by the directory: a stored entry's two sizes agree). A deflated
    /// entry is read whole into memory, so it may not declare more than the file's expansion limit (16 × its size
    /// + 64 MiB, as for tensors): a DEFLATE bomb of a pickle is refused before it is inflated.
    private static func entryBytes(_ entry: ZipEntry, file: MappedFile, path: String) throws -> [UInt8] {
        if entry.isStored {
            return [UInt8](UnsafeRawBufferPointer(rebasing: file.bytes[entry.dataOffset..<(entry.dataOffset + entry.compressedSize)]))
        }
        let limit = Checkpoint.expansionLimit(fileSize: file.size)
        guard entry.uncompressedSize <= limit else {
            throw CheckpointError.malformed(
                path: path, location: "entry \(entry.name)",
                reason: "inflates to \(entry.uncompressedSize) bytes from a \(file.size)-byte file, more than "
                    + "\(Checkpoint.expansionFactor) × its size + 64 MiB (\(limit) bytes)")
        }
        return try Inflater.bytes(entry, of: file)
    }

    private static func entryText(_ entry: ZipEntry, file: MappedFile, path: String) throws -> String {
        guard entry.uncompressedSize <= 4096 else {
            throw CheckpointError.malformed(path: path, location: "entry \(entry.name)", reason: "\(entry.uncompressedSize) bytes, expected a short text")
        }
        return String(decoding: try entryBytes(entry, file: file, path: path), as: UTF8.self)
    }

    // MARK: legacy format

    /// The legacy format: pickles of the magic number, protocol version 1001, sys_info, the object and the
    /// storage keys, then per storage (in key order) an int64 element count and the raw bytes.
    static func loadLegacy(file: MappedFile, policy: PicklePolicy) throws -> Loaded {
        let path = file.path
        let bytes = file.bytes
        func load(_ what: String, at offset: Int, host: UnpicklerHost? = nil) throws -> (PickleValue, Int) {
            do {
                let unpickler = Unpickler(policy: policy, host: host)
                return try unpickler.load(bytes, from: offset)
            } catch let error as PickleError {
                throw CheckpointError.pickle(error, path: path, entry: "legacy \(what) pickle")
            }
        }
        let (magic, afterMagic) = try load("magic number", at: 0)
        guard case .bigInt("119547037146038801333356") = magic else {
            throw CheckpointError.unrecognized(path: path, reason: "legacy magic number is \(magic.repr(limit: 40))")
        }
        let (protocolVersion, afterProtocol) = try load("protocol version", at: afterMagic)
        guard case .int(1001) = protocolVersion else {
            throw CheckpointError.malformed(
                path: path, location: "legacy header", reason: "protocol version \(protocolVersion.repr(limit: 20)), expected 1001")
        }
        let (sysInfo, afterSysInfo) = try load("sys_info", at: afterProtocol)
        var bigEndian = false
        if case .dict(let info) = sysInfo, case .bool(let little)? = info["little_endian"] { bigEndian = !little }

        // The data section follows the storage-key pickle, so storages are bound in two passes over the object
        // pickle: the first learns each storage's size and element size, the second binds the located bytes.
        final class Sizes { var byKey: [String: (bytes: Int, elementSize: Int)] = [:] }
        let sizes = Sizes()
        let sizing = TorchPickleHost { key, byteCount, elementSize, _ in
            sizes.byKey[key] = (byteCount, elementSize)
            // A placeholder, never read: the data section is located by the second pass.
            return TensorStorage(key: key, bigEndian: bigEndian, source: MappedFileSource(file: file, offset: 0, count: byteCount))
        }
        let (_, afterObject) = try load("object", at: afterSysInfo, host: sizing)
        let (keysValue, dataStart) = try load("storage keys", at: afterObject)
        let keys: [String]
        switch keysValue {
        case .list(let l):
            keys = try l.items.map {
                guard case .string(let s) = $0 else {
                    throw CheckpointError.malformed(path: path, location: "legacy storage keys", reason: "a key is a \($0.kindName)")
                }
                return s
            }
        default:
            throw CheckpointError.malformed(path: path, location: "legacy storage keys", reason: "a \(keysValue.kindName), expected a list")
        }
        var placeholders: [String: TensorStorage] = [:]
        var cursor = dataStart
        for key in keys {
            guard placeholders[key] == nil else {
                throw CheckpointError.malformed(
                    path: path, location: "legacy storage keys", reason: "storage \(key) is listed twice")
            }
            guard let (byteCount, elementSize) = sizes.byKey[key] else {
                throw CheckpointError.malformed(path: path, location: "legacy storage \(key)", reason: "listed in the keys but never used")
            }
            guard Checked.fits(offset: cursor, count: 8, in: bytes.count) else {
                throw CheckpointError.malformed(
                    path: path, location: "legacy storage \(key) at byte \(cursor)", reason: "the file ends before its size field (truncated)")
            }
            let raw = bytes.loadUnaligned(fromByteOffset: cursor, as: UInt64.self)
            let count = bigEndian ? UInt64(bigEndian: raw) : UInt64(littleEndian: raw)
            // The size field counts elements of the storage's type.
            guard count == UInt64(byteCount / elementSize) else {
                throw CheckpointError.malformed(
                    path: path, location: "legacy storage \(key) at byte \(cursor)",
                    reason: "size field says \(count) elements, the pickle declares \(byteCount / elementSize)")
            }
            let dataOffset = cursor + 8
            guard byteCount <= bytes.count - dataOffset else {
                throw CheckpointError.malformed(
                    path: path, location: "legacy storage \(key) at byte \(dataOffset)",
                    reason: "needs \(byteCount) bytes but the file ends after \(bytes.count - dataOffset) (truncated)")
            }
            placeholders[key] = TensorStorage(
                key: key, bigEndian: bigEndian, source: MappedFileSource(file: file, offset: dataOffset, count: byteCount))
            cursor = dataOffset + byteCount
        }
        let binding = TorchPickleHost { key, _, _, offset in
            guard let storage = placeholders[key] else {
                throw PickleError.malformed(offset: offset, reason: "storage \(key) is not in the file's storage list")
            }
            return storage
        }
        let (root, _) = try load("object", at: afterSysInfo, host: binding)
        var notes: [String] = []
        if bigEndian { notes.append("storages are big-endian (sys_info little_endian = False); values are swapped when read") }
        if cursor < bytes.count { notes.append("\(bytes.count - cursor) bytes after the last storage were ignored") }
        return Loaded(root: root, pickleLocation: "legacy object pickle", notes: notes)
    }

    // MARK: plain pickle

    /// A pickle file that is not a torch checkpoint: interpreted for its values (no tensors possible).
    static func loadPlainPickle(file: MappedFile, policy: PicklePolicy) throws -> Loaded {
        do {
            let (value, _) = try Unpickler(policy: policy, host: TorchPickleHost.withoutStorages()).load(file.bytes)
            return Loaded(root: value, pickleLocation: "pickle", notes: ["a plain pickle, not a torch.save file"])
        } catch let error as PickleError {
            throw CheckpointError.pickle(error, path: file.path, entry: "pickle")
        }
    }
}
