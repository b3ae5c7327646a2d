import Tensors

/// The bytes of a DEFLATE entry (method 8) of a mapped zip archive, validated by `ZipDirectory`: inflated from the
/// archive's own bytes by `Inflater` each time they are read, from the entry's start up to the end of the range
/// asked for. No zero-copy span; random access (strided views) collects the range as it inflates.
package final class DeflatedEntrySource: ByteSource {
    package let archive: MappedFile
    package let entry: ZipEntry
    package var byteCount: Int { entry.uncompressedSize }
    package var path: String { archive.path }

    package init(archive: MappedFile, entry: ZipEntry) {
        self.archive = archive
        self.entry = entry
    }

    package func stream(_ range: Range<Int>, chunkSize: Int, to sink: ByteSink) throws {
        precondition(range.lowerBound >= 0 && range.upperBound <= byteCount)
        guard !range.isEmpty else { return }
        let chunk = max(chunkSize, 1)
        var position = 0
        try Inflater.read(entry, of: archive, limit: range.upperBound) { piece in
            var lower = max(range.lowerBound, position)
            let upper = min(range.upperBound, position + piece.count)
            while lower < upper {
                let end = min(upper, lower + chunk)
                try sink.write(UnsafeRawBufferPointer(rebasing: piece[(lower - position)..<(end - position)]))
                lower = end
            }
            position += piece.count
        }
    }
}
