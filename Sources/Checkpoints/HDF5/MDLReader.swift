import Tensors

/// What a Cerebras `.mdl` file holds, read from its HDF5 tree: tensors (flat dotted keys, lazily readable), values,
/// and the file's own facts.
package struct MDLContents {
    /// `0.5` or `0.4` (the file attribute `__version__`).
    package var formatVersion: String
    /// `__cstorch_version__`, when the file names it.
    package var cstorchVersion: String?
    /// Tensors named by their flat key (`model.model.patch_embedding_layer.linear_proj.weight`, `optimizer.state.0.exp_avg`).
    package var tensors: [TensorInfo]
    /// Scalars, strings, None, opaque objects, named by flat key.
    package var values: [CheckpointValue]
    /// File-level facts shown as metadata (`mdl.format_version`, `mdl.cstorch_version`).
    package var metadata: [(String, String)]
    /// Things a user should know (links followed, bf16 stored as int16, …).
    package var notes: [String]
    /// Every flat key in the spec's order, with the path components the spec gives it (a dict key containing "."
    /// is one component: `["model", "model.patch_embedding_layer.linear_proj.weight"]`).
    package var keyPaths: [(key: String, components: [String])]
}

/// Reads Cerebras `.mdl` checkpoints (formats 0.5 and 0.4, as `cerebras.pytorch.save` and the 2.0–2.4 writer lay
/// them out: REFERENCE §3) from the HDF5 tree `HDF5File` parses. Reads metadata only: tensors come out as lazily
/// readable storages, values from attributes (and, in 0.4, from 0-d datasets). No pickle is ever run: the 0.4 spec
/// and `ObjectSerializer` / `ObjectH5Type` pickles go through the restricted `Unpickler`.
package enum MDLReader {
    /// Reads the structure of `file` (metadata only; no tensor data).
    package static func open(_ file: MappedFile, options: OpenOptions) throws -> MDLContents {
        let hdf5 = try HDF5File(file: file)
        return try read(
            root: hdf5.root, path: file.path,
            data: DataAccess(source: { try hdf5.source(of: $0) }, value: { try hdf5.value(of: $0, limit: 1 << 16) }))
    }

    /// How the reader reaches dataset contents: the HDF5 file's lazily readable sources and small-value decoder
    /// (tests pass fakes).
    package struct DataAccess {
        /// The raw elements of a dataset (validated by the HDF5 layer to hold exactly elements × element size bytes).
        package var source: (HDF5Dataset) throws -> ByteSource
        /// The decoded elements of a small dataset (0.4 scalars).
        package var value: (HDF5Dataset) throws -> HDF5Value

        /// Access through `source` and `value`.
        package init(source: @escaping (HDF5Dataset) throws -> ByteSource, value: @escaping (HDF5Dataset) throws -> HDF5Value) {
            self.source = source
            self.value = value
        }
    }

    /// Reads a `.mdl` from its parsed HDF5 `root` group (`path` names the file in errors).
    package static func read(root: HDF5Group, path: String, data: DataAccess) throws -> MDLContents {
        var reader = Reader(root: root, path: path, data: data)
        return try reader.read()
    }
}

/// One leaf of the state, before links are resolved.
private enum MDLLeaf {
    case tensor(dtype: DType, shape: [Int], dataset: HDF5Dataset, storedAs: String?)
    case value(kind: String, text: String, json: JSONValue, opaque: Bool)
    case link(String)
}

private struct Reader {
    let root: HDF5Group
    let path: String
    let data: MDLReader.DataAccess
    var notes: [String] = []
    /// The root group's attributes by name (a file holds one per leaf: looked up once each, not scanned).
    let rootAttributes: [String: HDF5Attribute]

    init(root: HDF5Group, path: String, data: MDLReader.DataAccess) {
        self.root = root
        self.path = path
        self.data = data
        var byName: [String: HDF5Attribute] = [:]
        byName.reserveCapacity(root.attributes.count)
        for a in root.attributes where byName[a.name] == nil { byName[a.name] = a }
        rootAttributes = byName
    }

    func attribute(_ name: String) -> HDF5Attribute? { rootAttributes[name] }

    func malformed(_ location: String, _ reason: String) -> CheckpointError {
        .malformed(path: path, location: location, reason: reason)
    }

    func unsupported(_ kind: String, advice: String) -> CheckpointError {
        .unsupported(path: path, kind: kind, advice: advice)
    }

    mutating func read() throws -> MDLContents {
        guard let versionAttribute = attribute("__version__") else {
            throw unsupported(
                "an HDF5 file that is not a Cerebras checkpoint (no __version__ attribute)",
                advice: "ditkit reads HDF5 only as Cerebras .mdl checkpoints written by cerebras.pytorch.save")
        }
        let version: Double
        switch versionAttribute.value {
        case .float(let d): version = d
        case .integer(let i): version = Double(i)
        default: throw malformed("attribute __version__", "is \(describe(versionAttribute.value)), not a number")
        }
        let cstorch = attribute("__cstorch_version__")?.value.text
        let spec: MDLTreeSpec
        let versionText: String
        // h5py writes the Python float as float64 (0.5, 0.4 exactly); a float32 copy of 0.4 is 0.4000000059604645.
        if abs(version - 0.5) < 1e-6 {
            versionText = "0.5"
            try checkSuccess()
            spec = try spec05()
        } else if abs(version - 0.4) < 1e-6 {
            versionText = "0.4"
            spec = try spec04()
        } else {
            throw unsupported(
                "a Cerebras .mdl of checkpoint format \(pythonFloatRepr(version))",
                advice: version > 0.5
                    ? "ditkit reads formats 0.4 and 0.5 (cerebras-pytorch 2.0 to 2.10); this file is newer"
                    : "ditkit reads formats 0.4 and 0.5 (cerebras-pytorch 2.0 and later); convert it with a newer cerebras.pytorch (load, then save)")
        }
        let paths = spec.leafPaths()
        let keys = paths.map { $0.joined(separator: ".") }
        var leaves: [String: MDLLeaf] = [:]
        leaves.reserveCapacity(keys.count)
        for key in keys {
            guard leaves[key] == nil else {
                throw malformed(
                    "key \(key)", "two leaves of the spec have this flat key (a dict key containing \".\" collides with nesting)")
            }
            leaves[key] = versionText == "0.5" ? try leaf05(key) : try leaf04(key)
        }
        return try assemble(keys: keys, paths: paths, leaves: leaves, version: versionText, cstorch: cstorch)
    }

    // MARK: format 0.5

    func checkSuccess() throws {
        guard let success = attribute("__SUCCESS__") else {
            throw malformed(
                "attribute __SUCCESS__",
                "partially written checkpoint (no __SUCCESS__): the saver sets it last, after every tensor; cerebras.pytorch.load refuses such a file too")
        }
        guard truth(success.value) == true else {
            throw malformed(
                "attribute __SUCCESS__", "partially written checkpoint (__SUCCESS__ is \(describe(success.value)), not true)")
        }
    }

    func spec05() throws -> MDLTreeSpec {
        guard let text = attribute("__spec__")?.value.text else {
            throw malformed("attribute __spec__", "missing or not a string (format 0.5 stores the state's structure there)")
        }
        let value: JSONValue
        do { value = try JSONParser.parse(text, maxDepth: 2 * MDLTreeSpec.maxDepth + 8) } catch let e as JSONParseError {
            throw malformed("attribute __spec__", "not JSON: \(e.description)")
        }
        guard case .array(let pair) = value, pair.count == 2, let treespec = pair[1].stringValue else {
            throw malformed("attribute __spec__", "not [structure, treespec JSON text]")
        }
        do { return try MDLTreeSpec.parseJSON(treespec) } catch let e as MDLSpecError {
            throw specError(e, location: "attribute __spec__")
        }
    }

    func specError(_ e: MDLSpecError, location: String) -> CheckpointError {
        e.unsupported
            ? unsupported("a Cerebras .mdl whose \(location) uses \(e.description)", advice: "ditkit reads the structures state dicts use")
            : malformed(location, e.description)
    }

    /// The serializer metadata of `key` (the `<key>.__metadata__` file attribute: `{"__spec__", "__objects__",
    /// "<key>.__metadata__": {…, "__TYPE__"}}`).
    func metadata05(_ key: String) throws -> JSONValue {
        let name = key + ".__metadata__"
        let location = "attribute \(name)"
        guard let text = attribute(name)?.value.text else {
            throw malformed(location, "missing (every leaf of the spec has one)")
        }
        let outer: JSONValue
        do { outer = try MDLJSON.parse(text, maxDepth: 32) } catch let e as JSONParseError {
            throw malformed(location, "not JSON: \(e.description)")
        }
        guard case .object = outer else { throw malformed(location, "not a JSON object") }
        // The leaf's own spec: `{key: leaf}` for every plain value; anything else is an object serialized in parts.
        if case .array(let pair)? = outer["__spec__"], pair.count == 2, case .object(let structure) = pair[0],
            structure.count == 1, structure[0].0 == key, structure[0].1 == .string("*"), pair[1].stringValue != nil
        {
            // `{key: "*"}`: the saver's JSON form of a spec whose one leaf is the key itself (the common case, and
            // the same finding as parsing the treespec below, without a second JSON parse per leaf).
        } else if case .array(let pair)? = outer["__spec__"], pair.count == 2, let treespec = pair[1].stringValue {
            let inner: MDLTreeSpec
            do { inner = try MDLTreeSpec.parseJSON(treespec) } catch let e as MDLSpecError {
                throw specError(e, location: location)
            }
            guard inner.flatKeys() == [key] else {
                let parts = inner.flatKeys().prefix(4).map { k in outer[k + ".__metadata__"]?["__TYPE__"]?.stringValue ?? "?" }
                throw unsupported(
                    "a Cerebras .mdl leaf (\(key)) serialized in parts (\(parts.joined(separator: ", ")))",
                    advice: "ditkit reads leaves saved whole (tensors, scalars, strings, None, links, pickled objects); load and save it with cerebras.pytorch to materialize it")
            }
        } else {
            throw malformed(location, "has no __spec__ [structure, treespec]")
        }
        guard let meta = outer[name], case .object = meta else { throw malformed(location, "has no \(name) object") }
        return meta
    }

    func leaf05(_ key: String) throws -> MDLLeaf {
        let meta = try metadata05(key)
        let location = "attribute \(key).__metadata__"
        guard let type = meta["__TYPE__"]?.stringValue else { throw malformed(location, "names no __TYPE__ (serializer)") }
        switch type {
        case "TorchTensorSerializer", "NumpyArraySerializer":
            guard meta["__NUMPY__"] == .bool(true) else {
                throw unsupported(
                    "a Cerebras .mdl tensor (\(key)) saved without its data (\(type) without __NUMPY__)",
                    advice: "load and save it with cerebras.pytorch to materialize it")
            }
            guard let dataset = root.dataset(at: key) else {
                throw malformed("key \(key)", "its metadata says \(type) but the file has no dataset \(key)")
            }
            if type == "NumpyArraySerializer" {
                let bf16 = meta["is_bfloat16"] == .bool(true)
                let dtype = try datasetDType(dataset, key: key, bfloat16: bf16)
                return .tensor(dtype: dtype, shape: try datasetShape(dataset, key: key), dataset: dataset, storedAs: bf16 ? "int16" : nil)
            }
            guard case .array(let shapes)? = meta["shapes"], shapes.count == 1, case .array(let dims) = shapes[0] else {
                throw malformed(location, "shapes is not a list of one shape")
            }
            let shape = try dims.map { d -> Int in
                guard let n = d.intValue, n >= 0 else { throw malformed(location, "shape \(meta["shapes"]!) has a dimension that is not a size") }
                return n
            }
            guard case .array(let dtypes)? = meta["dtypes"], dtypes.count == 1, let torchName = dtypes[0].stringValue else {
                throw malformed(location, "dtypes is not a list of one torch dtype name")
            }
            guard let dtype = MDLDTypes.torch[torchName] else {
                throw unsupported(
                    "a Cerebras .mdl tensor (\(key)) of dtype \(torchName)",
                    advice: "ditkit reads float64/32/16, bfloat16, int64/32/16/8, uint8 and bool tensors")
            }
            let stored = try datasetDType(dataset, key: key, bfloat16: dtype == .bf16)
            guard stored == dtype else {
                throw malformed("dataset \(key)", "holds \(describe(dataset.datatype)) but its metadata says \(torchName)")
            }
            let datasetDims = try datasetShape(dataset, key: key)
            guard datasetDims == shape else {
                throw malformed("dataset \(key)", "has shape \(datasetDims) but its metadata says \(shape)")
            }
            let storedAs: String? = dtype == .bf16 ? (isSigned(dataset.datatype) ? "int16" : "uint16") : nil
            return .tensor(dtype: dtype, shape: shape, dataset: dataset, storedAs: storedAs)
        case "ScalarSerializer":
            switch meta["scalar_value"] {
            case .bool(let b)?: return .value(kind: "bool", text: b ? "True" : "False", json: .bool(b), opaque: false)
            case .int(let i)?: return .value(kind: "int", text: String(i), json: .int(i), opaque: false)
            case .double(let d)?: return .value(kind: "float", text: pythonFloatRepr(d), json: .double(d), opaque: false)
            case let special? where MDLJSON.nonFinite(special) != nil:
                let d = MDLJSON.nonFinite(special)!
                return .value(kind: "float", text: pythonFloatRepr(d), json: .string(pythonFloatRepr(d)), opaque: false)
            default: throw malformed(location, "scalar_value is not a bool, int or float")
            }
        case "StringSerializer":
            guard let s = meta["string_value"]?.stringValue else { throw malformed(location, "string_value is not a string") }
            return .value(kind: "str", text: PickleValue.string(s).repr(limit: 200), json: .string(s), opaque: false)
        case "NoneSerializer":
            return .value(kind: "None", text: "None", json: .null, opaque: false)
        case "LinkedObject":
            guard let target = meta["key"]?.stringValue else { throw malformed(location, "a link with no key string") }
            return .link(target)
        case "ObjectSerializer":
            guard let dataset = root.dataset(at: key) else {
                throw malformed("key \(key)", "its metadata says ObjectSerializer but the file has no dataset \(key)")
            }
            guard let attribute = dataset.attribute("__BYTES__") else {
                throw malformed("dataset \(key)", "an ObjectSerializer leaf without its __BYTES__ attribute")
            }
            // h5py stores `numpy.void(pickle)` as a 1-d array of 1-byte opaque elements (`|V1`, shape (n,)); the
            // real loader takes `.tobytes()` of it, so any run of opaque elements is the pickle's bytes in order.
            guard let bytes = attribute.value.rawBytes else {
                throw malformed("dataset \(key) attribute __BYTES__", "is \(describe(attribute.value)), not opaque bytes")
            }
            return try pickledObject(bytes, location: "dataset \(key) attribute __BYTES__ (a dill pickle)")
        case "DeferredObject", "DeferredNumpyArray", "DeferredTorchTensor", "DeferredSafeTensor", "DeferredFileTensor",
            "DeferredFullTensor", "DeferredGraphTensor":
            throw unsupported(
                "a Cerebras .mdl leaf (\(key)) stored as \(type) (a reference to data elsewhere, or a recipe)",
                advice: "load and save it with cerebras.pytorch to materialize it")
        default:
            throw unsupported(
                "a Cerebras .mdl leaf (\(key)) of serializer \(type)",
                advice: "ditkit reads TorchTensorSerializer, NumpyArraySerializer, ScalarSerializer, StringSerializer, NoneSerializer, LinkedObject and ObjectSerializer leaves")
        }
    }

    // MARK: format 0.4

    mutating func spec04() throws -> MDLTreeSpec {
        let location = "attribute __spec__"
        guard let text = attribute("__spec__")?.value.text else {
            throw malformed(location, "missing or not a string (format 0.4 stores the state's structure there)")
        }
        do {
            let bytes = try MDLPickleSpec.hexBytes(text)
            let spec = try MDLPickleSpec.treeSpec(pickle: bytes)
            notes.append("the format-0.4 spec pickle (a torch pytree TreeSpec, \(bytes.count) bytes) was read as data, not run")
            return spec
        } catch let e as MDLSpecError {
            throw specError(e, location: location)
        } catch let e as PickleError {
            throw CheckpointError.pickle(e, path: path, entry: location + " (a dill pickle of the TreeSpec)")
        }
    }

    func leaf04(_ key: String) throws -> MDLLeaf {
        let name = MDLNames.quote(key)
        guard let dataset = root.datasets[name] else {
            throw malformed("key \(key)", "the file has no dataset \(name) (the 0.4 writer names each leaf's dataset by its percent-encoded key)")
        }
        let location = "dataset \(name)"
        guard let type = dataset.attribute("__H5_TYPE__")?.value.text else {
            throw unsupported(
                "a Cerebras .mdl leaf (\(key)) without __H5_TYPE__ (written by cerebras 1.8 or older)",
                advice: "load and save it with a newer cerebras.pytorch")
        }
        switch type {
        case "TorchTensorH5Type", "NumpyArrayH5Type":
            let bf16 = dataset.attribute("is_bfloat16").flatMap { truth($0.value) } ?? false
            let dtype = try datasetDType(dataset, key: key, bfloat16: bf16)
            let storedAs: String? = bf16 ? (isSigned(dataset.datatype) ? "int16" : "uint16") : nil
            return .tensor(dtype: dtype, shape: try datasetShape(dataset, key: key), dataset: dataset, storedAs: storedAs)
        case "ScalarH5Type":
            guard dataset.dataspace == .scalar else { throw malformed(location, "a ScalarH5Type dataset that is not 0-d") }
            let value = try data.value(dataset)
            switch (value, dataset.datatype) {
            case (.enumerated(_, let v), .enumeration):
                return .value(kind: "bool", text: v != 0 ? "True" : "False", json: .bool(v != 0), opaque: false)
            case (.integer(let i), _):
                guard let n = Int(exactly: i) else { throw malformed(location, "integer out of range") }
                return .value(kind: "int", text: String(n), json: .int(n), opaque: false)
            case (.unsigned(let u), _):
                guard let n = Int(exactly: u) else {
                    return .value(kind: "int", text: String(u), json: .string(String(u)), opaque: false)
                }
                return .value(kind: "int", text: String(n), json: .int(n), opaque: false)
            case (.float(let d), _):
                return .value(kind: "float", text: pythonFloatRepr(d), json: d.isFinite ? .double(d) : .string(pythonFloatRepr(d)), opaque: false)
            default: throw malformed(location, "a ScalarH5Type dataset holding \(describe(value))")
            }
        case "StringH5Type":
            guard let s = dataset.attribute("string_value")?.value.text else {
                throw malformed(location, "a StringH5Type dataset without a string_value string")
            }
            return .value(kind: "str", text: PickleValue.string(s).repr(limit: 200), json: .string(s), opaque: false)
        case "NoneH5Type":
            return .value(kind: "None", text: "None", json: .null, opaque: false)
        case "ObjectH5Type":
            guard let hex = dataset.attribute("object_value")?.value.text else {
                throw malformed(location, "an ObjectH5Type dataset without an object_value string")
            }
            let bytes: [UInt8]
            do { bytes = try MDLPickleSpec.hexBytes(hex) } catch let e as MDLSpecError {
                throw malformed(location + " attribute object_value", e.description)
            }
            return try pickledObject(bytes, location: location + " attribute object_value (a dill pickle)")
        default:
            throw unsupported(
                "a Cerebras .mdl leaf (\(key)) of __H5_TYPE__ \(type)",
                advice: "ditkit reads TorchTensorH5Type, NumpyArrayH5Type, ScalarH5Type, StringH5Type, NoneH5Type and ObjectH5Type")
        }
    }

    // MARK: shared

    /// A pickled Python object, read as data only to name its class (never run): HOSTILE when it would call a
    /// code-execution primitive; otherwise an opaque value naming the class it builds.
    func pickledObject(_ bytes: [UInt8], location: String) throws -> MDLLeaf {
        do {
            let value = try bytes.withUnsafeBytes { try Unpickler(policy: PicklePolicy()).load($0).value }
            let name: String
            switch value {
            case .object(let o): name = o.type.description
            case .global(let g): name = g.description
            default: name = value.kindName
            }
            return .value(kind: name, text: "<\(name)>", json: .string(name), opaque: true)
        } catch let e as PickleError {
            switch e {
            case .codeExecution: throw CheckpointError.pickle(e, path: path, entry: location)
            case .notAllowlisted(_, let callable, _, _, _, _):
                let name = callable.description
                return .value(kind: name, text: "<\(name)>", json: .string(name), opaque: true)
            default: throw CheckpointError.pickle(e, path: path, entry: location)
            }
        }
    }

    /// The DType of a tensor dataset's elements (bf16 when the file marks 2-byte integers as bfloat16).
    func datasetDType(_ dataset: HDF5Dataset, key: String, bfloat16: Bool) throws -> DType {
        let t = dataset.datatype
        if bfloat16 {
            guard case .integer(2, _, _) = t else {
                throw malformed("dataset \(dataset.path)", "marked bfloat16 but holds \(describe(t)), not 2-byte integers")
            }
            return .bf16
        }
        switch t {
        case .float(8, _): return .f64
        case .float(4, _): return .f32
        case .float(2, _): return .f16
        case .integer(8, true, _): return .i64
        case .integer(4, true, _): return .i32
        case .integer(2, true, _): return .i16
        case .integer(1, true, _): return .i8
        case .integer(8, false, _): return .u64
        case .integer(4, false, _): return .u32
        case .integer(2, false, _): return .u16
        case .integer(1, false, _): return .u8
        case .enumeration(.integer(1, _, _), let members)
        where members.count == 2 && members.contains(where: { $0.name == "FALSE" && $0.value == 0 })
            && members.contains(where: { $0.name == "TRUE" && $0.value == 1 }):
            return .bool
        default:
            throw unsupported(
                "a Cerebras .mdl tensor (\(key)) stored as \(describe(t))",
                advice: "ditkit reads float, integer and bool tensor datasets")
        }
    }

    func datasetShape(_ dataset: HDF5Dataset, key: String) throws -> [Int] {
        switch dataset.dataspace {
        case .scalar: return []
        case .simple(let dims): return dims
        case .null: throw malformed("dataset \(dataset.path)", "a tensor dataset with no elements (null dataspace)")
        }
    }

    func isSigned(_ t: HDF5Datatype) -> Bool {
        if case .integer(_, let signed, _) = t { return signed }
        return false
    }

    func isBigEndian(_ t: HDF5Datatype) -> Bool {
        switch t {
        case .integer(_, _, let be), .float(_, let be): return be
        case .enumeration(let base, _): return isBigEndian(base)
        default: return false
        }
    }

    func truth(_ value: HDF5Value) -> Bool? {
        switch value {
        case .enumerated(_, let v): return v != 0
        case .integer(let i): return i != 0
        case .unsigned(let u): return u != 0
        case .array(let items, _) where items.count == 1: return truth(items[0])
        default: return nil
        }
    }

    func describe(_ value: HDF5Value) -> String {
        switch value {
        case .integer(let i): return "the integer \(i)"
        case .unsigned(let u): return "the integer \(u)"
        case .float(let d): return "the float \(pythonFloatRepr(d))"
        case .string(let s): return "the string " + PickleValue.string(s).repr(limit: 60)
        case .enumerated(let name, let v): return "the enum value \(name ?? "?")=\(v)"
        case .array(_, let shape): return "an array of shape \(shape)"
        case .empty: return "empty"
        case .bytes(let b): return "\(b.count) opaque bytes"
        }
    }

    func describe(_ t: HDF5Datatype) -> String {
        switch t {
        case .integer(let size, let signed, let be): return "\(signed ? "" : "u")int\(size * 8)\(be ? " big-endian" : "")"
        case .float(let size, let be): return "float\(size * 8)\(be ? " big-endian" : "")"
        case .fixedString(let size, _): return "a \(size)-byte string"
        case .variableString: return "variable-length strings"
        case .enumeration(let base, _): return "an enum over \(describe(base))"
        case .opaque(let size, _): return "\(size)-byte opaque elements"
        }
    }

    // MARK: output

    mutating func assemble(
        keys: [String], paths: [[String]], leaves: [String: MDLLeaf], version: String, cstorch: String?
    ) throws -> MDLContents {
        var storages: [String: TensorStorage] = [:]
        var tensors: [TensorInfo] = []
        var values: [CheckpointValue] = []
        var bf16: [String: Int] = [:]
        var links: [(String, String)] = []
        for key in keys {
            // Follow links to the leaf that holds the data; a missing target or a cycle is a damaged file.
            var target = key
            var seen: Set<String> = [key]
            var leaf = leaves[key]!
            while case .link(let next) = leaf {
                guard let nextLeaf = leaves[next] else {
                    throw malformed("key \(target)", "a link to \(PickleValue.string(next).repr(limit: 120)), which is not a key of the file")
                }
                guard seen.insert(next).inserted else {
                    throw malformed("key \(key)", "links form a cycle through \(next)")
                }
                target = next
                leaf = nextLeaf
            }
            if target != key { links.append((key, target)) }
            switch leaf {
            case .link: throw malformed("key \(key)", "a link that does not resolve")  // not reached: the loop above resolves links
            case .value(let kind, let text, let json, let opaque):
                values.append(CheckpointValue(path: key, kind: kind, text: text, json: json, isOpaqueObject: opaque))
            case .tensor(let dtype, let shape, let dataset, let storedAs):
                let geometry: TensorGeometry
                do { geometry = try TensorGeometry(contiguous: shape) } catch {
                    throw malformed("dataset \(dataset.path)", "shape \(shape) is too large: \(error)")
                }
                let storage: TensorStorage
                if let shared = storages[dataset.path] {
                    storage = shared
                } else {
                    let source = try data.source(dataset)
                    guard let expected = Checked.multiply(geometry.elementCount, dtype.size), source.byteCount == expected else {
                        throw malformed(
                            "dataset \(dataset.path)",
                            "holds \(source.byteCount) bytes, not the \(geometry.elementCount) × \(dtype.size) its shape \(shape) needs")
                    }
                    storage = TensorStorage(key: dataset.path, bigEndian: isBigEndian(dataset.datatype), source: source)
                    storages[dataset.path] = storage
                    if let storedAs { bf16[storedAs, default: 0] += 1 }
                }
                tensors.append(TensorInfo(name: key, dtype: dtype, geometry: geometry, storage: storage))
            }
        }
        for (storedAs, count) in bf16.sorted(by: { $0.key < $1.key }) {
            notes.append("bf16 tensors stored as \(storedAs) (\(count)), as Cerebras saves bfloat16")
        }
        if !links.isEmpty {
            let shown = links.prefix(6).map { "\($0.0) → \($0.1)" }.joined(separator: ", ")
            notes.append("links followed (leaves the saver stored once): \(shown)\(links.count > 6 ? ", … (\(links.count) in all)" : "")")
        }
        var metadata: [(String, String)] = [("mdl.format_version", version)]
        if let cstorch { metadata.append(("mdl.cstorch_version", cstorch)) }
        return MDLContents(
            formatVersion: version, cstorchVersion: cstorch, tensors: tensors, values: values, metadata: metadata,
            notes: notes, keyPaths: zip(keys, paths).map { (key: $0, components: $1) })
    }
}

/// Torch dtype names (`str(tensor.dtype)`, as the 0.5 metadata records them) ditkit reads.
/// `str(torch dtype)` ↔ `DType`, the one table the `.mdl` reader (leaf metadata `dtypes`) and writer use.
enum MDLDTypes {
    static let names: [(DType, String)] = [
        (.f64, "torch.float64"), (.f32, "torch.float32"), (.f16, "torch.float16"), (.bf16, "torch.bfloat16"),
        (.i64, "torch.int64"), (.i32, "torch.int32"), (.i16, "torch.int16"), (.i8, "torch.int8"), (.u8, "torch.uint8"),
        (.u16, "torch.uint16"), (.u32, "torch.uint32"), (.u64, "torch.uint64"), (.bool, "torch.bool"),
    ]
    /// By torch name.
    static let torch: [String: DType] = Dictionary(names.map { ($0.1, $0.0) }, uniquingKeysWith: { a, _ in a })
    /// The torch name of `dtype` (`torch.<dtype>` for one torch has no name for here).
    static func torchName(_ dtype: DType) -> String { names.first { $0.0 == dtype }?.1 ?? "torch.\(dtype)" }
}

/// Dataset names of the format-0.4 writer.
package enum MDLNames {
    /// `urllib.parse.quote(key, safe="")`: every byte of the UTF-8 key except ASCII letters, digits and `_.-~` as
    /// `%XX` (upper-case hex).
    package static func quote(_ key: String) -> String {
        var out = ""
        out.reserveCapacity(key.utf8.count)
        let hex: [Character] = Array("0123456789ABCDEF")
        for b in key.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "~"):
                out.append(Character(Unicode.Scalar(b)))
            default:
                out.append("%")
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            }
        }
        return out
    }
}

/// JSON as Python's `json.dumps` writes it: standard JSON, plus the bare tokens `NaN`, `Infinity` and `-Infinity`
/// for non-finite floats (a scalar such as a loss scale can be one). Those tokens, outside strings, are read as
/// `{"__ditkit_float__": "nan" | "inf" | "-inf"}` (see `nonFinite`).
enum MDLJSON {
    static let marker = "__ditkit_float__"

    /// Parses `text`; only when it fails as standard JSON and holds a non-finite token is it read again with those
    /// tokens marked.
    static func parse(_ text: String, maxDepth: Int) throws -> JSONValue {
        do { return try JSONParser.parse(text, maxDepth: maxDepth) } catch let first as JSONParseError {
            guard text.contains("NaN") || text.contains("Infinity") else { throw first }
            return try JSONParser.parse(marked(text), maxDepth: maxDepth)
        }
    }

    /// `text` with `NaN`, `Infinity`, `-Infinity` outside strings replaced by marker objects.
    static func marked(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 64)
        var i = 0
        var inString = false
        func matches(_ token: String, at position: Int) -> Bool {
            let t = Array(token.utf8)
            return position + t.count <= bytes.count && Array(bytes[position..<(position + t.count)]) == t
        }
        while i < bytes.count {
            let c = bytes[i]
            if inString {
                out.append(c)
                if c == UInt8(ascii: "\\"), i + 1 < bytes.count {
                    out.append(bytes[i + 1])
                    i += 2
                    continue
                }
                if c == UInt8(ascii: "\"") { inString = false }
                i += 1
                continue
            }
            if c == UInt8(ascii: "\"") {
                inString = true
                out.append(c)
                i += 1
                continue
            }
            if let (token, name) = [("-Infinity", "-inf"), ("Infinity", "inf"), ("NaN", "nan")].first(where: { matches($0.0, at: i) }) {
                out += Array("{\"\(marker)\": \"\(name)\"}".utf8)
                i += token.utf8.count
                continue
            }
            out.append(c)
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The non-finite float a marker object stands for, else nil.
    static func nonFinite(_ value: JSONValue) -> Double? {
        switch value[marker]?.stringValue {
        case "nan": return .nan
        case "inf": return .infinity
        case "-inf": return -.infinity
        default: return nil
        }
    }
}
