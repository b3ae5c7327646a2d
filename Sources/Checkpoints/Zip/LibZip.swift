import CZip

/// The libzip calls ditkit makes, each turned into a Swift error at once.
enum LibZip {
    /// Reads one (compressed) entry whole through libzip.
    ///
    /// Calls `zip_open`, `zip_name_locate`, `zip_fopen_index`, `zip_fread`, `zip_fclose`, `zip_discard`.
    /// A CRC mismatch reported after all `expectedSize` bytes were read is tolerated, as torch's reader does.
    static func readEntry(archivePath: String, entryName: String, expectedSize: Int) throws -> [UInt8] {
        var code: Int32 = 0
        guard let archive = zip_open(archivePath, ZIP_RDONLY, &code) else {
            throw CheckpointError.malformed(
                path: archivePath, location: "zip", reason: "libzip cannot open the archive: \(describe(code))")
        }
        defer { zip_discard(archive) }
        let index = zip_name_locate(archive, entryName, 0)
        guard index >= 0 else {
            throw CheckpointError.malformed(path: archivePath, location: "entry \(entryName)", reason: "libzip finds no such entry")
        }
        guard let file = zip_fopen_index(archive, zip_uint64_t(index), 0) else {
            throw CheckpointError.malformed(
                path: archivePath, location: "entry \(entryName)",
                reason: "libzip cannot open it: \(String(cString: zip_strerror(archive)))")
        }
        defer { zip_fclose(file) }
        var data = [UInt8](repeating: 0, count: expectedSize)
        var filled = 0
        while filled < expectedSize {
            let got = data.withUnsafeMutableBytes { buffer in
                zip_fread(file, buffer.baseAddress! + filled, zip_uint64_t(expectedSize - filled))
            }
            if got < 0 {
                let error = zip_file_get_error(file)
                if let error, zip_error_code_zip(error) == ZIP_ER_CRC, filled == expectedSize { break }
                throw CheckpointError.malformed(
                    path: archivePath, location: "entry \(entryName)",
                    reason: "inflating failed after \(filled) of \(expectedSize) bytes: \(String(cString: zip_file_strerror(file)))")
            }
            if got == 0 { break }
            filled += Int(got)
        }
        guard filled == expectedSize else {
            throw CheckpointError.malformed(
                path: archivePath, location: "entry \(entryName)",
                reason: "inflates to \(filled) bytes, \(expectedSize) expected")
        }
        return data
    }

    /// Text of a libzip error code.
    static func describe(_ code: Int32) -> String {
        var error = zip_error_t()
        zip_error_init_with_code(&error, code)
        defer { zip_error_fini(&error) }
        return String(cString: zip_error_strerror(&error))
    }
}
