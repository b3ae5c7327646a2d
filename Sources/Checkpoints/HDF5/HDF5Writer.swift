import Tensors

/// Writes an HDF5 file of the subset h5py writes by default (superblock v0, object headers v1, symbol-table groups
/// with v1 B-trees, SNOD nodes and local heaps, variable-length strings in global heap collections, contiguous or
/// LZ4-chunked datasets indexed by v1 chunk B-trees), streaming: dataset elements go to the file as they are
/// produced (chunked datasets one band of chunk rows at a time), every structure that points at them is written
/// at the end, and the superblock is patched last. The file goes through `AtomicFileWriter`: it appears under its
/// name complete or not at all.
///
/// Use: `add(dataset:…)` per dataset, then `finish(rootAttributes:)`.
package final class HDF5Writer {
    /// Where the file goes.
    package let path: String
    private let out: AtomicFileWriter
    private var datasets: [DatasetRecord] = []
    private let root = GroupNode()

    /// Superblock v0 (56 bytes) plus the root group's symbol table entry (40 bytes).
    static let superblockSize = 96
    /// Children of a group B-tree node (2 × the superblock's internal K of 16).
    static let groupFanout = 32
    /// Entries of a symbol table node (2 × the superblock's leaf K of 4).
    static let snodEntries = 8
    /// Entries of a chunk B-tree node (2 × HDF5's default indexed-storage K of 32).
    static let chunkFanout = 64

    struct ChunkRecord {
        var offsets: [Int]
        var size: Int
        var address: Int
    }

    enum StoredData {
        case contiguous(address: Int?, size: Int)
        case chunked(chunk: [Int], chunks: [ChunkRecord])
    }

    struct DatasetRecord {
        var datatype: [UInt8]
        var elementSize: Int
        var shape: [Int]
        var data: StoredData
        var attributes: [HDF5WriteAttribute]
        var headerAddress = 0
    }

    final class GroupNode {
        var groups: [String: GroupNode] = [:]
        var datasets: [String: Int] = [:]
        var headerAddress = 0
        var btreeAddress = 0
        var heapAddress = 0
    }

    /// Starts the file at `out` (nothing of it is visible under its name until `out` commits).
    package init(out: AtomicFileWriter) throws {
        self.out = out
        self.path = out.destination
        try out.write([UInt8](repeating: 0, count: HDF5Writer.superblockSize))
    }

    /// Bytes written so far.
    package var bytesWritten: Int { out.bytesWritten }

    /// Adds the dataset at `components` (group names, then the dataset's name; groups are created as needed) of
    /// element type `dtype` and `shape`, streamed by `produce` (row-major, little-endian, exactly the shape's bytes),
    /// chunked by h5py's chunk guess and LZ4-compressed when `lz4` is set and the shape is not 0-d (the saver writes
    /// 0-d datasets contiguous), else contiguous. `attributes` go on the dataset in order. `progress` hears the
    /// bytes produced. Memory: one band of chunk rows (the chunk's first dimension × the rest of the shape).
    /// Throws `.malformed` for a name that clashes or a producer that writes the wrong number of bytes,
    /// `.unsupported` for a dtype HDF5-in-`.mdl` cannot hold, `.io` when writing fails.
    package func add(
        dataset components: [String], dtype: DType, shape: [Int], lz4: Bool, attributes: [HDF5WriteAttribute],
        progress: ((Int) -> Void)? = nil, produce: (ByteSink) throws -> Void
    ) throws {
        let label = components.joined(separator: "/")
        guard let datatype = HDF5Encode.datatype(for: dtype) else {
            throw CheckpointError.unsupported(
                path: path, kind: "a \(dtype) tensor (\(label)) in a .mdl file",
                advice: "the Cerebras format stores float64, float32, float16, bfloat16, int64, int32, int16, uint8 and bool tensors")
        }
        guard let count = Checked.product(shape), let total = Checked.multiply(count, dtype.size),
              shape.allSatisfy({ $0 >= 0 && $0 <= Int(UInt32.max) }) else {
            throw CheckpointError.malformed(path: path, location: label, reason: "shape \(shape) is too large")
        }
        let group = try parentGroup(of: components, label: label)
        let index = datasets.count
        let data: StoredData
        if lz4 && !shape.isEmpty {
            let chunk = HDF5ChunkGuess.chunkShape(for: shape, elementSize: dtype.size)
            let sink = HDF5ChunkingSink(
                shape: shape, chunk: chunk, elementSize: dtype.size, out: out, path: path, label: label, progress: progress)
            try produce(sink)
            try sink.finish()
            data = .chunked(chunk: chunk, chunks: sink.records)
        } else {
            let start = out.bytesWritten
            let counter = CountingSink(downstream: out, onWrite: progress)
            try produce(counter)
            guard counter.count == total else {
                throw CheckpointError.malformed(
                    path: path, location: label, reason: "the tensor produced \(counter.count) bytes, its shape holds \(total)")
            }
            data = .contiguous(address: total == 0 ? nil : start, size: total)
        }
        datasets.append(DatasetRecord(
            datatype: datatype, elementSize: dtype.size, shape: shape, data: data, attributes: attributes))
        group.datasets[components.last!] = index
    }

    private func parentGroup(of components: [String], label: String) throws -> GroupNode {
        guard !components.isEmpty,
              components.allSatisfy({ !$0.isEmpty && $0 != "." && !$0.utf8.contains(0) && !$0.contains("/") })
        else {
            throw CheckpointError.malformed(
                path: path, location: label, reason: "an HDF5 name must not be empty, \".\", or hold NUL")
        }
        var group = root
        for name in components.dropLast() {
            if group.datasets[name] != nil {
                throw CheckpointError.malformed(path: path, location: label, reason: "\(name) is a dataset and a group")
            }
            if let next = group.groups[name] { group = next } else {
                let next = GroupNode()
                group.groups[name] = next
                group = next
            }
        }
        let name = components.last!
        if group.datasets[name] != nil || group.groups[name] != nil {
            throw CheckpointError.malformed(path: path, location: label, reason: "two entries have this name")
        }
        return group
    }

    /// Writes the metadata (chunk B-trees, global heap, object headers, groups), the root group with
    /// `rootAttributes` in order, and the superblock. The caller commits `out` afterwards.
    package func finish(rootAttributes: [HDF5WriteAttribute]) throws {
        var meta = MetadataBuffer(base: out.bytesWritten)

        // Chunk B-trees.
        var btrees: [Int?] = []
        for record in datasets {
            if case .chunked(let chunk, let chunks) = record.data, !chunks.isEmpty {
                btrees.append(Self.chunkBTree(
                    chunks, dims: chunk + [record.elementSize], rank: chunk.count, into: &meta))
            } else {
                btrees.append(nil)
            }
        }

        // Global heap: every variable-length string of every attribute.
        var heap = GlobalHeapBuilder()
        var datasetRefs: [[[[UInt8]]]] = []
        for record in datasets {
            datasetRefs.append(record.attributes.map { attr in
                HDF5Encode.strings(of: attr.value).map { heap.add(Array($0.utf8)) }
            })
        }
        let rootRefs = rootAttributes.map { attr in HDF5Encode.strings(of: attr.value).map { heap.add(Array($0.utf8)) } }
        heap.write(into: &meta)
        let resolve: ([[UInt8]]) -> [[UInt8]] = { refs in refs.map { heap.resolve($0) } }

        // Dataset object headers.
        for (i, record) in datasets.enumerated() {
            var messages: [(Int, Int, [UInt8])] = [(0x1, 0, HDF5Encode.dataspace(record.shape)), (0x3, 1, record.datatype)]
            switch record.data {
            case .contiguous(let address, let size):
                messages.append((0x5, 1, HDF5Encode.fillValue(chunked: false)))
                messages.append((0x8, 0, HDF5Encode.contiguousLayout(address: address, size: size)))
            case .chunked(let chunk, _):
                messages.append((0x5, 1, HDF5Encode.fillValue(chunked: true)))
                messages.append((0xB, 1, HDF5Encode.lz4Pipeline()))
                messages.append((0x8, 0, HDF5Encode.chunkedLayout(btree: btrees[i], chunk: chunk, elementSize: record.elementSize)))
            }
            for (attr, refs) in zip(record.attributes, datasetRefs[i]) {
                messages.append((0xC, 0, HDF5Encode.attribute(attr, references: resolve(refs))))
            }
            datasets[i].headerAddress = try Self.objectHeader(messages, into: &meta, path: path)
        }

        // Groups, children first; the root last, with the file's attributes.
        try writeGroup(root, into: &meta, extra: [])
        let rootMessages = zip(rootAttributes, rootRefs).map { attr, refs in
            (0xC, 0, HDF5Encode.attribute(attr, references: resolve(refs)))
        }
        try writeGroup(root, into: &meta, extra: rootMessages, isRoot: true)

        try out.write(meta.bytes)

        // Superblock v0 and the root symbol table entry.
        var sb = HDF5ByteBuilder()
        sb.append([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])
        sb.append([0, 0, 0, 0, 0, 8, 8, 0])
        sb.u16(4); sb.u16(16)
        sb.u32(0)
        sb.address(0); sb.address(nil); sb.address(out.bytesWritten); sb.address(nil)
        sb.append(Self.symbolEntry(nameOffset: 0, header: root.headerAddress, group: (root.btreeAddress, root.heapAddress)))
        try out.patch(at: 0, sb.bytes)
    }

    /// Writes `group`'s members' groups (recursively), its local heap, symbol table nodes and B-tree, then its object
    /// header — except for the root, whose header is written by a second call (`isRoot`) with `extra` messages (the
    /// file's attributes) after the symbol table.
    private func writeGroup(
        _ group: GroupNode, into meta: inout MetadataBuffer, extra: [(Int, Int, [UInt8])], isRoot: Bool = false
    ) throws {
        if isRoot {
            group.headerAddress = try Self.rootHeader(
                symbolTable: HDF5Encode.symbolTable(btree: group.btreeAddress, heap: group.heapAddress),
                attributes: extra, into: &meta, path: path)
            return
        }
        for (_, child) in group.groups { try writeGroup(child, into: &meta, extra: []) }
        // Members sorted by name bytes, as HDF5's symbol tables keep them.
        let names = (Array(group.groups.keys) + Array(group.datasets.keys)).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }

        // Local heap: "" at 0, each name NUL-terminated and padded to 8, then one free block.
        var heapData = HDF5ByteBuilder()
        heapData.u64(0)
        var nameOffsets: [Int] = []
        for name in names {
            nameOffsets.append(heapData.count)
            heapData.append(Array(name.utf8) + [0])
            heapData.pad(to: 8)
        }
        let freeOffset = heapData.count
        heapData.u64(1)  // next free block: none (HDF5's H5HL_FREE_NULL)
        heapData.u64(16)
        var heap = HDF5ByteBuilder()
        heap.append(Array("HEAP".utf8)); heap.u8(0); heap.u8(0); heap.u8(0); heap.u8(0)
        heap.u64(UInt64(heapData.count)); heap.u64(UInt64(freeOffset))
        group.heapAddress = meta.address
        heap.address(meta.address + 32)
        meta.append(heap.bytes + heapData.bytes)

        // Symbol table nodes of 8 entries.
        var leaves: [(address: Int, firstKey: Int, lastKey: Int)] = []
        var start = 0
        repeat {
            let end = min(start + Self.snodEntries, names.count)
            var node = HDF5ByteBuilder()
            node.append(Array("SNOD".utf8)); node.u8(1); node.u8(0); node.u16(end - start)
            for i in start..<end {
                let name = names[i]
                if let child = group.groups[name] {
                    node.append(Self.symbolEntry(nameOffset: nameOffsets[i], header: child.headerAddress, group: (child.btreeAddress, child.heapAddress)))
                } else {
                    node.append(Self.symbolEntry(nameOffset: nameOffsets[i], header: datasets[group.datasets[name]!].headerAddress, group: nil))
                }
            }
            node.append([UInt8](repeating: 0, count: 8 + Self.snodEntries * 40 - node.count))
            let address = meta.append(node.bytes)
            leaves.append((address, 0, end > start ? nameOffsets[end - 1] : 0))
            start = end
        } while start < names.count
        if !names.isEmpty { leaves = leaves.enumerated().map { i, l in (l.address, i == 0 ? 0 : leaves[i - 1].lastKey, l.lastKey) } }
        group.btreeAddress = Self.groupBTree(leaves, into: &meta)
        guard group !== root else { return }
        group.headerAddress = try Self.objectHeader(
            [(0x11, 0, HDF5Encode.symbolTable(btree: group.btreeAddress, heap: group.heapAddress))], into: &meta, path: path)
    }

    /// A 40-byte symbol table entry; a group caches its B-tree and heap addresses (cache type 1).
    static func symbolEntry(nameOffset: Int, header: Int, group: (Int, Int)?) -> [UInt8] {
        var b = HDF5ByteBuilder()
        b.u64(UInt64(nameOffset)); b.address(header)
        b.u32(group == nil ? 0 : 1); b.u32(0)
        if let (btree, heap) = group { b.address(btree); b.address(heap) } else { b.u64(0); b.u64(0) }
        return b.bytes
    }

    /// Writes a group B-tree (node type 0) over `children` (symbol table nodes with their left and right name
    /// keys), as many levels as needed; returns the root node's address.
    static func groupBTree(_ children: [(address: Int, firstKey: Int, lastKey: Int)], into meta: inout MetadataBuffer) -> Int {
        var level = 0
        var current = children
        while true {
            var parents: [(address: Int, firstKey: Int, lastKey: Int)] = []
            let groups = stride(from: 0, to: current.count, by: groupFanout).map { Array(current[$0..<min($0 + groupFanout, current.count)]) }
            let nodeSize = 24 + (2 * 16 + 1) * 8 + 2 * 16 * 8
            let first = meta.address
            for (g, members) in groups.enumerated() {
                let address = first + g * nodeSize
                var node = HDF5ByteBuilder()
                node.append(Array("TREE".utf8)); node.u8(0); node.u8(level); node.u16(members.count)
                node.address(g == 0 ? nil : address - nodeSize)
                node.address(g == groups.count - 1 ? nil : address + nodeSize)
                for m in members { node.u64(UInt64(m.firstKey)); node.address(m.address) }
                node.u64(UInt64(members.last!.lastKey))
                node.append([UInt8](repeating: 0, count: nodeSize - node.count))
                meta.append(node.bytes)
                parents.append((address, members.first!.firstKey, members.last!.lastKey))
            }
            if parents.count == 1 { return parents[0].address }
            current = parents
            level += 1
        }
    }

    /// Writes a chunk B-tree (node type 1) over `chunks` (in chunk-offset order), as many levels as needed; returns
    /// the root node's address. Keys: chunk bytes, filter mask, offsets (plus 0 for the element dimension); a node's
    /// last key is the next node's first, the tree's last the last chunk's offsets plus the chunk dimensions.
    static func chunkBTree(_ chunks: [ChunkRecord], dims: [Int], rank: Int, into meta: inout MetadataBuffer) -> Int {
        func key(size: Int, offsets: [Int]) -> [UInt8] {
            var b = HDF5ByteBuilder()
            b.u32(size); b.u32(0)
            for o in offsets { b.u64(UInt64(o)) }
            return b.bytes
        }
        let keySize = 8 + 8 * (rank + 1)
        let nodeSize = 24 + (2 * 32 + 1) * keySize + 2 * 32 * 8
        let last = chunks.last!
        let endKey = key(size: 0, offsets: zip(last.offsets + [0], dims).map { $0 + $1 })
        // Level 0 children: (first key, child address).
        var current: [(key: [UInt8], address: Int)] = chunks.map { (key(size: $0.size, offsets: $0.offsets + [0]), $0.address) }
        var level = 0
        while true {
            let groups = stride(from: 0, to: current.count, by: chunkFanout).map { Array(current[$0..<min($0 + chunkFanout, current.count)]) }
            let first = meta.address
            var parents: [(key: [UInt8], address: Int)] = []
            for (g, members) in groups.enumerated() {
                let address = first + g * nodeSize
                var node = HDF5ByteBuilder()
                node.append(Array("TREE".utf8)); node.u8(1); node.u8(level); node.u16(members.count)
                node.address(g == 0 ? nil : address - nodeSize)
                node.address(g == groups.count - 1 ? nil : address + nodeSize)
                for m in members { node.append(m.key); node.address(m.address) }
                node.append(g == groups.count - 1 ? endKey : groups[g + 1][0].key)
                node.append([UInt8](repeating: 0, count: nodeSize - node.count))
                meta.append(node.bytes)
                parents.append((members[0].key, address))
            }
            if parents.count == 1 { return parents[0].address }
            current = parents
            level += 1
        }
    }

    /// Writes a version-1 object header holding `messages` (type, flags, body) in one chunk; returns its address.
    static func objectHeader(_ messages: [(Int, Int, [UInt8])], into meta: inout MetadataBuffer, path: String) throws -> Int {
        try checkSizes(messages, path: path)
        var body = HDF5ByteBuilder()
        for (type, flags, message) in messages { appendMessage(type: type, flags: flags, message, to: &body) }
        guard messages.count <= Int(UInt16.max), body.count <= Int(UInt32.max) else {
            throw CheckpointError.malformed(path: path, location: "object header", reason: "too many messages for one HDF5 object header")
        }
        var header = HDF5ByteBuilder()
        header.u8(1); header.u8(0); header.u16(messages.count); header.u32(1); header.u32(body.count); header.u32(0)
        return meta.append(header.bytes + body.bytes)
    }

    /// Writes the root group's object header: the symbol table message and a continuation message in the first
    /// chunk, then the attribute messages in continuation chunks of at most 64 KiB (each but the last ending in a
    /// continuation to the next), as h5py's root with hundreds of attributes is laid out. Returns its address.
    static func rootHeader(
        symbolTable: [UInt8], attributes: [(Int, Int, [UInt8])], into meta: inout MetadataBuffer, path: String
    ) throws -> Int {
        try checkSizes(attributes, path: path)
        let limit = 64 * 1024
        // Split the attributes into chunks, leaving room for a continuation message (24 bytes) in each.
        var chunks: [[(Int, Int, [UInt8])]] = []
        var current: [(Int, Int, [UInt8])] = []
        var size = 0
        for m in attributes {
            let length = 8 + (m.2.count + 7) / 8 * 8
            if !current.isEmpty && size + length + 24 > limit {
                chunks.append(current)
                current = []
                size = 0
            }
            current.append(m)
            size += length
        }
        if !current.isEmpty { chunks.append(current) }
        var messageCount = 1 + (chunks.isEmpty ? 0 : 1)
        // Continuation chunks are written first (from the last back), so each knows the next one's address.
        var next: (address: Int, length: Int)? = nil
        for chunk in chunks.reversed() {
            var body = HDF5ByteBuilder()
            for (type, flags, message) in chunk { appendMessage(type: type, flags: flags, message, to: &body) }
            if let next { appendMessage(type: 0x10, flags: 0, continuation(next), to: &body); messageCount += 1 }
            messageCount += chunk.count
            next = (meta.append(body.bytes), body.count)
        }
        guard messageCount <= Int(UInt16.max) else {
            throw CheckpointError.malformed(path: path, location: "root group", reason: "more attributes than one HDF5 object header holds")
        }
        var body = HDF5ByteBuilder()
        appendMessage(type: 0x11, flags: 0, symbolTable, to: &body)
        if let next { appendMessage(type: 0x10, flags: 0, continuation(next), to: &body) }
        var header = HDF5ByteBuilder()
        header.u8(1); header.u8(0); header.u16(messageCount); header.u32(1); header.u32(body.count); header.u32(0)
        return meta.append(header.bytes + body.bytes)
    }

    /// Throws `.malformed` when a message would not fit a v1 header message's 16-bit size (an attribute name of
    /// tens of thousands of bytes): refused, never truncated.
    static func checkSizes(_ messages: [(Int, Int, [UInt8])], path: String) throws {
        for m in messages where (m.2.count + 7) / 8 * 8 > Int(UInt16.max) {
            throw CheckpointError.malformed(path: path, location: "object header", reason: "a \(m.2.count)-byte HDF5 message (too long a name?) does not fit a version-1 object header")
        }
    }

    static func continuation(_ target: (address: Int, length: Int)) -> [UInt8] {
        var b = HDF5ByteBuilder()
        b.address(target.address)
        b.u64(UInt64(target.length))
        return b.bytes
    }

    /// A v1 header message: type, size (padded to 8), flags, 3 reserved bytes, the body padded to 8.
    static func appendMessage(type: Int, flags: Int, _ message: [UInt8], to body: inout HDF5ByteBuilder) {
        let padded = (message.count + 7) / 8 * 8
        body.u16(type); body.u16(padded); body.u8(flags); body.u8(0); body.u8(0); body.u8(0)
        body.append(message)
        body.append([UInt8](repeating: 0, count: padded - message.count))
    }
}

/// The metadata written after the data: bytes with their file addresses (8-byte aligned structures).
struct MetadataBuffer {
    let base: Int
    var bytes: [UInt8] = []

    init(base: Int) {
        self.base = base
        let misalignment = base % 8
        if misalignment != 0 { bytes = [UInt8](repeating: 0, count: 8 - misalignment) }
    }

    /// Address of the next byte.
    var address: Int { base + bytes.count }

    /// Appends `data`, then pads so that the next address is a multiple of 8 (the file offset, not the buffer's
    /// length: the buffer starts at `base`, which the tensor data before it leaves at any alignment), and returns
    /// its address.
    @discardableResult
    mutating func append(_ data: [UInt8]) -> Int {
        let at = address
        bytes += data
        let r = address % 8
        if r != 0 { bytes += [UInt8](repeating: 0, count: 8 - r) }
        return at
    }
}

/// Global heap collections (version 1) for the variable-length strings of attributes: objects packed in order into
/// collections of at least 4096 bytes (HDF5's minimum), each closed by its free-space object.
struct GlobalHeapBuilder {
    private var objects: [[UInt8]] = []
    /// (collection, index) of each object, known after `write`.
    private var placed: [(Int, Int)] = []

    /// Adds `data`; returns a placeholder reference (its object number) for `resolve`.
    mutating func add(_ data: [UInt8]) -> [UInt8] {
        objects.append(data)
        return HDF5Encode.littleEndian(UInt64(objects.count - 1))
    }

    /// Writes the collections into `meta`.
    mutating func write(into meta: inout MetadataBuffer) {
        var i = 0
        while i < objects.count {
            var body = HDF5ByteBuilder()
            var index = 1
            var members: [Int] = []
            while i < objects.count && index < Int(UInt16.max) {
                let need = 16 + (objects[i].count + 7) / 8 * 8
                if !members.isEmpty && 16 + body.count + need > 4096 { break }
                body.u16(index); body.u16(0); body.u32(0); body.u64(UInt64(objects[i].count))
                body.append(objects[i]); body.pad(to: 8)
                members.append(i)
                index += 1
                i += 1
            }
            var size = 16 + body.count
            if size < 4096 {
                // The free-space object (index 0) covers the rest, its own header included; a tail too small for
                // a header is free space without one, as HDF5 reads it.
                let free = 4096 - size
                if free >= 16 {
                    body.u16(0); body.u16(0); body.u32(0); body.u64(UInt64(free))
                    body.append([UInt8](repeating: 0, count: free - 16))
                } else {
                    body.append([UInt8](repeating: 0, count: free))
                }
                size = 4096
            }
            var header = HDF5ByteBuilder()
            header.append(Array("GCOL".utf8)); header.u8(1); header.u8(0); header.u8(0); header.u8(0)
            header.u64(UInt64(size))
            let address = meta.append(header.bytes + body.bytes)
            for (k, member) in members.enumerated() {
                while placed.count <= member { placed.append((0, 0)) }
                placed[member] = (address, k + 1)
            }
        }
    }

    /// The 16-byte heap reference (length, collection address, index) for a placeholder from `add`.
    func resolve(_ placeholder: [UInt8]) -> [UInt8] {
        let n = placeholder.enumerated().reduce(0) { $0 | Int($1.1) << (8 * $1.0) }
        var b = HDF5ByteBuilder()
        b.u32(objects[n].count)
        b.address(placed[n].0)
        b.u32(placed[n].1)
        return b.bytes
    }
}
