import Checkpoints
import Tensors

/// The `hdf5` target: ditkit's own HDF5 reader on one file's bytes — the superblock and whole group tree
/// (`HDF5File`), then every dataset decoded as a value when small and streamed in full (chunk index validation,
/// filters, band reassembly), as the `.mdl` reader and `convert` would read them.
enum HDF5Targets {
    /// Largest dataset streamed per input: what a file declares beyond this is legitimate work proportional to its
    /// claims (the chunked source bounds its buffers separately), not a finding.
    static let streamBudget = 64 << 20

    static func hdf5(_ input: [UInt8]) throws {
        let file = try MappedFile(path: Scratch.store("file.h5", input))
        let h5 = try HDF5File(file: file)
        var firstError: Error?
        for dataset in h5.root.allDatasets {
            do {
                if dataset.dataspace.elementCount <= 4096 { _ = try h5.value(of: dataset) }
                if case .variableString = dataset.datatype { continue }
                let source = try h5.source(of: dataset)
                guard source.byteCount <= streamBudget else { continue }
                try source.stream(0..<source.byteCount, chunkSize: 1 << 16, to: CountingSink())
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
    }
}
