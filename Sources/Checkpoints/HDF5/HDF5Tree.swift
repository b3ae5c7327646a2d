import Tensors

// The HDF5 objects ditkit reads, as plain values: what `HDF5File` (HDF5File.swift) parses out of a file, and what the
// `.mdl` layer (MDL*.swift) interprets. Nothing here reads bytes; every offset a value carries was validated against
// the file when the value was made.

/// An HDF5 datatype of the subset h5py writes (datatype message classes 0, 1, 3, 8, 9; everything else is refused
/// by the parser as an unsupported feature).
package indirect enum HDF5Datatype: Sendable, Equatable {
    /// Fixed-point integer of `size` bytes (1, 2, 4, 8).
    case integer(size: Int, signed: Bool, bigEndian: Bool)
    /// IEEE float of `size` bytes (2, 4, 8).
    case float(size: Int, bigEndian: Bool)
    /// Fixed-length string of `size` bytes (`utf8` when the character set is UTF-8, else ASCII).
    case fixedString(size: Int, utf8: Bool)
    /// Variable-length string: each element is a 16-byte global-heap reference (length, collection address, index).
    case variableString(utf8: Bool)
    /// Enumeration over an integer base type; `members` in file order (h5py's bool is `FALSE = 0`, `TRUE = 1` over int8).
    case enumeration(base: HDF5Datatype, members: [(name: String, value: Int64)])
    /// Opaque bytes of `size` with an ASCII `tag` (class 5): numpy's `void`, as Cerebras stores a pickle in the
    /// `__BYTES__` attribute of an `ObjectSerializer` leaf.
    case opaque(size: Int, tag: String)

    /// Bytes of one element as stored in a dataset or attribute.
    package var size: Int {
        switch self {
        case .integer(let size, _, _), .float(let size, _), .fixedString(let size, _): return size
        case .variableString: return 16
        case .enumeration(let base, _): return base.size
        case .opaque(let size, _): return size
        }
    }

    package static func == (a: HDF5Datatype, b: HDF5Datatype) -> Bool {
        switch (a, b) {
        case let (.integer(s1, g1, e1), .integer(s2, g2, e2)): return s1 == s2 && g1 == g2 && e1 == e2
        case let (.float(s1, e1), .float(s2, e2)): return s1 == s2 && e1 == e2
        case let (.fixedString(s1, u1), .fixedString(s2, u2)): return s1 == s2 && u1 == u2
        case let (.variableString(u1), .variableString(u2)): return u1 == u2
        case let (.enumeration(b1, m1), .enumeration(b2, m2)):
            return b1 == b2 && m1.count == m2.count && zip(m1, m2).allSatisfy { $0.name == $1.name && $0.value == $1.value }
        case let (.opaque(s1, t1), .opaque(s2, t2)): return s1 == s2 && t1 == t2
        default: return false
        }
    }
}

/// An HDF5 dataspace: null (no elements, h5py's `h5py.Empty`), scalar (one element), or simple (dimensions).
package enum HDF5Dataspace: Sendable, Equatable {
    case null
    case scalar
    case simple([Int])

    /// Elements: 0 for null, 1 for scalar, the product for simple (validated not to overflow by the parser).
    package var elementCount: Int {
        switch self {
        case .null: return 0
        case .scalar: return 1
        case .simple(let dims): return dims.reduce(1, *)
        }
    }
}

/// A decoded attribute value (or the decoded elements of a small dataset).
package indirect enum HDF5Value: Sendable, Equatable {
    case integer(Int64)
    case unsigned(UInt64)
    case float(Double)
    case string(String)
    /// An enum element: the member's name (nil when the stored value names no member) and its raw value.
    case enumerated(name: String?, value: Int64)
    /// A simple (non-scalar) attribute: its elements in row-major order, with its dimensions.
    case array([HDF5Value], shape: [Int])
    /// A null-dataspace attribute (`h5py.Empty`).
    case empty
    /// Raw bytes: an opaque element (numpy `void`), or a fixed-length string whose bytes are not valid UTF-8.
    case bytes([UInt8])

    /// The bytes of an opaque value: a scalar `.bytes`, or an array of them joined in order (Cerebras' saver
    /// stores a pickle as `numpy.void` — HDF5 writes it as N opaque elements of 1 byte). Nil for anything else.
    package var rawBytes: [UInt8]? {
        switch self {
        case .bytes(let b): return b
        case .array(let items, _):
            var out: [UInt8] = []
            for item in items {
                guard case .bytes(let b) = item else { return nil }
                out += b
            }
            return out
        default: return nil
        }
    }

    /// The text of a string value (scalar, or a one-element array of one), else nil.
    package var text: String? {
        switch self {
        case .string(let s): return s
        case .array(let values, _) where values.count == 1: return values[0].text
        default: return nil
        }
    }
}

/// One attribute of a group or dataset, decoded.
package struct HDF5Attribute: Sendable {
    /// Its name (UTF-8).
    package let name: String
    /// Its value, decoded from its datatype and dataspace.
    package let value: HDF5Value
    /// File offset of the attribute message (for messages).
    package let offset: Int

    package init(name: String, value: HDF5Value, offset: Int) {
        self.name = name
        self.value = value
        self.offset = offset
    }
}

/// One filter of a dataset's filter pipeline (message 0x000B): HDF5 filter id (1 deflate, 2 shuffle, 32004 LZ4,
/// …), whether it is optional, and its client data.
package struct HDF5Filter: Sendable, Equatable {
    package let id: Int
    package let name: String?
    package let optional: Bool
    package let clientData: [UInt32]

    package init(id: Int, name: String?, optional: Bool, clientData: [UInt32]) {
        self.id = id
        self.name = name
        self.optional = optional
        self.clientData = clientData
    }
}

/// Where a dataset's raw elements are (data layout message 0x0008, version 3).
package enum HDF5Storage: Sendable {
    /// `size` bytes at `address` (HDF5's undefined address — never written — is `address` nil).
    case contiguous(address: Int?, size: Int)
    /// The elements in the message itself.
    case compact(bytes: [UInt8])
    /// Chunks indexed by a version-1 B-tree (node type 1) at `btreeAddress` (nil: no chunk written yet), each
    /// `chunkShape` elements (the layout message's last dimension, the element size, is dropped here), filtered by
    /// `filters` in order.
    case chunked(btreeAddress: Int?, chunkShape: [Int], filters: [HDF5Filter])
}

/// A dataset: its datatype, dataspace, storage and attributes.
package struct HDF5Dataset: Sendable {
    /// Path from the root group, "/"-joined, without a leading "/" (`model/model.patch_embedding_layer.linear_proj.weight`).
    package let path: String
    /// File offset of its object header.
    package let headerOffset: Int
    package let datatype: HDF5Datatype
    package let dataspace: HDF5Dataspace
    package let storage: HDF5Storage
    /// Attributes in the order the object header lists them.
    package let attributes: [HDF5Attribute]

    package init(
        path: String, headerOffset: Int, datatype: HDF5Datatype, dataspace: HDF5Dataspace, storage: HDF5Storage,
        attributes: [HDF5Attribute]
    ) {
        self.path = path
        self.headerOffset = headerOffset
        self.datatype = datatype
        self.dataspace = dataspace
        self.storage = storage
        self.attributes = attributes
    }

    /// The attribute called `name`, if any.
    package func attribute(_ name: String) -> HDF5Attribute? { attributes.first { $0.name == name } }
}

/// A group: its attributes and its members (links by name, in the name order a symbol table keeps).
package struct HDF5Group: Sendable {
    /// Path from the root group ("" for the root).
    package let path: String
    /// File offset of its object header.
    package let headerOffset: Int
    /// Attributes in the order the object header lists them (and its continuation blocks, in order).
    package let attributes: [HDF5Attribute]
    /// Member groups, by name.
    package let groups: [String: HDF5Group]
    /// Member datasets, by name.
    package let datasets: [String: HDF5Dataset]
    /// Member names in symbol-table order.
    package let memberNames: [String]

    package init(
        path: String, headerOffset: Int, attributes: [HDF5Attribute], groups: [String: HDF5Group],
        datasets: [String: HDF5Dataset], memberNames: [String]
    ) {
        self.path = path
        self.headerOffset = headerOffset
        self.attributes = attributes
        self.groups = groups
        self.datasets = datasets
        self.memberNames = memberNames
    }

    /// The attribute called `name`, if any.
    package func attribute(_ name: String) -> HDF5Attribute? { attributes.first { $0.name == name } }

    /// The dataset at `path` ("/"-separated, relative to this group), if any.
    package func dataset(at path: String) -> HDF5Dataset? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var group = self
        for part in parts.dropLast() {
            guard let next = group.groups[part] else { return nil }
            group = next
        }
        return parts.last.flatMap { group.datasets[$0] }
    }

    /// Every dataset under this group, depth first in member order.
    package var allDatasets: [HDF5Dataset] {
        memberNames.flatMap { name -> [HDF5Dataset] in
            if let d = datasets[name] { return [d] }
            return groups[name]?.allDatasets ?? []
        }
    }
}
