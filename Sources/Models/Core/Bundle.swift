import Checkpoints
import Tensors

/// What a tensor of a whole file is when no component claims it, as the family whose code made it (or the bundle,
/// for an optimizer's state) says.
public struct ExtraTensorRole: Sendable, Equatable {
    /// The kinds of extras.
    public enum Kind: String, Sendable {
        /// A frozen buffer the model's code recomputes (a diffusion schedule); checked and dropped when equal.
        case table
        /// Statistics gathered in training (loss history, counts).
        case statistics = "training-statistics"
        /// A text encoder the model conditions on, stored inside the file.
        case textEncoder = "text-encoder"
        /// State of a component that its canonical form does not hold (a quantizer's EMA buffers).
        case componentState = "component-state"
        /// An optimizer's or learning-rate scheduler's state.
        case optimizer
        /// Nothing ditkit knows.
        case unknown
    }

    /// The kind of tensor.
    public let kind: Kind
    /// What it is, in a few words (`diffusion schedule buffer log_at`).
    public let description: String
    /// The family that knows it (nil for the bundle's own classes: optimizer state, unknown).
    public let family: String?
    /// For ``Kind/table``: the table's name for ``ModelFamily/extraTable(_:config:)``.
    public let table: String?

    /// A role of `kind`, described, known by `family`, with the recomputable `table` it is.
    public init(kind: Kind, description: String, family: String? = nil, table: String? = nil) {
        self.kind = kind
        self.description = description
        self.family = family
        self.table = table
    }
}

extension ModelFamily {
    /// Default: the family knows no extra tensor.
    public static func extraTensorRole(_ name: String) -> ExtraTensorRole? { nil }
    /// Default: no extra buffer is recomputed.
    public static func extraTable(_ table: String, config: Config) -> (values: [Float], basis: String)? { nil }
    /// Default: no pipeline folder follows from the config.
    public static func pipelineFiles(_ config: Config) -> [(folder: String, className: String, file: String, json: JSONValue)] { [] }
}

/// Whether a component holds a training checkpoint's EMA weights, its raw weights, or the only copy.
public enum BundleWeights: String, Sendable {
    /// The EMA weights (under `ema.`).
    case ema
    /// The raw weights beside EMA weights (under `model.`).
    case raw
    /// The only weights of this family in the file.
    case only
}

/// One model found in a whole file: a family's layout under one prefix, read as a ``ModelView`` of the tensors it
/// claims (the layout's names under the prefix).
public struct BundleComponent: Sendable {
    /// The component's name in a canonical folder (`dit`, `dit.model` for the raw weights beside the EMA ones).
    public let name: String
    /// The layout found and where.
    public let match: LayoutMatch
    /// EMA, raw or the only weights.
    public let weights: BundleWeights
    /// Whether this is the component a conversion reads by default for its family (EMA over raw, or under the key
    /// asked for).
    public let selected: Bool
    /// The source names of the tensors it claims, in file order.
    public let tensorNames: [String]
    /// The model, or nil when it could not be read (`problem` says why).
    public let view: (any AnyModelView)?
    /// Why the model could not be read (a size the weights cannot give, a name that does not map).
    public let problem: (any Error & Sendable)?
    /// The family's name.
    public var family: String { match.family }
}

/// A tensor no component claims, with what it is.
public struct BundleExtra: Sendable {
    /// The tensor, under its source name.
    public let tensor: TensorInfo
    /// What it is.
    public let role: ExtraTensorRole
}

/// An optimizer's state found in a training checkpoint, summarised.
public struct OptimizerSummary: Sendable {
    /// The path the optimizer's state dict sits under (`opt`, `optimizer_and_scheduler.none.optimizer.module`).
    public let path: String
    /// What it most likely is, from its state's names and its hyper-parameters (`AdamW`, `Adam`, `SGD with momentum`).
    public let kind: String
    /// Tensors of its per-parameter state, and their bytes.
    public let stateTensors: Int
    /// Bytes of the state tensors.
    public let stateBytes: Int
    /// Parameters with state.
    public let parameters: Int
    /// Parameter groups, each with its scalar hyper-parameters (`lr=0.0001`).
    public let groups: [[(String, String)]]
}

/// A whole file or folder as a bundle of components: every model of every family found in it (each layout under
/// each prefix, EMA and raw weights apart), the tensors no model claims ("extras", each classified), the
/// non-tensor values, and the optimizer and scheduler state summarised. Opens a training checkpoint, a pipeline
/// folder or a canonical folder (``CanonicalBundle``) alike.
public struct ModelBundle: Sendable {
    /// The checkpoint the bundle was read from (the first component's, for a canonical folder).
    public let checkpoint: Checkpoint
    /// Every component, in the order their prefixes first appear.
    public let components: [BundleComponent]
    /// Tensors no component claims, in file order.
    public let extras: [BundleExtra]
    /// Optimizers found.
    public let optimizers: [OptimizerSummary]
    /// Learning-rate schedulers found: the path of each and its scalar state (`warmup=7000`), with a guess of its kind.
    public let schedulers: [(path: String, kind: String, values: [(String, String)])]
    /// Top-level values outside the optimizers (`last_epoch`, `last_iter`, `clip_grad_norm`), as (path, text).
    public let trainingValues: [(String, String)]
    /// Things the user should know.
    public let notes: [String]
    /// A canonical folder's manifest (`bundle.json`), nil for other sources.
    public internal(set) var manifest: JSONValue? = nil
    /// A canonical folder's path, nil for other sources.
    public internal(set) var folder: String? = nil

    /// The top-level keys whose contents are flat state dicts (the first component of each component's prefix).
    public var stateDictKeys: [String] {
        var out: [String] = []
        for c in components {
            let key = c.match.prefix.split(separator: ".", maxSplits: 1).first.map(String.init) ?? ""
            if !c.match.prefix.isEmpty, !out.contains(key) { out.append(key) }
        }
        return out
    }

    /// The components in the order reports list them: by family in registry order (the main model first), the
    /// weights read by default before the others, then in file order.
    public var listed: [BundleComponent] {
        let order = ModelFamilies.names
        return components.enumerated().sorted { a, b in
            let ka = (order.firstIndex(of: a.element.match.family) ?? order.count, a.element.selected ? 0 : 1, a.offset)
            let kb = (order.firstIndex(of: b.element.match.family) ?? order.count, b.element.selected ? 0 : 1, b.offset)
            return ka < kb
        }.map(\.element)
    }

    /// The components a conversion writes by default, one per family: the selected ones.
    public var selected: [BundleComponent] { components.filter(\.selected) }

    /// Finds every component of `families` in `checkpoint` and classifies the rest. `options.key` selects which
    /// weights each family's default component is (EMA by default); the other sizes in `options` apply to every
    /// component of a family that reads them. A component that cannot be read is kept with its `problem`. Without
    /// `readModels` no model is read (no view, no tensor data: what `inspect` shows).
    public static func open(
        _ checkpoint: Checkpoint, options: ModelOptions = ModelOptions(), families: [any ModelFamily.Type] = ModelFamilies.all,
        readModels: Bool = true
    ) throws -> ModelBundle {
        if checkpoint.metadata.contains(where: { $0.0 == "ditkit.config" }) {
            // One canonical file: one component, nothing else.
            let view = try ModelFamilies.open(checkpoint, options: options, families: families)
            let match = LayoutMatch(
                family: view.familyName, layout: .canonical, prefix: "", depth: 0, matchedTensors: checkpoint.tensors.count,
                tensorsUnderPrefix: checkpoint.tensors.count, summary: view.layoutSummary)
            let component = BundleComponent(
                name: view.familyName, match: match, weights: .only, selected: true, tensorNames: checkpoint.tensors.map(\.name),
                view: view, problem: nil)
            return ModelBundle(
                checkpoint: checkpoint, components: [component], extras: [], optimizers: [], schedulers: [], trainingValues: [], notes: [])
        }
        let names = checkpoint.tensors.map(\.name)
        var signatures: [LayoutSignature] = []
        for family in families { signatures += LayoutDetector.signatures(of: family) }
        let matches = LayoutDetector.detect(names, signatures: signatures)
        // Each name is claimed by the first match (in detection order) whose prefix it starts with and whose layout's
        // stems it carries; near-linear: only the name's cuts after a `.` of a match prefix's length are looked up.
        var claimed: [String: Int] = [:]
        var notes: [String] = []
        var overlaps = 0
        var claims = Array(repeating: [String](), count: matches.count)
        var byPrefix: [String: [Int]] = [:]
        for (i, match) in matches.enumerated() { byPrefix[match.prefix, default: []].append(i) }
        let stemsOf = matches.map { match in signatures.first { $0.family == match.family && $0.layout == match.layout }?.stems ?? [] }
        let lengths = Set(byPrefix.keys.map(\.utf8.count))
        for name in names where !byPrefix.isEmpty {
            var fits: [Int] = []
            for cut in LayoutDetector.prefixCuts(name, lengths: lengths) {
                guard let candidates = byPrefix[String(name[..<cut])] else { continue }
                let key = name[cut...]
                fits += candidates.filter { i in stemsOf[i].contains { key == $0 || ($0.hasSuffix(".") && key.hasPrefix($0)) } }
            }
            guard let first = fits.min() else { continue }
            if fits.count > 1 {
                overlaps += 1
                if overlaps <= 8 {
                    let other = fits.filter { $0 != first }.min()!
                    notes.append("\(name) fits both \(matches[first].summary) under \"\(matches[first].prefix)\" and "
                        + "\(matches[other].summary) under \"\(matches[other].prefix)\"; read as the first")
                }
            }
            claimed[name] = first
            claims[first].append(name)
        }
        if overlaps > 8 { notes.append("… and \(overlaps - 8) more names that fit two models") }

        // Weights and selection: per family, EMA beside raw; the key asked for wins.
        let wanted = options.key.map { $0.hasSuffix(".") ? $0 : $0 + "." }
        func top(_ prefix: String) -> String { prefix.split(separator: ".", maxSplits: 1).first.map { String($0) + "." } ?? "" }
        var components: [BundleComponent] = []
        var perFamilyOptions = options
        perFamilyOptions.key = nil
        let byFamily = Dictionary(grouping: matches, by: \.family)
        var usedNames = Set<String>()
        for (index, match) in matches.enumerated() {
            let same = byFamily[match.family] ?? [match]
            let hasEMA = same.contains { top($0.prefix) == "ema." }
            let weights: BundleWeights = same.count == 1 ? .only : top(match.prefix) == "ema." ? .ema : hasEMA ? .raw : .only
            let selectedMatch: LayoutMatch = {
                if let wanted, let m = same.first(where: { $0.prefix == wanted || $0.prefix.hasPrefix(wanted) }) { return m }
                if hasEMA, let m = same.first(where: { top($0.prefix) == "ema." }) { return m }
                return same[0]
            }()
            let selected = selectedMatch == match
            // Unique names: the family; the family and the top-level key; the family and the whole prefix; a number.
            var name = selected ? match.family : match.family + "." + (top(match.prefix).isEmpty ? "top" : String(top(match.prefix).dropLast()))
            if usedNames.contains(name) { name = match.family + "." + (match.prefix.isEmpty ? "top" : String(match.prefix.dropLast())) }
            if usedNames.contains(name) { name += "-\(index)" }
            usedNames.insert(name)
            var view: (any AnyModelView)?
            var problem: (any Error & Sendable)?
            if readModels, let family = families.first(where: { ModelFamilies.nameOf($0) == match.family }) {
                do {
                    view = try openComponent(family, checkpoint, match: match, options: perFamilyOptions, only: Set(claims[index]))
                } catch {
                    problem = error
                }
            }
            components.append(BundleComponent(
                name: name, match: match, weights: weights, selected: selected, tensorNames: claims[index], view: view, problem: problem))
        }
        if let wanted, !matches.contains(where: { $0.prefix == wanted || $0.prefix.hasPrefix(wanted) }) {
            throw ModelError.noModelUnderKey(path: checkpoint.path, key: options.key!, found: matches.map(\.prefix))
        }

        let optimizers = optimizerSummaries(checkpoint)
        let optimizerRoots = optimizers.map(\.path)
        let schedulers = schedulerSummaries(checkpoint)
        let pipelineFolders = checkpoint.format == .diffusersPipeline ? Set(checkpoint.files.compactMap { $0.split(separator: "/").count > 1 ? String($0.split(separator: "/")[0]) : nil }) : []
        var extras: [BundleExtra] = []
        for tensor in checkpoint.tensors where claimed[tensor.name] == nil {
            let top = String(tensor.name.prefix { $0 != "." })
            let role = pipelineFolders.contains(top) && top.hasPrefix("text_encoder")
                ? ExtraTensorRole(kind: .textEncoder, description: "pipeline text encoder (\(top)/)")
                : self.role(of: tensor.name, families: families, optimizerRoots: optimizerRoots)
            extras.append(BundleExtra(tensor: tensor, role: role))
        }
        let skipped = optimizerRoots + schedulers.map(\.path) + ["args"]
        let trainingValues = Inspectable.compactValues(checkpoint.values.filter { value in
            !skipped.contains { value.path == $0 || value.path.hasPrefix($0 + ".") } && !value.path.contains(".param_groups.")
                && !components.contains { c in value.path.hasPrefix(c.match.prefix) && !c.match.prefix.isEmpty }
        })
        return ModelBundle(
            checkpoint: checkpoint, components: components, extras: extras, optimizers: optimizers, schedulers: schedulers,
            trainingValues: trainingValues, notes: notes)
    }

    /// What an unclaimed tensor is: the first family that knows it, else optimizer state (under an optimizer's
    /// path, or a top-level key naming one), else unknown.
    static func role(of name: String, families: [any ModelFamily.Type], optimizerRoots: [String]) -> ExtraTensorRole {
        for family in families { if let role = extraRole(family, name) { return role } }
        let topKey = String(name.prefix { $0 != "." }).lowercased()
        if optimizerRoots.contains(where: { name.hasPrefix($0 + ".") })
            || ["opt", "optimizer", "optimizer_and_scheduler", "scheduler", "lr_scheduler", "schedulers", "grad_scaler"].contains(topKey)
        {
            return ExtraTensorRole(kind: .optimizer, description: "optimizer or scheduler state")
        }
        return ExtraTensorRole(kind: .unknown, description: "no component or family claims it")
    }

    static func extraRole<F: ModelFamily>(_ family: F.Type, _ name: String) -> ExtraTensorRole? { F.extraTensorRole(name) }

    /// Every learning-rate scheduler state in the file: values under a path ending in `scheduler` (or
    /// `scheduler.module`, microsoft/VQ-Diffusion's wrapper), or an item of a `schedulers` list (the Cerebras Model
    /// Zoo trainer's), summarised as its scalar state.
    static func schedulerSummaries(_ checkpoint: Checkpoint) -> [(path: String, kind: String, values: [(String, String)])] {
        var roots: [String] = []
        var byRoot: [String: [CheckpointValue]] = [:]
        for value in checkpoint.values {
            let parts = value.path.split(separator: ".").map(String.init)
            let root: String
            if let s = parts.lastIndex(where: { ["scheduler", "lr_scheduler"].contains($0.lowercased()) }), s + 1 < parts.count {
                root = parts[...s].joined(separator: ".")
            } else if let s = parts.lastIndex(of: "schedulers"), s + 2 < parts.count, Int(parts[s + 1]) != nil {
                root = parts[...(s + 1)].joined(separator: ".")
            } else {
                continue
            }
            if byRoot[root] == nil { roots.append(root) }
            byRoot[root, default: []].append(value)
        }
        return roots.map { root in
            let values = Inspectable.compactValues(byRoot[root]!).map { value -> (String, String) in
                let key = value.0.dropFirst(root.count + 1)
                return (String(key.hasPrefix("module.") ? key.dropFirst("module.".count) : key), value.1)
            }
            let keys = Set(values.map { String($0.0.split(separator: ".").last ?? "") })
            let kind: String
            if keys.contains("patience") && keys.contains("warmup") { kind = "ReduceLROnPlateau with warmup" }
            else if keys.contains("patience") { kind = "ReduceLROnPlateau" }
            else if keys.contains("step_size") { kind = "StepLR" }
            else if keys.contains("T_max") { kind = "CosineAnnealingLR" }
            else if keys.contains("lr_lambdas") { kind = "LambdaLR" }
            else if keys.contains("initial_learning_rate") {
                // cerebras.pytorch.optim.lr_scheduler classes keep their own parameters; the class is not stored.
                kind = "Cerebras LR scheduler (class not stored; its parameters follow)"
            }
            else { kind = "scheduler" }
            return (root, kind, values)
        }
    }

    /// Every optimizer state dict in the file: a path holding `state.N.…` tensors and `param_groups`.
    static func optimizerSummaries(_ checkpoint: Checkpoint) -> [OptimizerSummary] {
        var roots: [String] = []
        var byRoot: [String: [TensorInfo]] = [:]
        for tensor in checkpoint.tensors {
            let parts = tensor.name.split(separator: ".").map(String.init)
            guard let s = parts.lastIndex(of: "state"), s + 2 < parts.count, Int(parts[s + 1]) != nil else { continue }
            let root = parts[..<s].joined(separator: ".")
            if byRoot[root] == nil { roots.append(root) }
            byRoot[root, default: []].append(tensor)
        }
        // Every root's param_groups in one pass over the values: scalars as they are, list items (betas) as one list.
        var groupsByRoot: [String: [Int: [(String, String)]]] = [:]
        var lists: [String: Int] = [:]  // "root|group|key" → position of the list in its group
        // A group entry held as a tensor (a Cerebras optimizer's `lr`): named with its dtype and shape, not read.
        for tensor in checkpoint.tensors {
            guard let range = tensor.name.firstRange(of: ".param_groups.") else { continue }
            let root = String(tensor.name[..<range.lowerBound])
            let rest = tensor.name[range.upperBound...].split(separator: ".")
            guard byRoot[root] != nil, rest.count == 2, let g = Int(rest[0]) else { continue }
            let shape = "(" + tensor.shape.map(String.init).joined(separator: ", ") + (tensor.shape.count == 1 ? ",)" : ")")
            groupsByRoot[root, default: [:]][g, default: []].append((String(rest[1]), "<\(tensor.dtype.rawValue) tensor \(shape)>"))
        }
        for value in checkpoint.values {
            guard let range = value.path.firstRange(of: "param_groups."), range.lowerBound == value.path.startIndex
                || value.path[value.path.index(before: range.lowerBound)] == "."
            else { continue }
            let root = range.lowerBound == value.path.startIndex ? "" : String(value.path[..<value.path.index(before: range.lowerBound)])
            guard byRoot[root] != nil else { continue }
            let rest = value.path[range.upperBound...].split(separator: ".")
            guard rest.count >= 2, let g = Int(rest[0]), rest[1] != "params" else { continue }
            let key = String(rest[1])
            if rest.count == 2 {
                groupsByRoot[root, default: [:]][g, default: []].append((key, value.text))
            } else if rest.count == 3 {
                let id = "\(root)|\(g)|\(key)"
                // The group's entries are created on first use: a list (betas) may come before any scalar (a
                // Cerebras optimizer keeps `lr` as a tensor).
                var entries = groupsByRoot[root, default: [:]][g, default: []]
                if let at = lists[id] {
                    entries[at].1 = String(entries[at].1.dropLast()) + ", " + value.text + "]"
                } else {
                    lists[id] = entries.count
                    entries.append((key, "[" + value.text + "]"))
                }
                groupsByRoot[root, default: [:]][g] = entries
            }
        }
        return roots.map { root in
            let tensors = byRoot[root]!
            let base = root.isEmpty ? "" : root + "."
            let stateNames = Set(tensors.map { String($0.name.split(separator: ".").last!) })
            let parameters = Set(tensors.map { $0.name.dropFirst(base.count + "state.".count).prefix { $0 != "." } }).count
            let groups = groupsByRoot[root] ?? [:]
            let group0 = Dictionary(groups[0] ?? [], uniquingKeysWith: { a, _ in a })
            let kind: String
            if stateNames.contains("beta1_power") && stateNames.contains("exp_avg") {
                // cerebras.pytorch.optim: AdamW forces l2_regularization_rate to 0 and decays by weight_decay; Adam
                // forces weight_decay to 0 and puts its decay in l2_regularization_rate. With neither, the state
                // cannot tell them apart, and says so.
                let decay = group0["weight_decay"].flatMap(Double.init) ?? 0
                let l2 = group0["l2_regularization_rate"].flatMap(Double.init) ?? 0
                let which = decay != 0 ? "AdamW" : l2 != 0 ? "Adam" : "AdamW or Adam (no weight decay: the state cannot tell which)"
                kind = "Cerebras \(which) (exp_avg, exp_avg_sq, beta1_power, beta2_power)"
            } else if stateNames.contains("exp_avg") && stateNames.contains("exp_avg_sq") {
                kind = group0["decoupled_weight_decay"] == "True" ? "AdamW" : "Adam" + (group0["amsgrad"] == "True" ? " (AMSGrad)" : "")
            } else if stateNames.contains("momentum_buffer") {
                kind = "SGD with momentum"
            } else if stateNames.contains("square_avg") {
                kind = "RMSprop"
            } else {
                kind = "unknown (state: " + stateNames.sorted().joined(separator: ", ") + ")"
            }
            let bytes = tensors.reduce(0) { Checked.saturatingAdd($0, $1.byteCount) }
            return OptimizerSummary(
                path: root, kind: kind, stateTensors: tensors.count, stateBytes: bytes, parameters: parameters,
                groups: groups.keys.sorted().map { groups[$0]! })
        }
    }
}

/// Opens `match` of `family` in `checkpoint`, reading only the `only` tensors; options the family does not read
/// (another family's sizes) are left out rather than refused.
func openComponent<F: ModelFamily>(
    _ family: F.Type, _ checkpoint: Checkpoint, match: LayoutMatch, options: ModelOptions, only: Set<String>
) throws -> any AnyModelView {
    var options = options
    let reads = F.modelOptions
    if !reads.contains("heads") { options.heads = nil }
    if !reads.contains("inputSize") { options.inputSize = nil }
    if !reads.contains("numClasses") { options.numClasses = nil }
    if !reads.contains("embedderBlock") { options.embedderBlock = nil }
    return try ModelView<F>.open(checkpoint, matches: [match], options: options, only: only)
}

/// Values shown compactly (lists of scalars as one list), for `inspect` and the bundle's summaries.
package enum Inspectable {
    /// Values as (path, text) rows, with runs of list items (`betas.0`, `betas.1`) shown as one list.
    package static func compactValues(_ values: [CheckpointValue]) -> [(String, String)] {
        var rows: [(String, String)] = []
        var i = 0
        while i < values.count {
            let v = values[i]
            if let dot = v.path.lastIndex(of: "."), v.path[v.path.index(after: dot)...] == "0", !v.isOpaqueObject {
                let parent = String(v.path[..<dot])
                var items: [String] = []
                var j = i
                while j < values.count, !values[j].isOpaqueObject, values[j].path == "\(parent).\(items.count)" {
                    items.append(values[j].text)
                    j += 1
                }
                if items.count > 1 {
                    let shown = items.count > 12 ? items.prefix(10) + ["…", items.last!] : items[...]
                    rows.append((parent, "[" + shown.joined(separator: ", ") + "]"))
                    i = j
                    continue
                }
            }
            rows.append((v.path, v.isOpaqueObject ? "\(v.kind) (opaque, not executed)" : v.text))
            i += 1
        }
        return rows
    }
}

extension ModelBundle {
    /// The bundle as JSON (`inspect --json`'s `bundle`, `schemas/inspect.schema.json`): components, extras grouped by
    /// what they are, optimizers, schedulers and training values.
    public var json: JSONValue {
        var order: [String] = []
        var groups: [String: [BundleExtra]] = [:]
        for extra in extras {
            if groups[extra.role.description] == nil { order.append(extra.role.description) }
            groups[extra.role.description, default: []].append(extra)
        }
        return .object([
            ("components", .array(components.map { c in
                .object([
                    ("name", .string(c.name)), ("family", .string(c.family)), ("layout", .string(c.match.layout.rawValue)),
                    ("prefix", .string(c.match.prefix)), ("weights", .string(c.weights.rawValue)), ("selected", .bool(c.selected)),
                    ("tensors", .int(c.tensorNames.count)),
                ])
            })),
            ("extras", .array(order.map { key in
                let group = groups[key]!
                return .object([
                    ("kind", .string(group[0].role.kind.rawValue)), ("description", .string(key)),
                    ("family", group[0].role.family.map { .string($0) } ?? .null), ("tensors", .int(group.count)),
                    ("bytes", .int(group.reduce(0) { Checked.saturatingAdd($0, $1.tensor.byteCount) })),
                    ("examples", .array(group.prefix(3).map { .string($0.tensor.name) })),
                ])
            })),
            ("optimizers", .array(optimizers.map { o in
                .object([
                    ("path", .string(o.path)), ("kind", .string(o.kind)), ("state_tensors", .int(o.stateTensors)),
                    ("state_bytes", .int(o.stateBytes)), ("parameters", .int(o.parameters)),
                    ("groups", .array(o.groups.map { g in .object(g.map { ($0.0, .string($0.1)) }) })),
                ])
            })),
            ("schedulers", .array(schedulers.map { s in
                .object([("path", .string(s.path)), ("kind", .string(s.kind)), ("values", .object(s.values.map { ($0.0, .string($0.1)) }))])
            })),
            ("training_values", .object(trainingValues.map { ($0.0, .string($0.1)) })),
        ])
    }
}
