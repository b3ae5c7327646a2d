import Tensors

/// The container formats ditkit opens.
public enum CheckpointFormat: String, Sendable, CaseIterable {
    /// `torch.save` zip archive (torch ≥ 1.6).
    case torchZip = "torch-zip"
    /// `torch.save` legacy pickle-sequence file (torch < 1.6).
    case torchLegacy = "torch-legacy"
    /// A plain Python pickle.
    case pickle
    /// One safetensors file.
    case safetensors
    /// safetensors shards behind an index file.
    case safetensorsSharded = "safetensors-sharded"
    /// A diffusers component folder (`config.json` + weights).
    case diffusersComponent = "diffusers-component"
    /// A diffusers pipeline folder (`model_index.json` + component folders).
    case diffusersPipeline = "diffusers-pipeline"
    /// A Cerebras `.mdl` checkpoint: HDF5 written by `cerebras.pytorch.save` (format 0.5, or 0.4 before cerebras 2.5).
    case mdl

    /// What the format is, in words.
    public var summary: String {
        switch self {
        case .torchZip: return "PyTorch zip archive (torch.save, torch ≥ 1.6)"
        case .torchLegacy: return "PyTorch legacy file (torch.save before 1.6)"
        case .pickle: return "plain Python pickle"
        case .safetensors: return "safetensors"
        case .safetensorsSharded: return "sharded safetensors (index + shards)"
        case .diffusersComponent: return "diffusers component folder"
        case .diffusersPipeline: return "diffusers pipeline folder"
        case .mdl: return "Cerebras .mdl (HDF5, cerebras.pytorch.save)"
        }
    }
}

/// A non-tensor value found in a checkpoint (e.g. a training argument, an optimizer hyper-parameter).
public struct CheckpointValue: Sendable {
    /// Dotted path, e.g. `args.global_batch_size` or `opt.param_groups.0.lr`.
    public let path: String
    /// `str`, `int`, `float`, `bool`, `None`, `bytes`, `set`, or a class name for opaque objects.
    public let kind: String
    /// Python-like text.
    public let text: String
    /// The value as JSON (scalars as themselves; other values as their text).
    public let json: JSONValue
    /// An instance of a class outside the allowlist, kept as data (its fields follow as their own values).
    public let isOpaqueObject: Bool
}

/// Options for opening a checkpoint.
public struct OpenOptions: Sendable {
    /// diffusers weight variant (`fp16` → `diffusion_pytorch_model.fp16.safetensors`).
    public var variant: String?
    /// Refuse any pickle callable outside torch's weights-only allowlist (no data classes, no `allow`).
    public var strict: Bool
    /// Pickle callables (`module.name`) to keep as opaque values although they are not on ditkit's list of data
    /// classes (the names a `CheckpointError.notAllowed` lists); a code-execution primitive stays refused whatever
    /// this holds. Allowing a class also allows the other classes of its module as instances.
    public var allow: Set<String>

    /// Options: a diffusers variant, the strict pickle policy, callables to keep as opaque values.
    public init(variant: String? = nil, strict: Bool = false, allow: Set<String> = []) {
        self.variant = variant
        self.strict = strict
        self.allow = allow
    }

    /// The call policy of the pickles this checkpoint holds.
    var picklePolicy: PicklePolicy { PicklePolicy(strict: strict, allowed: allow) }
}

/// A checkpoint of any supported format, opened without reading tensor data: ordered tensors (each readable
/// on demand), non-tensor values, safetensors metadata and diffusers configs.
public final class Checkpoint: @unchecked Sendable {
    /// The file or folder opened.
    public let path: String
    /// The container format, sniffed from the bytes.
    public let format: CheckpointFormat
    /// Tensors in file order, each readable on demand.
    public let tensors: [TensorInfo]
    /// Non-tensor values (training arguments, optimizer hyper-parameters, opaque objects).
    public let values: [CheckpointValue]
    /// safetensors `__metadata__` (prefixed by shard or component where several files contribute).
    public let metadata: [(String, String)]
    /// JSON configs by file name relative to `path` (`config.json`, `model_index.json`, `transformer/config.json`).
    public let configs: [(String, JSONValue)]
    /// Files the checkpoint was read from (relative to `path` for folders).
    public let files: [String]
    /// Things a user should know that are not errors (big-endian storages, compressed entries, …).
    public let notes: [String]
    /// The diffusers weight variant read: the one asked for, or the only one a folder without default weights holds.
    public let variant: String?
    /// Choices ditkit made without being asked, one sentence each (a folder holding only `fp16` weights is read as
    /// variant `fp16`). Also among `notes`; a model read from the checkpoint repeats them among its own notes, so
    /// every report shows them.
    public let assumed: [String]

    init(
        path: String, format: CheckpointFormat, tensors: [TensorInfo], values: [CheckpointValue] = [],
        metadata: [(String, String)] = [], configs: [(String, JSONValue)] = [], files: [String], notes: [String] = [],
        variant: String? = nil, assumed: [String] = []
    ) {
        self.path = path
        self.format = format
        self.tensors = tensors
        self.values = values
        self.metadata = metadata
        self.configs = configs
        self.files = files
        self.notes = notes
        self.variant = variant
        self.assumed = assumed
    }

    /// The tensor called `name`, if any.
    public func tensor(named name: String) -> TensorInfo? { tensors.first { $0.name == name } }

    /// The JSON config read from `name` (relative to `path`), if any.
    public func config(_ name: String) -> JSONValue? { configs.first { $0.0 == name }?.1 }

    /// Bytes of all tensors' elements (a shared storage counts once per tensor that views it). Saturates at
    /// `Int.max` rather than trapping; opened checkpoints stay far below (see `checkExpansion`).
    public var tensorBytes: Int { tensors.reduce(0) { Checked.saturatingAdd($0, $1.byteCount) } }
    /// Elements of all tensors, saturating at `Int.max` like `tensorBytes`.
    public var elementCount: Int { tensors.reduce(0) { Checked.saturatingAdd($0, $1.elementCount) } }
    /// Distinct storages and their bytes (what the file actually holds).
    public var storageSummary: (count: Int, bytes: Int) {
        var seen = Set<ObjectIdentifier>()
        var bytes = 0
        for t in tensors where seen.insert(ObjectIdentifier(t.storage)).inserted {
            bytes = Checked.saturatingAdd(bytes, t.storage.byteCount)
        }
        return (seen.count, bytes)
    }

    /// How many times its own size a file's tensors may add up to (plus `expansionAllowance`) before they are
    /// refused as an expansion bomb.
    public static let expansionFactor = 16
    /// Logical bytes allowed beyond `expansionFactor` × the file size (64 MiB: a broadcast table in a tiny file).
    public static let expansionAllowance = 64 << 20

    /// The most logical bytes a file of `fileSize` bytes may unfold to: 16 × `fileSize` + 64 MiB (saturating).
    static func expansionLimit(fileSize: Int) -> Int {
        Checked.saturatingAdd(Checked.saturatingMultiply(fileSize, expansionFactor), expansionAllowance)
    }

    /// Refuses an expansion bomb: views (stride 0, overlapping) whose logical bytes add up to more than
    /// 16 × `fileSize` + 64 MiB. Without views a file's tensors add up to at most its storages, so real checkpoints
    /// are far below (deflated storages that inflate past the limit are refused the same way); a 79 KB file whose stride-0 views claim 1.5 GiB would otherwise make `convert` write (and
    /// `verify` allocate) that much. Checked arithmetic: logical sizes past 2^63 are refused too, so every total
    /// of an opened checkpoint fits in `Int`. Throws `.malformed` naming the tensor that crosses the limit.
    static func checkExpansion(_ tensors: [TensorInfo], fileSize: Int, path: String) throws {
        let limit = expansionLimit(fileSize: fileSize)
        var total = 0
        for tensor in tensors {
            let bytes = Checked.multiply(tensor.geometry.elementCount, tensor.dtype.size)
            if let bytes, let sum = Checked.add(total, bytes), sum <= limit {
                total = sum
                continue
            }
            let logical = bytes.map { "\($0) logical bytes" } ?? "more than 2^63 logical bytes"
            throw CheckpointError.malformed(
                path: path, location: "tensor \(tensor.name)",
                reason: "view (\(tensor.geometry)) of \(tensor.dtype.rawValue) makes \(logical) out of storage "
                    + "\(tensor.storage.key) (\(tensor.storage.byteCount) bytes); with the \(total) bytes of the tensors "
                    + "before it that is more than \(expansionFactor) × the file's \(fileSize) bytes + 64 MiB "
                    + "(\(limit) bytes): an expansion bomb (views repeating their storage, or entries inflating far past the "
                    + "file), refused")
        }
    }

    // MARK: opening

    /// Opens `path`, deciding the format from its bytes (files) or contents (folders), never its extension.
    public static func open(_ path: String, options: OpenOptions = OpenOptions()) throws -> Checkpoint {
        switch try FormatSniffer.sniff(path) {
        case .file(let kind, let file):
            return try openFile(file, kind: kind, options: options)
        case .folder(let kind):
            return try DiffusersFolder.open(path, kind: kind, options: options)
        }
    }

    static func openFile(_ file: MappedFile, kind: FormatSniffer.FileKind, options: OpenOptions) throws -> Checkpoint {
        let path = file.path
        let fileName = FileSystem.fileName(path)
        switch kind {
        case .safetensors:
            let st = try SafetensorsFile(file: file)
            return Checkpoint(path: path, format: .safetensors, tensors: st.tensors, metadata: st.metadata, files: [fileName])
        case .safetensorsIndex:
            let sharded = try ShardedSafetensors(indexPath: path)
            return Checkpoint(
                path: path, format: .safetensorsSharded, tensors: sharded.tensors, metadata: sharded.metadata,
                files: [fileName] + sharded.shards.map { FileSystem.fileName($0.file.path) },
                notes: sharded.notes)
        case .torchZip, .torchLegacy, .pickle:
            let loaded: TorchArchive.Loaded
            let format: CheckpointFormat
            switch kind {
            case .torchZip: loaded = try TorchArchive.loadZip(file: file, policy: options.picklePolicy); format = .torchZip
            case .torchLegacy: loaded = try TorchArchive.loadLegacy(file: file, policy: options.picklePolicy); format = .torchLegacy
            default: loaded = try TorchArchive.loadPlainPickle(file: file, policy: options.picklePolicy); format = .pickle
            }
            var flattener = PickleFlattener(path: path, inputBytes: file.bytes.count)
            try flattener.walk(loaded.root, path: [])
            try checkExpansion(flattener.tensors, fileSize: file.size, path: path)
            return Checkpoint(
                path: path, format: format, tensors: flattener.tensors, values: flattener.values, files: [fileName],
                notes: loaded.notes + flattener.notes)
        case .hdf5:
            // No expansion check: every dataset has its own storage, and compressed chunks (LZ4 of zeroed optimizer
            // state packs ~250:1) are decompressed chunk by chunk into bounded buffers, their sizes checked.
            let mdl = try MDLReader.open(file, options: options)
            return Checkpoint(
                path: path, format: .mdl, tensors: mdl.tensors, values: mdl.values, metadata: mdl.metadata, files: [fileName],
                notes: mdl.notes)
        }
    }
}
