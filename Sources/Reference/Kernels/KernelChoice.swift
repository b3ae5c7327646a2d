import CDitkitKernels
import Tensors

/// An instruction-set level of ditkit's C kernels, chosen at run time (the binary is built for baseline x86-64 and
/// carries every level; each kernel function is compiled for its own level).
public enum KernelLevel: Int, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    /// SSE2 (every x86-64 CPU) or plain C off x86-64.
    case baseline = 0
    /// AVX2 and FMA for the element-wise kernels; OpenBLAS for every matrix product.
    case avx2 = 1
    /// AVX-512 (F, DQ, BW, VL) for the element-wise kernels, and ditkit's own few-sample matrix–vector products and
    /// per-head attention; OpenBLAS for the other products.
    case avx512 = 2

    /// The highest level this CPU (and OS) runs.
    public static let best = KernelLevel(rawValue: Int(ditkit_kernels_best_level())) ?? .baseline

    /// Whether this CPU runs the level.
    public var isSupported: Bool { self <= KernelLevel.best }

    /// The level's name: `baseline`, `avx2` or `avx512`.
    public var description: String {
        switch self {
        case .baseline: "baseline"
        case .avx2: "avx2"
        case .avx512: "avx512"
        }
    }

    /// The level named `name` (`baseline`, `avx2`, `avx512`), or nil.
    public init?(name: String) {
        guard let level = KernelLevel.allCases.first(where: { $0.description == name }) else { return nil }
        self = level
    }

    /// Levels order by the instructions they use: baseline < avx2 < avx512.
    public static func < (a: KernelLevel, b: KernelLevel) -> Bool { a.rawValue < b.rawValue }

    var c: Int32 { Int32(rawValue) }
}

/// A kernel level this CPU does not run.
public struct UnsupportedKernelLevel: DitkitError, Equatable {
    /// The level asked for.
    public let level: KernelLevel
    /// The highest level this CPU runs.
    public let best: KernelLevel

    /// `level` refused on a CPU whose highest level is `best`.
    public init(level: KernelLevel, best: KernelLevel) {
        self.level = level
        self.best = best
    }

    /// A usage error: the caller asked for a level this machine cannot run.
    public var kind: ErrorKind { .usage }
    /// No file is involved.
    public var file: String? { nil }
    /// No location is involved.
    public var location: String? { nil }
    /// The level asked for, the best this CPU runs, and every level.
    public var description: String {
        "this CPU does not run the \(level) kernels (the highest level it runs is \(best); levels: "
            + KernelLevel.allCases.map(\.description).joined(separator: ", ") + ")"
    }
}

/// Which code runs the forward pass: the level of the element-wise kernels (and, at `.avx512`, of ditkit's own
/// matrix–vector and attention kernels), and whether every matrix product goes through OpenBLAS instead.
public struct KernelChoice: Sendable, Equatable, CustomStringConvertible {
    /// The instruction-set level; always one this CPU runs.
    public let level: KernelLevel
    /// Every matrix product through OpenBLAS (ditkit's AVX-512 products off), whatever the level.
    public let blasProducts: Bool

    /// The level forced to `level`, refused when the CPU does not run it.
    public init(level: KernelLevel, blasProducts: Bool = false) throws(UnsupportedKernelLevel) {
        guard level.isSupported else { throw UnsupportedKernelLevel(level: level, best: .best) }
        self.init(unchecked: level, blasProducts: blasProducts)
    }

    init(unchecked level: KernelLevel, blasProducts: Bool) {
        self.level = level
        self.blasProducts = blasProducts
    }

    /// The best level this CPU runs, ditkit's AVX-512 products where it has AVX-512, OpenBLAS for the rest.
    public static var automatic: KernelChoice { KernelChoice(unchecked: .best, blasProducts: false) }
    /// The best level for the element-wise kernels, OpenBLAS for every product (a cross-check of the AVX-512 products).
    public static var blas: KernelChoice { KernelChoice(unchecked: .best, blasProducts: true) }

    /// Whether ditkit's AVX-512 product kernels run under this choice.
    public var usesAVX512: Bool { level == .avx512 && !blasProducts }

    /// The level, with "+blas" when every product goes through OpenBLAS.
    public var description: String { level.description + (blasProducts && level == .avx512 ? "+blas" : "") }
}
