import Checkpoints
import Tensors

/// Layouts ditkit writes.
public enum TargetLayout: String, Sendable, CaseIterable {
    case canonical, original, diffusers, cerebras

    var layout: Layout? {
        switch self {
        case .canonical: return nil
        case .original: return .original
        case .diffusers: return .diffusers
        case .cerebras: return .cerebras
        }
    }
}

public struct ConversionOptions: Sendable {
    /// Cast floating-point tensors to this dtype (round-to-nearest-even).
    public var dtype: DType?
    /// Allow dropping the learned-sigma output channels (a Cerebras head has none).
    public var dropSigma = false
    /// Canonical tensors the user allows to be dropped when the target cannot hold them.
    public var drop: Set<String> = []

    public init(dtype: DType? = nil, dropSigma: Bool = false, drop: Set<String> = []) {
        self.dtype = dtype
        self.dropSigma = dropSigma
        self.drop = drop
    }
}

/// What a conversion writes: the tensors under the target's names, in order, the config the target describes,
/// and everything the user should be told (casts, dropped or recomputed tensors, semantic differences).
public struct ConversionPlan {
    public let target: TargetLayout
    public let outputs: [OutputTensor]
    /// The config of the written model (differs from the source's when sigma channels are dropped).
    public let config: DiTConfig
    public let notes: [String]
    /// One line per tensor whose dtype changes.
    public let casts: [String]

    public var byteCount: Int { outputs.reduce(0) { $0 + $1.byteCount } }
}

extension ModelView {
    /// The canonical tensors as producers, in canonical order.
    public func canonicalOutputs() -> [OutputTensor] {
        tensors.map { entry in ModelView.producer(entry.name, entry.source, entry.shape, entry.dtype, config: config) }
    }

    static func producer(_ name: String, _ source: CanonicalSource, _ shape: [Int], _ dtype: DType, config: DiTConfig) -> OutputTensor {
        switch source {
        case .tensor(let t):
            return OutputTensor(name: name, tensor: t, shape: shape)
        case .rows(let parts):
            return OutputTensor(name: name, dtype: dtype, shape: shape) { sink in
                for part in parts { try part.write(to: sink) }
            }
        case .convTransposeWeight(let w):
            // Wt (D, C, p, p) → W (p²·C, D) with W[(pi·p+qi)·C + c, d] = Wt[d, c, pi, qi].
            return OutputTensor(name: name, dtype: dtype, shape: shape) { sink in
                let (d, c, p) = (w.shape[0], w.shape[1], w.shape[2])
                let size = dtype.size
                let source = try w.contiguousBytes()
                var out = [UInt8](repeating: 0, count: source.count)
                for pi in 0..<p { for qi in 0..<p { for ch in 0..<c {
                    let row = (pi * p + qi) * c + ch
                    for col in 0..<d {
                        let from = (((col * c + ch) * p + pi) * p + qi) * size
                        let to = (row * d + col) * size
                        for b in 0..<size { out[to + b] = source[from + b] }
                    }
                } } }
                try sink.write(out)
            }
        case .convTransposeBias(let b, let positions):
            return OutputTensor(name: name, dtype: dtype, shape: shape) { sink in
                let bytes = try b.contiguousBytes()
                for _ in 0..<positions { try sink.write(bytes) }
            }
        }
    }

    /// Plans the conversion of this model to `target`. Throws, naming the tensors, when the target cannot hold
    /// something and the user did not allow dropping it.
    public func plan(to target: TargetLayout, options: ConversionOptions = ConversionOptions()) throws -> ConversionPlan {
        try ModelView.plan(
            canonical: canonicalOutputs(), sources: Dictionary(tensors.map { ($0.name, $0.source) }, uniquingKeysWith: { a, _ in a }),
            config: config, to: target, options: options)
    }

    /// Plans writing `canonical` tensors (of a model with `config`) in `target`'s layout. `sources` says where
    /// canonical tensors came from, so that splitting what was concatenated can pass the original tensors through.
    public static func plan(
        canonical canonicalList: [OutputTensor], sources: [String: CanonicalSource], config sourceConfig: DiTConfig,
        to target: TargetLayout, options: ConversionOptions = ConversionOptions()
    ) throws -> ConversionPlan {
        var notes: [String] = []
        let config = sourceConfig
        var resultConfig = sourceConfig
        let canonical = Dictionary(canonicalList.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var outputs: [OutputTensor] = []

        switch target {
        case .canonical:
            outputs = canonicalList
        case .original, .diffusers, .cerebras:
            let layout = target.layout!
            let scheme = Schemes.scheme(for: layout)!
            var sigmaDropped = false
            if layout == .cerebras && config.outputHead == .linear {
                if config.outChannels == 2 * config.inChannels {
                    guard options.dropSigma else {
                        throw ModelError.lossy(
                            "a Cerebras checkpoint has no learned-sigma output: its ConvTranspose head holds \(config.inChannels) "
                                + "channels, this model predicts \(config.outChannels). Pass --drop-sigma to drop the "
                                + "\(config.outChannels - config.inChannels) sigma channels of final.linear (lossy)")
                    }
                    sigmaDropped = true
                } else if config.outChannels != config.inChannels {
                    throw ModelError.lossy("a Cerebras head predicts \(config.inChannels) channels; this model predicts \(config.outChannels)")
                }
            }
            var targetConfig = config
            if sigmaDropped {
                targetConfig.outChannels = config.inChannels
                notes.append("dropped the \(config.outChannels - config.inChannels) learned-sigma channels of final.linear (--drop-sigma)")
            }
            if layout == .diffusers && !config.hasNullClass {
                throw ModelError.lossy("diffusers' label table always has a null-class row (\(config.numClasses)+1 rows); this model's has \(config.labelRows) rows")
            }
            var dropped: [String] = []
            for (name, spec) in Schemes.canonicalTensors(config, includeOptional: Set(Schemes.canonical.filter(\.optional).map(\.template))) {
                let block = spec.perBlock ? Int(name.split(separator: ".")[1]) : nil
                func resolve(_ s: String) -> String { block.map { s.replacingBlock($0) } ?? s }
                let have = canonical[name]
                switch scheme.form(spec.template) {
                case .absent:
                    if let have { dropped.append(try checkDroppable(name, have, target: layout, config: config, options: options)) }
                case .same(let targetName):
                    var shape = spec.shape(targetConfig)
                    if layout == .cerebras && spec.template == "pos_embed" { shape = [config.tokens, config.hiddenSize] }
                    if let have {
                        outputs.append(have.renamed(resolve(targetName), shape: shape))
                    } else {
                        let dtype = canonical["patch_embed.weight"]?.dtype ?? .f32
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
                    guard let have else { continue }
                    for j in 0..<config.depth { outputs.append(have.renamed(template.replacingCopy(j))) }
                case .convTranspose(let weightName, let biasName):
                    guard let have else { continue }
                    if spec.template.hasSuffix("weight") {
                        if case .convTransposeWeight(let w)? = sources[name] {
                            outputs.append(OutputTensor(name: weightName, tensor: w))
                        } else {
                            outputs.append(linearToConvTransposeWeight(have, config: config, name: weightName))
                        }
                    } else {
                        if case .convTransposeBias(let b, _)? = sources[name] {
                            outputs.append(OutputTensor(name: biasName, tensor: b))
                        } else {
                            outputs.append(try linearToConvTransposeBias(have, config: config, name: biasName))
                        }
                    }
                }
            }
            // Keep the target layout's conventional order.
            let order = Dictionary(Schemes.sourceTensors(layout, config: targetConfig).enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
            outputs.sort { (order[$0.name] ?? Int.max) < (order[$1.name] ?? Int.max) }
            if !dropped.isEmpty { notes.append(contentsOf: dropped) }
            notes.append(contentsOf: semanticNotes(from: config, to: layout))
            if layout == .cerebras { outputs = outputs.map { $0.renamed(Schemes.cerebras.conventionalPrefix.dropFirst("model.".count) + $0.name) } }
            resultConfig = targetConfig
            resultConfig.source = layout.rawValue
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

    /// Numeric semantics the target layout's code has that differ from this model's.
    static func semanticNotes(from c: DiTConfig, to layout: Layout) -> [String] {
        var out: [String] = []
        switch layout {
        case .diffusers:
            if c.timestepShift != 1 { out.append("diffusers computes timestep frequencies with shift 1, this model used \(c.timestepShift): outputs will differ slightly (ditkit verify shows where)") }
            if c.timestepInput == .table { out.append("this model took integer timesteps through a table; diffusers computes the sinusoid") }
        case .original:
            if c.timestepShift != 0 { out.append("the original DiT computes timestep frequencies with shift 0, this model used \(c.timestepShift)") }
            if c.mlpNormEps != 1e-6 { out.append("the original DiT's MLP LayerNorm eps is 1e-6, this model used \(c.mlpNormEps)") }
            if c.gelu != .tanh { out.append("the original DiT uses tanh GELU, this model used \(c.gelu.rawValue)") }
        case .cerebras:
            if c.gelu != .erf { out.append("Cerebras uses exact (erf) GELU, this model used \(c.gelu.rawValue)") }
            if c.timestepShift != 0 { out.append("Cerebras' timestep table uses shift 0, this model used \(c.timestepShift)") }
            if c.mlpNormEps != 1e-6 { out.append("Cerebras' LayerNorm eps is 1e-6, this model's MLP norm used \(c.mlpNormEps)") }
        case .unknown: break
        }
        return out
    }

    /// A canonical tensor the target does not store: allowed when it equals what the target recomputes, or
    /// when the user named it in `--drop`.
    static func checkDroppable(_ name: String, _ tensor: OutputTensor, target: Layout, config: DiTConfig, options: ConversionOptions) throws -> String {
        if options.drop.contains(name) { return "dropped \(name) (--drop)" }
        let expected: [Float]?
        switch name {
        case "pos_embed": expected = Tables.positionTable(hidden: config.hiddenSize, grid: config.gridSize)
        case "t_embed.table": expected = Tables.timestepTable(dim: config.frequencyEmbeddingSize, maxPeriod: config.maxPeriod)
        case "diffusion.sqrt_alphas_cumprod": expected = Tables.diffusionSchedule().sqrtAlphasCumprod
        case "diffusion.sqrt_one_minus_alphas_cumprod": expected = Tables.diffusionSchedule().sqrtOneMinus
        default: expected = nil
        }
        if var expected, let actual = try? tensor.float32(), actual.count == expected.count {
            // A table stored in a narrower dtype is compared with the recomputed one rounded the same way.
            if tensor.dtype != .f32, tensor.dtype.isFloatingPoint { expected = try rounded(expected, to: tensor.dtype) }
            let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
            if worst <= 1e-6 {
                return "\(name) is not stored by the \(target.rawValue) layout; it equals the table that layout recomputes (max |Δ| \(worst)), so nothing is lost"
            }
            throw ModelError.lossy(
                "\(name) differs from the table the \(target.rawValue) layout recomputes (max |Δ| \(worst)): converting would change the "
                    + "model. Pass --drop \(name) to convert anyway")
        }
        throw ModelError.lossy("the \(target.rawValue) layout cannot hold \(name); pass --drop \(name) to convert without it")
    }

    /// A tensor the target stores but this model does not (e.g. pos_embed from diffusers into the original layout).
    /// Recomputed in float64, rounded to f32, then cast to `dtype` (the dtype of the model's weights).
    /// A recomputed table may hold at most this many elements, or as many as the model's own weights when they are
    /// more (2^24: 64 MiB of float32; DiT-XL/2's 512 px table is 1.2M): its size comes from a config value
    /// (input_size, diffusers' sample_size), so a small file must not make ditkit compute a huge one.
    static let recomputedTableFloor = 1 << 24

    static func recomputed(_ template: String, name: String, shape: [Int], config: DiTConfig, dtype: DType, notes: inout [String]) throws -> OutputTensor {
        let elements = (try? checkedElementCount(shape)) ?? Int.max
        let weights = ParameterCount(config: config, layout: .diffusers).total
        guard elements <= max(recomputedTableFloor, weights) else {
            throw ModelError.budget(
                "recomputing \(name) \(shape) for input size \(config.inputSize) would take \(elements) numbers, more than the "
                    + "model's \(weights) weights and the \(recomputedTableFloor) any table may take: check input_size (sample_size, --input-size)")
        }
        let values: [Float]
        switch template {
        case "pos_embed": values = Tables.positionTable(hidden: config.hiddenSize, grid: config.gridSize)
        case "t_embed.table": values = Tables.timestepTable(dim: config.frequencyEmbeddingSize, maxPeriod: config.maxPeriod)
        case "diffusion.sqrt_alphas_cumprod": values = Tables.diffusionSchedule().sqrtAlphasCumprod
        case "diffusion.sqrt_one_minus_alphas_cumprod": values = Tables.diffusionSchedule().sqrtOneMinus
        default: throw ModelError.lossy("the target needs \(name), which this model does not have")
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

    /// Canonical linear head weight (p²·Cout, D) → ConvTranspose weight (D, C, p, p), sigma rows dropped.
    static func linearToConvTransposeWeight(_ linear: OutputTensor, config: DiTConfig, name: String) -> OutputTensor {
        let (d, c, cout, p) = (config.hiddenSize, config.inChannels, config.outChannels, config.patchSize)
        let dtype = linear.dtype
        return OutputTensor(name: name, dtype: dtype, shape: [d, c, p, p]) { sink in
            let source = try linear.contiguousBytes()
            let size = dtype.size
            var out = [UInt8](repeating: 0, count: d * c * p * p * size)
            for col in 0..<d { for ch in 0..<c { for pi in 0..<p { for qi in 0..<p {
                let from = (((pi * p + qi) * cout + ch) * d + col) * size
                let to = (((col * c + ch) * p + pi) * p + qi) * size
                for b in 0..<size { out[to + b] = source[from + b] }
            } } } }
            try sink.write(out)
        }
    }

    /// Canonical linear head bias (p²·Cout) → ConvTranspose bias (C); every patch position must agree.
    static func linearToConvTransposeBias(_ linear: OutputTensor, config: DiTConfig, name: String) throws -> OutputTensor {
        let (c, cout, p) = (config.inChannels, config.outChannels, config.patchSize)
        let size = linear.dtype.size
        let bytes = try linear.contiguousBytes()
        var first = [UInt8](repeating: 0, count: c * size)
        var differing: [Int] = []
        for position in 0..<(p * p) {
            for ch in 0..<c {
                let at = (position * cout + ch) * size
                let value = Array(bytes[at..<(at + size)])
                if position == 0 { first.replaceSubrange((ch * size)..<((ch + 1) * size), with: value) }
                else if value != Array(first[(ch * size)..<((ch + 1) * size)]) { differing.append(ch) }
            }
        }
        guard differing.isEmpty else {
            throw ModelError.lossy(
                "final.linear.bias differs across the \(p * p) patch positions (channels \(Set(differing).sorted())): a "
                    + "ConvTranspose head holds one bias per channel, so the Cerebras layout cannot hold this model exactly")
        }
        return OutputTensor(name: name, dtype: linear.dtype, shape: [c]) { sink in try sink.write(first) }
    }
}

extension OutputTensor {
    /// The producer's bytes collected in memory (small tensors only: heads, biases).
    public func contiguousBytes() throws -> [UInt8] {
        let collector = CollectingSink()
        try produce(collector)
        return collector.bytes
    }

    /// The elements as float32, streamed straight into the result (one pass over the source; non-f32 dtypes are
    /// widened chunk by chunk).
    public func float32() throws -> [Float] {
        let count = byteCount / dtype.size
        var failure: Error?
        let out = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            let sink = FloatSink(destination: buffer, dtype: dtype)
            do {
                try produce(sink)
                try sink.finish()
            } catch {
                failure = error
                buffer.initialize(repeating: 0)
            }
            initialized = count
        }
        if let failure { throw failure }
        return out
    }

    /// The same elements under a new name and a shape of the same size.
    func renamed(_ newName: String, shape: [Int]) -> OutputTensor {
        OutputTensor(name: newName, dtype: dtype, shape: shape, produce: produce)
    }

    /// Rows [k·n/parts, (k+1)·n/parts) of this tensor: read directly when the source is one checkpoint tensor,
    /// otherwise filtered from the stream.
    func rowSlice(_ k: Int, of parts: Int, name: String, shape: [Int], source: CanonicalSource?) -> OutputTensor {
        let total = byteCount
        let length = total / parts
        let range = (k * length)..<((k + 1) * length)
        if case .tensor(let t)? = source {
            return OutputTensor(name: name, dtype: dtype, shape: shape) { sink in
                try t.write(bytes: range, to: sink)
            }
        }
        let produce = self.produce
        return OutputTensor(name: name, dtype: dtype, shape: shape) { sink in
            let window = WindowSink(range: range, downstream: sink)
            try produce(window)
        }
    }
}

/// Writes a stream of little-endian `dtype` elements into a float32 buffer, converting as it goes.
final class FloatSink: ByteSink {
    let destination: UnsafeMutableBufferPointer<Float>
    let dtype: DType
    private var written = 0  // elements
    private var chunker: ElementChunker

    init(destination: UnsafeMutableBufferPointer<Float>, dtype: DType) {
        self.destination = destination
        self.dtype = dtype
        chunker = ElementChunker(elementSize: dtype.size)
    }

    func write(_ chunk: UnsafeRawBufferPointer) throws {
        try chunker.feed(chunk) { bytes in
            let count = bytes.count / dtype.size
            guard written + count <= destination.count else {
                throw ModelError.config("a tensor produced more elements than its shape holds")
            }
            try DTypeConversion.toFloat32(bytes, dtype: dtype, count: count, into: UnsafeMutableBufferPointer(rebasing: destination[written..<(written + count)]))
            written += count
        }
    }

    func finish() throws {
        guard chunker.isAligned, written == destination.count else {
            throw ModelError.config("a tensor produced \(written) of \(destination.count) elements")
        }
    }
}

/// Collects bytes in memory.
final class CollectingSink: ByteSink {
    var bytes: [UInt8] = []
    func write(_ chunk: UnsafeRawBufferPointer) throws { bytes += chunk }
}

/// Forwards only the bytes of a stream that fall in `range`.
final class WindowSink: ByteSink {
    let range: Range<Int>
    let downstream: ByteSink
    private var position = 0
    init(range: Range<Int>, downstream: ByteSink) {
        self.range = range
        self.downstream = downstream
    }
    func write(_ chunk: UnsafeRawBufferPointer) throws {
        let start = position, end = position + chunk.count
        position = end
        let lo = max(start, range.lowerBound), hi = min(end, range.upperBound)
        guard lo < hi else { return }
        try downstream.write(UnsafeRawBufferPointer(rebasing: chunk[(lo - start)..<(hi - start)]))
    }
}
