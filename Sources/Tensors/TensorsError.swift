/// Failures of the tensor layer: sizes that overflow, views outside their storage, files that cannot be mapped.
public enum TensorsError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A product of dimensions (or dimensions × element size) does not fit in a 64-bit signed integer.
    case sizeOverflow(shape: [Int], dtype: DType?)
    /// A dimension is negative.
    case negativeDimension(shape: [Int])
    /// A stride or the storage offset is negative.
    case negativeStride(strides: [Int])
    /// `shape` and `strides` have different ranks.
    case rankMismatch(shape: [Int], strides: [Int])
    /// A view reaches past the end of its storage.
    case viewOutOfBounds(shape: [Int], strides: [Int], offset: Int, neededElements: Int, storageElements: Int)
    /// A byte buffer does not hold the element count asked for.
    case bufferTooSmall(needed: Int, available: Int)
    /// A dtype that has no float32 conversion (complex).
    case unsupportedConversion(DType)
    /// `open`, `fstat` or `mmap` failed.
    case mapFailed(path: String, operation: String, errno: Int32)
    /// The path is not a regular file (`kind` says what it is: a named pipe, a device, a socket, a directory);
    /// ditkit reads regular files only.
    case notRegularFile(path: String, kind: String)

    /// A sentence saying what is wrong.
    public var description: String {
        switch self {
        case .sizeOverflow(let shape, let dtype):
            let what = dtype.map { " of \($0.rawValue)" } ?? ""
            return "tensor size overflows: shape \(shape)\(what) has more than 2^63 elements or bytes"
        case .negativeDimension(let shape):
            return "negative dimension in shape \(shape)"
        case .negativeStride(let strides):
            return "negative stride or storage offset (strides \(strides))"
        case .rankMismatch(let shape, let strides):
            return "shape \(shape) and strides \(strides) have different ranks"
        case .viewOutOfBounds(let shape, let strides, let offset, let needed, let storage):
            return "view with shape \(shape), strides \(strides) and offset \(offset) needs \(needed) elements "
                + "but its storage holds \(storage)"
        case .bufferTooSmall(let needed, let available):
            return "buffer holds \(available) bytes, \(needed) needed"
        case .unsupportedConversion(let dtype):
            return "\(dtype.rawValue) cannot be converted to float32"
        case .mapFailed(let path, let operation, let errno):
            return "\(path): \(operation) failed: \(describeErrno(errno))"
        case .notRegularFile(let path, let kind):
            return "\(path): is \(kind), not a regular file; ditkit reads regular files only"
        }
    }
}
