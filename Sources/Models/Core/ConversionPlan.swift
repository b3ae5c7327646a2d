import Checkpoints
import Tensors

/// What a conversion may change or drop, as the caller allows.
public struct ConversionOptions: Sendable {
    /// Cast floating-point tensors to this dtype (round-to-nearest-even).
    public var dtype: DType?
    /// Allow dropping the learned-sigma output channels (a Cerebras head has none).
    public var dropSigma = false
    /// Canonical tensors the caller allows to be dropped when the target cannot hold them.
    public var drop: Set<String> = []

    /// Options allowing nothing to be cast or dropped unless given.
    public init(dtype: DType? = nil, dropSigma: Bool = false, drop: Set<String> = []) {
        self.dtype = dtype
        self.dropSigma = dropSigma
        self.drop = drop
    }
}

/// What a conversion writes: the tensors under the target's names, in order, the config the target describes,
/// and everything the user should be told (casts, dropped or recomputed tensors, semantic differences).
public struct ConversionPlan<Family: ModelFamily>: Sendable {
    /// The layout written.
    public let target: Layout
    /// The tensors to write, under the target's names, in the target's order; each streams its bytes when written.
    public let outputs: [OutputTensor]
    /// The config of the written model (differs from the source's when sigma channels are dropped).
    public let config: Family.Config
    /// What the user should be told: dropped, recomputed or adapted tensors and numeric differences of the target's code.
    public let notes: [String]
    /// One line per tensor whose dtype changes.
    public let casts: [String]

    /// Bytes of all tensor data to write (headers and metadata excluded).
    public var byteCount: Int { outputs.reduce(0) { $0 + $1.byteCount } }
}

extension ModelView {
    /// The canonical tensors as producers, in canonical order.
    public func canonicalOutputs() -> [OutputTensor] {
        tensors.map { ModelView.producer($0) }
    }

    static func producer(_ entry: CanonicalTensor) -> OutputTensor {
        switch entry.source {
        case .tensor(let t):
            return OutputTensor(name: entry.name, tensor: t, shape: entry.shape)
        case .rows(let parts):
            return OutputTensor(name: entry.name, dtype: entry.dtype, shape: entry.shape) { sink in
                for part in parts { try part.write(to: sink) }
            }
        case .transformed(let transform, let parts):
            return transform.canonical(from: parts, name: entry.name, shape: entry.shape, dtype: entry.dtype)
        }
    }

    /// Where each canonical tensor came from, by name.
    public var sources: [String: CanonicalSource] {
        Dictionary(tensors.map { ($0.name, $0.source) }, uniquingKeysWith: { a, _ in a })
    }

    /// Plans the conversion of this model to `target`. Throws, naming the tensors, when the target cannot hold
    /// something and the caller did not allow dropping it.
    public func plan(to target: Layout, options: ConversionOptions = ConversionOptions()) throws -> ConversionPlan<Family> {
        try ConversionPlan<Family>.make(canonical: canonicalOutputs(), sources: sources, config: config, to: target, options: options)
    }
}

extension ConversionPlan {
    /// Plans writing `canonical` tensors (of a model with `config`) in `target`'s layout. `sources` says where
    /// canonical tensors came from, so that splitting what was concatenated (or undoing a transform) passes the
    /// stored tensors through.
    public static func make(
        canonical canonicalList: [OutputTensor], sources: [String: CanonicalSource], config: Family.Config,
        to target: Layout, options: ConversionOptions = ConversionOptions()
    ) throws -> ConversionPlan {
        var notes: [String] = []
        var resultConfig = config
        let canonical = Dictionary(canonicalList.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var outputs: [OutputTensor] = []

        if target == .canonical {
            outputs = canonicalList
        } else {
            guard let layout = Family.layout(target) else {
                throw ModelError.invalidOption(
                    name: "target", problem: "\(Family.name) has no \(target) layout; it has " + Family.targets.map(\.rawValue).joined(separator: ", "))
            }
            let (targetConfig, prepared) = try layout.prepare(config, options)
            notes += prepared
            var dropped: [String] = []
            for (name, spec) in Family.allCanonicalTensors(config) {
                let block = spec.perBlock ? Int(name.split(separator: ".")[1]) : nil
                func resolve(_ s: String) -> String { block.map { s.replacingBlock($0) } ?? s }
                let have = canonical[name]
                switch layout.form(spec.template) {
                case .absent:
                    if let have { dropped.append(try checkDroppable(name, spec.template, have, target: target, config: config, options: options)) }
                case .same(let targetName):
                    let shape = layout.storedShapes[spec.template]?(targetConfig) ?? spec.shape(targetConfig)
                    if let have {
                        outputs.append(have.renamed(resolve(targetName), shape: shape))
                    } else {
                        let dtype = canonicalList.first { $0.dtype.isFloatingPoint }?.dtype ?? .f32
                        outputs.append(try recomputed(spec.template, name: resolve(targetName), shape: shape, config: config, dtype: dtype, notes: &notes))
                    }
                case .rows(let names):
                    guard let have else { continue }
                    let partRows = spec.shape(config)[0] / names.count
                    for (k, partName) in names.enumerated() {
                        var shape = spec.shape(config)
                        shape[0] = partRows
                        if case .rows(let parts)? = sources[name], parts.count == names.count {
                            outputs.append(OutputTensor(name: resolve(partName), tensor: parts[k], shape: shape))
                        } else {
                            outputs.append(have.rowSlice(k, of: names.count, name: resolve(partName), shape: shape, source: sources[name]))
                        }
                    }
                case .copies(let template):
                    var copy = have
                    if copy == nil, spec.optional, Family.recomputedTable(spec.template, config: config) != nil {
                        // A frozen table the target stores in every block (VQ-Diffusion's attention masks).
                        let dtype = canonicalList.first { $0.dtype.isFloatingPoint }?.dtype ?? .f32
                        copy = try recomputed(spec.template, name: name, shape: spec.shape(targetConfig), config: config, dtype: dtype, notes: &notes)
                    }
                    guard let copy else { continue }
                    for j in 0..<config.depth { outputs.append(copy.renamed(template.replacingCopy(j))) }
                case .transformed(let transform):
                    guard let have else { continue }
                    if case .transformed(let from, let parts)? = sources[name], from.sourceNames == transform.sourceNames, type(of: from) == type(of: transform) {
                        outputs += zip(transform.sourceNames, parts).map { OutputTensor(name: resolve($0.0), tensor: $0.1) }
                    } else {
                        outputs += try transform.sources(from: have, config: targetConfig).map { $0.renamed(resolve($0.name)) }
                    }
                }
            }
            // Keep the target layout's conventional order.
            let order = Dictionary(Family.sourceTensors(target, config: targetConfig).enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
            outputs.sort { (order[$0.name] ?? Int.max) < (order[$1.name] ?? Int.max) }
            notes += dropped
            notes += Family.semanticNotes(from: config, to: target)
            if case .stateDict(_, let namePrefix, _) = layout.writer, !namePrefix.isEmpty {
                outputs = outputs.map { $0.renamed(namePrefix + $0.name) }
            }
            resultConfig = targetConfig
            resultConfig.sourceLayout = target
        }

        var casts: [String] = []
        if let dtype = options.dtype {
            outputs = outputs.map { output in
                guard output.dtype != dtype, output.dtype.isFloatingPoint else { return output }
                casts.append("\(output.name): \(output.dtype.rawValue) → \(dtype.rawValue)")
                return output.casting(to: dtype)
            }
        }
        return ConversionPlan(target: target, outputs: outputs, config: resultConfig, notes: notes, casts: casts)
    }

    /// A canonical tensor the target does not store: allowed when it equals the table the target recomputes (within
    /// `TableDifference.equalWithinUlps` ulps of its stored dtype: the platform's cos/sin rounding), or when the caller
    /// named it in `options.drop`. Throws `ModelError.tableDiffers` (the tensor, max |Δ| and ulps) for a table farther
    /// apart, `ModelError.cannotHold` for a tensor that is no recomputed table.
    static func checkDroppable(_ name: String, _ template: String, _ tensor: OutputTensor, target: Layout, config: Family.Config, options: ConversionOptions) throws -> String {
        if options.drop.contains(name) { return "dropped \(name) (allowed to drop)" }
        if let actual = try? tensor.float32(),
            let (difference, _) = try Family.tableDifference(template, config: config, stored: actual, dtype: tensor.dtype)
        {
            let angles = Family.recomputedTableAngles(template, config: config)
            let unit = tensor.dtype == .f64 ? "f32" : tensor.dtype.rawValue
            let lead = "\(name) is not stored by the \(target) layout; it equals the table that layout recomputes"
            if difference.ulps == 0 {
                return "\(lead) (max |Δ| \(difference.maxAbs)), so nothing is lost"
            }
            if difference.ulps <= TableDifference.equalWithinUlps {
                return "\(lead) within \(difference.ulps) \(difference.ulps == 1 ? "ulp" : "ulps") of \(unit) (cos/sin rounding\(angles == nil ? "" : ", counted in ulps of each angle"); max |Δ| \(difference.maxAbs)), so nothing is lost"
            }
            throw ModelError.tableDiffers(tensor: name, target: target, maxAbsDifference: difference.maxAbs, ulps: difference.ulps, dtype: tensor.dtype)
        }
        throw ModelError.cannotHold(tensor: name, target: target, detail: "the layout does not store it")
    }

    /// A recomputed table may hold at most this many elements, or as many as the model's own weights when they are
    /// more (2^24: 64 MiB of float32): its size comes from a config value, so a small file must not make ditkit
    /// compute a huge one.
    static var recomputedTableFloor: Int { 1 << 24 }

    /// A tensor the target stores but this model does not (e.g. pos_embed from diffusers into the original layout),
    /// recomputed by the family as its source code computes it, then cast to `dtype` (the dtype of the weights).
    static func recomputed(_ template: String, name: String, shape: [Int], config: Family.Config, dtype: DType, notes: inout [String]) throws -> OutputTensor {
        let elements = (try? checkedElementCount(shape)) ?? Int.max
        // The model's own weights: its canonical tensors that are not optional tables.
        let weights = Family.canonicalTensors(config).reduce(0) { Checked.saturatingAdd($0, (try? checkedElementCount($1.spec.shape(config))) ?? Int.max) }
        guard elements <= max(recomputedTableFloor, weights) else {
            throw ModelError.budget(
                "recomputing \(name) \(shape) for \(Family.tableSizeSource(template, config: config)) would take \(elements) numbers, "
                    + "more than the model's \(weights) weights and the \(recomputedTableFloor) any table may take: check that value")
        }
        guard let values = Family.recomputedTable(template, config: config) else {
            throw ModelError.lossy("the target needs \(name), which this model does not have")
        }
        notes.append("\(name) recomputed (the source does not store it)" + (dtype == .f32 ? "" : ", in \(dtype.rawValue) like the model's weights"))
        let table = OutputTensor(name: name, dtype: .f32, shape: shape) { sink in
            try values.withUnsafeBytes { try sink.write($0) }
        }
        return table.casting(to: dtype)
    }

    /// `values` rounded to `dtype` and widened back (round-to-nearest-even, as a cast does).
    static func rounded(_ values: [Float], to dtype: DType) throws -> [Float] {
        var narrow = [UInt8](repeating: 0, count: values.count * dtype.size)
        try values.withUnsafeBufferPointer { src in try narrow.withUnsafeMutableBytes { try DTypeConversion.fromFloat32(src, to: dtype, into: $0) } }
        var back = [Float](repeating: 0, count: values.count)
        try narrow.withUnsafeBytes { raw in try back.withUnsafeMutableBufferPointer { try DTypeConversion.toFloat32(raw, dtype: dtype, count: values.count, into: $0) } }
        return back
    }
}
