/// The contiguous runs (rows along the last dimension) in which one chunk of a chunked dataset meets a band of the
/// dataset's rows: the reader copies each run from a decoded chunk into the band, the writer from the band into a
/// chunk. A band holds `chunk[0]` full rows of the dataset (all dimensions after the first in full), row-major; a
/// chunk buffer holds the full chunk shape, row-major (edge chunks are stored full-size by HDF5).
enum HDF5ChunkRuns {
    /// Calls `body(chunkOffset, bandOffset, bytes)` for every run of the chunk whose first element is at
    /// `origin[d]` along dimensions 1… of `shape` (`origin[0]` is ignored: the band starts at the chunk's first row)
    /// and which covers `extent` elements per dimension (clipped to the dataset at edges; `extent[0]` rows).
    static func forEach(
        shape: [Int], chunk: [Int], elementSize: Int, origin: [Int], extent: [Int],
        _ body: (_ chunkOffset: Int, _ bandOffset: Int, _ bytes: Int) -> Void
    ) {
        let rank = shape.count
        guard rank > 0, !extent.contains(where: { $0 <= 0 }) else { return }
        let run = extent[rank - 1] * elementSize
        // Byte strides in the chunk (full chunk shape) and in the band (full dataset rows).
        var chunkStride = [Int](repeating: elementSize, count: rank)
        var bandStride = [Int](repeating: elementSize, count: rank)
        for d in stride(from: rank - 2, through: 0, by: -1) {
            chunkStride[d] = chunkStride[d + 1] * chunk[d + 1]
            bandStride[d] = bandStride[d + 1] * shape[d + 1]
        }
        var bandBase = 0
        for d in 1..<rank { bandBase += origin[d] * bandStride[d] }
        var counter = [Int](repeating: 0, count: max(rank - 1, 1))
        while true {
            var chunkOffset = 0, bandOffset = bandBase
            for d in 0..<(rank - 1) {
                chunkOffset += counter[d] * chunkStride[d]
                bandOffset += counter[d] * bandStride[d]
            }
            body(chunkOffset, bandOffset, run)
            var d = rank - 2
            while d >= 0 {
                counter[d] += 1
                if counter[d] < extent[d] { break }
                counter[d] = 0
                d -= 1
            }
            if d < 0 { break }
        }
    }
}
