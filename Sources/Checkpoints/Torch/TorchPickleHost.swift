import Tensors

/// torch's names for storage classes and dtypes.
enum TorchNames {
    /// Typed storage classes (`torch.FloatStorage`, …); their persistent ids count elements.
    static func dtype(ofStorageClass name: String) -> DType? {
        switch name {
        case "FloatStorage": return .f32
        case "DoubleStorage": return .f64
        case "HalfStorage": return .f16
        case "BFloat16Storage": return .bf16
        case "LongStorage": return .i64
        case "IntStorage": return .i32
        case "ShortStorage": return .i16
        case "CharStorage": return .i8
        case "ByteStorage": return .u8
        case "BoolStorage": return .bool
        case "ComplexFloatStorage": return .c64
        case "ComplexDoubleStorage": return .c128
        default: return nil
        }
    }

    /// `torch.float16` and friends, as pickled by `_rebuild_tensor_v3` (GLOBAL torch <name>).
    static func dtype(named name: String) -> DType? {
        switch name {
        case "float32", "float": return .f32
        case "float64", "double": return .f64
        case "float16", "half": return .f16
        case "bfloat16": return .bf16
        case "float8_e4m3fn": return .f8e4m3
        case "float8_e5m2": return .f8e5m2
        case "int64", "long": return .i64
        case "int32", "int": return .i32
        case "int16", "short": return .i16
        case "int8": return .i8
        case "uint8": return .u8
        case "uint16": return .u16
        case "uint32": return .u32
        case "uint64": return .u64
        case "bool": return .bool
        case "complex64", "cfloat": return .c64
        case "complex128", "cdouble": return .c128
        default: return nil
        }
    }
}

/// Resolves torch persistent ids to storages and rebuilds tensors from torch's allowlisted functions
/// (the weights-only loader's list: `_rebuild_tensor_v2/_v3`, `_rebuild_parameter(_with_state)`,
/// `_rebuild_from_type_v2`, `torch.Size`, `torch.device`, dtypes and storage classes as names).
final class TorchPickleHost: UnpicklerHost {
    /// Finds the bytes of storage `key` that the pickle says holds `byteCount` bytes of `elementSize`-byte
    /// elements (1 for untyped storages); `offset` is the pickle offset, for messages.
    typealias StorageResolver = (_ key: String, _ byteCount: Int, _ elementSize: Int, _ offset: Int) throws -> TensorStorage

    private let resolveStorage: StorageResolver
    private var storages: [String: TensorStorage] = [:]

    init(resolveStorage: @escaping StorageResolver) {
        self.resolveStorage = resolveStorage
    }

    /// The host of a plain pickle: torch's rebuild functions are recognised (and their inner functions checked),
    /// but there is no storage to resolve.
    static func withoutStorages() -> TorchPickleHost {
        TorchPickleHost { key, _, _, offset in
            throw PickleError.unsupportedOpcode(
                offset: offset, opcode: "BINPERSID", reason: "storage \(key) referenced outside a PyTorch file")
        }
    }

    func persistentLoad(_ pid: PickleValue, offset: Int) throws -> PickleValue {
        guard case .tuple(let fields) = pid, fields.count >= 5, case .string("storage") = fields[0] else {
            throw PickleError.malformed(offset: offset, reason: "persistent id \(pid.repr(limit: 120)) is not a torch storage reference")
        }
        guard case .global(let storageClass) = fields[1], storageClass.module == "torch" || storageClass.module.hasPrefix("torch.") else {
            throw PickleError.malformed(offset: offset, reason: "storage type \(fields[1].repr(limit: 80)) is not a torch storage class")
        }
        let key: String
        switch fields[2] {
        case .string(let s): key = s
        case .int(let i): key = String(i)
        default: throw PickleError.malformed(offset: offset, reason: "storage key \(fields[2].repr(limit: 80)) is not a string")
        }
        guard case .int(let numel) = fields[4], numel >= 0 else {
            throw PickleError.malformed(offset: offset, reason: "storage \(key) has size \(fields[4].repr(limit: 40))")
        }
        let dtype: DType?
        let elementSize: Int
        if storageClass.name == "UntypedStorage" {
            dtype = nil
            elementSize = 1
        } else if let d = TorchNames.dtype(ofStorageClass: storageClass.name) {
            dtype = d
            elementSize = d.size
        } else {
            throw PickleError.malformed(
                offset: offset, reason: "storage \(key) has type torch.\(storageClass.name), which ditkit cannot read "
                    + "(quantized and other exotic storages are not part of DiT checkpoints)")
        }
        let (bytes, overflow) = numel.multipliedReportingOverflow(by: elementSize)
        guard !overflow else { throw PickleError.malformed(offset: offset, reason: "storage \(key) size overflows") }
        // Legacy files add a 6th field: a view (view key, element offset, element count) of the root storage.
        if fields.count >= 6, case .tuple(let view) = fields[5], view.count == 3 {
            guard case .int(let viewOffset) = view[1], case .int(let viewSize) = view[2], viewOffset >= 0, viewSize >= 0 else {
                throw PickleError.malformed(offset: offset, reason: "storage view \(fields[5].repr(limit: 80)) is malformed")
            }
            let root = try storage(key: key, byteCount: bytes, elementSize: elementSize, offset: offset)
            let (start, o1) = viewOffset.multipliedReportingOverflow(by: elementSize)
            let (length, o2) = viewSize.multipliedReportingOverflow(by: elementSize)
            guard !o1, !o2, start <= root.byteCount, length <= root.byteCount - start else {
                throw PickleError.malformed(
                    offset: offset, reason: "storage view of \(key) at element \(viewOffset) with \(viewSize) elements "
                        + "runs past its \(numel)-element storage")
            }
            let viewStorage = TensorStorage(
                key: "\(key)[\(viewOffset):\(viewOffset + viewSize)]", bigEndian: root.bigEndian,
                source: SliceSource(root.source, range: start..<(start + length)))
            return .storage(viewStorage, dtype: dtype)
        }
        return .storage(try storage(key: key, byteCount: bytes, elementSize: elementSize, offset: offset), dtype: dtype)
    }

    private func storage(key: String, byteCount: Int, elementSize: Int, offset: Int) throws -> TensorStorage {
        if let existing = storages[key] {
            guard existing.byteCount == byteCount else {
                throw PickleError.malformed(
                    offset: offset, reason: "storage \(key) is referenced with \(byteCount) bytes and with \(existing.byteCount)")
            }
            return existing
        }
        let storage = try resolveStorage(key, byteCount, elementSize, offset)
        storages[key] = storage
        return storage
    }

    func call(
        _ callable: PickleGlobal, arguments args: [PickleValue], offset: Int,
        nested: (PickleGlobal, [PickleValue]) throws -> PickleValue
    ) throws -> PickleValue? {
        switch (callable.module, callable.name) {
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
            return .tensor(try rebuildTensor(args, dtypeArgument: nil, offset: offset))
        case ("torch._utils", "_rebuild_tensor_v3"):
            guard args.count >= 7 else { throw arity(callable, args, offset) }
            return .tensor(try rebuildTensor(args, dtypeArgument: args[6], offset: offset))
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            guard args.count >= 2, case .tensor(let t) = args[0] else { throw arity(callable, args, offset) }
            return .tensor(t.with(requiresGrad: truth(args[1]), isParameter: true))
        case ("torch._tensor", "_rebuild_from_type_v2"), ("torch._utils", "_rebuild_from_type_v2"),
            ("torch._tensor", "_rebuild_from_type"), ("torch._utils", "_rebuild_from_type"):
            // (func, new_type, args, state): func(*args) goes through the unpickler's whole policy, as a direct
            // call would; the type only marks Parameters.
            guard args.count >= 3, case .global(let function) = args[0], case .tuple(let inner) = args[2] else {
                throw arity(callable, args, offset)
            }
            let result = try nested(function, inner)
            if case .tensor(let t) = result, case .global(let type) = args[1], type.name == "Parameter" {
                return .tensor(t.with(requiresGrad: t.requiresGrad, isParameter: true))
            }
            return result
        case ("torch", "Size"):
            guard let first = args.first else { return .tuple([]) }
            switch first {
            case .tuple: return first
            case .list(let l): return .tuple(l.items)
            default: throw arity(callable, args, offset)
            }
        case ("torch", "device"):
            return args.first ?? .string("cpu")
        case ("torch._utils", "_rebuild_qtensor"), ("torch._utils", "_rebuild_sparse_tensor"),
            ("torch._utils", "_rebuild_sparse_csr_tensor"), ("torch._utils", "_rebuild_nested_tensor"),
            ("torch._utils", "_rebuild_meta_tensor_no_storage"), ("torch._utils", "_rebuild_wrapper_subclass"),
            ("torch._utils", "_rebuild_device_tensor_from_numpy"), ("torch._utils", "_rebuild_xla_tensor"),
            ("torch._utils", "_rebuild_mtia_tensor"), ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"):
            throw PickleError.malformed(
                offset: offset, reason: "\(callable) builds a quantized, sparse, nested, meta or device tensor, "
                    + "which a DiT checkpoint does not hold; save a dense CPU state dict")
        default:
            return nil
        }
    }

    private func rebuildTensor(_ args: [PickleValue], dtypeArgument: PickleValue?, offset: Int) throws -> PickledTensor {
        guard args.count >= 4, case .storage(let storage, let storageDType) = args[0] else {
            throw PickleError.malformed(offset: offset, reason: "tensor rebuild without a storage: \(args.first?.kindName ?? "nothing")")
        }
        guard case .int(let storageOffset) = args[1] else {
            throw PickleError.malformed(offset: offset, reason: "tensor storage offset is a \(args[1].kindName)")
        }
        let shape = try intTuple(args[2], what: "size", offset: offset)
        let strides = try intTuple(args[3], what: "stride", offset: offset)
        let requiresGrad = args.count > 4 ? truth(args[4]) : false
        var dtype = storageDType
        if let dtypeArgument {
            guard case .global(let g) = dtypeArgument, g.module == "torch", let d = TorchNames.dtype(named: g.name) else {
                throw PickleError.malformed(offset: offset, reason: "tensor dtype \(dtypeArgument.repr(limit: 60)) is not a dtype ditkit reads")
            }
            dtype = d
        }
        guard let dtype else {
            throw PickleError.malformed(offset: offset, reason: "tensor on an untyped storage without a dtype")
        }
        return PickledTensor(
            storage: storage, dtype: dtype, shape: shape, strides: strides, offset: storageOffset,
            requiresGrad: requiresGrad, isParameter: false)
    }

    private func intTuple(_ value: PickleValue, what: String, offset: Int) throws -> [Int] {
        let items: [PickleValue]
        switch value {
        case .tuple(let t): items = t
        case .list(let l): items = l.items
        default: throw PickleError.malformed(offset: offset, reason: "tensor \(what) is a \(value.kindName), not a tuple")
        }
        return try items.map {
            guard case .int(let i) = $0 else {
                throw PickleError.malformed(offset: offset, reason: "tensor \(what) holds a \($0.kindName)")
            }
            return i
        }
    }

    private func truth(_ value: PickleValue) -> Bool {
        switch value {
        case .bool(let b): return b
        case .int(let i): return i != 0
        default: return false
        }
    }

    private func arity(_ callable: PickleGlobal, _ args: [PickleValue], _ offset: Int) -> PickleError {
        .malformed(offset: offset, reason: "\(callable) called with unexpected arguments (\(args.map(\.kindName).joined(separator: ", ")))")
    }
}
