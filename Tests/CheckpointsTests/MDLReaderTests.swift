@testable import Checkpoints
import Foundation
import Tensors
import DitkitTestSupport
import Testing

/// The `.mdl` layer over hand-built HDF5 trees (no HDF5 parsing involved): spec parsing (0.5 treespec JSON, 0.4
/// TreeSpec pickle), key splitting, serializer metadata, link following, bf16-as-int16, and the refusals.
@Suite("MDL reader: specs, leaves, links, refusals (hand-built HDF5 trees)")
struct MDLReaderTests {
    // MARK: building blocks

    /// Bytes held in memory, standing in for a dataset's validated source.
    final class FakeSource: ByteSource, @unchecked Sendable {
        let bytes: [UInt8]
        let path = "fake.mdl"
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        var byteCount: Int { bytes.count }
        func stream(_ range: Range<Int>, chunkSize: Int, to sink: ByteSink) throws {
            try bytes[range].withUnsafeBytes { try sink.write($0) }
        }
    }

    static let leafJSON = #"{"type": null, "context": null, "children_spec": []}"#

    /// `treespec_dumps` text of a dict (keys in order) whose children are `children` (JSON texts).
    static func dictSpec(_ keys: [String], _ children: [String], type: String = "builtins.dict") -> String {
        let context = "[" + keys.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        return #"{"type": "\#(type)", "context": \#(jsonString(context)), "children_spec": [\#(children.joined(separator: ", "))]}"#
    }

    static func jsonString(_ s: String) -> String {
        var out = ""
        JSONValue.writeString(s, to: &out)
        return out
    }

    /// A root attribute `<key>.__metadata__` as the 0.5 saver writes it.
    static func metadata(_ key: String, _ inner: String) -> HDF5Attribute {
        let spec = "[1, " + dictSpec([key], [leafJSON]) + "]"
        let text = #"{"__spec__": [{"k": "*"}, \#(jsonString(spec))], "__objects__": [\#(jsonString(key))], \#(jsonString(key + ".__metadata__")): \#(inner)}"#
        return HDF5Attribute(name: key + ".__metadata__", value: .string(text), offset: 0)
    }

    static func tensorMeta(_ shape: [Int], _ dtype: String) -> String {
        #"{"__TORCH__": true, "shapes": [\#(shape)], "dtypes": ["\#(dtype)"], "rtfx_dtypes": [11], "__TYPE__": "TorchTensorSerializer", "__NUMPY__": true, "compressed": false}"#
    }

    static let trueEnum = HDF5Value.enumerated(name: "TRUE", value: 1)
    static let boolType = HDF5Datatype.enumeration(base: .integer(size: 1, signed: true, bigEndian: false), members: [("FALSE", 0), ("TRUE", 1)])

    static func dataset(_ path: String, _ type: HDF5Datatype, _ space: HDF5Dataspace, attributes: [HDF5Attribute] = []) -> HDF5Dataset {
        HDF5Dataset(
            path: path, headerOffset: 0, datatype: type, dataspace: space,
            storage: .contiguous(address: nil, size: 0), attributes: attributes)
    }

    static func group(attributes: [HDF5Attribute], datasets: [HDF5Dataset]) -> HDF5Group {
        var byName: [String: HDF5Dataset] = [:]
        for d in datasets { byName[d.path] = d }
        return HDF5Group(
            path: "", headerOffset: 0, attributes: attributes, groups: [:], datasets: byName,
            memberNames: datasets.map(\.path).sorted())
    }

    /// Sources of the right size for every dataset (elements × element size), values for 0-d datasets.
    static func access(_ values: [String: HDF5Value] = [:]) -> MDLReader.DataAccess {
        MDLReader.DataAccess(
            source: { d in FakeSource([UInt8](repeating: 7, count: d.dataspace.elementCount * d.datatype.size)) },
            value: { d in
                guard let v = values[d.path] else { throw CheckpointError.malformed(path: "fake", location: d.path, reason: "no value") }
                return v
            })
    }

    /// A 0.5 tree: a dict key containing ".", a bf16 tensor over int16, a tied tensor (link), scalars, a string, None.
    static func tree05(success: HDF5Value? = trueEnum, extra: [HDF5Attribute] = [], replace: [String: String] = [:]) -> HDF5Group {
        let spec = "[1, " + dictSpec(
            ["model", "global_step", "tied", "name", "nothing", "lr", "flag"],
            [dictSpec(["model.w", "model.b"], [leafJSON, leafJSON], type: "collections.OrderedDict"),
             leafJSON, leafJSON, leafJSON, leafJSON, leafJSON, leafJSON]) + "]"
        var metas: [String: String] = [
            "model.model.w": tensorMeta([3, 4], "torch.float32"),
            "model.model.b": tensorMeta([4], "torch.bfloat16"),
            "global_step": #"{"scalar_value": 5, "__TYPE__": "ScalarSerializer", "__NONE__": true}"#,
            "tied": #"{"key": "model.model.w", "__LINKED__": true, "__TYPE__": "LinkedObject", "__NONE__": true}"#,
            "name": #"{"string_value": "dit", "__TYPE__": "StringSerializer", "__NONE__": true}"#,
            "nothing": #"{"__TYPE__": "NoneSerializer", "__NONE__": true}"#,
            "lr": #"{"scalar_value": 0.0001, "__TYPE__": "ScalarSerializer", "__NONE__": true}"#,
            "flag": #"{"scalar_value": false, "__TYPE__": "ScalarSerializer", "__NONE__": true}"#,
        ]
        for (k, v) in replace { metas[k] = v }
        var attributes = [
            HDF5Attribute(name: "__version__", value: .float(0.5), offset: 0),
            HDF5Attribute(name: "__cstorch_version__", value: .string("2.10.0"), offset: 0),
            HDF5Attribute(name: "__spec__", value: .string("[{\"model\": \"*\"}, \(jsonString(spec))]"), offset: 0),
        ]
        if let success { attributes.append(HDF5Attribute(name: "__SUCCESS__", value: success, offset: 0)) }
        attributes += metas.sorted(by: { $0.key < $1.key }).map { metadata($0.key, $0.value) } + extra
        return group(
            attributes: attributes,
            datasets: [
                dataset("model.model.w", .float(size: 4, bigEndian: false), .simple([3, 4])),
                dataset("model.model.b", .integer(size: 2, signed: true, bigEndian: false), .simple([4])),
            ])
    }

    static func read(_ root: HDF5Group, values: [String: HDF5Value] = [:]) throws -> MDLContents {
        try MDLReader.read(root: root, path: "t.mdl", data: access(values))
    }

    static func error(_ body: () throws -> Void) -> CheckpointError? {
        do { try body() } catch let e as CheckpointError { return e } catch { return nil }
        return nil
    }

    // MARK: 0.5

    @Test("0.5: tensors and values in spec order; a dict key with a dot stays one component; links share storage; bf16 over int16")
    func format05() throws {
        let c = try Self.read(Self.tree05())
        #expect(c.formatVersion == "0.5")
        #expect(c.cstorchVersion == "2.10.0")
        #expect(c.tensors.map(\.name) == ["model.model.w", "model.model.b", "tied"])
        #expect(c.tensors.map(\.dtype) == [.f32, .bf16, .f32])
        #expect(c.tensors.map(\.shape) == [[3, 4], [4], [3, 4]])
        #expect(c.tensors[2].storage === c.tensors[0].storage)
        #expect(c.keyPaths.first?.components == ["model", "model.w"])
        #expect(c.values.map(\.path) == ["global_step", "name", "nothing", "lr", "flag"])
        #expect(c.values.map(\.kind) == ["int", "str", "None", "float", "bool"])
        #expect(c.values.map(\.text) == ["5", "'dit'", "None", "0.0001", "False"])
        #expect(c.values[0].json == .int(5))
        #expect(c.notes.contains { $0.contains("bf16 tensors stored as int16 (1)") })
        #expect(c.notes.contains { $0.contains("tied → model.model.w") })
        #expect(c.metadata.map(\.0) == ["mdl.format_version", "mdl.cstorch_version"])
    }

    @Test("0.5: Python's non-finite JSON floats (NaN, Infinity) are floats; the same text inside a string stays text")
    func nonFinite() throws {
        let c = try Self.read(Self.tree05(replace: [
            "lr": #"{"scalar_value": -Infinity, "__TYPE__": "ScalarSerializer", "__NONE__": true}"#,
            "name": #"{"string_value": "NaN \" Infinity", "__TYPE__": "StringSerializer", "__NONE__": true}"#,
        ]))
        let lr = try #require(c.values.first { $0.path == "lr" })
        #expect(lr.kind == "float")
        #expect(lr.text == "-inf")
        let name = try #require(c.values.first { $0.path == "name" })
        #expect(name.json == .string("NaN \" Infinity"))
    }

    @Test("0.5 without __SUCCESS__ (or with it false) is a partially written checkpoint: malformed")
    func noSuccess() {
        for success in [nil, HDF5Value.enumerated(name: "FALSE", value: 0)] {
            let e = Self.error { _ = try Self.read(Self.tree05(success: success)) }
            guard case .malformed(_, let location, let reason)? = e else { Issue.record("got \(String(describing: e))"); continue }
            #expect(location == "attribute __SUCCESS__")
            #expect(reason.contains("partially written checkpoint"))
        }
    }

    @Test("0.5 links: to a missing key, and in a cycle, are malformed (never followed forever)")
    func badLinks() {
        let missing = Self.error {
            _ = try Self.read(Self.tree05(replace: ["tied": #"{"key": "nope", "__TYPE__": "LinkedObject"}"#]))
        }
        guard case .malformed(_, let l1, let r1)? = missing else { Issue.record("got \(String(describing: missing))"); return }
        #expect(l1 == "key tied")
        #expect(r1.contains("'nope'"))
        let cycle = Self.error {
            _ = try Self.read(Self.tree05(replace: [
                "model.model.w": #"{"key": "tied", "__TYPE__": "LinkedObject"}"#,
            ]))
        }
        guard case .malformed(_, _, let r2)? = cycle else { Issue.record("got \(String(describing: cycle))"); return }
        #expect(r2.contains("cycle"))
    }

    @Test("0.5: a dataset whose dtype or shape disagrees with its metadata is malformed")
    func disagreement() {
        let dtype = Self.error { _ = try Self.read(Self.tree05(replace: ["model.model.w": Self.tensorMeta([3, 4], "torch.float16")])) }
        guard case .malformed(_, "dataset model.model.w", let r1)? = dtype else { Issue.record("got \(String(describing: dtype))"); return }
        #expect(r1.contains("torch.float16"))
        let shape = Self.error { _ = try Self.read(Self.tree05(replace: ["model.model.w": Self.tensorMeta([4, 3], "torch.float32")])) }
        guard case .malformed(_, "dataset model.model.w", let r2)? = shape else { Issue.record("got \(String(describing: shape))"); return }
        #expect(r2.contains("[4, 3]"))
    }

    @Test("0.5: a source whose size is not shape × element size is malformed")
    func shortSource() {
        let access = MDLReader.DataAccess(source: { _ in FakeSource([1, 2, 3]) }, value: { _ in .empty })
        let e = Self.error { _ = try MDLReader.read(root: Self.tree05(), path: "t.mdl", data: access) }
        guard case .malformed(_, let location, _)? = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(location == "dataset model.model.w")
    }

    @Test("0.5: malformed JSON spec, unknown serializer, unknown version")
    func refusals() {
        var root = Self.tree05()
        root = Self.group(
            attributes: root.attributes.map { $0.name == "__spec__" ? HDF5Attribute(name: "__spec__", value: .string("[{,]"), offset: 0) : $0 },
            datasets: root.allDatasets)
        guard case .malformed(_, "attribute __spec__", let r)? = Self.error({ _ = try Self.read(root) }) else {
            Issue.record("bad JSON not refused as malformed"); return
        }
        #expect(r.contains("not JSON"))
        let unknown = Self.error { _ = try Self.read(Self.tree05(replace: ["name": #"{"__TYPE__": "FancySerializer"}"#])) }
        guard case .unsupported(_, let kind, _)? = unknown else { Issue.record("got \(String(describing: unknown))"); return }
        #expect(kind.contains("FancySerializer") && kind.contains("(name)"))
        let old = Self.group(attributes: [HDF5Attribute(name: "__version__", value: .float(0.3), offset: 0)], datasets: [])
        guard case .unsupported(_, let k2, _)? = Self.error({ _ = try Self.read(old) }) else { Issue.record("0.3 not refused"); return }
        #expect(k2.contains("0.3"))
        let none = Self.group(attributes: [], datasets: [])
        guard case .unsupported? = Self.error({ _ = try Self.read(none) }) else { Issue.record("no __version__ not refused"); return }
    }

    @Test("0.5 ObjectSerializer: a benign pickle is an opaque value naming its class; an os.system pickle is HOSTILE")
    func objectSerializer() throws {
        let meta = #"{"__TYPE__": "ObjectSerializer", "__BYTES__": true}"#
        func tree(_ bytes: [UInt8]) -> HDF5Group {
            let base = Self.tree05(replace: ["name": meta])
            let obj = Self.dataset("name", .float(size: 4, bigEndian: false), .null, attributes: [
                // as h5py stores numpy.void(b): `|V1` elements, shape (n,)
                HDF5Attribute(name: "__BYTES__", value: .array(bytes.map { .bytes([$0]) }, shape: [bytes.count]), offset: 0),
            ])
            return Self.group(attributes: base.attributes, datasets: base.allDatasets + [obj])
        }
        // range(3) as dill writes it (protocol 4): builtins.range called with (0, 3, 1)
        let range: [UInt8] = [0x80, 0x04, 0x95, 0x17, 0, 0, 0, 0, 0, 0, 0, 0x8c, 0x08] + Array("builtins".utf8) + [0x94, 0x8c, 0x05]
            + Array("range".utf8) + [0x94, 0x93, 0x94, 0x4b, 0x00, 0x4b, 0x03, 0x4b, 0x01, 0x87, 0x94, 0x52, 0x94, 0x2e]
        let c = try Self.read(tree(range))
        let value = try #require(c.values.first { $0.path == "name" })
        #expect(value.kind == "builtins.range")
        #expect(value.isOpaqueObject)
        let hostile = Self.error { _ = try Self.read(tree(MDLPickleSpecTests.osSystem)) }
        guard case .hostile(_, let location, let reason)? = hostile else { Issue.record("got \(String(describing: hostile))"); return }
        #expect(location.contains("__BYTES__"))
        #expect(reason.contains("os.system"))
    }

    // MARK: 0.4

    static func tree04(spec: String) -> HDF5Group {
        let tensor = { (name: String, t: HDF5Datatype, dims: [Int], bf16: Bool) in
            Self.dataset(name, t, .simple(dims), attributes: [
                HDF5Attribute(name: "is_bfloat16", value: .enumerated(name: bf16 ? "TRUE" : "FALSE", value: bf16 ? 1 : 0), offset: 0),
                HDF5Attribute(name: "__H5_TYPE__", value: .string("TorchTensorH5Type"), offset: 0),
            ])
        }
        let h5type = { (t: String) in HDF5Attribute(name: "__H5_TYPE__", value: .string(t), offset: 0) }
        return Self.group(
            attributes: [
                HDF5Attribute(name: "__version__", value: .float(0.4), offset: 0),
                HDF5Attribute(name: "__cstorch_version__", value: .string("2.4.0"), offset: 0),
                HDF5Attribute(name: "__spec__", value: .string(spec), offset: 0),
            ],
            datasets: [
                tensor("model.model.w", .float(size: 4, bigEndian: false), [3, 4], false),
                tensor("model.model.b", .integer(size: 2, signed: true, bigEndian: false), [4], true),
                Self.dataset("l.0", .integer(size: 8, signed: true, bigEndian: false), .scalar, attributes: [h5type("ScalarH5Type")]),
                Self.dataset("l.1.0", Self.boolType, .scalar, attributes: [h5type("ScalarH5Type")]),
                Self.dataset("l.1.1", .float(size: 4, bigEndian: false), .null, attributes: [
                    h5type("StringH5Type"), HDF5Attribute(name: "string_value", value: .string("x/y"), offset: 0),
                ]),
                Self.dataset("0", .float(size: 4, bigEndian: false), .null, attributes: [h5type("NoneH5Type")]),
                Self.dataset("f", .float(size: 8, bigEndian: false), .scalar, attributes: [h5type("ScalarH5Type")]),
            ])
    }

    @Test("0.4: the pickled TreeSpec read as data; percent-encoded datasets; is_bfloat16; 0-d scalars; strings and None")
    func format04() throws {
        let c = try Self.read(
            Self.tree04(spec: MDLPickleSpecTests.specHex),
            values: ["l.0": .integer(1), "l.1.0": .enumerated(name: "TRUE", value: 1), "f": .float(1.5)])
        #expect(c.formatVersion == "0.4")
        #expect(c.tensors.map(\.name) == ["model.model.w", "model.model.b"])
        #expect(c.tensors.map(\.dtype) == [.f32, .bf16])
        #expect(c.values.map(\.path) == ["l.0", "l.1.0", "l.1.1", "0", "f"])
        #expect(c.values.map(\.text) == ["1", "True", "'x/y'", "None", "1.5"])
        #expect(c.notes.contains { $0.contains("read as data, not run") })
    }

    @Test("0.4: a non-hex spec is malformed naming the offset; an os.system spec pickle is HOSTILE")
    func badSpec04() {
        var hex = MDLPickleSpecTests.specHex
        hex.replaceSubrange(hex.index(hex.startIndex, offsetBy: 40)..<hex.index(hex.startIndex, offsetBy: 42), with: "zz")
        let e = Self.error { _ = try Self.read(Self.tree04(spec: hex)) }
        guard case .malformed(_, "attribute __spec__", let reason)? = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(reason.contains("'z' at offset 40"))
        let hostileHex = MDLPickleSpecTests.osSystem.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let h = Self.error { _ = try Self.read(Self.tree04(spec: hostileHex)) }
        guard case .hostile(_, let location, let reason2)? = h else { Issue.record("got \(String(describing: h))"); return }
        #expect(location.contains("__spec__"))
        #expect(reason2.contains("os.system"))
        #expect(h?.kind == .hostile)
    }
}

/// TreeSpec parsing on its own: JSON (0.5) and pickle (0.4), against what the real `recurse_spec` gives.
@Suite("MDL specs: treespec JSON and TreeSpec pickles")
struct MDLPickleSpecTests {
    /// `dill.dumps(spec)` (torch 2.4, dill 0.3) of the spec of
    /// `{'model': OrderedDict([('model.w', 1), ('model.b', 2)]), 'l': [1, (2, 3)], 0: 4, 'e': {}, 'f': 1.5}`.
    static let specHex = "800495cf010000000000008c13746f7263682e7574696c732e5f707974726565948c0854726565537065639493942981947d94288c0474797065948c0a64696c6c2e5f64696c6c948c0a5f6c6f61645f747970659493948c046469637494859452948c07636f6e74657874945d94288c056d6f64656c948c016c944b008c0165948c016694658c0e6368696c6472656e5f7370656373945d942868022981947d942868058c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394680c5d94288c076d6f64656c2e77948c076d6f64656c2e62946568125d942868008c084c656166537065639493942981947d942868054e680c4e68125d948c096e756d5f6e6f646573944b018c0a6e756d5f6c6561766573944b018c0c6e756d5f6368696c6472656e944b007562681f6568224b0368234b0268244b02756268022981947d9428680568088c046c6973749485945294680c4e68125d9428681f68022981947d9428680568088c057475706c659485945294680c4e68125d9428681f681f6568224b0368234b0268244b0275626568224b0568234b0368244b027562681f68022981947d94286805680b680c5d9468125d9468224b0168234b0068244b007562681f6568224b0c68234b0768244b0575622e"
    /// `treespec_dumps` of the same spec.
    static let specJSON = #"[1, {"type": "builtins.dict", "context": "[\"model\", \"l\", 0, \"e\", \"f\"]", "children_spec": [{"type": "collections.OrderedDict", "context": "[\"model.w\", \"model.b\"]", "children_spec": [{"type": null, "context": null, "children_spec": []}, {"type": null, "context": null, "children_spec": []}]}, {"type": "builtins.list", "context": "null", "children_spec": [{"type": null, "context": null, "children_spec": []}, {"type": "builtins.tuple", "context": "null", "children_spec": [{"type": null, "context": null, "children_spec": []}, {"type": null, "context": null, "children_spec": []}]}]}, {"type": null, "context": null, "children_spec": []}, {"type": "builtins.dict", "context": "[]", "children_spec": []}, {"type": null, "context": null, "children_spec": []}]}]"#
    /// What `cerebras.pytorch.utils.nest.recurse_spec` yields for it, joined by ".".
    static let flatKeys = ["model.model.w", "model.model.b", "l.0", "l.1.0", "l.1.1", "0", "f"]
    /// `os.system("touch /tmp/ditkit-mdl-pwned")`, written opcode by opcode (protocol 4).
    static let osSystem: [UInt8] = {
        let cmd = Array("touch /tmp/ditkit-mdl-pwned".utf8)
        return [0x80, 0x04] + Array("cos\nsystem\n".utf8) + [0x58] + withUnsafeBytes(of: UInt32(cmd.count).littleEndian, Array.init)
            + cmd + [0x85, 0x52, 0x2e]
    }()

    @Test("treespec JSON: keys, order, a dotted key as one component, an empty dict yields no key")
    func json() throws {
        let spec = try MDLTreeSpec.parseJSON(Self.specJSON)
        #expect(spec.flatKeys() == Self.flatKeys)
        #expect(spec.leafPaths()[0] == ["model", "model.w"])
        #expect(spec.leafCount == 7)
    }

    @Test("TreeSpec pickle (0.4) read as data gives the same spec as the JSON")
    func pickle() throws {
        let bytes = try MDLPickleSpec.hexBytes(Self.specHex)
        let spec = try MDLPickleSpec.treeSpec(pickle: bytes)
        #expect(spec == (try MDLTreeSpec.parseJSON(Self.specJSON)))
    }

    @Test("hostile and broken specs: os.system, other types, protocol, depth, key-count mismatch")
    func refusals() throws {
        #expect(throws: PickleError.self) { _ = try MDLPickleSpec.treeSpec(pickle: Self.osSystem) }
        do { _ = try MDLPickleSpec.treeSpec(pickle: Self.osSystem) } catch let e as PickleError { #expect(e.isHostile) }
        #expect(throws: MDLSpecError.self) { _ = try MDLTreeSpec.parseJSON("[2, {}]") }
        #expect(throws: MDLSpecError.self) {
            _ = try MDLTreeSpec.parseJSON(#"[1, {"type": "builtins.dict", "context": "[\"a\"]", "children_spec": []}]"#)
        }
        let named = #"[1, {"type": "collections.namedtuple", "context": "\"P\"", "children_spec": []}]"#
        do { _ = try MDLTreeSpec.parseJSON(named); Issue.record("namedtuple accepted") } catch let e as MDLSpecError { #expect(e.unsupported) }
        var deep = MDLReaderTests.leafJSON
        for _ in 0..<100 { deep = #"{"type": "builtins.list", "context": "null", "children_spec": [\#(deep)]}"# }
        #expect(throws: MDLSpecError.self) { _ = try MDLTreeSpec.parseJSON("[1, \(deep)]") }
        #expect(throws: MDLSpecError.self) { _ = try MDLPickleSpec.hexBytes("abc") }
    }

    @Test("0.4 dataset names are urllib.parse.quote(key, safe=\"\")")
    func quote() {
        #expect(MDLNames.quote("model.model.w") == "model.model.w")
        #expect(MDLNames.quote("a/b c~é") == "a%2Fb%20c~%C3%A9")
    }
}
