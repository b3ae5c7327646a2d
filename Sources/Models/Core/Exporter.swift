import Checkpoints
import Tensors

/// How and where a conversion plan is written.
public struct ExportOptions {
    /// Replace an existing file or folder at the output path (otherwise writing one is an error).
    public var overwrite = false
    /// `fsync` every file before it is renamed into place.
    public var durable = false
    /// diffusers: write the component folder itself instead of a pipeline folder.
    public var componentOnly = false
    /// diffusers: shard the weights at this many bytes, with an index.
    public var shardSize: Int?
    /// diffusers: the written weights' variant name (`fp16` → `diffusion_pytorch_model.fp16.safetensors`).
    public var variant: String?
    /// The source, recorded in canonical metadata (`ditkit.source`) and used to carry diffusers extras
    /// (`id2label`, a VAE folder) over.
    public var source: Checkpoint?
    /// The source's layout, recorded in canonical metadata.
    public var sourceLayout: Layout = .unknown
    /// Called with the bytes written so far (for a progress bar).
    public var progress: ((Int) -> Void)?
    /// State-dict layouts: the container written (`.pt`, the default, or a Cerebras `.mdl`: format 0.5 as
    /// `cerebras.pytorch.save` writes it, the state dict nested as the layout nests it — the Cerebras layout's
    /// `{"model": {"model.<name>": …}}`, the Model Zoo trainer's top level).
    /// nil: `.mdl` when the target is the Cerebras layout and the path ends in `.mdl` (any case) — what a user
    /// naming a Cerebras checkpoint `X.mdl` expects — else `.pt`.
    public var container: StateDictContainer?
    /// `.mdl`: how tensors are stored (nil: LZ4 chunks, as the Cerebras saver; `.none`: uncompressed). Setting it
    /// for an output that is not `.mdl` is an error, not ignored.
    public var compression: MDLWriteOptions.Compression?

    /// Defaults: no overwrite, no fsync, a pipeline folder, no shards or variant, no source.
    public init() {}
}

/// The file a state-dict layout is written as.
public enum StateDictContainer: String, Sendable, CaseIterable {
    /// A PyTorch zip (`torch.save`), or safetensors where the layout allows it and the path ends in `.safetensors`.
    case pt
    /// A Cerebras `.mdl` (HDF5, format 0.5), as `cerebras.pytorch.save` writes it.
    case mdl
}

/// Writes conversion plans: canonical safetensors, a layout's state dict (`.pt`, or `.safetensors` where the layout
/// allows it), diffusers folders. Every file is written to a temporary name and renamed; folders are staged and
/// swapped in whole (`FileSystem.replaceFolder`), so a failure leaves neither a partial output nor a temporary.
public enum Exporter {
    /// Writes `plan` to `path`; returns the files written (relative to `path` for folders). Throws
    /// `CheckpointError.io` before writing anything when `path` is, contains or lies inside `options.source`.
    @discardableResult
    public static func write<F: ModelFamily>(_ plan: ConversionPlan<F>, to path: String, options: ExportOptions = ExportOptions()) throws -> [String] {
        if let source = options.source, let overlap = FileSystem.overlap(output: path, input: source.path) {
            throw CheckpointError.io(path: path, operation: "write", detail: overlap)
        }
        let outputs = options.progress.map { report in withProgress(plan.outputs, report) } ?? plan.outputs
        if plan.target == .canonical {
            if options.container != nil || options.compression != nil {
                throw ModelError.invalidOption(name: "container", problem: "the canonical layout is one safetensors file")
            }
            try SafetensorsWriter.write(outputs, metadata: canonicalMetadata(plan, options), to: path, overwrite: options.overwrite, durable: options.durable)
            return [FileSystem.fileName(path)]
        }
        guard let layout = F.layout(plan.target) else {
            throw ModelError.invalidOption(name: "target", problem: "\(F.name) has no \(plan.target) layout")
        }
        switch layout.writer {
        case .stateDict(let nested, _, let safetensors):
            let container = options.container ?? (plan.target == .cerebras && path.lowercased().hasSuffix(".mdl") ? .mdl : .pt)
            if options.compression != nil && container != .mdl {
                throw ModelError.invalidOption(name: "compression", problem: "applies to a .mdl output only (this one is written as .pt)")
            }
            if container == .mdl {
                var value = MDLNode.dict(outputs.map { ($0.name, .tensor($0)) })
                for key in nested.reversed() { value = .dict([(key, value)]) }
                if case .dict(let top) = value {
                    value = .dict(top + F.trainerEntries(plan.config, layout: plan.target).map { ($0.0, mdlNode($0.1)) })
                }
                try MDLWriter.write(
                    value, to: path,
                    options: MDLWriteOptions(compression: options.compression ?? .lz4, overwrite: options.overwrite, durable: options.durable))
            } else if safetensors && nested.isEmpty && path.hasSuffix(".safetensors") {
                try SafetensorsWriter.write(outputs, metadata: [("format", "pt")], to: path, overwrite: options.overwrite, durable: options.durable)
            } else {
                var value = TorchSaveValue.dict(outputs.map { ($0.name, .tensor($0)) })
                for key in nested.reversed() { value = .dict([(key, value)]) }
                try TorchWriter.write(value, to: path, overwrite: options.overwrite, durable: options.durable)
            }
            return [FileSystem.fileName(path)]
        case .diffusers(let writer):
            if options.container != nil || options.compression != nil {
                throw ModelError.invalidOption(name: "container", problem: "the diffusers layout is a folder of safetensors files")
            }
            return try writeDiffusers(plan, writer: writer, outputs: outputs, to: path, options: options)
        }
    }

    /// A JSON value as the Python value a `.mdl` leaf holds (objects as dicts, arrays as lists).
    static func mdlNode(_ json: JSONValue) -> MDLNode {
        switch json {
        case .null: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .float(d)
        case .string(let s): return .string(s)
        case .array(let items): return .list(items.map(mdlNode))
        case .object(let fields): return .dict(fields.map { ($0.0, mdlNode($0.1)) })
        }
    }

    /// `format: pt`, `ditkit.canonical: 1`, `ditkit.config` and `ditkit.source` (the canonical format, README).
    package static func canonicalMetadata<F: ModelFamily>(_ plan: ConversionPlan<F>, _ options: ExportOptions) -> [(String, String)] {
        var source: [(String, JSONValue)] = [("scheme", .string(options.sourceLayout.rawValue))]
        if let checkpoint = options.source {
            source.insert(("format", .string(checkpoint.format.rawValue)), at: 0)
            source.append(("file", .string(FileSystem.fileName(checkpoint.path))))
        }
        return [
            ("format", "pt"), ("ditkit.canonical", "1"), ("ditkit.config", plan.config.json.serialized()),
            ("ditkit.source", JSONValue.object(source).serialized()),
        ]
    }

    static func withProgress(_ outputs: [OutputTensor], _ report: @escaping (Int) -> Void) -> [OutputTensor] {
        let counter = ProgressCounter(report: report)
        return outputs.map { output in
            OutputTensor(name: output.name, dtype: output.dtype, shape: output.shape) { sink in
                try output.produce(CountingSink(downstream: sink) { counter.add($0) })
            }
        }
    }

    // MARK: diffusers

    static func writeJSON(_ value: JSONValue, to path: String, durable: Bool) throws {
        try AtomicFileWriter.write(Array((value.serialized(pretty: true) + "\n").utf8), to: path, durable: durable)
    }

    static func writeDiffusers<F: ModelFamily>(
        _ plan: ConversionPlan<F>, writer: DiffusersWriter<F.Config>, outputs: [OutputTensor], to path: String, options: ExportOptions
    ) throws -> [String] {
        if FileSystem.exists(path) && !options.overwrite { throw CheckpointError.outputExists(path: path) }
        let staged = try FileSystem.temporaryDirectory(beside: path)
        do {
            var files: [String] = []
            let component = options.componentOnly ? staged : staged + "/" + writer.component
            let relative = options.componentOnly ? "" : writer.component + "/"
            try FileSystem.makeDirectory(component)
            try writeJSON(writer.componentConfig(plan.config), to: component + "/config.json", durable: options.durable)
            files.append(relative + "config.json")
            let metadata = [("format", "pt")]
            if let shard = options.shardSize {
                let written = try ShardedSafetensors.write(
                    outputs, metadata: metadata, directory: component, baseName: "diffusion_pytorch_model",
                    variant: options.variant, maxShardBytes: shard, durable: options.durable)
                files += written.map { relative + $0 }
            } else {
                let name = ShardedSafetensors.Naming.single("diffusion_pytorch_model", variant: options.variant)
                try SafetensorsWriter.write(outputs, metadata: metadata, to: component + "/" + name, durable: options.durable)
                files.append(relative + name)
            }
            if !options.componentOnly {
                var index: [(String, JSONValue)] = [
                    ("_class_name", .string(writer.pipelineClass)), ("_diffusers_version", .string("0.42.1")),
                ]
                var components: [(String, JSONValue)] = [
                    (writer.component, .array([.string("diffusers"), .string(writer.componentClass)])),
                ]
                for extra in writer.extraComponents {
                    try FileSystem.makeDirectory(staged + "/" + extra.folder)
                    try writeJSON(extra.json, to: staged + "/" + extra.folder + "/" + extra.file, durable: options.durable)
                    files.append(extra.folder + "/" + extra.file)
                    components.append((extra.folder, .array([.string("diffusers"), .string(extra.className)])))
                }
                // Carry a source pipeline's components (a VAE) and index keys (labels) over; a component the source
                // lacks is written as [null, null].
                let sourceIndex = options.source?.config("model_index.json")
                for name in writer.carriedComponents {
                    if let source = options.source, source.format == .diffusersPipeline, let spec = sourceIndex?[name],
                        case .array(let pair) = spec, pair.count == 2, pair[0] != .null,
                        try FileSystem.entry(source.path + "/" + name, root: source.path) == .directory
                    {
                        try FileSystem.makeDirectory(staged + "/" + name)
                        files += try copyComponent(source.path + "/" + name, root: source.path, to: staged + "/" + name).map { name + "/" + $0 }
                        components.append((name, spec))
                    } else {
                        components.append((name, .array([.null, .null])))
                    }
                }
                index += components.sorted { $0.0 < $1.0 }
                for key in writer.carriedIndexKeys { if let value = sourceIndex?[key] { index.append((key, value)) } }
                try writeJSON(.object(index), to: staged + "/model_index.json", durable: options.durable)
                files.insert("model_index.json", at: 0)
            }
            try FileSystem.replaceFolder(path, with: staged, overwrite: options.overwrite)
            return files
        } catch {
            FileSystem.removeTree(staged)
            throw error
        }
    }
}

extension Exporter {
    /// Copies a carried-over component folder (`vae/`) by content: only the files diffusers names (`config.json`
    /// and weights files, every variant), nothing else (a token file or a README stays behind). A symlink is
    /// followed only when it stays inside the source folder `root` or its Hugging Face cache blobs
    /// (`FileSystem.entry`); one that leads elsewhere stops the conversion with `CheckpointError.escapes` naming it,
    /// as does a FIFO or device. Returns the names copied.
    static func copyComponent(_ folder: String, root: String, to destination: String) throws -> [String] {
        var copied: [String] = []
        for name in try FormatSniffer.listDirectory(folder) where name == "config.json" || DiffusersFolder.isWeightsFile(name) {
            guard try FileSystem.entry(folder + "/" + name, root: root) == .file else { continue }
            try FileSystem.copyFile(folder + "/" + name, destination + "/" + name)
            copied.append(name)
        }
        return copied
    }
}

/// The bytes written so far across a plan's tensors, reported after each write; used by one writing thread at a time.
final class ProgressCounter: @unchecked Sendable {
    private var total = 0
    private let report: (Int) -> Void
    init(report: @escaping (Int) -> Void) { self.report = report }
    func add(_ count: Int) {
        total += count
        report(total)
    }
}
