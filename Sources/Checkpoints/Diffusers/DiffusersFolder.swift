import Tensors

/// diffusers folders: a whole pipeline (`model_index.json` + one folder per component) or a single component
/// (`config.json` + weights). Weights may be one `.safetensors` or `.bin` file, or shards behind an index, in
/// the default precision or a named variant (`fp16`), with both the current and the older shard naming.
///
/// Only the files the format names are read: `model_index.json`, each component's config (`configNames`) and the
/// weights diffusers would choose. Component and shard names are plain names, checked before any path is built,
/// and every file is reached through `FileSystem.entry`: no symlink out of the folder, no FIFO or device.
package enum DiffusersFolder {
    /// Base names of weight files, in diffusers' order of preference.
    static let weightBaseNames = ["diffusion_pytorch_model", "model", "pytorch_model"]

    /// The config files of a component that diffusers and transformers name; nothing else in a folder is read.
    static let configNames = ["config.json", "scheduler_config.json", "tokenizer_config.json", "preprocessor_config.json"]

    /// Whether `name` is a weights file diffusers would read (any base name, variant, shard or index).
    package static func isWeightsFile(_ name: String) -> Bool {
        weightBaseNames.contains { name.hasPrefix($0 + ".") || name.hasPrefix($0 + "-") }
            && (name.hasSuffix(".safetensors") || name.hasSuffix(".bin") || name.hasSuffix(".json"))
    }

    static func open(_ path: String, kind: FormatSniffer.FolderKind, options: OpenOptions) throws -> Checkpoint {
        let root = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        switch kind {
        case .pipeline: return try openPipeline(root, options: options)
        case .component, .shardedSafetensors:
            let component = try openComponent(root, root: root, prefix: "", options: options, requireConfig: kind == .component)
            return Checkpoint(
                path: root, format: kind == .component ? .diffusersComponent : .safetensorsSharded, tensors: component.tensors, metadata: component.metadata,
                configs: component.configs, files: component.files, notes: component.notes, variant: component.variant ?? options.variant,
                assumed: component.assumed)
        }
    }

    struct Component {
        var tensors: [TensorInfo] = []
        var metadata: [(String, String)] = []
        var configs: [(String, JSONValue)] = []
        var files: [String] = []
        var notes: [String] = []
        /// The variant read (asked for, or the only one present).
        var variant: String?
        /// Choices made without being asked (the only variant present, read).
        var assumed: [String] = []
    }

    /// Parses the JSON file `path` inside the checkpoint folder `root` (see `FileSystem.entry`).
    static func readJSON(_ path: String, root: String) throws -> JSONValue {
        let file = try map(path, root: root)
        do { return try JSONParser.parse(file.bytes) } catch {
            throw CheckpointError.malformed(path: path, location: "JSON", reason: "\(error)")
        }
    }

    // MARK: pipeline

    static func openPipeline(_ root: String, options: OpenOptions) throws -> Checkpoint {
        let index = try readJSON(root + "/model_index.json", root: root)
        guard case .object(let pairs) = index else {
            throw CheckpointError.malformed(path: root + "/model_index.json", location: "JSON", reason: "not an object")
        }
        var result = Component(configs: [("model_index.json", index)], files: ["model_index.json"])
        var missing: [String] = []
        var variants: Set<String> = []
        for (name, value) in pairs where !name.hasPrefix("_") {
            // Components are [library, class]; [null, null] marks an absent optional component.
            guard case .array(let spec) = value, spec.count == 2 else { continue }
            if case .null = spec[0] { continue }
            try FileSystem.requirePlainName(name, file: root + "/model_index.json", location: "component")
            let folder = root + "/" + name
            guard try FileSystem.entry(folder, root: root) == .directory else {
                missing.append("\(name)/ (\(spec[1].stringValue ?? "?"))")
                continue
            }
            let names = try FormatSniffer.listDirectory(folder)
            let hasWeights = names.contains(where: isWeightsFile)
            if hasWeights {
                let component = try openComponent(folder, root: root, prefix: name + ".", options: options, requireConfig: true)
                result.tensors += component.tensors
                result.metadata += component.metadata.map { ("\(name): \($0.0)", $0.1) }
                result.configs += component.configs.map { ("\(name)/\($0.0)", $0.1) }
                result.files += component.files.map { "\(name)/\($0)" }
                result.notes += component.notes.map { "\(name): \($0)" }
                result.assumed += component.assumed.map { "\(name): \($0)" }
                if let variant = component.variant { variants.insert(variant) }
            } else {
                for configName in configNames where names.contains(configName) {
                    result.configs.append(("\(name)/\(configName)", try readJSON(folder + "/" + configName, root: root)))
                    result.files.append("\(name)/\(configName)")
                }
            }
        }
        if !missing.isEmpty {
            throw CheckpointError.folder(
                path: root, reason: "model_index.json lists component(s) whose folders are missing: \(missing.joined(separator: ", "))")
        }
        return Checkpoint(
            path: root, format: .diffusersPipeline, tensors: result.tensors, metadata: result.metadata,
            configs: result.configs, files: result.files, notes: result.notes,
            variant: options.variant ?? (variants.count == 1 ? variants.first : nil), assumed: result.assumed)
    }

    // MARK: component

    /// The weights of a component folder, chosen like diffusers: safetensors before .bin, a single file
    /// before an index, the requested variant only. `root` is the checkpoint folder no file may lead out of.
    static func openComponent(_ folder: String, root: String, prefix: String, options: OpenOptions, requireConfig: Bool) throws -> Component {
        let names = try FormatSniffer.listDirectory(folder)
        var component = Component()
        if names.contains("config.json") {
            let config = try readJSON(folder + "/config.json", root: root)
            component.configs.append(("config.json", config))
            component.files.append("config.json")
        } else if requireConfig {
            let weights = names.filter(isWeightsFile)
            throw CheckpointError.folder(
                path: folder, reason: "has weights but no config.json; a diffusers component needs both "
                    + "(config.json tells which model the weights belong to)"
                    + (weights.isEmpty ? "" : "; to read the weights alone, pass the file: \(folder)/\(weights[0])"))
        }
        var variant = options.variant
        var chosen = chooseWeights(names, variant: variant)
        if chosen == nil, variant == nil {
            // No default weights: the one variant present is what the folder holds (save_pretrained(variant=)).
            let present = Set(names.compactMap(variantName)).sorted()
            if present.count == 1, let only = chooseWeights(names, variant: present[0]) {
                variant = present[0]
                chosen = only
                component.assumed.append(
                    "variant \(present[0]) read: it is the only weight variant present (\(only.file)) and the folder has no default weights")
            }
        }
        component.variant = variant
        guard let chosen else {
            let variants = Set(names.compactMap(variantName)).sorted()
            let weightFiles = names.filter(isWeightsFile)
            if let variant {
                throw CheckpointError.folder(
                    path: folder, reason: "no weights for variant '\(variant)' (looked for diffusion_pytorch_model.\(variant)"
                        + ".safetensors, its .bin and their index files); "
                        + (weightFiles.isEmpty ? "the folder has no weights files"
                            : "found: \(weightFiles.joined(separator: ", "))"
                                + (variants.isEmpty ? "" : " — variants present: \(variants.joined(separator: ", "))")))
            }
            if !variants.isEmpty { throw CheckpointError.variantNeeded(path: folder, variants: variants) }
            throw CheckpointError.folder(
                path: folder, reason: "no weights file (diffusion_pytorch_model.safetensors, .bin, or a sharded index)")
        }
        let filePath = folder + "/" + chosen.file
        if chosen.file.hasSuffix(".safetensors") {
            let st = try SafetensorsFile(file: try map(filePath, root: root))
            component.tensors = st.tensors
            component.metadata = st.metadata
            component.files.append(chosen.file)
        } else if chosen.file.contains(".safetensors.index") {
            let sharded = try ShardedSafetensors(indexPath: filePath, root: root)
            component.tensors = sharded.tensors
            component.metadata = sharded.metadata
            component.files += [chosen.file] + sharded.shards.map { FileSystem.fileName($0.file.path) }
            component.notes += sharded.notes
        } else if chosen.isIndex {
            let (tensors, files) = try openBinShards(indexPath: filePath, root: root, options: options)
            component.tensors = tensors
            component.files += [chosen.file] + files
        } else {
            let mapped = try map(filePath, root: root)
            let checkpoint = try Checkpoint.openFile(mapped, kind: try FormatSniffer.sniffFile(mapped), options: options)
            component.tensors = checkpoint.tensors
            component.files.append(chosen.file)
            component.notes += checkpoint.notes
        }
        if !prefix.isEmpty {
            component.tensors = component.tensors.map {
                TensorInfo(
                    name: prefix + $0.name, dtype: $0.dtype, geometry: $0.geometry, storage: $0.storage,
                    requiresGrad: $0.requiresGrad, isParameter: $0.isParameter)
            }
        }
        if let variant, component.assumed.isEmpty { component.notes.append("variant \(variant)") }
        component.notes += component.assumed
        return component
    }

    /// The weights file diffusers would read for `variant` among `names`: safetensors before .bin, a single file
    /// before an index, base names in diffusers' order; nil when there is none.
    static func chooseWeights(_ names: [String], variant: String?) -> (file: String, isIndex: Bool)? {
        for base in weightBaseNames {
            for candidate in [
                (ShardedSafetensors.Naming.single(base, variant: variant), false),
                (ShardedSafetensors.Naming.index(base, variant: variant), true),
                (variant.map { "\(base).\($0).bin" } ?? "\(base).bin", false),
                (variant.map { "\(base).bin.index.\($0).json" } ?? "\(base).bin.index.json", true),
            ] where names.contains(candidate.0) {
                return (candidate.0, candidate.1)
            }
        }
        return nil
    }

    /// `.bin` shards behind a `*.bin.index*.json`: each shard is a torch file holding part of the state dict.
    static func openBinShards(indexPath: String, root: String, options: OpenOptions) throws -> ([TensorInfo], [String]) {
        let json = try readJSON(indexPath, root: root)
        guard let weightMap = json["weight_map"]?.objectValue else {
            throw CheckpointError.malformed(path: indexPath, location: "index", reason: "has no \"weight_map\" object")
        }
        let folder = String(indexPath[..<(indexPath.lastIndex(of: "/") ?? indexPath.startIndex)])
        let (order, assigned) = try ShardedSafetensors.shardNames(weightMap, indexPath: indexPath)
        try ShardedSafetensors.requireShardsPresent(order, assigned: assigned, directory: folder, root: root, indexPath: indexPath)
        var shardTensors: [String: [String: TensorInfo]] = [:]
        for file in order {
            let mapped = try map(folder + "/" + file, root: root)
            let checkpoint = try Checkpoint.openFile(mapped, kind: try FormatSniffer.sniffFile(mapped), options: options)
            shardTensors[file] = Dictionary(checkpoint.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        }
        let tensors = try weightMap.map { name, _ -> TensorInfo in
            let file = assigned[name] ?? ""
            guard let tensor = shardTensors[file]?[name] else {
                throw CheckpointError.folder(path: indexPath, reason: "the index places \(name) in \(file), which does not hold it")
            }
            return tensor
        }
        return (tensors, order)
    }

    /// Maps `path`, a file inside the checkpoint folder `root`, after `FileSystem.entry` has checked it.
    static func map(_ path: String, root: String) throws -> MappedFile {
        guard let kind = try FileSystem.entry(path, root: root) else { throw CheckpointError.notFound(path: path) }
        guard kind == .file else {
            throw CheckpointError.folder(path: path, reason: "is a folder where diffusers names a file")
        }
        do { return try MappedFile(path: path) } catch { throw CheckpointError.mapping(error, path: path) }
    }

    /// The variant a weights file name carries, if any (`diffusion_pytorch_model.fp16.safetensors` → fp16,
    /// `…safetensors.index.fp16.json` → fp16, `…fp16-00001-of-00002.safetensors` and
    /// `…-00001-of-00002.fp16.safetensors` → fp16).
    static func variantName(_ name: String) -> String? {
        guard isWeightsFile(name) else { return nil }
        var parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 3 else { return nil }
        parts.removeFirst()  // base name (may carry "-00001-of-00002")
        let ignored: Set<String> = ["safetensors", "bin", "json", "index"]
        for part in parts {
            let stripped = part.split(separator: "-").first.map(String.init) ?? part
            if !ignored.contains(stripped) && !stripped.isEmpty { return stripped }
        }
        return nil
    }
}
