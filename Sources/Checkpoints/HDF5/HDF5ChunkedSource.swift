import CDitkitZip
import Dispatch
import Tensors

/// One stored chunk of a chunked dataset, validated: its bytes lie inside the file.
struct HDF5Chunk {
    /// File offset of the stored (filtered) bytes.
    let address: Int
    /// Stored bytes.
    let size: Int
    /// Bit i set: filter i of the pipeline was skipped for this chunk.
    let filterMask: UInt32
}

/// The chunk index of a chunked dataset (a v1 B-tree, node type 1), read and validated as a whole before any
/// element is read: every node inside the file and seen once, levels consistent, every chunk's offsets multiples of
/// the chunk shape inside the dataset, each chunk exactly once, its bytes inside the file and not overlapping
/// another's, and every chunk of the grid present.
struct HDF5ChunkIndex {
    /// Chunks by grid position, row-major over the grid (`dims[d]` divided by `chunk[d]`, rounded up).
    let chunks: [HDF5Chunk]
    /// Chunks per dimension.
    let grid: [Int]

    /// Chunk B-tree nodes hold at most 2K entries (superblock version 1 stores K; version 0 means HDF5's 32).
    static func read(
        _ file: HDF5Bytes, btree: Int?, shape: [Int], chunk: [Int], k: Int, dataset: String
    ) throws -> HDF5ChunkIndex {
        let rank = shape.count
        var grid: [Int] = []
        for d in 0..<rank { grid.append(shape[d] / chunk[d] + (shape[d] % chunk[d] == 0 ? 0 : 1)) }
        guard let total = Checked.product(grid) else {
            throw file.malformed("dataset \"\(dataset)\"", at: 0, "chunk grid \(grid) overflows")
        }
        if total == 0 { return HDF5ChunkIndex(chunks: [], grid: grid) }
        guard let root = btree else {
            throw CheckpointError.malformed(path: file.path, location: "dataset \"\(dataset)\"", reason: "chunk at (\(Array(repeating: "0", count: rank).joined(separator: ","))) absent: no chunk was ever written")
        }
        // Each leaf entry takes at least 8 + 8 · (rank + 1) + 8 bytes of a node: a grid bigger than the file could
        // describe is refused before a table is sized by it.
        guard total <= file.size / (24 + 8 * rank) + 1 else {
            throw CheckpointError.malformed(path: file.path, location: "dataset \"\(dataset)\"", reason: "\(total) chunks declared, more than the \(file.size)-byte file can index")
        }
        var slots = [Int](repeating: -1, count: total)
        var found: [HDF5Chunk] = []
        var seen = Set<Int>()
        var stack: [(offset: Int, level: Int?)] = [(root, nil)]
        while let (offset, expected) = stack.popLast() {
            guard seen.insert(offset).inserted else { throw file.malformed("chunk B-tree node", at: offset, "visited twice: the chunk B-tree loops") }
            var r = try file.signed(offset, 24, "chunk B-tree node", signature: "TREE")
            let type = try r.u8("node type"), level = try r.u8("node level"), used = try r.u16("entries used")
            guard type == 1 else { throw file.malformed("chunk B-tree node", at: offset, "node type \(type), expected 1 (raw data chunks)") }
            if let expected, level != expected { throw file.malformed("chunk B-tree node", at: offset, "level \(level), its parent expects \(expected)") }
            guard used <= 2 * k else { throw file.malformed("chunk B-tree node", at: offset, "\(used) entries, at most \(2 * k) allowed") }
            let keySize = 8 + 8 * (rank + 1)
            var body = try file.region(offset + 24, keySize + used * (keySize + 8), "chunk B-tree node")
            var children: [Int] = []
            for i in 0..<used {
                let keyAt = body.position
                let size = try body.u32("chunk size")
                let mask = UInt32(try body.u32("filter mask"))
                var coordinates: [Int] = []
                for _ in 0...rank { coordinates.append(try body.length("chunk offset")) }
                guard let child = try body.address("child \(i)") else { throw file.malformed("chunk B-tree node", at: offset, "child \(i) address undefined") }
                if level > 0 {
                    children.append(child)
                    continue
                }
                let position = "(\(coordinates.dropLast().map(String.init).joined(separator: ",")))"
                guard coordinates[rank] == 0 else { throw file.malformed("chunk B-tree key", at: keyAt, "chunk \(position): element offset \(coordinates[rank]), expected 0") }
                var slot = 0
                for d in 0..<rank {
                    let c = coordinates[d]
                    guard c < shape[d], c % chunk[d] == 0 else {
                        throw file.malformed("chunk B-tree key", at: keyAt, "chunk at \(position) is not a multiple of the chunk shape \(chunk) inside the dataset shape \(shape)")
                    }
                    slot = slot * grid[d] + c / chunk[d]
                }
                guard size > 0, Checked.fits(offset: child, count: size, in: file.size) else {
                    throw file.malformed("chunk B-tree key", at: keyAt, "chunk at \(position): \(size) bytes at offset \(child) run past the end of the \(file.size)-byte file")
                }
                guard slots[slot] < 0 else { throw file.malformed("chunk B-tree key", at: keyAt, "chunk at \(position) is indexed twice") }
                slots[slot] = found.count
                found.append(HDF5Chunk(address: child, size: size, filterMask: mask))
            }
            // Depth first, children in order.
            for child in children.reversed() { stack.append((child, level - 1)) }
        }
        if let missing = slots.firstIndex(of: -1) {
            var rest = missing, position: [Int] = []
            for d in stride(from: rank - 1, through: 0, by: -1) {
                position.insert(rest % grid[d] * chunk[d], at: 0)
                rest /= grid[d]
            }
            throw CheckpointError.malformed(
                path: file.path, location: "dataset \"\(dataset)\"",
                reason: "chunk at (\(position.map(String.init).joined(separator: ","))) absent (\(found.count) of \(total) chunks indexed); ditkit never substitutes fill values")
        }
        let byAddress = found.sorted { $0.address < $1.address }
        for (a, b) in zip(byAddress, byAddress.dropFirst()) where a.address + a.size > b.address {
            throw CheckpointError.malformed(path: file.path, location: "dataset \"\(dataset)\"", reason: "chunks at offsets \(a.address) (\(a.size) bytes) and \(b.address) overlap")
        }
        return HDF5ChunkIndex(chunks: slots.map { found[$0] }, grid: grid)
    }
}

/// The elements of a chunked dataset, row-major: for each band of chunks along dimension 0, every chunk of the band
/// is decoded (filters undone in reverse order, honouring each chunk's filter mask) and copied row by row into a
/// band buffer, whose requested part is emitted. Memory: one band (chunk rows × a full row of the dataset) and one
/// chunk, never the tensor.
package final class HDF5ChunkedSource: ByteSource, @unchecked Sendable {
    /// The file the chunks are read from (with `pread` into one reused buffer, as `cp` reads: the mapping is not
    /// touched, so nothing of the file stays resident).
    package let file: MappedFile
    /// The dataset's path in the file, for messages.
    package let dataset: String
    let shape: [Int]
    let chunk: [Int]
    let elementSize: Int
    let filters: [HDF5Filter]
    /// Reads and validates the chunk index (on first use).
    private let indexReader: @Sendable () throws -> HDF5ChunkIndex
    private let lock = PlatformLock()
    /// The chunk index, once read (guarded by `lock`).
    private var cachedIndex: HDF5ChunkIndex?
    package let byteCount: Int
    package var path: String { file.path }
    /// Bytes of one chunk, decoded.
    let chunkBytes: Int
    /// Bytes of one row (an index along dimension 0) of the dataset.
    let rowBytes: Int
    /// Largest band or chunk buffer a dataset may need.
    package static let maxBuffer = 256 << 20

    /// `indexReader` reads and validates the chunk index for `shape` and `chunk`; it runs once, on the first read of
    /// the elements (a file opened for its metadata reads no chunk B-tree). Throws when the shape overflows, or
    /// `.unsupported` when one band or chunk would need more than `maxBuffer` bytes.
    init(
        file: MappedFile, dataset: String, shape: [Int], chunk: [Int], elementSize: Int, filters: [HDF5Filter],
        indexReader: @escaping @Sendable () throws -> HDF5ChunkIndex
    ) throws {
        self.file = file
        self.dataset = dataset
        self.shape = shape
        self.chunk = chunk
        self.elementSize = elementSize
        self.filters = filters
        self.indexReader = indexReader
        guard let total = Checked.multiply(Checked.product(shape) ?? -1, elementSize), total >= 0,
            let chunkBytes = Checked.multiply(Checked.product(chunk) ?? -1, elementSize), chunkBytes >= 0,
            let rowBytes = Checked.multiply(Checked.product(Array(shape.dropFirst())) ?? -1, elementSize), rowBytes >= 0,
            let band = Checked.multiply(rowBytes, chunk[0])
        else {
            throw CheckpointError.malformed(path: file.path, location: "dataset \"\(dataset)\"", reason: "shape \(shape) with chunks \(chunk) overflows")
        }
        guard chunkBytes <= Self.maxBuffer, band <= Self.maxBuffer else {
            throw CheckpointError.unsupported(
                path: file.path, kind: "unsupported HDF5 feature chunk band of \(band) bytes (chunks \(chunk) of shape \(shape)) on dataset \"\(dataset)\"",
                advice: "ditkit decodes one band of chunks at a time and bounds it at \(Self.maxBuffer >> 20) MiB")
        }
        byteCount = total
        self.chunkBytes = chunkBytes
        self.rowBytes = rowBytes
    }

    /// Where a chunk is: its element offsets and the file offset of its stored bytes.
    struct Place {
        let position: [Int]
        let address: Int
    }

    private func fail(_ place: Place, _ reason: String) -> CheckpointError {
        .malformed(
            path: file.path,
            location: "dataset \"\(dataset)\" chunk at (\(place.position.map(String.init).joined(separator: ","))) stored at offset \(place.address)",
            reason: reason)
    }

    /// The chunk index, read and validated on first use.
    func chunkIndex() throws -> HDF5ChunkIndex {
        try lock.withLock {
            if let cachedIndex { return cachedIndex }
            let index = try indexReader()
            cachedIndex = index
            return index
        }
    }

    package func stream(_ range: Range<Int>, chunkSize: Int, to sink: ByteSink) throws {
        precondition(range.lowerBound >= 0 && range.upperBound <= byteCount)
        guard !range.isEmpty, rowBytes > 0 else { return }
        let index = try chunkIndex()
        // Stored chunks are read into one buffer sized by the largest (each lies inside the file, validated; a
        // filter's output is never smaller than a fraction of its input, so a chunk stored in more than twice its
        // decoded size + 4 KiB is refused rather than buffered).
        let largest = index.chunks.map(\.size).max() ?? 0
        if let worst = index.chunks.enumerated().first(where: { $0.element.size > 2 * chunkBytes + 4096 }) {
            var position = [Int](repeating: 0, count: shape.count), rest = worst.offset
            for d in stride(from: shape.count - 1, through: 0, by: -1) {
                position[d] = (rest % index.grid[d]) * chunk[d]
                rest /= index.grid[d]
            }
            throw fail(Place(position: position, address: worst.element.address), "stored in \(worst.element.size) bytes, more than twice the chunk's \(chunkBytes) bytes")
        }
        let bandBytes = rowBytes * chunk[0]
        let step = max(chunkSize, 1)
        let first = range.lowerBound / bandBytes, last = (range.upperBound - 1) / bandBytes
        // A chunk covering whole rows (every dimension after the first in full) lands in the band as it is decoded.
        let wholeRows = Array(chunk.dropFirst()) == Array(shape.dropFirst())
        let decoder = BandDecoder(source: self, index: index, largestStored: largest, bandBytes: bandBytes, wholeRows: wholeRows)
        func emit(_ b: Int, _ band: UnsafeMutableRawBufferPointer) throws {
            let bandStart = b * bandBytes
            var lower = max(range.lowerBound, bandStart)
            let upper = min(range.upperBound, min(byteCount, bandStart + bandBytes))
            while lower < upper {
                let end = min(upper, lower + step)
                try sink.write(UnsafeRawBufferPointer(rebasing: band[(lower - bandStart)..<(end - bandStart)]))
                lower = end
            }
        }
        if first == last {
            let band = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bandBytes, 1), alignment: 64)
            defer { band.deallocate() }
            try decoder.fill(first, into: band)
            try emit(first, band)
            return
        }
        // Several bands: two workers decode alternate bands (reading and decompressing on both cores), each into its
        // own buffer, while this thread writes them out in order; memory is two bands.
        let pipeline = BandPipeline(bandBytes: bandBytes)
        let group = DispatchGroup()
        let decoders = [decoder, BandDecoder(source: self, index: index, largestStored: largest, bandBytes: bandBytes, wholeRows: wholeRows)]
        for slot in 0..<min(2, last - first + 1) {
            let decoder = decoders[slot]
            DispatchQueue.global(qos: .userInitiated).async(group: group) {
                for b in stride(from: first + slot, through: last, by: 2) {
                    pipeline.free[slot].wait()
                    if pipeline.isCancelled { break }
                    do {
                        try decoder.fill(b, into: pipeline.buffers[slot])
                    } catch {
                        pipeline.fail(error)
                        pipeline.filled[slot].signal()
                        break
                    }
                    pipeline.filled[slot].signal()
                }
            }
        }
        defer {
            // Never return (and free the buffers) while a worker may still touch them.
            pipeline.cancel()
            group.wait()
        }
        for b in first...last {
            let slot = (b - first) % 2
            pipeline.filled[slot].wait()
            if let error = pipeline.error { throw error }
            try emit(b, pipeline.buffers[slot])
            pipeline.free[slot].signal()
        }
    }

    /// Decodes bands of a chunked source with its own scratch buffers (one decoder per thread).
    private final class BandDecoder: @unchecked Sendable {
        let source: HDF5ChunkedSource
        let index: HDF5ChunkIndex
        let wholeRows: Bool
        let stored: UnsafeMutableRawBufferPointer
        let scratch: UnsafeMutableRawBufferPointer
        let spare: UnsafeMutableRawBufferPointer

        init(source: HDF5ChunkedSource, index: HDF5ChunkIndex, largestStored: Int, bandBytes: Int, wholeRows: Bool) {
            self.source = source
            self.index = index
            self.wholeRows = wholeRows
            stored = .allocate(byteCount: max(largestStored, 1), alignment: 64)
            scratch = .allocate(byteCount: max(source.chunkBytes, 1), alignment: 64)
            spare = .allocate(byteCount: source.filters.count > 1 ? max(source.chunkBytes, 1) : 1, alignment: 64)
        }

        deinit {
            stored.deallocate()
            scratch.deallocate()
            spare.deallocate()
        }

        func fill(_ b: Int, into band: UnsafeMutableRawBufferPointer) throws {
            try source.fillBand(b, index: index, into: band, scratch: wholeRows ? band : scratch, spare: spare, stored: stored, direct: wholeRows)
        }
    }

    /// The hand-off between the decoding worker and the writing thread: two band buffers (freed when both threads
    /// are done with the pipeline), per buffer "filled" and "free" signals, the worker's error, and a cancel flag the
    /// writer sets when it stops early.
    private final class BandPipeline: @unchecked Sendable {
        let buffers: [UnsafeMutableRawBufferPointer]
        let filled = [DispatchSemaphore(value: 0), DispatchSemaphore(value: 0)]
        /// Created at 0 and signalled once: libdispatch traps when a semaphore is freed below its initial value,
        /// which a pipeline stopped early (a failing sink) would leave.
        let free = [DispatchSemaphore(value: 0), DispatchSemaphore(value: 0)]
        private let lock = PlatformLock()
        private var failure: Error?
        private var cancelled = false

        init(bandBytes: Int) {
            buffers = (0..<2).map { _ in .allocate(byteCount: max(bandBytes, 1), alignment: 64) }
            free.forEach { $0.signal() }
        }

        deinit { buffers.forEach { $0.deallocate() } }

        var error: Error? { lock.withLock { failure } }
        var isCancelled: Bool { lock.withLock { cancelled } }

        func fail(_ error: Error) { lock.withLock { failure = error } }

        /// Stops the worker: it sees the flag at its next wait, which this releases.
        func cancel() {
            lock.withLock { cancelled = true }
            free.forEach { $0.signal() }
        }
    }

    /// Decodes every chunk of band `b` (grid index `b` along dimension 0) into `band`.
    fileprivate func fillBand(
        _ b: Int, index: HDF5ChunkIndex, into band: UnsafeMutableRawBufferPointer, scratch: UnsafeMutableRawBufferPointer,
        spare: UnsafeMutableRawBufferPointer, stored: UnsafeMutableRawBufferPointer, direct: Bool
    ) throws {
        let rank = shape.count
        let perBand = index.chunks.count / index.grid[0]
        for j in 0..<perBand {
            var g = [Int](repeating: 0, count: rank)
            g[0] = b
            var rest = j
            for d in stride(from: rank - 1, through: 1, by: -1) {
                g[d] = rest % index.grid[d]
                rest /= index.grid[d]
            }
            let position = (0..<rank).map { g[$0] * chunk[$0] }
            let target = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<chunkBytes])
            try decode(index.chunks[b * perBand + j], position: position, into: target, spare: spare, stored: stored)
            if direct { continue }
            copy(UnsafeRawBufferPointer(target), at: position, into: band)
        }
    }

    /// Copies a decoded chunk at `position` into the band, row by row along the last dimension (edge chunks clipped
    /// to the dataset).
    private func copy(_ chunkData: UnsafeRawBufferPointer, at position: [Int], into band: UnsafeMutableRawBufferPointer) {
        let extent = (0..<shape.count).map { min(chunk[$0], shape[$0] - position[$0]) }
        let source = chunkData.baseAddress!, destination = band.baseAddress!
        HDF5ChunkRuns.forEach(shape: shape, chunk: chunk, elementSize: elementSize, origin: position, extent: extent) { from, to, bytes in
            (destination + to).copyMemory(from: source + from, byteCount: bytes)
        }
    }

    /// Decodes one stored chunk into `output` (exactly `chunkBytes`): filters undone last to first, skipping those
    /// the chunk's mask names; the result must be exactly the chunk's size.
    private func decode(
        _ stored: HDF5Chunk, position: [Int], into output: UnsafeMutableRawBufferPointer, spare: UnsafeMutableRawBufferPointer,
        stored buffer: UnsafeMutableRawBufferPointer
    ) throws {
        let place = Place(position: position, address: stored.address)
        let into = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<stored.size])
        guard file.read(at: stored.address, into: into) == stored.size else {
            throw CheckpointError.io(path: file.path, operation: "read", detail: "short read of the \(stored.size)-byte chunk at offset \(stored.address)")
        }
        let raw = UnsafeRawBufferPointer(into)
        let active = filters.enumerated().filter { stored.filterMask & (1 << UInt32($0.offset)) == 0 }.map(\.element).reversed()
        if active.isEmpty {
            guard raw.count == output.count else {
                throw fail(place, "stored \(raw.count) bytes unfiltered, the chunk holds \(output.count)")
            }
            output.copyMemory(from: raw)
            return
        }
        // Alternate between the output and the spare buffer so that the last filter writes the output.
        var input = raw
        var inputCount = raw.count
        let steps = Array(active)
        for (i, filter) in steps.enumerated() {
            let remainingSteps = steps.count - i
            let target = remainingSteps % 2 == 1 ? output : UnsafeMutableRawBufferPointer(rebasing: spare[0..<min(spare.count, output.count)])
            let produced = try apply(filter, input: UnsafeRawBufferPointer(rebasing: input[0..<inputCount]), into: target, place: place)
            if i == steps.count - 1 {
                guard produced == output.count else {
                    throw fail(place, "decodes to \(produced) bytes, the chunk holds \(output.count)")
                }
            }
            input = UnsafeRawBufferPointer(target)
            inputCount = produced
        }
    }

    /// Undoes one filter from `input` into `target`; returns the bytes produced.
    private func apply(_ filter: HDF5Filter, input: UnsafeRawBufferPointer, into target: UnsafeMutableRawBufferPointer, place: Place) throws -> Int {
        switch filter.id {
        case 32004:
            let original: Int
            do { original = try LZ4Blocks.originalSize(input) } catch { throw fail(place, error.reason) }
            guard original == target.count else {
                throw fail(place, "LZ4 header declares \(original) decompressed bytes, the chunk holds \(target.count)")
            }
            do { try LZ4Blocks.decode(input, into: target) } catch { throw fail(place, error.reason) }
            return original
        case 1:
            var length = uLong(target.count)
            let status = uncompress(
                target.baseAddress!.assumingMemoryBound(to: Bytef.self), &length,
                input.baseAddress!.assumingMemoryBound(to: Bytef.self), uLong(input.count))
            guard status == Z_OK else {
                throw fail(place, status == Z_BUF_ERROR ? "deflate data inflates to more than the chunk's \(target.count) bytes" : "deflate data is corrupt (zlib status \(status))")
            }
            return Int(length)
        case 2:
            let width = filter.clientData.first.map(Int.init) ?? elementSize
            guard input.count <= target.count, width > 0 else { throw fail(place, "shuffled data of \(input.count) bytes, the chunk holds \(target.count)") }
            let n = input.count / width
            let src = input.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let dst = target.baseAddress!.assumingMemoryBound(to: UInt8.self)
            if width == 1 || n <= 1 {
                target.baseAddress!.copyMemory(from: input.baseAddress!, byteCount: input.count)
            } else {
                for byte in 0..<width {
                    let plane = src + byte * n
                    for i in 0..<n { dst[i * width + byte] = plane[i] }
                }
                let tail = input.count - n * width
                if tail > 0 { (dst + n * width).update(from: src + n * width, count: tail) }
            }
            return input.count
        default:
            throw CheckpointError.unsupported(
                path: file.path, kind: "unsupported HDF5 filter id \(filter.id) (\(filter.name ?? HDF5ChunkedSource.filterName(filter.id))) on dataset \"\(dataset)\"",
                advice: "ditkit decodes LZ4 (32004), deflate (1) and shuffle (2); rewrite the file with one of them or none")
        }
    }

    /// A registered HDF5 filter's common name (for messages).
    static func filterName(_ id: Int) -> String {
        [1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf", 32001: "blosc",
         32004: "lz4", 32008: "bitshuffle", 32015: "zstd", 32017: "sz", 32026: "blosc2"][id] ?? "unregistered"
    }
}

/// Bytes held in memory (a compact dataset's elements).
package final class HDF5BytesSource: ByteSource {
    let bytes: [UInt8]
    /// The file the bytes were read from, for messages.
    package let path: String
    package var byteCount: Int { bytes.count }

    /// A source of `bytes` (from `path`).
    package init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
    }

    package func stream(_ range: Range<Int>, chunkSize: Int, to sink: ByteSink) throws {
        precondition(range.lowerBound >= 0 && range.upperBound <= byteCount)
        var lower = range.lowerBound
        while lower < range.upperBound {
            let end = min(range.upperBound, lower + max(chunkSize, 1))
            try bytes.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[lower..<end])) }
            lower = end
        }
    }
}
