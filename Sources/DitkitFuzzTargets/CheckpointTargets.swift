import Checkpoints

/// Targets whose input is one checkpoint file's bytes.
enum CheckpointTargets {
    static func safetensors(_ input: [UInt8]) throws {
        try Exercise.checkpoint(try Checkpoint.open(Scratch.store("model.safetensors", input)))
    }

    static func zip(_ input: [UInt8]) throws {
        let path = Scratch.store("archive.pt", input)
        _ = try input.withUnsafeBytes { try ZipDirectory(bytes: $0, path: path) }
        try Exercise.checkpoint(try Checkpoint.open(path))
    }

    /// Legacy torch.save files start with a pickled magic number; inputs that lost it get it back, so every input
    /// reaches the legacy reader and a saved finding is a file `ditkit inspect` reproduces. (The same bytes as
    /// `TorchArchive.legacyMagic`, which is internal to Checkpoints.)
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    static func legacy(_ input: [UInt8]) throws {
        let bytes = input.starts(with: legacyMagic) ? input : legacyMagic + input
        try Exercise.checkpoint(try Checkpoint.open(Scratch.store("legacy.pt", bytes)))
    }

    /// The pickle machine on its own (default and strict, no host), then inside a torch.save zip: a first pass with
    /// a host that only records the storages the pickle asks for sizes the `data/<key>` entries, so the torch
    /// host's checks pass and the tensor rebuilders, views and flattener run.
    static func pickle(_ input: [UInt8]) throws {
        var firstError: Error?
        for strict in [false, true] {
            do { _ = try input.withUnsafeBytes { try Unpickler(policy: PicklePolicy(strict: strict), host: nil).load($0) } } catch {
                firstError = firstError ?? error
            }
        }
        let recorder = StorageRecorder()
        _ = try? input.withUnsafeBytes { try Unpickler(host: recorder).load($0) }
        let archive = TorchZip.archive(pickle: input, storages: recorder.storages.map { ($0.key, $0.bytes) })
        do {
            try Exercise.checkpoint(try Checkpoint.open(Scratch.store("pickled.pt", archive)))
        } catch {
            throw firstError ?? error
        }
    }
}

/// An unpickler host that answers every persistent id with None and remembers the torch storages asked for
/// (`('storage', StorageClass, key, location, numel)`), with their size in bytes when it is small enough to write.
final class StorageRecorder: UnpicklerHost {
    /// Largest storage written; a bigger claim gets an empty entry (a size mismatch the reader must name).
    static let maxStorageBytes = 1 << 20
    private(set) var storages: [(key: String, bytes: Int)] = []
    private var seen = Set<String>()

    func persistentLoad(_ pid: PickleValue, offset: Int) throws -> PickleValue {
        guard case .tuple(let items) = pid, items.count >= 5 else { return .none }
        let key: String
        switch items[2] {
        case .string(let s): key = s
        case .int(let i): key = String(i)
        default: return .none
        }
        guard seen.insert(key).inserted else { return .none }
        var elementSize = 1
        if case .global(let storageClass) = items[1] { elementSize = TorchZip.elementSize(ofStorageClass: storageClass.name) }
        var bytes = 0
        if case .int(let numel) = items[4], numel >= 0, numel <= StorageRecorder.maxStorageBytes / elementSize {
            bytes = numel * elementSize
        }
        storages.append((key, bytes))
        return .none
    }

    func call(
        _ callable: PickleGlobal, arguments: [PickleValue], offset: Int,
        nested: (PickleGlobal, [PickleValue]) throws -> PickleValue
    ) throws -> PickleValue? { nil }
}
