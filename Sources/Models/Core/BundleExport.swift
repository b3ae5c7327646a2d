import Checkpoints
import Tensors

/// A frozen extra buffer checked equal to what its model's code recomputes, and so not written: rebuilt from the
/// component's config when the file is written back.
public struct DroppedBuffer: Sendable {
    /// The tensor's source name.
    public let name: String
    /// The family and its table name (``ModelFamily/extraTable(_:config:)``).
    public let family: String
    /// The table's name for the family.
    public let table: String
    /// The component whose config it was checked against.
    public let component: String
    /// Its dtype and shape in the source.
    public let dtype: DType
    /// Its shape in the source.
    public let shape: [Int]
    /// Where the values come from, in words.
    public let basis: String
}

/// What a whole-file conversion wrote.
public struct BundleWriteResult: Sendable {
    /// Files written, relative to the output folder (or the one file).
    public let files: [String]
    /// Tensors written, and their bytes.
    public let tensors: Int
    /// Bytes of tensor data written.
    public let bytes: Int
    /// Where every non-weight tensor went, what was dropped, cast or not converted.
    public let notes: [String]
}

/// How a whole file is written.
public struct BundleWriteOptions: Sendable {
    /// Casts and drops, applied to the components' weights (extras are kept as they are).
    public var conversion = ConversionOptions()
    /// Replace an existing output.
    public var overwrite = false
    /// `fsync` every file before it is renamed into place.
    public var durable = false
    /// A whole file written back (`writeWhole`): a `torch.save` zip (the default) or a Cerebras `.mdl`.
    public var container: StateDictContainer = .pt
    /// `.mdl`: how tensors are stored (nil: LZ4 chunks, as the Cerebras saver).
    public var compression: MDLWriteOptions.Compression?
    /// Defaults: nothing cast or dropped, no overwrite, no fsync, a `.pt` whole file.
    public init() {}
}

extension ModelBundle {
    /// The file name of a canonical folder's manifest.
    public static let manifestName = "bundle.json"
    /// The file name of a canonical folder's extras.
    public static let extrasName = "extras.safetensors"

    /// The component views, or the first component's problem.
    func readableComponents() throws -> [(BundleComponent, any AnyModelView)] {
        try components.map { component in
            guard let view = component.view else {
                throw component.problem ?? ModelError.mapping(path: checkpoint.path, problems: ["\(component.name): no family reads it"])
            }
            return (component, view)
        }
    }

    /// The extras that equal, bit for bit, the buffers their family's code recomputes for the component of that
    /// family under the same top-level key (or the only one): those are dropped. A buffer farther apart throws
    /// ``ModelError/bufferDiffers(tensor:index:stored:expected:basis:)``; one within an ulp stays an extra, noted.
    func checkedTables(notes: inout [String]) throws -> [DroppedBuffer] {
        var dropped: [DroppedBuffer] = []
        for extra in extras where extra.role.kind == .table {
            guard let familyName = extra.role.family, let table = extra.role.table else { continue }
            let top = String(extra.tensor.name.prefix { $0 != "." })
            let candidates = components.filter { $0.family == familyName && $0.view != nil }
            guard let component = candidates.first(where: { $0.match.prefix.hasPrefix(top + ".") }) ?? (candidates.count == 1 ? candidates[0] : nil),
                let view = component.view
            else {
                notes.append("\(extra.tensor.name) (\(extra.role.description)) kept in \(ModelBundle.extrasName): no \(familyName) model in the file to check it against")
                continue
            }
            guard let (expected, basis) = extraTableValues(view, table), extra.tensor.dtype == .f32,
                expected.count == extra.tensor.elementCount
            else {
                notes.append("\(extra.tensor.name) (\(extra.role.description)) kept in \(ModelBundle.extrasName): its dtype or size is not the recomputed table's")
                continue
            }
            let stored = try OutputTensor(name: extra.tensor.name, tensor: extra.tensor).float32()
            var worst = 0
            for i in stored.indices where stored[i].bitPattern != expected[i].bitPattern {
                let distance = ulpDistance(stored[i], expected[i])
                if distance > 1 {
                    throw ModelError.bufferDiffers(tensor: extra.tensor.name, index: i, stored: stored[i], expected: expected[i], basis: basis)
                }
                worst = max(worst, distance)
            }
            if worst > 0 {
                notes.append("\(extra.tensor.name) is within 1 ulp of \(basis) but not bit-identical (rounding, e.g. of an EMA copy's "
                    + "averaging): kept in \(ModelBundle.extrasName)")
                continue
            }
            dropped.append(DroppedBuffer(
                name: extra.tensor.name, family: familyName, table: table, component: component.name, dtype: extra.tensor.dtype,
                shape: extra.tensor.shape, basis: basis))
        }
        return dropped
    }

    /// Writes the bundle as a canonical folder: one canonical safetensors file per component (`<family>.safetensors`
    /// for the weights read by default, `<family>.<key>.safetensors` for the others, e.g. the raw weights beside
    /// EMA ones), `extras.safetensors` with every tensor no component holds under its source name (recomputable
    /// buffers checked and dropped), and `bundle.json`: the components, where every extra went, the non-tensor
    /// values and the source's tensor order. Built in a temporary folder and renamed into place.
    public func writeCanonical(to path: String, options: BundleWriteOptions = BundleWriteOptions()) throws -> BundleWriteResult {
        if let overlap = FileSystem.overlap(output: path, input: checkpoint.path) {
            throw CheckpointError.io(path: path, operation: "write", detail: overlap)
        }
        if FileSystem.exists(path) && !options.overwrite { throw CheckpointError.outputExists(path: path) }
        let views = try readableComponents()
        var notes: [String] = notes
        let dropped = try checkedTables(notes: &notes)
        let droppedNames = Set(dropped.map(\.name))
        let staged = try FileSystem.temporaryDirectory(beside: path)
        do {
            var files: [String] = [], tensors = 0, bytes = 0
            var componentJSON: [JSONValue] = []
            for (component, view) in views {
                let plan = try view.erasedPlan(to: .canonical, options: options.conversion)
                var export = ExportOptions()
                export.durable = options.durable
                export.source = checkpoint
                export.sourceLayout = view.layout
                let file = component.name + ".safetensors"
                _ = try plan.write(to: staged + "/" + file, options: export)
                files.append(file)
                tensors += plan.outputs.count
                bytes += plan.byteCount
                notes += plan.notes.map { "\(component.name): \($0)" }
                if !plan.casts.isEmpty { notes.append("\(component.name): \(plan.casts.count) tensors cast") }
                componentJSON.append(.object([
                    ("name", .string(component.name)), ("file", .string(file)), ("family", .string(component.family)),
                    ("layout", .string(component.match.layout.rawValue)), ("prefix", .string(component.match.prefix)),
                    ("weights", .string(component.weights.rawValue)), ("selected", .bool(component.selected)),
                    ("tensors", .int(component.tensorNames.count)),
                ]))
                let other = components.filter { $0.family == component.family && $0.name != component.name }
                if component.selected, !other.isEmpty {
                    notes.append("\(component.name).safetensors holds the \(component.weights == .ema ? "EMA" : component.weights.rawValue) weights under \"\(component.match.prefix)\"; "
                        + other.map { "\($0.name).safetensors the ones under \"\($0.match.prefix)\"" }.joined(separator: ", "))
                }
            }
            // A source pipeline's other components (text encoder, tokenizer, scheduler) are kept as they are.
            let carried = carriedFolders
            if let root = pipelineRoot, !carried.isEmpty {
                let into = staged + "/" + ModelBundle.carriedFolderName
                try FileSystem.makeDirectory(into)
                try FileSystem.copyFile(root + "/model_index.json", into + "/model_index.json")
                files.append(ModelBundle.carriedFolderName + "/model_index.json")
                for name in carried {
                    files += try ModelBundle.copyFolder(root + "/" + name, root: root, to: into + "/" + name)
                        .map { ModelBundle.carriedFolderName + "/" + name + "/" + $0 }
                }
                notes.append("the source pipeline's " + carried.map { $0 + "/" }.joined(separator: ", ") + " kept as they are in "
                    + ModelBundle.carriedFolderName + "/ (with its model_index.json)")
            }
            let kept = extras.filter { extra in
                !droppedNames.contains(extra.tensor.name) && !carried.contains(String(extra.tensor.name.prefix { $0 != "." }))
            }
            if !kept.isEmpty {
                let outputs = kept.map { OutputTensor(name: $0.tensor.name, tensor: $0.tensor) }
                try SafetensorsWriter.write(
                    outputs, metadata: [("format", "pt"), ("ditkit.extras", "1")], to: staged + "/" + ModelBundle.extrasName,
                    durable: options.durable)
                files.append(ModelBundle.extrasName)
                tensors += outputs.count
                bytes += outputs.reduce(0) { $0 + $1.byteCount }
            }
            notes += ModelBundle.whereExtrasWent(kept, dropped: dropped)
            if let dtype = options.conversion.dtype, !kept.isEmpty {
                notes.append("the cast to \(dtype.rawValue) applies to the models' weights only; the extras keep their dtypes")
            }
            let manifest = JSONValue.object([
                ("ditkit.bundle", .int(1)),
                ("source", .object([
                    ("file", .string(FileSystem.fileName(checkpoint.path))), ("format", .string(checkpoint.format.rawValue)),
                ])),
                ("components", .array(componentJSON)),
                ("extras", .array(kept.map { extra in
                    .object([
                        ("name", .string(extra.tensor.name)), ("kind", .string(extra.role.kind.rawValue)),
                        ("description", .string(extra.role.description)), ("family", extra.role.family.map { .string($0) } ?? .null),
                    ])
                })),
                ("dropped", .array(dropped.map { d in
                    .object([
                        ("name", .string(d.name)), ("family", .string(d.family)), ("table", .string(d.table)),
                        ("component", .string(d.component)), ("dtype", .string(d.dtype.rawValue)),
                        ("shape", .array(d.shape.map { .int($0) })), ("basis", .string(d.basis)),
                    ])
                })),
                ("state_dicts", .array(stateDictKeys.map { .string($0) })),
                ("order", .array(checkpoint.tensors.map { .string($0.name) })),
                ("values", .array(checkpoint.values.map { v in
                    .object([
                        ("path", .string(v.path)), ("kind", .string(v.kind)), ("value", v.json), ("text", .string(v.text)),
                        ("opaque", .bool(v.isOpaqueObject)),
                    ])
                })),
                ("notes", .array(notes.map { .string($0) })),
            ])
            try AtomicFileWriter.write(
                Array((manifest.serialized(pretty: true) + "\n").utf8), to: staged + "/" + ModelBundle.manifestName, durable: options.durable)
            files.insert(ModelBundle.manifestName, at: 0)
            try FileSystem.replaceFolder(path, with: staged, overwrite: options.overwrite)
            return BundleWriteResult(files: files, tensors: tensors, bytes: bytes, notes: notes)
        } catch {
            FileSystem.removeTree(staged)
            throw error
        }
    }

    /// One note per kind of extra: how many tensors went where.
    static func whereExtrasWent(_ kept: [BundleExtra], dropped: [DroppedBuffer]) -> [String] {
        var notes: [String] = []
        var order: [String] = []
        var byKind: [String: [BundleExtra]] = [:]
        for extra in kept {
            let key = extra.role.description
            if byKind[key] == nil { order.append(key) }
            byKind[key, default: []].append(extra)
        }
        for key in order {
            let group = byKind[key]!
            let names = group.prefix(3).map(\.tensor.name).joined(separator: ", ") + (group.count > 3 ? ", …" : "")
            notes.append("\(key): \(group.count) \(group.count == 1 ? "tensor" : "tensors") (\(names)) kept under the source names in \(extrasName)")
        }
        if !dropped.isEmpty {
            notes.append("\(dropped.count) frozen \(dropped.count == 1 ? "buffer" : "buffers") ("
                + dropped.map { FileSystem.fileName($0.name) }.joined(separator: ", ")
                + ") equal bit for bit to \(dropped[0].basis): dropped, recomputed when written back")
        }
        return notes
    }

    /// Opens a canonical folder written by ``writeCanonical(to:options:)``: each component file, the extras, the
    /// manifest. Throws `ModelError.mapping` naming a file the manifest lists that is missing or holds another model.
    public static func openCanonicalFolder(
        _ path: String, options: OpenOptions = OpenOptions(), families: [any ModelFamily.Type] = ModelFamilies.all
    ) throws -> ModelBundle {
        let manifestPath = path + "/" + manifestName
        let manifest: JSONValue
        do {
            let file = try MappedFile(path: manifestPath)
            manifest = try file.withBytes { try JSONParser.parse(Array($0)) }
        } catch let error as ModelError {
            throw error
        } catch {
            throw ModelError.mapping(path: manifestPath, problems: ["not a readable bundle manifest (\(error))"])
        }
        guard manifest["ditkit.bundle"]?.intValue == 1, let entries = manifest["components"]?.arrayValue else {
            throw ModelError.mapping(path: manifestPath, problems: ["not a ditkit bundle manifest (ditkit.bundle 1 with components)"])
        }
        var components: [BundleComponent] = []
        var first: Checkpoint?
        for entry in entries {
            guard let name = entry["name"]?.stringValue, let file = entry["file"]?.stringValue, !file.contains("/"),
                let prefix = entry["prefix"]?.stringValue, let layout = entry["layout"]?.stringValue
            else { throw ModelError.mapping(path: manifestPath, problems: ["a component without name, file, layout or prefix"]) }
            let checkpoint = try Checkpoint.open(path + "/" + file, options: options)
            first = first ?? checkpoint
            let view = try ModelFamilies.open(checkpoint, families: families)
            guard view.familyName == entry["family"]?.stringValue else {
                throw ModelError.mapping(path: checkpoint.path, problems: ["holds a \(view.familyName) model, the manifest says \(entry["family"]?.stringValue ?? "none")"])
            }
            let match = LayoutMatch(
                family: view.familyName, layout: Layout(layout), prefix: prefix, depth: 0, matchedTensors: checkpoint.tensors.count,
                tensorsUnderPrefix: checkpoint.tensors.count)
            components.append(BundleComponent(
                name: name, match: match, weights: BundleWeights(rawValue: entry["weights"]?.stringValue ?? "") ?? .only,
                selected: entry["selected"]?.boolValue ?? true, tensorNames: checkpoint.tensors.map(\.name), view: view, problem: nil))
        }
        var extras: [BundleExtra] = []
        let listed = Dictionary((manifest["extras"]?.arrayValue ?? []).compactMap { e in e["name"]?.stringValue.map { ($0, e) } }, uniquingKeysWith: { a, _ in a })
        if FileSystem.exists(path + "/" + extrasName) {
            let checkpoint = try Checkpoint.open(path + "/" + extrasName, options: options)
            first = first ?? checkpoint
            for tensor in checkpoint.tensors {
                let e = listed[tensor.name]
                let role = ExtraTensorRole(
                    kind: ExtraTensorRole.Kind(rawValue: e?["kind"]?.stringValue ?? "") ?? .unknown,
                    description: e?["description"]?.stringValue ?? "kept as it was", family: e?["family"]?.stringValue)
                extras.append(BundleExtra(tensor: tensor, role: role))
            }
        }
        guard let checkpoint = first else { throw ModelError.mapping(path: path, problems: ["the bundle lists no component and has no extras"]) }
        var bundle = ModelBundle(
            checkpoint: checkpoint, components: components, extras: extras, optimizers: [], schedulers: [], trainingValues: [], notes: [])
        bundle.manifest = manifest
        bundle.folder = path
        return bundle
    }

    /// Whether `path` is a canonical folder (it holds `bundle.json`).
    public static func isCanonicalFolder(_ path: String) -> Bool { FileSystem.exists(path + "/" + manifestName) }

    /// Writes the bundle back as one torch file in its source layout: each component in the layout it was read from
    /// under its prefix, the extras under their names, the dropped buffers recomputed, in the source's tensor order;
    /// the top-level state dicts (`model`, `ema`) as flat dicts, other tensors (optimizer state) nested by their dotted
    /// names; int and str values written back, the others named in a note (they stay in `bundle.json`).
    public func writeWhole(to path: String, options: BundleWriteOptions = BundleWriteOptions()) throws -> BundleWriteResult {
        if let overlap = FileSystem.overlap(output: path, input: folder ?? checkpoint.path) {
            throw CheckpointError.io(path: path, operation: "write", detail: overlap)
        }
        var notes: [String] = []
        var outputs: [OutputTensor] = []
        let views = try readableComponents()
        for (component, view) in views {
            let target = component.match.layout == .canonical ? (configSourceLayout(view) ?? .canonical) : component.match.layout
            let plan = try view.erasedPlan(to: target, options: options.conversion)
            let strip = stripPrefix(view, target)
            outputs += plan.outputs.map { $0.renamed(component.match.prefix + String($0.name.dropFirst($0.name.hasPrefix(strip) ? strip.count : 0))) }
            notes += plan.notes.map { "\(component.name): \($0)" }
        }
        outputs += extras.map { OutputTensor(name: $0.tensor.name, tensor: $0.tensor) }
        var recomputed: [(name: String, basis: String)] = []
        for entry in manifest?["dropped"]?.arrayValue ?? [] {
            guard let name = entry["name"]?.stringValue, let table = entry["table"]?.stringValue, let owner = entry["component"]?.stringValue,
                let view = views.first(where: { $0.0.name == owner })?.1, let (values, basis) = extraTableValues(view, table),
                let shape = entry["shape"]?.arrayValue?.compactMap(\.intValue), shape.reduce(1, *) == values.count
            else {
                throw ModelError.mapping(path: folder ?? checkpoint.path, problems: ["a dropped buffer cannot be recomputed: \(entry.serialized().prefix(120))"])
            }
            outputs.append(OutputTensor(name: name, dtype: .f32, shape: shape) { sink in try values.withUnsafeBytes { try sink.write($0) } })
            recomputed.append((name, basis))
        }
        // One note per basis: the buffers recomputed from it.
        for basis in recomputed.map(\.basis).reduce(into: [String](), { if !$0.contains($1) { $0.append($1) } }) {
            let names = recomputed.filter { $0.basis == basis }.map(\.name)
            notes.append("\(names.count) \(names.count == 1 ? "buffer" : "buffers") recomputed (\(basis)): " + names.prefix(4).joined(separator: ", ")
                + (names.count > 4 ? ", …" : ""))
        }
        let order = Dictionary((manifest?["order"]?.arrayValue ?? []).enumerated().compactMap { i, v in v.stringValue.map { ($0, i) } }, uniquingKeysWith: { a, _ in a })
        outputs = outputs.enumerated().sorted { (order[$0.element.name] ?? Int.max, $0.offset) < (order[$1.element.name] ?? Int.max, $1.offset) }.map(\.element)
        if !order.isEmpty {
            let written = Set(outputs.map(\.name))
            let missing = order.keys.filter { !written.contains($0) }.sorted()
            let added = written.filter { order[$0] == nil }.sorted()
            if !missing.isEmpty { notes.append("not written back (\(missing.count)): " + missing.prefix(6).joined(separator: ", ")) }
            if !added.isEmpty { notes.append("written but not in the source (\(added.count)): " + added.prefix(6).joined(separator: ", ")) }
        }
        let stateDicts = (manifest?["state_dicts"]?.arrayValue?.compactMap(\.stringValue)) ?? stateDictKeys
        var root = NestedDict()
        for output in outputs {
            let top = String(output.name.prefix { $0 != "." })
            if stateDicts.contains(top), output.name.count > top.count {
                root.insert([top, String(output.name.dropFirst(top.count + 1))], .tensor(output))
            } else {
                root.insert(output.name.split(separator: ".").map(String.init), .tensor(output))
            }
        }
        var skipped: [String] = []
        for value in manifest?["values"]?.arrayValue ?? [] {
            guard let path = value["path"]?.stringValue, value["opaque"]?.boolValue != true else { continue }
            let parts = path.split(separator: ".").map(String.init)
            let leaf: TorchSaveValue?
            switch (value["kind"]?.stringValue, value["value"]) {
            case ("int", let v?): leaf = v.intValue.map { .int($0) }
            case ("str", let v?): leaf = v.stringValue.map { .string($0) }
            case ("float", let v?):
                // Finite floats are JSON numbers; nan and ±inf are kept as Python writes them.
                leaf = v.doubleValue.map { .double($0) }
                    ?? ["nan": Double.nan, "inf": .infinity, "-inf": -.infinity][v.stringValue ?? ""].map { .double($0) }
            case ("bool", let v?): leaf = v.boolValue.map { .bool($0) }
            case ("None", _): leaf = TorchSaveValue.none
            default: leaf = nil
            }
            if let leaf, root.insert(parts, leaf) { continue }
            skipped.append(path)
        }
        if !skipped.isEmpty {
            notes.append("\(skipped.count) non-tensor \(skipped.count == 1 ? "value" : "values") (\(skipped.prefix(4).joined(separator: ", "))"
                + (skipped.count > 4 ? ", …" : "") + ") not written (only int, float, bool, None and str values are); they are in the folder's \(ModelBundle.manifestName)")
        }
        notes.append("tensors outside the state dicts (" + (manifest?["state_dicts"]?.arrayValue?.compactMap(\.stringValue) ?? stateDictKeys).joined(separator: ", ")
            + ") are nested by their dotted names with string keys; an optimizer's state is kept for its tensors, not to be loaded by load_state_dict")
        if options.container == .mdl {
            try MDLWriter.write(
                root.mdlValue, to: path,
                options: MDLWriteOptions(compression: options.compression ?? .lz4, overwrite: options.overwrite, durable: options.durable))
        } else {
            try TorchWriter.write(root.value, to: path, overwrite: options.overwrite, durable: options.durable)
        }
        return BundleWriteResult(files: [FileSystem.fileName(path)], tensors: outputs.count, bytes: outputs.reduce(0) { $0 + $1.byteCount }, notes: notes)
    }
}

/// The values of `view`'s family's extra buffer `table` for its config.
func extraTableValues<V: AnyModelView>(_ view: V, _ table: String) -> (values: [Float], basis: String)? {
    V.Family.extraTable(table, config: view.typed.config)
}

/// The layout `view`'s config says its weights came from (a canonical file's `source_layout`).
func configSourceLayout<V: AnyModelView>(_ view: V) -> Layout? { view.typed.config.sourceLayout }

/// The name prefix `target`'s writer puts before every name (a Cerebras file's `model.`), which a component's own
/// prefix replaces.
func stripPrefix<V: AnyModelView>(_ view: V, _ target: Layout) -> String {
    guard let layout = V.Family.layout(target), case .stateDict(_, let namePrefix, _) = layout.writer else { return "" }
    return namePrefix
}

/// Distance in float32 ulps between two finite floats (Int.max for NaN or infinities that differ).
func ulpDistance(_ a: Float, _ b: Float) -> Int {
    guard a.isFinite, b.isFinite else { return a.bitPattern == b.bitPattern ? 0 : Int.max }
    func ordered(_ x: Float) -> Int { x.sign == .minus ? -Int(x.bitPattern & 0x7fff_ffff) : Int(x.bitPattern) }
    return abs(ordered(a) - ordered(b))
}

/// An ordered dict tree being built for `TorchWriter`.
struct NestedDict {
    var entries: [(String, Node)] = []

    indirect enum Node {
        case leaf(TorchSaveValue)
        case dict(NestedDict)
    }

    /// Inserts `value` at `path`; false when the path runs into a leaf or an existing entry.
    @discardableResult
    mutating func insert(_ path: [String], _ value: TorchSaveValue) -> Bool {
        guard let key = path.first else { return false }
        let index = entries.firstIndex { $0.0 == key }
        if path.count == 1 {
            guard index == nil else { return false }
            entries.append((key, .leaf(value)))
            return true
        }
        if let index {
            guard case .dict(var child) = entries[index].1 else { return false }
            let done = child.insert(Array(path.dropFirst()), value)
            entries[index].1 = .dict(child)
            return done
        }
        var child = NestedDict()
        guard child.insert(Array(path.dropFirst()), value) else { return false }
        entries.append((key, .dict(child)))
        return true
    }

    /// The tree as a `.mdl` structure (dicts with string keys, the same leaves).
    var mdlValue: MDLNode {
        .dict(entries.map { key, node in
            switch node {
            case .dict(let child): return (key, child.mdlValue)
            case .leaf(let leaf):
                switch leaf {
                case .tensor(let t): return (key, .tensor(t))
                case .int(let i): return (key, .int(i))
                case .string(let s): return (key, .string(s))
                case .double(let d): return (key, .float(d))
                case .bool(let b): return (key, .bool(b))
                case .none: return (key, .none)
                case .dict(let pairs): return (key, NestedDict.mdl(.dict(pairs)))
                }
            }
        })
    }

    /// A torch value as a `.mdl` leaf or dict.
    static func mdl(_ value: TorchSaveValue) -> MDLNode {
        switch value {
        case .tensor(let t): return .tensor(t)
        case .int(let i): return .int(i)
        case .string(let s): return .string(s)
        case .double(let d): return .float(d)
        case .bool(let b): return .bool(b)
        case .none: return .none
        case .dict(let pairs): return .dict(pairs.map { ($0.0, mdl($0.1)) })
        }
    }

    var value: TorchSaveValue {
        .dict(entries.map { key, node in
            switch node {
            case .leaf(let v): return (key, v)
            case .dict(let d): return (key, d.value)
            }
        })
    }
}
