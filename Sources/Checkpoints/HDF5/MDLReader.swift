import Tensors

/// What a Cerebras `.mdl` file holds, read from its HDF5 tree: tensors (flat dotted keys, lazily readable), values,
/// and the file's own facts.
package struct MDLContents {
    /// `0.5` or `0.4` (the file attribute `__version__`).
    package var formatVersion: String
    /// `__cstorch_version__`, when the file names it.
    package var cstorchVersion: String?
    /// Tensors named by their flat key (`model.model.patch_embedding_layer.linear_proj.weight`, `optimizer.state.0.exp_avg`).
    package var tensors: [TensorInfo]
    /// Scalars, strings, None, opaque objects, named by flat key.
    package var values: [CheckpointValue]
    /// File-level facts shown as metadata (`mdl.format`, `mdl.cstorch_version`, …).
    package var metadata: [(String, String)]
    /// Things a user should know (links followed, bf16 stored as int16, …).
    package var notes: [String]
}

/// Reads Cerebras `.mdl` checkpoints (formats 0.5 and 0.4) from their HDF5 tree. CONTRACT STUB — the `.mdl` work
/// replaces the body.
package enum MDLReader {
    /// Reads the structure of `file` (metadata only; no tensor data).
    package static func open(_ file: MappedFile, options: OpenOptions) throws -> MDLContents {
        let hdf5 = try HDF5File(file: file)
        _ = hdf5
        throw CheckpointError.unsupported(path: file.path, kind: "a Cerebras .mdl file", advice: "the .mdl reader is not built yet")
    }
}
