import DitkitFuzzTargets

#if DITKIT_LIBFUZZER
import CDitkitFuzz
#endif

/// `ditkit-fuzz`: the fuzz targets as one program.
///
/// Built by `scripts/fuzz` with `-sanitize=fuzzer,address -D DITKIT_LIBFUZZER`, it is a libFuzzer binary: the target
/// is named by `DITKIT_FUZZ_TARGET` and every other argument is libFuzzer's. Built normally (`swift build`), it
/// replays inputs without sanitizers: `DitkitFuzz TARGET FILE|FOLDER…` prints each input's outcome.
@main
struct DitkitFuzz {
    static func main() {
        #if DITKIT_LIBFUZZER
        fuzz()
        #else
        replay(Array(CommandLine.arguments.dropFirst()))
        #endif
    }

    static func targetList() -> String {
        FuzzTarget.allCases.map { "  \($0.rawValue.padding(12)) \($0.summary)" }.joined(separator: "\n")
    }

    #if DITKIT_LIBFUZZER
    nonisolated(unsafe) static var target = FuzzTarget.safetensors

    static func fuzz() {
        let name = Platform.environment("DITKIT_FUZZ_TARGET") ?? ""
        guard let chosen = FuzzTarget(rawValue: name) else {
            printError("ditkit-fuzz: set DITKIT_FUZZ_TARGET to one of:\n\(targetList())\n")
            Platform.exit(2)
        }
        target = chosen
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        Platform.exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            DitkitFuzz.target.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
            return 0
        })
    }
    #else
    static func replay(_ arguments: [String]) {
        guard arguments.count >= 2, let target = FuzzTarget(rawValue: arguments[0]) else {
            printError("usage: DitkitFuzz TARGET FILE|FOLDER…  (replays inputs; scripts/fuzz builds the fuzzer)\ntargets:\n\(targetList())\n")
            Platform.exit(2)
        }
        for path in arguments.dropFirst() {
            for file in files(path) {
                guard let bytes = read(file) else {
                    printError("\(file): cannot read\n")
                    Platform.exit(4)
                }
                switch target.run(bytes) {
                case .accepted: print("\(file): accepted")
                case .refused(let reason): print("\(file): refused: \(reason.split(separator: "\n").first ?? "")")
                }
            }
        }
    }

    /// `path` itself, or the regular files directly inside it when it is a folder, sorted.
    static func files(_ path: String) -> [String] {
        guard let names = Platform.folderEntries(path) else { return [path] }
        return names.filter { !$0.hasPrefix(".") }.map { path + "/" + $0 }.sorted()
    }

    static func read(_ path: String) -> [UInt8]? { Platform.readFile(path) }
    #endif
}

/// Writes `message` to standard error.
func printError(_ message: String) {
    Platform.writeStandardError(message)
}

extension String {
    fileprivate func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
