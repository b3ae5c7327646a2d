import Checkpoints
import Models
import Tensors

/// What one canonical tensor of two models is, compared weight by weight (no forward pass).
public enum TensorDiffStatus: String, Sendable, CaseIterable {
    /// Same dtype, same shape, same bytes.
    case identical
    /// Different dtypes whose values are equal once both are widened (f16 values stored as f32, …).
    case equalWidened = "equal-widened"
    /// Stored by one side only, and equal (within `TableDifference.equalWithinUlps` ulps, the converter's rule) to the frozen table the other
    /// side's layout recomputes (the original DiT's `pos_embed` against a diffusers folder).
    case recomputed
    /// Same shape, values differ (max |Δ| and relative L2 say by how much).
    case different
    /// Present on both sides with different shapes.
    case shapeDiffers = "shape-differs"
    /// Stored by one side only, and training state rather than a weight (optional, not trained, no table the code
    /// recomputes: the original VQ-VAE's EMA-quantizer statistics): the function is the same without it.
    case stateOnly = "state-only"
    /// Only in A.
    case onlyA = "only-a"
    /// Only in B.
    case onlyB = "only-b"

    /// Whether this status says the two sides hold the same weights for the tensor.
    public var agrees: Bool { self == .identical || self == .equalWidened || self == .recomputed || self == .stateOnly }
}

/// One canonical tensor compared: its name, what each side stores, the verdict and the error statistics.
public struct TensorDiff: Sendable {
    /// The canonical name (`blocks.0.attn.qkv.weight`).
    public let name: String
    /// The verdict.
    public let status: TensorDiffStatus
    /// The dtype on each side (nil where the side does not store the tensor).
    public let dtypes: (a: DType?, b: DType?)
    /// The canonical shape on each side (nil where absent).
    public let shapes: (a: [Int]?, b: [Int]?)
    /// Elements compared (0 when nothing was).
    public let elements: Int
    /// Elements whose widened values differ.
    public let differing: Int
    /// max |a − b| over the widened values (nil when nothing was compared; +∞ when one side holds a NaN the other
    /// does not).
    public let maxAbs: Double?
    /// ‖a − b‖₂ / ‖a‖₂ (‖a − b‖₂ alone when ‖a‖₂ is 0; nil when nothing was compared).
    public let relativeL2: Double?
}

/// The weights-level comparison of two models: every canonical tensor of either side, in canonical order.
public struct WeightDiffReport: Sendable {
    /// How each side is named in reports (its path), with the layout it was read as.
    public let a: (name: String, layout: String), b: (name: String, layout: String)
    /// Every canonical tensor of either side.
    public let tensors: [TensorDiff]
    /// Notes on how the sides were read (values assumed, variants chosen), prefixed by the side.
    public let notes: [String]

    /// Whether every tensor is bit-identical, equal after widening, a recomputed table equal to the stored one, or
    /// training state one side does not keep.
    public var same: Bool { tensors.allSatisfy(\.status.agrees) }

    /// How many tensors have each status.
    public func count(_ status: TensorDiffStatus) -> Int { tensors.filter { $0.status == status }.count }

    /// The summary line: counts per status and the verdict.
    public var summary: String {
        let parts = TensorDiffStatus.allCases.compactMap { s -> String? in
            let n = count(s)
            return n == 0 ? nil : "\(n) \(s.rawValue)"
        }
        return "\(tensors.count) tensors: " + parts.joined(separator: ", ")
            + (same ? " — the same weights" : " — the weights differ")
    }

    /// The report as text: both sides, every tensor that is not bit-identical (all of them with `all`), the summary.
    public func text(all: Bool = false) -> String {
        var lines = ["a  \(a.name) (\(a.layout))", "b  \(b.name) (\(b.layout))"]
        for note in notes { lines.append("note: " + note) }
        let shown = all ? tensors : tensors.filter { $0.status != .identical }
        if !shown.isEmpty {
            let rows = shown.map { t -> [String] in
                [t.name, WeightDiffReport.shapeText(t), t.dtypes.a?.rawValue ?? "—", t.dtypes.b?.rawValue ?? "—",
                 t.status.rawValue, WeightDiffReport.number(t.maxAbs), WeightDiffReport.number(t.relativeL2)]
            }
            lines.append("")
            lines.append(WeightDiffReport.render([["tensor", "shape", "a", "b", "result", "max |Δ|", "rel L2"]] + rows))
        }
        lines.append("")
        lines.append(summary)
        return lines.joined(separator: "\n")
    }

    static func number(_ v: Double?) -> String {
        guard let v else { return "" }
        return v == 0 ? "0" : NumberFormat.scientific(v, fractionDigits: 2)
    }

    /// Columns padded to their widest cell (by characters), two spaces apart.
    static func render(_ rows: [[String]]) -> String {
        var widths = [Int](repeating: 0, count: rows.map(\.count).max() ?? 0)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count) }
                .joined(separator: "  ").trimmingTrailingSpaces()
        }.joined(separator: "\n")
    }

    static func shapeText(_ t: TensorDiff) -> String {
        func text(_ s: [Int]?) -> String { s.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" } ?? "—" }
        if t.shapes.a == t.shapes.b || t.shapes.b == nil { return text(t.shapes.a) }
        if t.shapes.a == nil { return text(t.shapes.b) }
        return text(t.shapes.a) + " vs " + text(t.shapes.b)
    }

    /// The report as JSON (`schemas/diff.schema.json`).
    public var json: JSONValue {
        func number(_ v: Double?) -> JSONValue {
            guard let v else { return .null }
            return v.isFinite ? .double(v) : .string(v.isNaN ? "nan" : "inf")
        }
        func shape(_ s: [Int]?) -> JSONValue { s.map { .array($0.map { .int($0) }) } ?? .null }
        return .object([
            ("a", .object([("path", .string(a.name)), ("layout", .string(a.layout))])),
            ("b", .object([("path", .string(b.name)), ("layout", .string(b.layout))])),
            ("same", .bool(same)),
            ("summary", .string(summary)),
            ("counts", .object(TensorDiffStatus.allCases.map { ($0.rawValue, .int(count($0))) })),
            ("notes", .array(notes.map { .string($0) })),
            ("tensors", .array(tensors.map { t in
                .object([
                    ("name", .string(t.name)), ("status", .string(t.status.rawValue)),
                    ("dtype_a", t.dtypes.a.map { .string($0.rawValue) } ?? .null),
                    ("dtype_b", t.dtypes.b.map { .string($0.rawValue) } ?? .null),
                    ("shape_a", shape(t.shapes.a)), ("shape_b", shape(t.shapes.b)),
                    ("elements", .int(t.elements)), ("differing", .int(t.differing)),
                    ("max_abs", number(t.maxAbs)), ("relative_l2", number(t.relativeL2)),
                ])
            })),
        ])
    }

    /// Throws ``WeightDiffError/differ(count:first:)`` (exit 1) unless the two sides hold the same weights.
    public func requireSame() throws {
        let differing = tensors.filter { !$0.status.agrees }
        guard let first = differing.first else { return }
        throw WeightDiffError.differ(count: differing.count, first: first.name)
    }
}

/// The verdict of a weight comparison as an error, for a program that maps it to an exit code.
public enum WeightDiffError: DitkitError, Equatable {
    /// `count` canonical tensors differ (values, shape or presence); `first` is the first in canonical order.
    case differ(count: Int, first: String)

    /// `.verification` (exit 1).
    public var kind: ErrorKind { .verification }
    /// No file: the report names both.
    public var file: String? { nil }
    /// The first tensor that differs.
    public var location: String? {
        if case .differ(_, let first) = self { return first }
        return nil
    }
    /// A sentence naming how many tensors differ and the first.
    public var description: String {
        switch self {
        case .differ(let count, let first): return "the weights differ: \(count) tensor\(count == 1 ? "" : "s") (first: \(first))"
        }
    }
}

/// Compares two models weight by weight, by canonical name, streaming: each tensor pair is read in chunks of
/// `chunkElements` elements, so memory stays at a few chunks whatever the checkpoints' size (a tensor that a layout
/// stores rearranged, such as the Cerebras ConvTranspose head, is produced whole: one small tensor).
public enum WeightDiff {
    /// Compares `a` and `b` (models of one family) tensor by tensor; `names` name the sides in the report. Throws
    /// ``VerificationError/differentFamilies(a:b:)`` for models of two families, and read errors of either checkpoint.
    public static func compare(
        _ a: any AnyModelView, _ b: any AnyModelView, names: (String, String), chunkElements: Int = 1 << 20
    ) throws -> WeightDiffReport {
        guard a.familyName == b.familyName else {
            throw VerificationError.differentFamilies(a: "\(names.0): \(a.familyName)", b: "\(names.1): \(b.familyName)")
        }
        let sideA = Side(a), sideB = Side(b)
        var order = sideA.entries.map(\.tensor.name)
        let inA = Set(order)
        order += sideB.entries.map(\.tensor.name).filter { !inA.contains($0) }
        var results: [TensorDiff] = []
        for name in order {
            let ea = sideA.entry(name), eb = sideB.entry(name)
            switch (ea, eb) {
            case let (ea?, eb?):
                results.append(try compare(name, ea, eb, chunkElements: max(1, chunkElements)))
            case let (ea?, nil):
                results.append(try onlyOne(name, present: ea, recomputedBy: b, aSide: true))
            case let (nil, eb?):
                results.append(try onlyOne(name, present: eb, recomputedBy: a, aSide: false))
            case (nil, nil):
                continue
            }
        }
        let notes = a.notes.map { "a: " + $0 } + b.notes.map { "b: " + $0 }
        return WeightDiffReport(
            a: (names.0, describe(a)), b: (names.1, describe(b)), tensors: results, notes: notes)
    }

    static func describe(_ view: any AnyModelView) -> String {
        view.layoutSummary + (view.prefix.isEmpty ? "" : " under \"\(view.prefix)\"")
    }

    /// One side: its canonical tensors with their producers.
    struct Side {
        let entries: [(tensor: CanonicalTensor, output: OutputTensor)]
        let index: [String: Int]
        init(_ view: any AnyModelView) {
            entries = Array(zip(view.tensors, view.canonicalOutputs)).map { (tensor: $0.0, output: $0.1) }
            var index: [String: Int] = [:]
            for (i, e) in entries.enumerated() where index[e.tensor.name] == nil { index[e.tensor.name] = i }
            self.index = index
        }
        func entry(_ name: String) -> (tensor: CanonicalTensor, output: OutputTensor)? { index[name].map { entries[$0] } }
    }

    static func compare(
        _ name: String, _ a: (tensor: CanonicalTensor, output: OutputTensor), _ b: (tensor: CanonicalTensor, output: OutputTensor),
        chunkElements: Int
    ) throws -> TensorDiff {
        let dtypes = (a: Optional(a.tensor.dtype), b: Optional(b.tensor.dtype))
        let shapes = (a: Optional(a.tensor.shape), b: Optional(b.tensor.shape))
        guard a.tensor.shape == b.tensor.shape else {
            return TensorDiff(name: name, status: .shapeDiffers, dtypes: dtypes, shapes: shapes, elements: 0, differing: 0, maxAbs: nil, relativeL2: nil)
        }
        let readerA = ChunkReader(a.tensor, a.output), readerB = ChunkReader(b.tensor, b.output)
        let count = a.tensor.shape.reduce(1) { Checked.saturatingMultiply($0, $1) }
        // Same dtype: compare the bytes first (the common answer, "the same weights", needs no widening); only a
        // tensor whose bytes differ is read again for its statistics.
        if a.tensor.dtype == b.tensor.dtype {
            var equal = true
            if case .tensor(let ta) = a.tensor.source, case .tensor(let tb) = b.tensor.source {
                // One stored tensor each: read chunk by chunk into two reused buffers (read, not mapped, so the
                // process holds two chunks whatever the checkpoints' size) and compared with memcmp.
                let chunkBytes = chunkElements * a.tensor.dtype.size
                let bufferA = BufferSink(capacity: chunkBytes), bufferB = BufferSink(capacity: chunkBytes)
                let total = count * a.tensor.dtype.size
                var offset = 0
                while offset < total, equal {
                    let range = offset..<min(total, offset + chunkBytes)
                    bufferA.reset()
                    bufferB.reset()
                    try ta.write(bytes: range, to: bufferA, chunk: chunkBytes)
                    try tb.write(bytes: range, to: bufferB, chunk: chunkBytes)
                    equal = Platform.bytesEqual(bufferA.filled, bufferB.filled)
                    offset = range.upperBound
                }
            } else {
                var start = 0
                while start < count, equal {
                    let end = min(count, start + chunkElements)
                    equal = try readerA.bytes(elements: start..<end) == readerB.bytes(elements: start..<end)
                    start = end
                }
            }
            if equal {
                return TensorDiff(name: name, status: .identical, dtypes: dtypes, shapes: shapes, elements: count, differing: 0, maxAbs: 0, relativeL2: 0)
            }
        }
        var stats = Statistics()
        var bytesEqual = a.tensor.dtype == b.tensor.dtype
        var start = 0
        while start < count {
            let end = min(count, start + chunkElements)
            let rawA = try readerA.bytes(elements: start..<end), rawB = try readerB.bytes(elements: start..<end)
            if bytesEqual && rawA != rawB { bytesEqual = false }
            stats.add(try widen(rawA, a.tensor.dtype), try widen(rawB, b.tensor.dtype))
            start = end
        }
        let status: TensorDiffStatus = bytesEqual ? .identical : stats.differing == 0 ? .equalWidened : .different
        return TensorDiff(
            name: name, status: status, dtypes: dtypes, shapes: shapes, elements: count, differing: stats.differing,
            maxAbs: stats.maxAbs, relativeL2: stats.relativeL2)
    }

    /// A tensor stored by one side only: compared with the frozen table the other side's code recomputes, when the
    /// family recomputes one of that name; otherwise missing on the other side.
    static func onlyOne(
        _ name: String, present: (tensor: CanonicalTensor, output: OutputTensor), recomputedBy other: any AnyModelView,
        aSide: Bool
    ) throws -> TensorDiff {
        let dtype = present.tensor.dtype, shape = present.tensor.shape
        let dtypes = aSide ? (a: Optional(dtype), b: DType?.none) : (a: DType?.none, b: Optional(dtype))
        let shapes = aSide ? (a: Optional(shape), b: [Int]?.none) : (a: [Int]?.none, b: Optional(shape))
        let count = shape.reduce(1) { Checked.saturatingMultiply($0, $1) }
        // Only a tensor the size of a frozen table (recomputed tables hold at most 2^24 numbers) is read, whole, and
        // compared with the one comparison the converter uses (`ModelFamily.tableDifference`).
        if count <= 1 << 24, let stored = try? present.output.float32(),
            let (difference, table) = try other.tableDifference(canonical: name, stored: stored, dtype: dtype),
            difference.ulps <= TableDifference.equalWithinUlps
        {
            var stats = Statistics()
            stats.add(stored.map(Double.init), table.map(Double.init))  // the stored side is "a": errors relative to the file
            return TensorDiff(
                name: name, status: .recomputed, dtypes: dtypes, shapes: shapes, elements: count, differing: stats.differing,
                maxAbs: stats.maxAbs, relativeL2: stats.relativeL2)
        }
        let state = other.isTrainingState(canonical: name)
        return TensorDiff(
            name: name, status: state ? .stateOnly : aSide ? .onlyA : .onlyB, dtypes: dtypes, shapes: shapes, elements: 0, differing: 0,
            maxAbs: nil, relativeL2: nil)
    }

    /// Widens little-endian elements of `dtype` to Double (exactly for every floating-point dtype ditkit reads).
    static func widen(_ bytes: [UInt8], _ dtype: DType) throws -> [Double] {
        let count = bytes.count / dtype.size
        if dtype == .f64 {
            return bytes.withUnsafeBytes { raw in
                (0..<count).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
            }
        }
        var floats = [Float](repeating: 0, count: count)
        try bytes.withUnsafeBytes { raw in
            try floats.withUnsafeMutableBufferPointer { try DTypeConversion.toFloat32(raw, dtype: dtype, count: count, into: $0) }
        }
        return [Double](unsafeUninitializedCapacity: count) { out, initialized in
            floats.withUnsafeBufferPointer { f in for i in 0..<count { out[i] = Double(f[i]) } }
            initialized = count
        }
    }

    /// Running error statistics of a pair of streams.
    struct Statistics {
        var differing = 0
        var worst = 0.0
        var sumSquaredDifference = 0.0
        var sumSquaredA = 0.0
        var elements = 0

        mutating func add(_ a: [Double], _ b: [Double]) {
            a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in add(a, b) } }
        }

        mutating func add(_ a: UnsafeBufferPointer<Double>, _ b: UnsafeBufferPointer<Double>) {
            let n = min(a.count, b.count)
            elements += n
            for i in 0..<n {
                let x = a[i], y = b[i]
                if x == y || (x.isNaN && y.isNaN) {
                    if x.isFinite { sumSquaredA += x * x }
                    continue
                }
                differing += 1
                let d = abs(x - y)
                if d.isNaN || d.isInfinite { worst = .infinity; continue }
                worst = max(worst, d)
                sumSquaredDifference += d * d
                sumSquaredA += x * x
            }
        }

        var maxAbs: Double? { elements == 0 ? nil : worst }
        var relativeL2: Double? {
            guard elements > 0 else { return nil }
            if worst.isInfinite { return .infinity }
            let norm = sumSquaredDifference.squareRoot()
            return sumSquaredA > 0 ? norm / sumSquaredA.squareRoot() : norm
        }
    }

    /// A sink writing into one buffer it owns, reused chunk after chunk (its capacity bounds what it holds).
    final class BufferSink: ByteSink {
        private let storage: UnsafeMutableRawBufferPointer
        private var count = 0

        init(capacity: Int) { storage = .allocate(byteCount: max(capacity, 1), alignment: 64) }
        deinit { storage.deallocate() }

        /// The bytes written since the last `reset()`.
        var filled: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[0..<count]) }

        func reset() { count = 0 }

        func write(_ bytes: UnsafeRawBufferPointer) throws {
            guard count + bytes.count <= storage.count else {
                throw CheckpointError.malformed(path: "(diff)", location: "chunk", reason: "a tensor produced more bytes than asked")
            }
            if let source = bytes.baseAddress, bytes.count > 0 { (storage.baseAddress! + count).copyMemory(from: source, byteCount: bytes.count) }
            count += bytes.count
        }
    }

    /// Reads element ranges of one canonical tensor as little-endian bytes: straight from the stored tensor (or its
    /// concatenated parts) when the layout stores the elements as they are; a rearranged tensor is produced once.
    final class ChunkReader {
        let tensor: CanonicalTensor
        let output: OutputTensor
        private var produced: [UInt8]?

        init(_ tensor: CanonicalTensor, _ output: OutputTensor) {
            self.tensor = tensor
            self.output = output
        }

        func bytes(elements: Range<Int>) throws -> [UInt8] {
            let size = tensor.dtype.size
            let range = (elements.lowerBound * size)..<(elements.upperBound * size)
            let sink = CollectingSink()
            switch tensor.source {
            case .tensor(let t):
                try t.write(bytes: range, to: sink)
            case .rows(let parts):
                var offset = 0
                for part in parts {
                    let length = part.byteCount
                    let lo = max(range.lowerBound, offset), hi = min(range.upperBound, offset + length)
                    if lo < hi { try part.write(bytes: (lo - offset)..<(hi - offset), to: sink) }
                    offset += length
                    if offset >= range.upperBound { break }
                }
            case .transformed:
                if produced == nil {
                    let all = CollectingSink()
                    try output.produce(all)
                    produced = all.bytes
                }
                return Array(produced![range])
            }
            return sink.bytes
        }
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
