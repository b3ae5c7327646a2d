import Checkpoints
import Tensors

/// The `hdf5` target: ditkit's own HDF5 reader on one file's bytes — the superblock and whole group tree
/// (`HDF5File`), then every dataset decoded as a value when small and streamed in full (chunk index validation,
/// filters, band reassembly), as the `.mdl` reader and `convert` would read them; then the `.mdl` layer
/// (`Checkpoint.open`: spec, leaf metadata, links, spec pickles through the restricted unpickler) and every tensor
/// it names streamed.
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
        do {
            let checkpoint = try Checkpoint.open(file.path)
            for tensor in checkpoint.tensors where tensor.byteCount <= streamBudget {
                try tensor.stream(chunk: 1 << 16) { _ in }
            }
        } catch {
            firstError = firstError ?? error
        }
        if let firstError { throw firstError }
    }
}
