import Checkpoints
import Testing

/// Zip structures torch writes only for files over 4 GiB, built by hand: sizes and offsets that live only in
/// ZIP64 extra fields and end records.
@Suite("zip directory")
struct ZipTests {
    struct Writer {
        var bytes: [UInt8] = []
        mutating func u16(_ v: Int) { bytes += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
        mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    }

    /// One STORED entry named `name` holding `payload`, every size and offset in ZIP64 form. `padding` bytes of
    /// junk precede the local header so the offset is not 0. `shortExtra` drops the offset from the central extra.
    static func archive(name: String, payload: [UInt8], padding: Int = 7, shortExtra: Bool = false) -> [UInt8] {
        var w = Writer()
        w.bytes = [UInt8](repeating: 0xAA, count: padding)
        let local = w.bytes.count
        let nameBytes = Array(name.utf8)
        w.u32(0x0403_4B50); w.u16(45); w.u16(0x0808); w.u16(0); w.u16(0); w.u16(0)
        w.u32(CRC32.checksum(payload)); w.u32(0xFFFF_FFFF); w.u32(0xFFFF_FFFF)
        w.u16(nameBytes.count); w.u16(20)
        w.bytes += nameBytes
        w.u16(1); w.u16(16); w.u64(UInt64(payload.count)); w.u64(UInt64(payload.count))
        w.bytes += payload
        let directory = w.bytes.count
        w.u32(0x0201_4B50); w.u16(45); w.u16(45); w.u16(0x0808); w.u16(0); w.u16(0); w.u16(0)
        w.u32(CRC32.checksum(payload)); w.u32(0xFFFF_FFFF); w.u32(0xFFFF_FFFF)
        w.u16(nameBytes.count); w.u16(shortExtra ? 20 : 28); w.u16(0); w.u16(0); w.u16(0); w.u32(0); w.u32(0xFFFF_FFFF)
        w.bytes += nameBytes
        w.u16(1); w.u16(shortExtra ? 16 : 24); w.u64(UInt64(payload.count)); w.u64(UInt64(payload.count))
        if !shortExtra { w.u64(UInt64(local)) }
        let directorySize = w.bytes.count - directory
        let record = w.bytes.count
        w.u32(0x0606_4B50); w.u64(44); w.u16(45); w.u16(45); w.u32(0); w.u32(0)
        w.u64(1); w.u64(1); w.u64(UInt64(directorySize)); w.u64(UInt64(directory))
        w.u32(0x0706_4B50); w.u32(0); w.u64(UInt64(record)); w.u32(1)
        w.u32(0x0605_4B50); w.u16(0); w.u16(0); w.u16(0xFFFF); w.u16(0xFFFF); w.u32(0xFFFF_FFFF); w.u32(0xFFFF_FFFF); w.u16(0)
        return w.bytes
    }

    @Test("sizes and the local header offset are taken from ZIP64 extras and end records")
    func zip64() throws {
        let payload = (0..<100).map { UInt8($0) }
        let bytes = Self.archive(name: "archive/data/0", payload: payload)
        let directory = try bytes.withUnsafeBytes { try ZipDirectory(bytes: $0, path: "zip64.pt") }
        let entry = try #require(directory.entry(named: "archive/data/0"))
        #expect(entry.uncompressedSize == 100 && entry.compressedSize == 100)
        #expect(entry.localHeaderOffset == 7)
        #expect(entry.dataOffset == 7 + 30 + 14 + 20)
        #expect(entry.hasDataDescriptor && entry.isStored)
        #expect(Array(bytes[entry.dataOffset..<(entry.dataOffset + 100)]) == payload)
    }

    @Test("a ZIP64 extra that lacks a field its 0xFFFFFFFF placeholder needs is an error naming the entry")
    func shortExtra() {
        let bytes = Self.archive(name: "archive/data/0", payload: [1, 2, 3], shortExtra: true)
        #expect {
            try bytes.withUnsafeBytes { try ZipDirectory(bytes: $0, path: "bad.pt") }
        } throws: { error in
            "\(error)".contains("archive/data/0") && "\(error)".contains("ZIP64 extra field")
        }
    }

    @Test("every truncation of the archive is an error, never a crash")
    func truncations() {
        let bytes = Self.archive(name: "archive/data/0", payload: Array(repeating: 9, count: 64))
        for cut in 0..<bytes.count {
            let prefix = Array(bytes[..<cut])
            #expect(throws: CheckpointError.self) { try prefix.withUnsafeBytes { try ZipDirectory(bytes: $0, path: "cut.pt") } }
        }
    }
}
