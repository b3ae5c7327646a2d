import Checkpoints
import Tensors

extension ModelBundle {
    /// The folder a canonical folder keeps a source pipeline's other components in, as they were.
    public static let carriedFolderName = "pipeline"

    /// The pipeline folder the bundle came from: the source folder, or a canonical folder's copy of its carried
    /// components (`pipeline/`); nil for other sources.
    var pipelineRoot: String? {
        if let folder, FileSystem.exists(folder + "/" + ModelBundle.carriedFolderName + "/model_index.json") {
            return folder + "/" + ModelBundle.carriedFolderName
        }
        return folder == nil && checkpoint.format == .diffusersPipeline ? checkpoint.path : nil
    }

    /// The component folders of a source pipeline that no component reads (`text_encoder`, `tokenizer`,
    /// `scheduler`): carried over as they are.
    var carriedFolders: [String] {
        guard let root = pipelineRoot, let index = try? readJSON(root + "/model_index.json") else { return [] }
        let read = Set(components.map { String($0.match.prefix.prefix { $0 != "." }) })
        guard case .object(let entries) = index else { return [] }
        return entries.map(\.0).filter { key in
            !key.hasPrefix("_") && !read.contains(key) && (try? FileSystem.entry(root + "/" + key, root: root)) == .directory
        }
    }

    /// Copies every regular file of `folder` (a component folder of a source pipeline, one level deep) into
    /// `destination`; a symlink is followed only inside `root` (`FileSystem.entry`). Returns the names copied.
    static func copyFolder(_ folder: String, root: String, to destination: String) throws -> [String] {
        try FileSystem.makeDirectory(destination)
        var copied: [String] = []
        for name in try FormatSniffer.listDirectory(folder).sorted() {
            guard try FileSystem.entry(folder + "/" + name, root: root) == .file else { continue }
            try FileSystem.copyFile(folder + "/" + name, destination + "/" + name)
            copied.append(name)
        }
        return copied
    }

    /// Writes the bundle as a diffusers pipeline folder: each default component in its family's diffusers layout
    /// (its component folder), the folders its config implies (``ModelFamily/pipelineFiles(_:)``: a scheduler),
    /// a source pipeline's other components carried over as they are, and `model_index.json`. A text tower the file
    /// holds in another layout (microsoft/VQ-Diffusion's OpenAI CLIP) is NOT converted: a note says so and where it
    /// is. Built in a temporary folder and renamed into place.
    public func writeDiffusers(to path: String, options: BundleWriteOptions = BundleWriteOptions()) throws -> BundleWriteResult {
        let source = folder ?? checkpoint.path
        if let overlap = FileSystem.overlap(output: path, input: source) {
            throw CheckpointError.io(path: path, operation: "write", detail: overlap)
        }
        if FileSystem.exists(path) && !options.overwrite { throw CheckpointError.outputExists(path: path) }
        let views = try readableComponents().filter { $0.0.selected }
        var notes: [String] = []
        let staged = try FileSystem.temporaryDirectory(beside: path)
        do {
            var files: [String] = [], tensors = 0, bytes = 0
            var index: [(String, JSONValue)] = []
            var pipelineClass: String?
            var written = Set<String>()
            for (component, view) in views {
                guard let info = diffusersComponent(view) else {
                    notes.append("\(component.name): \(component.family) has no diffusers component; not written")
                    continue
                }
                // Training state a pipeline has no place for (a quantizer's EMA buffers) is dropped, each tensor named:
                // the pipeline is for inference, and a canonical folder keeps everything.
                var conversion = options.conversion
                var plan: any AnyConversionPlan
                while true {
                    do {
                        plan = try view.erasedPlan(to: .diffusers, options: conversion)
                        break
                    } catch ModelError.cannotHold(let tensor, _, _) where !conversion.drop.contains(tensor) && conversion.drop.count < 64 {
                        conversion.drop.insert(tensor)
                        notes.append("\(component.name): \(tensor) dropped: a diffusers pipeline does not store it (a canonical folder keeps it)")
                    }
                }
                var export = ExportOptions()
                export.componentOnly = true
                export.durable = options.durable
                export.source = view.checkpoint
                export.sourceLayout = view.layout
                files += try plan.write(to: staged + "/" + info.component, options: export).map { info.component + "/" + $0 }
                tensors += plan.outputs.count
                bytes += plan.byteCount
                let autoDropped = Set(conversion.drop.subtracting(options.conversion.drop).map { "dropped \($0) (allowed to drop)" })
                notes += plan.notes.filter { !autoDropped.contains($0) }.map { "\(component.name): \($0)" }
                pipelineClass = pipelineClass ?? info.pipelineClass
                index.append((info.component, .array([.string("diffusers"), .string(info.componentClass)])))
                written.insert(info.component)
                if component.weights != .only {
                    notes.append("\(info.component)/ holds the \(component.weights == .ema ? "EMA" : "raw") weights under \"\(component.match.prefix)\"")
                }
            }
            // Carried over from a source pipeline, as they are.
            let root = pipelineRoot
            let sourceIndex = root.flatMap { try? readJSON($0 + "/model_index.json") }
            for name in carriedFolders where !written.contains(name) {
                files += try ModelBundle.copyFolder(root! + "/" + name, root: root!, to: staged + "/" + name).map { name + "/" + $0 }
                index.append((name, sourceIndex?[name] ?? .array([.null, .null])))
                written.insert(name)
                notes.append("\(name)/ carried over from the source pipeline as it was")
            }
            // Folders the model's config implies (a scheduler), unless carried.
            for (_, view) in views {
                for file in pipelineFiles(view) where !written.contains(file.folder) {
                    try FileSystem.makeDirectory(staged + "/" + file.folder)
                    try AtomicFileWriter.write(
                        Array((file.json.serialized(pretty: true) + "\n").utf8), to: staged + "/" + file.folder + "/" + file.file, durable: options.durable)
                    files.append(file.folder + "/" + file.file)
                    index.append((file.folder, .array([.string("diffusers"), .string(file.className)])))
                    written.insert(file.folder)
                }
            }
            let textTowers = extras.filter { $0.role.kind == .textEncoder }
            if !textTowers.isEmpty && !written.contains("text_encoder") {
                var places: [String] = []
                for top in textTowers.map({ String($0.tensor.name.prefix { $0 != "." }) }) where !places.contains(top) { places.append(top) }
                let under = places.map { top in "\"" + commonPrefix(textTowers.map(\.tensor.name).filter { $0.hasPrefix(top + ".") }) + "\"" }
                notes.append("the text encoder (\(textTowers[0].role.description), \(textTowers.count) tensors under "
                    + under.joined(separator: " and ") + ") was NOT converted: no text_encoder/ or tokenizer/ is written, "
                    + "so the pipeline needs them from elsewhere; the tensors stay in the source")
            }
            let otherExtras = extras.filter { $0.role.kind != .textEncoder && !written.contains(String($0.tensor.name.prefix { $0 != "." })) }
            if !otherExtras.isEmpty {
                notes.append("\(otherExtras.count) tensors beside the models (" + Set(otherExtras.map(\.role.description)).sorted().joined(separator: "; ")
                    + ") have no place in a diffusers pipeline and are not written (a canonical folder keeps them)")
            }
            var indexJSON: [(String, JSONValue)] = [
                ("_class_name", .string((sourceIndex?["_class_name"]?.stringValue) ?? pipelineClass ?? "DiffusionPipeline")),
                ("_diffusers_version", .string("0.42.1")),
            ]
            indexJSON += index.sorted { $0.0 < $1.0 }
            try AtomicFileWriter.write(
                Array((JSONValue.object(indexJSON).serialized(pretty: true) + "\n").utf8), to: staged + "/model_index.json", durable: options.durable)
            files.insert("model_index.json", at: 0)
            try FileSystem.replaceFolder(path, with: staged, overwrite: options.overwrite)
            return BundleWriteResult(files: files, tensors: tensors, bytes: bytes, notes: notes)
        } catch {
            FileSystem.removeTree(staged)
            throw error
        }
    }
}

/// The longest common dotted prefix of `names`.
func commonPrefix(_ names: [String]) -> String {
    guard var prefix = names.first.map({ $0.split(separator: ".").map(String.init) }) else { return "" }
    for name in names.dropFirst() {
        let parts = name.split(separator: ".").map(String.init)
        var n = 0
        while n < min(prefix.count, parts.count) && prefix[n] == parts[n] { n += 1 }
        prefix = Array(prefix.prefix(n))
    }
    return prefix.isEmpty ? "" : prefix.joined(separator: ".") + "."
}

/// A JSON file.
func readJSON(_ path: String) throws -> JSONValue {
    let file = try MappedFile(path: path)
    return try file.withBytes { try JSONParser.parse(Array($0)) }
}

/// The diffusers component `view`'s family writes: its folder, class and pipeline class.
func diffusersComponent<V: AnyModelView>(_ view: V) -> (component: String, componentClass: String, pipelineClass: String)? {
    guard let layout = V.Family.layout(.diffusers), case .diffusers(let writer) = layout.writer else { return nil }
    return (writer.component, writer.componentClass, writer.pipelineClass)
}

/// The pipeline folders `view`'s config implies, then its diffusers writer's fixed ones.
func pipelineFiles<V: AnyModelView>(_ view: V) -> [(folder: String, className: String, file: String, json: JSONValue)] {
    var files = V.Family.pipelineFiles(view.typed.config)
    if let layout = V.Family.layout(.diffusers), case .diffusers(let writer) = layout.writer {
        files += writer.extraComponents.filter { extra in !files.contains { $0.folder == extra.folder } }
    }
    return files
}
