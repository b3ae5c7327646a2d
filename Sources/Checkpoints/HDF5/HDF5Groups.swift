import Tensors

/// Builds the group tree of an HDF5 file from its symbol tables: the v1 B-tree (node type 0) of each group, its
/// symbol table nodes ("SNOD") and its local heap ("HEAP") of names. Every node's signature, level, entry count and
/// child address is validated; nodes seen twice (loops) are malformed; group nesting depth and the total number of
/// objects visited are bounded.
struct HDF5TreeBuilder {
    let file: HDF5Bytes
    /// The superblock's group leaf node K (symbol table nodes hold at most 2K entries).
    let leafK: Int
    /// The superblock's group internal node K (group B-tree nodes hold at most 2K entries).
    let internalK: Int
    var heaps: HDF5GlobalHeaps
    /// Objects visited so far (hard links may alias objects; this bounds the work on any file).
    private var visits = 0
    private let maxVisits: Int
    /// Deepest group nesting followed.
    static let maxDepth = 64

    init(file: HDF5Bytes, leafK: Int, internalK: Int) {
        self.file = file
        self.leafK = leafK
        self.internalK = internalK
        maxVisits = min(4 * (file.size / 40) + 1024, 2_000_000)
        heaps = HDF5GlobalHeaps(fileSize: file.size)
    }

    /// The group whose object header is at `offset`, with everything under it.
    mutating func group(at offset: Int, path: String, ancestors: [Int]) throws -> HDF5Group {
        let header = try HDF5ObjectHeader.parse(file, at: offset)
        guard ancestors.count < Self.maxDepth else {
            throw file.malformed("group \"\(path)\"", at: offset, "nested more than \(Self.maxDepth) groups deep")
        }
        var attributes: [HDF5Attribute] = []
        var symbolTable: (btree: Int, heap: Int)?
        var links: [(name: String, header: Int, at: Int)] = []
        var linkInfo: Int?
        var creationOrdered = false
        for message in header.messages {
            switch message.type {
            case 0x000C: attributes.append(try file.attribute(message, heaps: &heaps))
            case 0x0011:
                var r = try file.region(message.offset, message.size, "symbol table message")
                guard let btree = try r.address("B-tree address"), let heap = try r.address("local heap address") else {
                    throw file.malformed("symbol table message", at: message.offset, "undefined B-tree or local heap address")
                }
                symbolTable = (btree, heap)
            case 0x0002:
                linkInfo = message.offset
                creationOrdered = try checkLinkInfo(message)
            case 0x0006: links.append(try link(message))
            case 0x0015: try checkAttributeInfo(message)
            default: try checkIgnorable(message)
            }
        }
        var entries: [(name: String, header: Int, at: Int)] = []
        if let table = symbolTable {
            guard linkInfo == nil, links.isEmpty else {
                throw file.malformed("group \"\(path)\"", at: offset, "both a symbol table and link messages")
            }
            let heap = try localHeap(at: table.heap)
            var seenNodes = Set<Int>()
            try walkGroupTree(at: table.btree, expectedLevel: nil, heap: heap, seen: &seenNodes, into: &entries)
        } else if linkInfo != nil {
            // A "new-style" group with its links in the header (compact storage), as HDF5 makes a group once a link
            // needs more than a symbol table holds (a UTF-8 name): h5py lists them by name unless order is tracked.
            entries = creationOrdered ? links : links.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        } else {
            throw file.unsupported("group without a symbol table or link info message (\"\(path)\")", at: offset)
        }
        var groups: [String: HDF5Group] = [:]
        var datasets: [String: HDF5Dataset] = [:]
        var names: [String] = []
        for entry in entries {
            guard !entry.name.isEmpty, !entry.name.contains("/") else {
                throw file.malformed("symbol table entry", at: entry.at, "member name \"\(entry.name)\" is empty or contains \"/\"")
            }
            guard groups[entry.name] == nil, datasets[entry.name] == nil else {
                throw file.malformed("symbol table entry", at: entry.at, "member \"\(entry.name)\" appears twice in group \"\(path)\"")
            }
            visits += 1
            guard visits <= maxVisits else { throw file.malformed("group \"\(path)\"", at: offset, "more than \(maxVisits) objects (aliased links?)") }
            let childPath = path.isEmpty ? entry.name : path + "/" + entry.name
            guard !ancestors.contains(entry.header), entry.header != offset else {
                throw file.malformed("symbol table entry", at: entry.at, "\"\(childPath)\" links back to its own ancestor group (a loop)")
            }
            let child = try HDF5ObjectHeader.parse(file, at: entry.header)
            if child.messages.contains(where: { $0.type == 0x0011 || $0.type == 0x0002 }) {
                groups[entry.name] = try group(at: entry.header, path: childPath, ancestors: ancestors + [offset])
            } else if child.messages.contains(where: { $0.type == 0x0008 }) {
                datasets[entry.name] = try dataset(child, path: childPath)
            } else {
                throw file.unsupported("object that is neither a symbol-table group nor a dataset (\"\(childPath)\", a committed datatype?)", at: entry.header)
            }
            names.append(entry.name)
        }
        return HDF5Group(path: path, headerOffset: offset, attributes: attributes, groups: groups, datasets: datasets, memberNames: names)
    }

    /// A dataset from its parsed object header: datatype, dataspace, layout (validated against the file for
    /// contiguous and compact data), filters and attributes.
    mutating func dataset(_ header: HDF5ObjectHeader, path: String) throws -> HDF5Dataset {
        var type: HDF5Datatype?, space: HDF5Dataspace?, layout: HDF5Bytes.Layout?, layoutAt = 0
        var filters: [HDF5Filter] = [], filterAt: Int?
        var attributes: [HDF5Attribute] = []
        for message in header.messages {
            var r = try file.region(message.offset, message.size, "header message")
            switch message.type {
            case 0x0001: space = try file.dataspace(&r)
            case 0x0003: type = try file.datatype(&r)
            case 0x0008: layout = try file.layout(&r); layoutAt = message.offset
            case 0x000B: filters = try file.filters(&r); filterAt = message.offset
            case 0x000C: attributes.append(try file.attribute(message, heaps: &heaps))
            case 0x0015: try checkAttributeInfo(message)
            default: try checkIgnorable(message)
            }
        }
        let at = header.offset
        guard let type, let space, let layout else {
            throw file.malformed("dataset \"\(path)\"", at: at, "object header lacks a datatype, dataspace or layout message")
        }
        let count = space.elementCount
        guard let bytes = Checked.multiply(count, type.size) else {
            throw file.malformed("dataset \"\(path)\"", at: at, "\(count) elements of \(type.size) bytes overflow")
        }
        let storage: HDF5Storage
        switch layout {
        case .contiguous(let address, let size):
            if let filterAt, !filters.isEmpty { throw file.malformed("dataset \"\(path)\"", at: filterAt, "filters on a contiguous dataset") }
            guard size == bytes else {
                throw file.malformed("dataset \"\(path)\"", at: layoutAt, "contiguous data of \(size) bytes, its shape \(space) × \(type.size)-byte elements needs \(bytes)")
            }
            if let address {
                guard Checked.fits(offset: address, count: size, in: file.size) else {
                    throw file.malformed("dataset \"\(path)\"", at: layoutAt, "contiguous data of \(size) bytes at offset \(address) runs past the end of the \(file.size)-byte file")
                }
            } else if bytes > 0 {
                throw file.malformed("dataset \"\(path)\"", at: layoutAt, "contiguous data of \(size) bytes was never written (undefined address)")
            }
            storage = .contiguous(address: address, size: size)
        case .compact(let offset, let size):
            guard size == bytes else {
                throw file.malformed("dataset \"\(path)\"", at: layoutAt, "compact data of \(size) bytes, its shape needs \(bytes)")
            }
            storage = .compact(bytes: Array(file.bytes[offset..<(offset + size)]))
        case .chunked(let btree, let dims, let elementSize):
            guard case .simple(let shape) = space, shape.count == dims.count else {
                throw file.malformed("dataset \"\(path)\"", at: layoutAt, "chunk rank \(dims.count) does not match the dataspace \(space)")
            }
            guard elementSize == type.size else {
                throw file.malformed("dataset \"\(path)\"", at: layoutAt, "chunk element size \(elementSize), the datatype's is \(type.size)")
            }
            storage = .chunked(btreeAddress: btree, chunkShape: dims, filters: filters)
        }
        return HDF5Dataset(path: path, headerOffset: at, datatype: type, dataspace: space, storage: storage, attributes: attributes)
    }

    /// A link info message (0x0002): compact link storage only (a defined fractal heap address means dense
    /// storage, which ditkit does not read). Returns whether creation order is indexed (h5py's `track_order`).
    private func checkLinkInfo(_ message: HDF5Message) throws -> Bool {
        var r = try file.region(message.offset, message.size, "link info message")
        let version = try r.u8("version")
        guard version == 0 else { throw file.malformed("link info message", at: message.offset, "version \(version), expected 0") }
        let flags = try r.u8("flags")
        if flags & 1 != 0 { try r.skip(8, "maximum creation index") }
        if try r.address("fractal heap address") != nil {
            throw file.unsupported("dense link storage (fractal heap)", at: message.offset)
        }
        return flags & 2 != 0
    }

    /// A link message (0x0006): hard links only (soft and external links are `.unsupported`).
    private func link(_ message: HDF5Message) throws -> (name: String, header: Int, at: Int) {
        var r = try file.region(message.offset, message.size, "link message")
        let version = try r.u8("version")
        guard version == 1 else { throw file.malformed("link message", at: message.offset, "version \(version), expected 1") }
        let flags = try r.u8("flags")
        let type = flags & 0x08 != 0 ? try r.u8("link type") : 0
        if flags & 0x04 != 0 { try r.skip(8, "creation order") }
        if flags & 0x10 != 0 {
            let charset = try r.u8("name character set")
            guard charset <= 1 else { throw file.malformed("link message", at: message.offset, "character set \(charset)") }
        }
        var length = 0
        for i in 0..<(1 << (flags & 3)) { length |= try r.u8("name length") << (8 * i) }
        guard length > 0 else { throw file.malformed("link message", at: message.offset, "empty link name") }
        let raw = try r.take(length, "link name")
        guard let name = String(validating: raw, as: UTF8.self) else {
            throw file.malformed("link message", at: message.offset, "link name is not valid UTF-8")
        }
        guard type == 0 else { throw file.unsupported(type == 1 ? "soft link \"\(name)\"" : "external or user-defined link \"\(name)\" (type \(type))", at: message.offset) }
        guard let address = try r.address("object header address") else {
            throw file.malformed("link message", at: message.offset, "hard link \"\(name)\" to an undefined address")
        }
        return (name, address, message.offset)
    }

    /// An attribute info message (0x0015): compact attributes only — a defined fractal heap address means dense
    /// attribute storage, which ditkit does not read.
    private func checkAttributeInfo(_ message: HDF5Message) throws {
        var r = try file.region(message.offset, message.size, "attribute info message")
        let version = try r.u8("version")
        guard version == 0 else { throw file.malformed("attribute info message", at: message.offset, "version \(version), expected 0") }
        let flags = try r.u8("flags")
        if flags & 1 != 0 { try r.skip(2) }
        if try r.address("fractal heap address") != nil {
            throw file.unsupported("dense attribute storage (fractal heap)", at: message.offset)
        }
    }

    /// Messages that do not change what ditkit reads (fill values, times, comments, reference counts, group info,
    /// B-tree K values) pass; any other type (external files, shared message tables, …) is `.unsupported`.
    private func checkIgnorable(_ message: HDF5Message) throws {
        let ignorable: Set<Int> = [0x0004, 0x0005, 0x000A, 0x000D, 0x000E, 0x0012, 0x0013, 0x0016]
        guard ignorable.contains(message.type) else {
            let names = [0x0007: "external data files", 0x0009: "bogus message", 0x000F: "shared message table", 0x0014: "driver info", 0x0017: "file space info",
                0x0018: "reference count", 0x0001: "dataspace on a group", 0x0003: "datatype on a group", 0x0008: "layout on a group", 0x000B: "filters on a group"]
            throw file.unsupported("header message type 0x\(String(message.type, radix: 16)) (\(names[message.type] ?? "unknown"))", at: message.offset)
        }
    }

    /// A local heap: the bounds of its data segment.
    struct LocalHeap {
        let offset: Int
        let dataStart: Int
        let dataSize: Int
    }

    private func localHeap(at offset: Int) throws -> LocalHeap {
        var r = try file.signed(offset, 32, "local heap", signature: "HEAP")
        let version = try r.u8("version")
        guard version == 0 else { throw file.malformed("local heap", at: offset, "version \(version), expected 0") }
        try r.skip(3)
        let size = try r.length("data segment size")
        _ = try r.u64("free list offset")
        guard let data = try r.address("data segment address") else { throw file.malformed("local heap", at: offset, "undefined data segment address") }
        guard Checked.fits(offset: data, count: size, in: file.size) else {
            throw file.malformed("local heap", at: offset, "data segment of \(size) bytes at offset \(data) runs past the end of the \(file.size)-byte file")
        }
        return LocalHeap(offset: offset, dataStart: data, dataSize: size)
    }

    /// The NUL-terminated name at `nameOffset` of `heap`'s data segment.
    private func name(_ nameOffset: Int, in heap: LocalHeap, entry: Int) throws -> String {
        guard nameOffset >= 0, nameOffset < heap.dataSize else {
            throw file.malformed("symbol table entry", at: entry, "name offset \(nameOffset) outside the \(heap.dataSize)-byte local heap at offset \(heap.offset)")
        }
        let segment = UnsafeRawBufferPointer(rebasing: file.bytes[(heap.dataStart + nameOffset)..<(heap.dataStart + heap.dataSize)])
        guard let end = segment.firstIndex(of: 0) else {
            throw file.malformed("symbol table entry", at: entry, "name at heap offset \(nameOffset) is not terminated inside the local heap at offset \(heap.offset)")
        }
        let raw = UnsafeRawBufferPointer(rebasing: segment[segment.startIndex..<end])
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw file.malformed("symbol table entry", at: entry, "name at heap offset \(nameOffset) is not valid UTF-8")
        }
        return s
    }

    private mutating func walkGroupTree(
        at offset: Int, expectedLevel: Int?, heap: LocalHeap, seen: inout Set<Int>,
        into entries: inout [(name: String, header: Int, at: Int)]
    ) throws {
        guard seen.insert(offset).inserted else { throw file.malformed("B-tree node", at: offset, "visited twice: the group B-tree loops") }
        var r = try file.signed(offset, 24, "B-tree node", signature: "TREE")
        let type = try r.u8("node type")
        let level = try r.u8("node level")
        let used = try r.u16("entries used")
        guard type == 0 else { throw file.malformed("B-tree node", at: offset, "node type \(type) in a group tree, expected 0") }
        if let expectedLevel, level != expectedLevel {
            throw file.malformed("B-tree node", at: offset, "level \(level), its parent expects \(expectedLevel)")
        }
        guard used <= 2 * internalK else { throw file.malformed("B-tree node", at: offset, "\(used) entries, at most \(2 * internalK) allowed") }
        var body = try file.region(offset + 24, 8 + used * 16, "B-tree node")
        _ = try body.length("key 0")
        for i in 0..<used {
            guard let child = try body.address("child \(i)") else { throw file.malformed("B-tree node", at: offset, "child \(i) address undefined") }
            let key = try body.length("key \(i + 1)")
            guard key < heap.dataSize else {
                throw file.malformed("B-tree node", at: offset, "key \(i + 1) heap offset \(key) outside the \(heap.dataSize)-byte local heap")
            }
            if level > 0 {
                try walkGroupTree(at: child, expectedLevel: level - 1, heap: heap, seen: &seen, into: &entries)
            } else {
                try symbolNode(at: child, heap: heap, seen: &seen, into: &entries)
            }
        }
    }

    private mutating func symbolNode(
        at offset: Int, heap: LocalHeap, seen: inout Set<Int>, into entries: inout [(name: String, header: Int, at: Int)]
    ) throws {
        guard seen.insert(offset).inserted else { throw file.malformed("symbol table node", at: offset, "visited twice: the group B-tree loops") }
        var r = try file.signed(offset, 8, "symbol table node", signature: "SNOD")
        let version = try r.u8("version")
        guard version == 1 else { throw file.malformed("symbol table node", at: offset, "version \(version), expected 1") }
        try r.skip(1)
        let count = try r.u16("symbol count")
        guard count <= 2 * leafK else { throw file.malformed("symbol table node", at: offset, "\(count) symbols, at most \(2 * leafK) allowed") }
        var body = try file.region(offset + 8, count * 40, "symbol table node")
        for _ in 0..<count {
            let at = body.position
            let nameOffset = try body.length("link name offset")
            let header = try body.address("object header address")
            let cache = try body.u32("cache type")
            try body.skip(20)
            if cache == 2 { throw file.unsupported("soft link", at: at) }
            guard cache <= 1 else { throw file.malformed("symbol table entry", at: at, "cache type \(cache), expected 0 to 2") }
            guard let header else { throw file.malformed("symbol table entry", at: at, "undefined object header address") }
            entries.append((try name(nameOffset, in: heap, entry: at), header, at))
        }
    }
}
