/// Shape, strides (in elements) and storage offset (in elements) of a tensor view, with overflow-checked sizes.
///
/// Built only through `init(shape:strides:offset:)`, which validates that every size fits in `Int`, so the derived
/// properties can be computed without further checks.
public struct TensorGeometry: Sendable, Hashable, CustomStringConvertible {
    /// Dimensions.
    public let shape: [Int]
    /// Stride of each dimension, in elements (0 repeats an element).
    public let strides: [Int]
    /// First element of the view in its storage.
    public let offset: Int
    /// Number of elements (product of the shape; 1 for a scalar).
    public let elementCount: Int
    /// Elements of storage the view reaches: `offset + Σ (shape[i]−1)·strides[i] + 1`, or `offset` when empty
    /// (an empty view reads nothing, so its offset is not checked against the storage).
    public let storageExtent: Int

    /// A contiguous (row-major) geometry.
    public init(contiguous shape: [Int]) throws {
        try self.init(shape: shape, strides: TensorGeometry.contiguousStrides(shape), offset: 0)
    }

    /// A strided view; throws `TensorsError` for mismatched ranks, negative values or sizes past 2^63.
    public init(shape: [Int], strides: [Int], offset: Int = 0) throws {
        guard shape.count == strides.count else { throw TensorsError.rankMismatch(shape: shape, strides: strides) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorsError.negativeDimension(shape: shape) }
        guard strides.allSatisfy({ $0 >= 0 }), offset >= 0 else { throw TensorsError.negativeStride(strides: strides) }
        // An empty tensor (any zero dimension) has no elements and reaches no storage, whatever its other
        // dimensions and strides are: handled before any product, so `[0, 2^40, 2^40]` does not overflow.
        guard let count = Checked.product(shape) else { throw TensorsError.sizeOverflow(shape: shape, dtype: nil) }
        var extent = offset
        if count > 0 {
            var last = 0
            for (dim, stride) in zip(shape, strides) {
                guard let span = Checked.multiply(dim - 1, stride), let sum = Checked.add(last, span) else {
                    throw TensorsError.sizeOverflow(shape: shape, dtype: nil)
                }
                last = sum
            }
            guard let end = Checked.add(offset, last), let end1 = Checked.add(end, 1) else {
                throw TensorsError.sizeOverflow(shape: shape, dtype: nil)
            }
            extent = end1
        }
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.elementCount = count
        self.storageExtent = extent
    }

    /// Row-major strides for `shape` (saturating; only meaningful for shapes whose size fits).
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = running
            let (next, overflow) = running.multipliedReportingOverflow(by: max(shape[i], 1))
            running = overflow ? Int.max : next
        }
        return strides
    }

    /// Whether the view is row-major contiguous (dimensions of size 1 may have any stride; an empty view is).
    public var isContiguous: Bool {
        if elementCount == 0 { return true }
        var expected = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) where shape[i] != 1 {
            if strides[i] != expected { return false }
            // Cannot overflow: the product of the dimensions seen so far divides `elementCount`.
            expected *= shape[i]
        }
        return true
    }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// Bytes the view's elements occupy when made contiguous.
    public func byteCount(of dtype: DType) throws -> Int {
        let (bytes, overflow) = elementCount.multipliedReportingOverflow(by: dtype.size)
        guard !overflow else { throw TensorsError.sizeOverflow(shape: shape, dtype: dtype) }
        return bytes
    }

    /// Throws unless the view fits in a storage of `storageElements` elements.
    public func checkFits(storageElements: Int) throws {
        guard storageExtent <= storageElements else {
            throw TensorsError.viewOutOfBounds(
                shape: shape, strides: strides, offset: offset, neededElements: storageExtent,
                storageElements: storageElements)
        }
    }

    /// `shape […] strides […] offset n`.
    public var description: String { "shape \(shape) strides \(strides) offset \(offset)" }
}

/// Overflow-checked product of a shape, for callers that only have dimensions.
public func checkedElementCount(_ shape: [Int]) throws -> Int {
    try TensorGeometry(contiguous: shape).elementCount
}
