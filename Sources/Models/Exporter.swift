import Checkpoints
import Tensors

/// How and where a conversion plan is written.
public struct ExportOptions {
    public var overwrite = false
    /// `fsync` every file before it is renamed into place.
    public var durable = false
    /// diffusers: write the transformer folder itself instead of a pipeline folder.
    public var componentOnly = false
    /// diffusers: shard the weights at this many bytes, with an index.
    public var shardSize: Int?
    /// diffusers: weight variant name (`fp16` → `diffusion_pytorch_model.fp16.safetensors`).
    public var variant: String?
    /// The source, recorded in canonical metadata (`ditkit.source`) and used to carry diffusers extras
    /// (`id2label`, a VAE folder) over.
    public var source: Checkpoint?
    public var sourceLayout: Layout = .unknown
    /// Called with the bytes written so far (for a progress bar).
    public var progress: ((Int) -> Void)?

    public init() {}
}

/// Writes conversion plans: canonical safetensors, original `.pt` (or `.safetensors`), Cerebras `.pt`, diffusers
/// folders. Every file is written to a temporary name and renamed; folders are staged and swapped in whole
/// (`FileSystem.replaceFolder`), so a failure leaves neither a partial output nor a temporary.
public enum Exporter {
    /// Writes `plan` to `path`; returns the files written (relative to `path` for folders). Throws
    /// `CheckpointError.io` before writing anything when `path` is, contains or lies inside `options.source`.
    @discardableResult
    public static func write(_ plan: ConversionPlan, to path: String, options: ExportOptions = ExportOptions()) throws -> [String] {
        if let source = options.source, let overlap = FileSystem.overlap(output: path, input: source.path) {
            throw CheckpointError.io(path: path, operation: "write", detail: overlap)
        }
        let outputs = options.progress.map { report in withProgress(plan.outputs, report) } ?? plan.outputs
        switch plan.target {
        case .canonical:
            try SafetensorsWriter.write(outputs, metadata: canonicalMetadata(plan, options), to: path, overwrite: options.overwrite, durable: options.durable)
            return [FileSystem.fileName(path)]
        case .original:
            if path.hasSuffix(".safetensors") {
                try SafetensorsWriter.write(outputs, metadata: [("format", "pt")], to: path, overwrite: options.overwrite, durable: options.durable)
            } else {
                try TorchWriter.write(.dict(outputs.map { ($0.name, .tensor($0)) }), to: path, overwrite: options.overwrite, durable: options.durable)
            }
            return [FileSystem.fileName(path)]
        case .cerebras:
            // As Cerebras saves them: {"model": {"model.<name>": tensor}}.
            try TorchWriter.write(
                .dict([("model", .dict(outputs.map { ($0.name, .tensor($0)) }))]), to: path, overwrite: options.overwrite, durable: options.durable)
            return [FileSystem.fileName(path)]
        case .diffusers:
            return try writeDiffusers(plan, outputs: outputs, to: path, options: options)
        }
    }

    /// `format: pt`, `ditkit.canonical: 1`, `ditkit.config` and `ditkit.source` (the canonical format: schemas/canonical-names.md, schemas/model-config.schema.json).
    public static func canonicalMetadata(_ plan: ConversionPlan, _ options: ExportOptions) -> [(String, String)] {
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
                try output.produce(CountingSink(downstream: sink, counter: counter))
            }
        }
    }

    // MARK: diffusers

    /// `transformer/config.json` for DiTTransformer2DModel, with the model's MLP norm eps and GELU form.
    public static func diffusersConfig(_ c: DiTConfig) -> JSONValue {
        .object([
            ("_class_name", .string("DiTTransformer2DModel")), ("_diffusers_version", .string("0.42.1")),
            ("activation_fn", .string(c.gelu == .tanh ? "gelu-approximate" : "gelu")), ("attention_bias", .bool(true)),
            ("attention_head_dim", .int(c.headDim)), ("dropout", .double(0)), ("in_channels", .int(c.inChannels)),
            ("norm_elementwise_affine", .bool(false)), ("norm_eps", .double(c.mlpNormEps)), ("norm_num_groups", .int(32)),
            ("norm_type", .string("ada_norm_zero")), ("num_attention_heads", .int(c.numHeads)),
            ("num_embeds_ada_norm", .int(c.numClasses)), ("num_layers", .int(c.depth)), ("out_channels", .int(c.outChannels)),
            ("patch_size", .int(c.patchSize)), ("sample_size", .int(c.inputSize)), ("upcast_attention", .bool(false)),
        ])
    }

    /// DiT's DDIM scheduler: 1000 steps, linear β 1e-4…0.02, epsilon prediction, no clipping.
    public static let schedulerConfig: JSONValue = .object([
        ("_class_name", .string("DDIMScheduler")), ("_diffusers_version", .string("0.42.1")), ("beta_end", .double(0.02)),
        ("beta_schedule", .string("linear")), ("beta_start", .double(0.0001)), ("clip_sample", .bool(false)),
        ("clip_sample_range", .double(1)), ("dynamic_thresholding_ratio", .double(0.995)), ("num_train_timesteps", .int(1000)),
        ("prediction_type", .string("epsilon")), ("rescale_betas_zero_snr", .bool(false)), ("sample_max_value", .double(1)),
        ("set_alpha_to_one", .bool(true)), ("steps_offset", .int(0)), ("thresholding", .bool(false)),
        ("timestep_spacing", .string("leading")), ("trained_betas", .null),
    ])

    static func writeJSON(_ value: JSONValue, to path: String, durable: Bool) throws {
        let out = try AtomicFileWriter(destination: path, durable: durable)
        do {
            try out.write(Array((value.serialized(pretty: true) + "\n").utf8))
            try out.commit()
        } catch {
            out.abort()
            throw error
        }
    }

    static func writeDiffusers(_ plan: ConversionPlan, outputs: [OutputTensor], to path: String, options: ExportOptions) throws -> [String] {
        if FileSystem.exists(path) && !options.overwrite { throw CheckpointError.outputExists(path: path) }
        let staged = try FileSystem.temporaryDirectory(beside: path)
        do {
            var files: [String] = []
            let component = options.componentOnly ? staged : staged + "/transformer"
            let relative = options.componentOnly ? "" : "transformer/"
            try FileSystem.makeDirectory(component)
            try writeJSON(diffusersConfig(plan.config), to: component + "/config.json", durable: options.durable)
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
                try FileSystem.makeDirectory(staged + "/scheduler")
                try writeJSON(schedulerConfig, to: staged + "/scheduler/scheduler_config.json", durable: options.durable)
                files.append("scheduler/scheduler_config.json")
                var index: [(String, JSONValue)] = [
                    ("_class_name", .string("DiTPipeline")), ("_diffusers_version", .string("0.42.1")),
                    ("scheduler", .array([.string("diffusers"), .string("DDIMScheduler")])),
                    ("transformer", .array([.string("diffusers"), .string("DiTTransformer2DModel")])),
                ]
                // Carry a source pipeline's VAE and labels over; otherwise the VAE is left out ([null, null]).
                let sourceIndex = options.source?.config("model_index.json")
                if let source = options.source, source.format == .diffusersPipeline, let vae = sourceIndex?["vae"],
                    case .array(let spec) = vae, spec.count == 2, spec[0] != .null,
                    try FileSystem.entry(source.path + "/vae", root: source.path) == .directory
                {
                    try FileSystem.makeDirectory(staged + "/vae")
                    files += try copyComponent(source.path + "/vae", root: source.path, to: staged + "/vae").map { "vae/" + $0 }
                    index.append(("vae", vae))
                } else {
                    index.append(("vae", .array([.null, .null])))
                }
                if let labels = sourceIndex?["id2label"] { index.append(("id2label", labels)) }
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

final class ProgressCounter {
    var total = 0
    let report: (Int) -> Void
    init(report: @escaping (Int) -> Void) { self.report = report }
}

final class CountingSink: ByteSink {
    let downstream: ByteSink
    let counter: ProgressCounter
    init(downstream: ByteSink, counter: ProgressCounter) {
        self.downstream = downstream
        self.counter = counter
    }
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try downstream.write(bytes)
        counter.total += bytes.count
        counter.report(counter.total)
    }

    func copy(from file: MappedFile, offset: Int, count: Int) throws -> Bool {
        guard try downstream.copy(from: file, offset: offset, count: count) else { return false }
        counter.total += count
        counter.report(counter.total)
        return true
    }
}
