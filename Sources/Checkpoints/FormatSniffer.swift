import Tensors

/// Decides what a path is from its bytes (files) or its contents (folders), never from its extension.
package enum FormatSniffer {
    package enum FileKind: Sendable {
        case safetensors, safetensorsIndex, torchZip, torchLegacy, pickle, hdf5
    }

    package enum FolderKind: Sendable {
        case pipeline, component, shardedSafetensors
    }

    package enum Result {
        case file(FileKind, MappedFile)
        case folder(FolderKind)
    }

    /// Sniffs `path`. Throws `CheckpointError.unsupported` (with advice) for files we know but do not read,
    /// `.unrecognized` for anything else.
    package static func sniff(_ path: String) throws -> Result {
        guard let status = Platform.status(path, followingSymlink: true) else {
            if Platform.notFound { throw CheckpointError.notFound(path: path) }
            throw CheckpointError.io(path: path, operation: "stat", detail: describeErrno(Platform.errno))
        }
        if status.type == .directory { return .folder(try sniffFolder(path)) }
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch { throw CheckpointError.mapping(error, path: path) }
        return .file(try sniffFile(file), file)
    }

    static func sniffFile(_ file: MappedFile) throws -> FileKind {
        let path = file.path
        let bytes = file.bytes
        let size = bytes.count
        func starts(with prefix: [UInt8], at offset: Int = 0) -> Bool {
            offset + prefix.count <= size && zip(prefix.indices, prefix).allSatisfy { bytes[offset + $0] == $1 }
        }
        if size == 0 {
            throw CheckpointError.unsupported(
                path: path, kind: "an empty file (0 bytes)", advice: "the download or copy probably failed; fetch the file again")
        }
        if starts(with: Array("version https://git-lfs".utf8)) {
            let text = String(decoding: bytes.prefix(512), as: UTF8.self)
            let sizeLine = text.split(separator: "\n").first { $0.hasPrefix("size ") }.map { " of \($0.dropFirst(5)) bytes" } ?? ""
            throw CheckpointError.unsupported(
                path: path, kind: "a git-lfs pointer file, not the checkpoint itself (the real file\(sizeLine) was never downloaded)",
                advice: "run `git lfs pull` in the repository, or download the file directly")
        }
        if starts(with: [0x50, 0x4B, 0x03, 0x04]) || starts(with: [0x50, 0x4B, 0x05, 0x06]) { return .torchZip }
        if starts(with: TorchArchive.legacyMagic) { return .torchLegacy }
        if size >= 9 && bytes[8] == UInt8(ascii: "{") { return .safetensors }
        // HDF5 (a Cerebras .mdl): the signature at offset 0, where h5py puts it. A non-HDF5 .mdl falls through to
        // safetensors and torch, as cerebras.pytorch.load does.
        if starts(with: [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) { return .hdf5 }
        if starts(with: Array("ustar".utf8), at: 257) {
            throw CheckpointError.unsupported(
                path: path, kind: "a tar archive (the torch < 0.4 checkpoint format?)",
                advice: "load and re-save it with a current torch: torch.save(torch.load(path), 'new.pt')")
        }
        if starts(with: [0x1F, 0x8B]) {
            throw CheckpointError.unsupported(path: path, kind: "a gzip-compressed file", advice: "decompress it first (gunzip)")
        }
        if bytes[0] == 0x80 && size >= 2 && bytes[1] <= 5 { return .pickle }
        if bytes[0] == UInt8(ascii: "{") || bytes[0] == UInt8(ascii: " ") || bytes[0] == UInt8(ascii: "\n") {
            if let json = try? JSONParser.parse(bytes), json["weight_map"] != nil { return .safetensorsIndex }
            throw CheckpointError.unrecognized(
                path: path, reason: "a JSON file; point ditkit at the folder or at a *.safetensors.index.json file")
        }
        // A plausible safetensors header length whose header is not JSON: let the reader say what is wrong.
        if size >= 10 {
            let declared = bytes.loadUnaligned(as: UInt64.self).littleEndian
            if declared >= 2 && declared <= UInt64(size - 8) { return .safetensors }
        }
        let hex = bytes.prefix(16).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
        throw CheckpointError.unrecognized(
            path: path, reason: "its first bytes (\(hex.joined(separator: " "))) match no known format "
                + "(torch zip 'PK', legacy torch pickle, safetensors, diffusers folder)")
    }

    static func sniffFolder(_ path: String) throws -> FolderKind {
        let names = try listDirectory(path)
        if names.contains("model_index.json") { return .pipeline }
        if names.contains("config.json") { return .component }
        if names.contains(where: { $0.contains(".safetensors.index") && $0.hasSuffix(".json") }) { return .shardedSafetensors }
        if names.contains(where: DiffusersFolder.isWeightsFile) { return .component }
        throw CheckpointError.unrecognized(
            path: path, reason: "a folder without model_index.json (pipeline), config.json (component) or weights files")
    }

    /// File names in a directory, sorted.
    package static func listDirectory(_ path: String) throws -> [String] {
        guard let names = Platform.listDirectory(path) else {
            throw CheckpointError.io(path: path, operation: "opendir", detail: describeErrno(Platform.errno))
        }
        return names.sorted()
    }

    static func isDirectory(_ path: String) -> Bool {
        Platform.status(path, followingSymlink: true)?.type == .directory
    }

    static func exists(_ path: String) -> Bool { Platform.exists(path) }
}
