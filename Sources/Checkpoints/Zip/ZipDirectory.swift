import CDitkitZip
import Tensors

/// One entry of a zip central directory, with the offset of its data resolved through the local header.
package struct ZipEntry: Sendable {
    package let name: String
    /// 0 = STORED, 8 = DEFLATE, …
    package let method: UInt16
    package let flags: UInt16
    package let crc32: UInt32
    package let compressedSize: Int
    package let uncompressedSize: Int
    package let localHeaderOffset: Int
    /// First byte of the entry's data in the file.
    package let dataOffset: Int

    package var isStored: Bool { method == 0 }
    /// Data sizes only in the central directory (general-purpose flag bit 3), as torch's streaming writer does.
    package var hasDataDescriptor: Bool { flags & 0x8 != 0 }
}

/// The central directory of a zip file, parsed straight from mapped bytes: ditkit's only zip reader (stored entries
/// are mapped at the offset found here, deflated ones inflated from there by `Inflater`), so no second reader can
/// pick a different entry. Handles ZIP64 and data descriptors.
///
/// Validates before it trusts: every offset and size is checked (overflow-free) against the file size; a missing
/// end-of-central-directory record (a truncated download) is reported as such; a name that appears twice, an
/// encrypted entry, a method other than stored or deflate, a stored entry whose two sizes differ and a deflated
/// entry that claims more than 1032× its compressed bytes are refused.
package struct ZipDirectory: Sendable {
    /// The most bytes one byte of DEFLATE data can inflate to (a 258-byte match coded in at least 2 bits).
    package static let maxDeflateRatio = 1032

    package let entries: [ZipEntry]
    private let index: [String: Int]

    package func entry(named name: String) -> ZipEntry? { index[name].map { entries[$0] } }

    /// Parses the directory of a mapped zip file. The end records and the central directory are read from the
    /// mapping; each entry's 30-byte local header is read with `pread` (see `MappedFile.read(at:count:)`).
    package init(file: MappedFile) throws {
        try self.init(bytes: file.bytes, path: file.path) { offset in file.read(at: offset, count: 30) }
    }

    /// Parses the directory of the zip file `path` whose bytes are `bytes`; `localHeader` returns the 30 bytes
    /// of the local header at an offset (default: from `bytes`).
    package init(bytes: UnsafeRawBufferPointer, path: String, localHeader: ((Int) -> [UInt8])? = nil) throws {
        func fail(_ location: String, _ reason: String) -> CheckpointError {
            .malformed(path: path, location: location, reason: reason)
        }
        let size = bytes.count
        func u16(_ at: Int) -> Int { Int(bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self).littleEndian) }
        func u32(_ at: Int) -> Int { Int(bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian) }
        func u64(_ at: Int) -> UInt64 { bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian }

        // End of central directory: 22 bytes + a comment of up to 65535 bytes, found by scanning back.
        guard size >= 22 else { throw fail("zip", "file of \(size) bytes is too short to be a zip archive") }
        var eocd = -1
        var at = size - 22
        let lowest = max(0, size - 22 - 65535)
        while at >= lowest {
            if bytes[at] == 0x50, bytes[at + 1] == 0x4B, bytes[at + 2] == 0x05, bytes[at + 3] == 0x06,
                at + 22 + u16(at + 20) == size
            {
                eocd = at
                break
            }
            at -= 1
        }
        guard eocd >= 0 else {
            throw fail(
                "zip", "no end-of-central-directory record in the last 64 KiB: the archive is truncated "
                    + "(an interrupted download or copy?) or not a zip file")
        }
        var entryCount = u16(eocd + 10)
        var directorySize = u32(eocd + 12)
        var directoryOffset = u32(eocd + 16)

        // ZIP64: locator 20 bytes before the EOCD record points at the ZIP64 end record (56 bytes).
        if eocd >= 20, u32(eocd - 20) == 0x0706_4B50 {
            let recordOffset = u64(eocd - 20 + 8)
            guard let record = Checked.int(recordOffset), Checked.fits(offset: record, count: 56, in: eocd - 20),
                u32(record) == 0x0606_4B50
            else {
                throw fail(
                    "zip64 end record", "the ZIP64 locator at offset \(eocd - 20) points at offset \(recordOffset), where "
                        + "no 56-byte ZIP64 end record is (the \(size)-byte file's directory ends at \(eocd - 20))")
            }
            let count64 = u64(record + 32), size64 = u64(record + 40), offset64 = u64(record + 48)
            guard let count = Checked.int(count64), let length = Checked.int(size64), let start = Checked.int(offset64) else {
                throw fail(
                    "zip64 end record at offset \(record)", "entry count \(count64), directory size \(size64) or offset "
                        + "\(offset64) is 2^63 or more")
            }
            entryCount = count
            directorySize = length
            directoryOffset = start
        }
        guard Checked.fits(offset: directoryOffset, count: directorySize, in: size) else {
            throw fail(
                "central directory", "declared at offset \(directoryOffset) with \(directorySize) bytes, past the end of "
                    + "the \(size)-byte file: the archive is truncated")
        }
        guard entryCount <= directorySize / 46 else {
            throw fail(
                "central directory", "declares \(entryCount) entries in \(directorySize) bytes (each takes at least 46)")
        }

        var entries: [ZipEntry] = []
        entries.reserveCapacity(entryCount)
        var index: [String: Int] = [:]
        var cursor = directoryOffset
        let end = directoryOffset + directorySize
        for n in 0..<entryCount {
            guard cursor + 46 <= end, u32(cursor) == 0x0201_4B50 else {
                throw fail("central directory entry \(n) at offset \(cursor)", "bad signature or runs past the directory")
            }
            let flags = UInt16(u16(cursor + 8))
            let method = UInt16(u16(cursor + 10))
            let crc = UInt32(u32(cursor + 16))
            var compressed = UInt64(u32(cursor + 20))
            var uncompressed = UInt64(u32(cursor + 24))
            let nameLength = u16(cursor + 28), extraLength = u16(cursor + 30), commentLength = u16(cursor + 32)
            var localOffset = UInt64(u32(cursor + 42))
            let nameStart = cursor + 46
            let extraStart = nameStart + nameLength
            let next = extraStart + extraLength + commentLength
            guard next <= end else { throw fail("central directory entry \(n)", "runs past the directory") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[nameStart..<extraStart]), as: UTF8.self)
            // ZIP64 extended information: only the fields that are 0xFFFFFFFF in the fixed part, in this order.
            var field = extraStart
            while field + 4 <= extraStart + extraLength {
                let id = u16(field), length = u16(field + 2)
                let body = field + 4
                guard body + length <= extraStart + extraLength else { break }
                if id == 0x0001 {
                    var p = body
                    func next64() throws -> UInt64 {
                        guard p + 8 <= body + length else {
                            throw fail("entry \(name)", "ZIP64 extra field is shorter than the sizes it must hold")
                        }
                        defer { p += 8 }
                        return u64(p)
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try next64() }
                    if compressed == 0xFFFF_FFFF { compressed = try next64() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next64() }
                }
                field = body + length
            }
            guard let local = Checked.int(localOffset), Checked.fits(offset: local, count: 30, in: size),
                let compressedSize = Checked.int(compressed), compressedSize <= size, let uncompressedSize = Checked.int(uncompressed)
            else {
                throw fail(
                    "entry \(name)", "local header offset \(localOffset) or size \(compressed) is past the end of the "
                        + "\(size)-byte file (or uncompressed size \(uncompressed) is 2^63 or more): the archive is truncated")
            }
            if let first = index[name] {
                throw fail(
                    "entry \(name)", "appears twice in the central directory (local headers at offsets "
                        + "\(entries[first].localHeaderOffset) and \(local)); zip readers disagree on which one counts, "
                        + "so ditkit reads neither")
            }
            guard flags & 0x1 == 0 else { throw fail("entry \(name)", "is encrypted (general-purpose flag bit 0)") }
            switch method {
            case 0:
                guard compressedSize == uncompressedSize else {
                    throw fail(
                        "entry \(name)", "stored (uncompressed) entry holds \(compressedSize) bytes but declares "
                            + "\(uncompressedSize) uncompressed")
                }
            case 8:
                // A DEFLATE match copies at most 258 bytes and costs at least 2 bits (length and distance codes),
                // so n compressed bytes inflate to at most 1032·n: a larger declared size is a lie, refused before
                // anything is allocated.
                guard uncompressedSize <= Checked.saturatingMultiply(compressedSize, ZipDirectory.maxDeflateRatio) else {
                    throw fail(
                        "entry \(name)", "declares \(uncompressedSize) bytes uncompressed from \(compressedSize) "
                            + "compressed; DEFLATE inflates at most \(ZipDirectory.maxDeflateRatio)× "
                            + "(\(Checked.saturatingMultiply(compressedSize, ZipDirectory.maxDeflateRatio)) bytes)")
                }
            default:
                throw fail(
                    "entry \(name)", "compression method \(method); torch.save files use 0 (stored) or 8 (deflate)")
            }
            let header = localHeader?(local) ?? [UInt8](UnsafeRawBufferPointer(rebasing: bytes[local..<(local + 30)]))
            guard header.count == 30, header[0] == 0x50, header[1] == 0x4B, header[2] == 0x03, header[3] == 0x04 else {
                throw fail("entry \(name)", "no local file header at offset \(local)")
            }
            let dataOffset = local + 30 + (Int(header[26]) | Int(header[27]) << 8) + (Int(header[28]) | Int(header[29]) << 8)
            guard Checked.fits(offset: dataOffset, count: compressedSize, in: size) else {
                throw fail(
                    "entry \(name)", "data at offset \(dataOffset) with \(compressedSize) bytes runs past the end of the "
                        + "\(size)-byte file: the archive is truncated")
            }
            index[name] = entries.count
            entries.append(
                ZipEntry(
                    name: name, method: method, flags: flags, crc32: crc, compressedSize: compressedSize,
                    uncompressedSize: uncompressedSize, localHeaderOffset: local, dataOffset: dataOffset))
            cursor = next
        }
        self.entries = entries
        self.index = index
    }
}

/// CRC-32 (IEEE 802.3, as zip uses), through zlib's `crc32`.
package enum CRC32 {
    /// The CRC of `bytes`, continuing from `initial` (the CRC of what came before).
    package static func checksum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        var crc = UInt(initial)
        guard var base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return initial }
        var remaining = bytes.count
        while remaining > 0 {
            let chunk = min(remaining, 1 << 30)  // zlib takes a 32-bit length
            crc = crc32(crc, base, UInt32(chunk))
            base += chunk
            remaining -= chunk
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    package static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }
}
