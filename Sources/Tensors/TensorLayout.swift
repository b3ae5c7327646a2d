/// Shape, strides (in elements) and storage offset (in elements) of a tensor view, with overflow-checked sizes.
///
/// Built only through `init(shape:strides:offset:)`, which validates that every size fits in `Int`, so the derived
/// properties can be computed without further checks.
public struct TensorLayout: Sendable, Hashable, CustomStringConvertible {
    public let shape: [Int]
    public let strides: [Int]
    public let offset: Int
    /// Number of elements (product of the shape; 1 for a scalar).
    public let elementCount: Int
    /// Elements of storage the view reaches: `offset + Σ (shape[i]−1)·strides[i] + 1`, or `offset` when empty.
    public let storageExtent: Int

    /// A contiguous (row-major) layout.
    public init(contiguous shape: [Int]) throws {
        try self.init(shape: shape, strides: TensorLayout.contiguousStrides(shape), offset: 0)
    }

    public init(shape: [Int], strides: [Int], offset: Int = 0) throws {
        guard shape.count == strides.count else { throw TensorsError.rankMismatch(shape: shape, strides: strides) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorsError.negativeDimension(shape: shape) }
        guard strides.allSatisfy({ $0 >= 0 }), offset >= 0 else { throw TensorsError.negativeStride(strides: strides) }
        var count = 1
        for dim in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw TensorsError.sizeOverflow(shape: shape, dtype: nil) }
            count = product
        }
        var extent = offset
        if count > 0 {
            var last = 0
            for (dim, stride) in zip(shape, strides) {
                let (span, o1) = (dim - 1).multipliedReportingOverflow(by: stride)
                let (sum, o2) = last.addingReportingOverflow(span)
                guard !o1, !o2 else { throw TensorsError.sizeOverflow(shape: shape, dtype: nil) }
                last = sum
            }
            let (end, o3) = offset.addingReportingOverflow(last)
            let (end1, o4) = end.addingReportingOverflow(1)
            guard !o3, !o4 else { throw TensorsError.sizeOverflow(shape: shape, dtype: nil) }
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

    /// Whether the view is row-major contiguous (dimensions of size 1 may have any stride).
    public var isContiguous: Bool {
        var expected = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) where shape[i] != 1 {
            if shape[i] == 0 { return true }
            if strides[i] != expected { return false }
            expected *= shape[i]
        }
        return true
    }

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

    public var description: String { "shape \(shape) strides \(strides) offset \(offset)" }
}

/// Overflow-checked product of a shape, for callers that only have dimensions.
public func checkedElementCount(_ shape: [Int]) throws -> Int {
    try TensorLayout(contiguous: shape).elementCount
}
