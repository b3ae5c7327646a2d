import Tensors

/// One header message of an object header: its type, flags and where its data lies in the file (validated).
struct HDF5Message {
    /// Message type (0x0001 dataspace, 0x0003 datatype, 0x0008 layout, 0x000C attribute, …).
    let type: Int
    /// Message flags (bit 1: shared).
    let flags: Int
    /// File offset of the message's data.
    let offset: Int
    /// Bytes of data.
    let size: Int
}

/// An object header (version 1, or version 2 "OHDR" as HDF5 writes for objects that track attribute creation
/// order — h5py's `track_order=True`, which Cerebras' saver uses for pickled objects), flattened over its
/// continuation blocks, in order.
struct HDF5ObjectHeader {
    /// File offset of the header.
    let offset: Int
    /// Its messages (NIL and continuation messages removed), in header order.
    let messages: [HDF5Message]

    /// Continuation blocks followed per header at most (a loop or a runaway chain is malformed).
    static let maxBlocks = 65_536
    /// Messages per header at most (v1 counts them in 16 bits).
    static let maxMessages = 1 << 20

    /// Parses the object header at `offset`: every block inside the file, every message inside its block,
    /// continuation loops refused, v2 checksums verified.
    static func parse(_ file: HDF5Bytes, at offset: Int) throws -> HDF5ObjectHeader {
        if file.hasSignature("OHDR", at: offset) { return try parseV2(file, at: offset) }
        var head = try file.region(offset, 16, "object header")
        let version = try head.u8("version")
        guard version == 1 else {
            throw file.malformed("object header", at: offset, "version \(version), expected 1 (or an \"OHDR\" signature)")
        }
        try head.skip(1)
        _ = try head.u16("message count")
        _ = try head.u32("reference count")
        let size = try head.u32("header size")
        var blocks: [(start: Int, size: Int)] = [(offset + 16, size)]
        var seen: Set<Int> = [offset + 16]
        var messages: [HDF5Message] = []
        var index = 0
        while index < blocks.count {
            let (start, count) = blocks[index]
            index += 1
            var block = try file.region(start, count, index == 1 ? "object header" : "object header continuation block")
            while block.remaining > 0 {
                guard block.remaining >= 8 else {
                    throw block.malformed("\(block.remaining) bytes left at offset \(block.position), too few for a message header")
                }
                let type = try block.u16("message type")
                let size = try block.u16("message size")
                let flags = try block.u8("message flags")
                try block.skip(3)
                let dataOffset = block.position
                try block.skip(size, "message of type \(type)")
                try collect(file, type: type, flags: flags, offset: dataOffset, size: size, header: offset,
                    into: &messages, blocks: &blocks, seen: &seen)
            }
        }
        return HDF5ObjectHeader(offset: offset, messages: messages)
    }

    private static func parseV2(_ file: HDF5Bytes, at offset: Int) throws -> HDF5ObjectHeader {
        var head = try file.region(offset, min(file.size - offset, 48), "object header")
        try head.skip(4)
        let version = try head.u8("version")
        guard version == 2 else { throw file.malformed("object header", at: offset, "OHDR version \(version), expected 2") }
        let flags = try head.u8("flags")
        guard flags & ~0x3F == 0 else { throw file.malformed("object header", at: offset, "unknown OHDR flags 0x\(String(flags, radix: 16))") }
        if flags & 0x20 != 0 { try head.skip(16, "times") }
        if flags & 0x10 != 0 { try head.skip(4, "attribute phase change values") }
        let width = 1 << (flags & 3)
        var chunkSize = 0
        for i in 0..<width { chunkSize |= try head.u8("chunk size") << (8 * i) }
        let tracked = flags & 0x04 != 0
        let first = head.position
        guard let withChecksum = Checked.add(chunkSize, 4), Checked.fits(offset: first, count: withChecksum, in: file.size) else {
            throw file.malformed("object header", at: offset, "chunk of \(chunkSize) bytes at offset \(first) runs past the end of the \(file.size)-byte file")
        }
        try verifyChecksum(file, from: offset, count: first + chunkSize - offset, what: "object header")
        var blocks: [(start: Int, size: Int)] = [(first, chunkSize)]
        var seen: Set<Int> = [first]
        var messages: [HDF5Message] = []
        var index = 0
        while index < blocks.count {
            let (start, count) = blocks[index]
            index += 1
            var block: HDF5Region
            if index == 1 {
                block = try file.region(start, count, "object header")
            } else {
                // An "OCHK" block: signature, messages, gap, checksum — the continuation message's length covers all.
                guard count >= 8, file.hasSignature("OCHK", at: start) else {
                    throw file.malformed("object header continuation block", at: start, "no \"OCHK\" signature (or shorter than 8 bytes)")
                }
                _ = try file.region(start, count, "object header continuation block")
                try verifyChecksum(file, from: start, count: count - 4, what: "object header continuation block")
                block = try file.region(start + 4, count - 8, "object header continuation block")
            }
            let headerSize = tracked ? 6 : 4
            while block.remaining >= headerSize {
                let type = try block.u8("message type")
                let size = try block.u16("message size")
                let flags = try block.u8("message flags")
                if tracked { try block.skip(2) }
                let dataOffset = block.position
                try block.skip(size, "message of type \(type)")
                try collect(file, type: type, flags: flags, offset: dataOffset, size: size, header: offset,
                    into: &messages, blocks: &blocks, seen: &seen)
            }
        }
        return HDF5ObjectHeader(offset: offset, messages: messages)
    }

    private static func verifyChecksum(_ file: HDF5Bytes, from start: Int, count: Int, what: String) throws {
        let data = UnsafeRawBufferPointer(rebasing: file.bytes[start..<(start + count)])
        let stored = UInt32(littleEndian: file.bytes.loadUnaligned(fromByteOffset: start + count, as: UInt32.self))
        let computed = hdf5Lookup3(data)
        guard stored == computed else {
            throw file.malformed(what, at: start, "checksum 0x\(String(stored, radix: 16)) stored, 0x\(String(computed, radix: 16)) computed over its \(count) bytes")
        }
    }

    /// Files a message: NIL dropped, a continuation queued (once: a block seen before is a loop), shared messages
    /// refused, the rest kept.
    private static func collect(
        _ file: HDF5Bytes, type: Int, flags: Int, offset: Int, size: Int, header: Int,
        into messages: inout [HDF5Message], blocks: inout [(start: Int, size: Int)], seen: inout Set<Int>
    ) throws {
        switch type {
        case 0x0000: return
        case 0x0010:
            var r = try file.region(offset, size, "continuation message")
            guard let address = try r.address("continuation address") else {
                throw file.malformed("continuation message", at: offset, "undefined continuation address")
            }
            let length = try r.length("continuation length")
            guard seen.insert(address).inserted else {
                throw file.malformed("object header", at: header, "continuation loop: the block at offset \(address) is continued into twice")
            }
            guard blocks.count < maxBlocks else {
                throw file.malformed("object header", at: header, "more than \(maxBlocks) continuation blocks")
            }
            _ = try file.region(address, length, "object header continuation block")
            blocks.append((address, length))
        default:
            if flags & 0x02 != 0 { throw file.unsupported("shared header message (type \(type))", at: offset) }
            guard messages.count < maxMessages else {
                throw file.malformed("object header", at: header, "more than \(maxMessages) messages")
            }
            messages.append(HDF5Message(type: type, flags: flags, offset: offset, size: size))
        }
    }
}
