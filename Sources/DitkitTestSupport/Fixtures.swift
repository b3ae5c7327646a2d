import Checkpoints
import Foundation

/// Paths of the committed fixtures and their manifest (written by fixtures/generate/make_fixtures.py).
public enum Fixtures {
    /// The package root, found from this source file's location.
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static let root = packageRoot + "/fixtures"

    public static func path(_ relative: String) -> String { root + "/" + relative }

    /// `fixtures/expected/manifest.json`, parsed.
    public static let manifest: JSONValue = {
        let data = FileManager.default.contents(atPath: root + "/expected/manifest.json") ?? Data()
        return (try? JSONParser.parse([UInt8](data))) ?? .object([])
    }()

    /// Manifest entries (relative path, entry), in file order.
    public static var entries: [(String, JSONValue)] { manifest["fixtures"]?.objectValue ?? [] }

    /// Entries whose `kind` is in `kinds` (or not hostile/torchscript when `kinds` is nil).
    public static func entries(kinds: Set<String>? = nil) -> [FixtureCase] {
        entries.compactMap { name, entry in
            let kind = entry["kind"]?.stringValue ?? ""
            if let kinds { return kinds.contains(kind) ? FixtureCase(path: name, entry: entry) : nil }
            return kind == "hostile" || kind == "torchscript" ? nil : FixtureCase(path: name, entry: entry)
        }
    }
}

/// One fixture, named by its path so parameterised tests read well.
public struct FixtureCase: CustomStringConvertible, Sendable {
    public let path: String
    public let entry: JSONValue
    public var description: String { path }
    public var absolutePath: String { Fixtures.path(path) }
    /// Pickle callables this fixture holds that are neither torch's nor known data classes, to pass as `--allow`
    /// (`OpenOptions.allow`): the user class of the whole pickled module, refused by default since issue 8.
    public var allow: [String] { path.hasSuffix("whole-module.pt") ? ["dit_original.DiT"] : [] }
}

/// Runs the built `ditkit` executable.
public enum DitkitBinary {
    /// `ditkit` beside the test bundle (swift test builds every product), or `$DITKIT_BIN`.
    public static let path: String = {
        if let override = ProcessInfo.processInfo.environment["DITKIT_BIN"] { return override }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // Linux: .build/<triple>/debug/ditkitPackageTests.xctest is the executable itself.
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("ditkit").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir.deleteLastPathComponent()
        }
        return Fixtures.packageRoot + "/.build/debug/ditkit"
    }()

    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
        /// The process was killed by a signal (a crash or a trap), not exited: `status` is the signal number.
        public var signaled: Bool = false
        /// The process ran past the run's time limit and was killed.
        public var timedOut: Bool = false
        /// Wall time of the run, in seconds.
        public var seconds: Double = 0
        /// Peak resident set the process reported (`DITKIT_REPORT_PEAK_RSS`), in KiB, when it exited normally.
        public var peakKiB: Int? {
            guard let range = stderr.range(of: "ditkit: peak RSS ") else { return nil }
            return Int(stderr[range.upperBound...].prefix { $0.isNumber })
        }
    }

    /// Runs `ditkit` with `arguments`, in `directory` (default: the package root). With `timeout`, a run still
    /// going after that many seconds is killed and reported as `timedOut`.
    public static func run(
        _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:], timeout: Double? = nil
    ) throws -> Result {
        let process = Process()
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory ?? Fixtures.packageRoot)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let start = Date()
        try process.run()
        nonisolated(unsafe) var killed = false
        var watchdog: Thread?
        if let timeout {
            let pid = process.processIdentifier
            let thread = Thread {
                let deadline = Date().addingTimeInterval(timeout)
                while Date() < deadline {
                    if Thread.current.isCancelled { return }
                    usleep(20_000)
                }
                killed = true
                kill(pid, SIGKILL)
            }
            thread.start()
            watchdog = thread
        }
        // Read both pipes to the end before waiting, so a large output cannot block the child.
        nonisolated(unsafe) var errData = Data()
        let errReader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        errReader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        watchdog?.cancel()
        while !errReader.isFinished { usleep(1000) }
        var result = Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
        result.signaled = process.terminationReason == .uncaughtSignal
        result.timedOut = killed
        result.seconds = Date().timeIntervalSince(start)
        return result
    }
}

/// A scratch directory removed when the value is released.
public final class TemporaryDirectory {
    public let path: String
    public init() {
        path = NSTemporaryDirectory() + "ditkit-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    public func file(_ name: String) -> String { path + "/" + name }
}
