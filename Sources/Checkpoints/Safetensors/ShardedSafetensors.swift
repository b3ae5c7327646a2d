import Tensors

/// A set of safetensors shards described by an index file
/// (`{"metadata": {"total_size": n}, "weight_map": {tensor: shard file}}`): opened by `Checkpoint.open`, written
/// by `write`.
public struct ShardedSafetensors {
    package let indexPath: String
    package let shards: [SafetensorsFile]
    /// Tensors in the index's weight_map order.
    package let tensors: [TensorInfo]
    package let metadata: [(String, String)]
    package let notes: [String]

    /// Opens the index and every shard it names. Names a shard name that is not a plain file name, missing shards
    /// (the first few and the count, before any shard is opened), a tensor the index puts in a shard that lacks it,
    /// and a shard tensor the index does not list. `root` is the checkpoint folder no shard may lead out of
    /// (`FileSystem.entry`); by default the index's own folder.
    package init(indexPath: String, root: String? = nil) throws {
        self.indexPath = indexPath
        let directory = indexPath.lastIndex(of: "/").map { String(indexPath[..<$0]) } ?? "."
        let indexFile: MappedFile
        if let root {
            indexFile = try DiffusersFolder.map(indexPath, root: root)
        } else {  // the index the caller named: only the shards it names are members of its folder
            do { indexFile = try MappedFile(path: indexPath) } catch { throw CheckpointError.mapping(error, path: indexPath) }
        }
        let root = root ?? directory
        let json: JSONValue
        do { json = try JSONParser.parse(indexFile.bytes) } catch {
            throw CheckpointError.malformed(path: indexPath, location: "index", reason: "not valid JSON: \(error)")
        }
        guard let weightMap = json["weight_map"]?.objectValue else {
            throw CheckpointError.malformed(path: indexPath, location: "index", reason: "has no \"weight_map\" object")
        }
        let (shardOrder, assigned) = try Self.shardNames(weightMap, indexPath: indexPath)
        try Self.requireShardsPresent(shardOrder, assigned: assigned, directory: directory, root: root, indexPath: indexPath)
        var shards: [SafetensorsFile] = []
        var byName: [String: TensorInfo] = [:]
        var unlisted: [String] = []
        for file in shardOrder {
            let shard = try SafetensorsFile(file: try DiffusersFolder.map(directory + "/" + file, root: root))
            shards.append(shard)
            for tensor in shard.tensors {
                if assigned[tensor.name] == file {
                    byName[tensor.name] = tensor
                } else {
                    unlisted.append("\(tensor.name) (in \(file))")
                }
            }
        }
        let absent = weightMap.map(\.0).filter { byName[$0] == nil }
        if !absent.isEmpty {
            throw CheckpointError.folder(
                path: indexPath, reason: "the index places \(absent.count) tensor(s) in shards that do not hold them: "
                    + absent.prefix(5).map { "\($0) (→ \(assigned[$0]!))" }.joined(separator: ", "))
        }
        var notes: [String] = []
        if !unlisted.isEmpty {
            throw CheckpointError.folder(
                path: indexPath, reason: "shards hold \(unlisted.count) tensor(s) the index does not list: "
                    + unlisted.prefix(5).joined(separator: ", "))
        }
        let total = weightMap.reduce(0) { $0 + (byName[$1.0]?.byteCount ?? 0) }
        if let declared = json["metadata"]?["total_size"]?.intValue, declared != total {
            notes.append("index metadata total_size is \(declared), the tensors hold \(total) bytes")
        }
        self.shards = shards
        self.tensors = weightMap.map { byName[$0.0]! }
        var metadata: [(String, String)] = []
        if case .object(let pairs)? = json["metadata"] {
            for (k, v) in pairs { metadata.append((k, v.stringValue ?? v.description)) }
        }
        self.metadata = metadata
        self.notes = notes
    }

    /// The shard files of an index's `weight_map` in first-use order, and the shard of each tensor. Throws
    /// `CheckpointError.malformed` for a value that is not a string and `.escapes` for one that is not a plain file
    /// name (`../../secret`, `a/b`, empty, NUL), before any path is built. Linear in the number of entries.
    static func shardNames(_ weightMap: [(String, JSONValue)], indexPath: String) throws -> (order: [String], assigned: [String: String]) {
        var order: [String] = []
        var seen = Set<String>()
        var assigned: [String: String] = [:]
        for (name, value) in weightMap {
            guard let file = value.stringValue else {
                throw CheckpointError.malformed(
                    path: indexPath, location: "weight_map[\"\(name)\"]", reason: "expected a shard file name (a string), found \(value.description.prefix(60))")
            }
            try FileSystem.requirePlainName(file, file: indexPath, location: "weight_map[\"\(name)\"]")
            if seen.insert(file).inserted { order.append(file) }
            assigned[name] = file
        }
        return (order, assigned)
    }

    /// Checks that every shard in `order` is a file in `directory` (through `FileSystem.entry`, which opens
    /// nothing) before any is opened, so an index naming 60,000 missing shards fails at once, naming the first
    /// few, how many are missing and how many tensors they should hold.
    static func requireShardsPresent(
        _ order: [String], assigned: [String: String], directory: String, root: String, indexPath: String
    ) throws {
        var missing: [String] = []
        for file in order where try FileSystem.entry(directory + "/" + file, root: root) == nil { missing.append(file) }
        guard !missing.isEmpty else { return }
        let absent = Set(missing)
        let tensors = assigned.values.reduce(0) { $0 + (absent.contains($1) ? 1 : 0) }
        let shown = missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? ", …" : "")
        throw CheckpointError.folder(
            path: indexPath, reason: "\(missing.count) of the \(order.count) shard file(s) named by the index are missing "
                + "(\(shown)), holding \(tensors) tensor(s)")
    }

    /// diffusers' file names for a weights file of `base` (e.g. `diffusion_pytorch_model`), optionally a variant.
    public enum Naming {
        /// `base.safetensors` or `base.variant.safetensors`.
        public static func single(_ base: String, variant: String?) -> String {
            variant.map { "\(base).\($0).safetensors" } ?? "\(base).safetensors"
        }
        /// `base.safetensors.index.json` or `base.safetensors.index.variant.json`.
        public static func index(_ base: String, variant: String?) -> String {
            variant.map { "\(base).safetensors.index.\($0).json" } ?? "\(base).safetensors.index.json"
        }
        /// `base-00001-of-00003.safetensors`, with a variant `base.variant-00001-of-00003.safetensors`.
        public static func shard(_ base: String, variant: String?, number: Int, of count: Int) -> String {
            let n = String(number), c = String(count)
            let tag = String(repeating: "0", count: max(0, 5 - n.count)) + n + "-of-"
                + String(repeating: "0", count: max(0, 5 - c.count)) + c
            return variant.map { "\(base).\($0)-\(tag).safetensors" } ?? "\(base)-\(tag).safetensors"
        }
    }

    /// Writes `entries` as shards of at most `maxShardBytes` (a tensor larger than that gets a shard of its
    /// own) plus the index, into `directory`. Each file is written atomically; the index last.
    /// Returns the files written.
    @discardableResult
    public static func write(
        _ entries: [SafetensorsWriter.Entry], metadata: [(String, String)] = [], directory: String,
        baseName: String, variant: String? = nil, maxShardBytes: Int, overwrite: Bool = false, durable: Bool = false
    ) throws -> [String] {
        var groups: [[SafetensorsWriter.Entry]] = [[]]
        var groupBytes = 0
        for entry in entries {
            let bytes = try TensorGeometry(contiguous: entry.shape).byteCount(of: entry.dtype)
            if !groups[groups.count - 1].isEmpty && groupBytes + bytes > maxShardBytes {
                groups.append([])
                groupBytes = 0
            }
            groups[groups.count - 1].append(entry)
            groupBytes += bytes
        }
        var written: [String] = []
        var weightMap: [(String, JSONValue)] = []
        var total = 0
        for (i, group) in groups.enumerated() {
            let name = Naming.shard(baseName, variant: variant, number: i + 1, of: groups.count)
            try SafetensorsWriter.write(group, metadata: metadata, to: directory + "/" + name, overwrite: overwrite, durable: durable)
            written.append(name)
            for entry in group {
                weightMap.append((entry.name, .string(name)))
                total += try TensorGeometry(contiguous: entry.shape).byteCount(of: entry.dtype)
            }
        }
        let index = JSONValue.object([
            ("metadata", .object([("total_size", .int(total))])), ("weight_map", .object(weightMap)),
        ])
        let indexName = Naming.index(baseName, variant: variant)
        try AtomicFileWriter.write(
            Array((index.serialized(pretty: true) + "\n").utf8), to: directory + "/" + indexName, overwrite: overwrite,
            durable: durable)
        written.append(indexName)
        return written
    }
}
