import Tensors

// libm's pow and log10 (the chunk guess must round as numpy's float64 does). Platform.swift holds the module's other
// platform imports; this one file adds the math library for the chunk guess.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// h5py's automatic chunk shape (`h5py._hl.filters.guess_chunk`, h5py 3.x), reproduced from its documented rule so
/// that ditkit's datasets are chunked as the Cerebras saver's are: a zero dimension counts as 1024; the target
/// chunk size is 16 KiB × 2^log10(dataset MiB), clamped to [8 KiB, 1 MiB]; then, cycling over the axes from the
/// first, each axis in turn is halved (rounding up) until the chunk is under the target or within 50 % of it,
/// and under 1 MiB — or down to one element. Computed in float64 as numpy does.
package enum HDF5ChunkGuess {
    /// The chunk shape h5py picks for a dataset of `shape` (not 0-d) with elements of `elementSize` bytes.
    package static func chunkShape(for shape: [Int], elementSize: Int) -> [Int] {
        let base = 16.0 * 1024, minimum = 8.0 * 1024, maximum = 1024.0 * 1024
        var chunks = shape.map { Double($0 == 0 ? 1024 : $0) }
        let typeSize = Double(elementSize)
        let datasetBytes = chunks.reduce(1, *) * typeSize
        var target = base * pow(2, log10(datasetBytes / (1024 * 1024)))
        if target > maximum { target = maximum } else if target < minimum { target = minimum }
        var axis = 0
        while true {
            let elements = chunks.reduce(1, *)
            let bytes = elements * typeSize
            if (bytes < target || abs(bytes - target) / target < 0.5) && bytes < maximum { break }
            if elements == 1 { break }
            let i = axis % chunks.count
            chunks[i] = (chunks[i] / 2).rounded(.up)
            axis += 1
        }
        return chunks.map { Int($0) }
    }
}

/// Takes a dataset's row-major stream, cuts it into HDF5 chunks one band of chunk rows at a time (the chunk's first
/// dimension × the whole rest of the shape), pads edge chunks with zeros (HDF5 stores whole chunks; the fill value
/// is 0), LZ4-compresses each chunk (`LZ4ChunkCompressor`) and appends it to the file, recording where it went.
/// Memory: one band, one chunk and its compressed form.
final class HDF5ChunkingSink: ByteSink {
    let shape: [Int], chunk: [Int], elementSize: Int
    let out: AtomicFileWriter
    let path: String, label: String
    let progress: ((Int) -> Void)?
    /// The chunks written, in chunk-offset order.
    private(set) var records: [HDF5Writer.ChunkRecord] = []

    private let rowBytes: Int
    private let expected: Int
    private var band: [UInt8]
    private var filled = 0
    private var bandIndex = 0
    private var received = 0
    private var chunkBuffer: [UInt8]
    private var compressed: [UInt8] = []

    init(shape: [Int], chunk: [Int], elementSize: Int, out: AtomicFileWriter, path: String, label: String, progress: ((Int) -> Void)?) {
        self.shape = shape
        self.chunk = chunk
        self.elementSize = elementSize
        self.out = out
        self.path = path
        self.label = label
        self.progress = progress
        rowBytes = shape.dropFirst().reduce(elementSize, *)
        expected = shape.reduce(elementSize, *)
        band = [UInt8](repeating: 0, count: expected == 0 ? 0 : chunk[0] * rowBytes)
        chunkBuffer = [UInt8](repeating: 0, count: expected == 0 ? 0 : chunk.reduce(elementSize, *))
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard received + bytes.count <= expected else {
            throw CheckpointError.malformed(
                path: path, location: label, reason: "the tensor produced more than the \(expected) bytes its shape holds")
        }
        received += bytes.count
        progress?(bytes.count)
        var input = bytes
        while !input.isEmpty {
            let take = min(input.count, band.count - filled)
            band.withUnsafeMutableBytes { b in
                (b.baseAddress! + filled).copyMemory(from: input.baseAddress!, byteCount: take)
            }
            filled += take
            input = UnsafeRawBufferPointer(rebasing: input[take...])
            if filled == band.count { try flushBand() }
        }
    }

    /// Writes the last (partial) band. Throws unless exactly the shape's bytes arrived.
    func finish() throws {
        guard received == expected else {
            throw CheckpointError.malformed(
                path: path, location: label, reason: "the tensor produced \(received) bytes, its shape holds \(expected)")
        }
        if filled > 0 { try flushBand() }
    }

    /// Cuts the band's chunks (row-major over the chunk grid of dimensions 1…), compresses and appends them.
    private func flushBand() throws {
        let rank = shape.count
        let rows = min(chunk[0], shape[0] - bandIndex * chunk[0])
        let grid = (1..<rank).map { (shape[$0] + chunk[$0] - 1) / chunk[$0] }
        var position = [Int](repeating: 0, count: rank - 1)
        let total = grid.reduce(1, *)
        for _ in 0..<total {
            let starts = [0] + (1..<rank).map { position[$0 - 1] * chunk[$0] }
            let extents = [rows] + (1..<rank).map { min(chunk[$0], shape[$0] - starts[$0]) }
            let edge = zip(extents, chunk).contains { $0 != $1 }
            band.withUnsafeBytes { src in
                chunkBuffer.withUnsafeMutableBytes { dst in
                    if edge { dst.initializeMemory(as: UInt8.self, repeating: 0) }
                    HDF5ChunkRuns.forEach(shape: shape, chunk: chunk, elementSize: elementSize, origin: starts, extent: extents) { to, from, bytes in
                        (dst.baseAddress! + to).copyMemory(from: src.baseAddress! + from, byteCount: bytes)
                    }
                }
            }
            let length = try chunkBuffer.withUnsafeBytes { try LZ4ChunkCompressor.compress($0, into: &compressed, path: path) }
            let address = out.bytesWritten
            try compressed.withUnsafeBytes { try out.write(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
            var offsets = starts
            offsets[0] = bandIndex * chunk[0]
            records.append(HDF5Writer.ChunkRecord(offsets: offsets, size: length, address: address))
            var d = rank - 2
            while d >= 0 {
                position[d] += 1
                if position[d] < grid[d] { break }
                position[d] = 0
                d -= 1
            }
        }
        bandIndex += 1
        filled = 0
    }
}
