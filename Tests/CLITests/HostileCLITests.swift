import Checkpoints
import Foundation
import DitkitTestSupport
import Testing

/// The hostile-input promise, end to end: every case in `fixtures/hostile/*/cases.json` runs the built binary and
/// must exit with its documented code and a message naming the cause, never by a signal, within its time and
/// memory bounds, without executing anything a pickle asks for and without touching files it was not asked to write.
///
/// A `cases.json` holds `{"cases": [{…}]}`; each case has
/// - `name`: unique within the folder;
/// - `args`: the ditkit arguments; `{dir}` is the case folder (relative to the package root), `{tmp}` a fresh
///   scratch folder for this case;
/// - `exit`: the expected exit code; `mentions`: substrings stderr must contain (`stdout_mentions` likewise);
/// - `seconds` (default 10) and `rss_mib` (default 512): bounds for a file under 10 MB;
/// - `untouched` (optional): paths (with `{tmp}`/`{dir}`) that must still exist after the run.
@Suite("Hostile inputs through the CLI (fixtures/hostile)")
struct HostileCLITests {
    struct Case: CustomStringConvertible, Sendable {
        let folder: String
        let name: String
        let args: [String]
        let exit: Int32
        let mentions: [String]
        let stdoutMentions: [String]
        let seconds: Double
        let rssMiB: Int
        let untouched: [String]
        var description: String { "\(folder)/\(name)" }
    }

    static let cases: [Case] = {
        let root = Fixtures.packageRoot + "/fixtures/hostile"
        let folders = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
        var all: [Case] = []
        for folder in folders {
            let file = "\(root)/\(folder)/cases.json"
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            guard let json = try? JSONParser.parse([UInt8](data)), let list = json["cases"]?.arrayValue else {
                all.append(Case(folder: folder, name: "cases.json does not parse", args: [], exit: -1, mentions: [],
                    stdoutMentions: [], seconds: 0, rssMiB: 0, untouched: []))
                continue
            }
            for entry in list {
                let strings: (String) -> [String] = { key in entry[key]?.arrayValue?.compactMap(\.stringValue) ?? [] }
                all.append(Case(
                    folder: folder, name: entry["name"]?.stringValue ?? "?", args: strings("args"),
                    exit: Int32(entry["exit"]?.intValue ?? 3), mentions: strings("mentions"),
                    stdoutMentions: strings("stdout_mentions"), seconds: entry["seconds"]?.doubleValue ?? 10,
                    rssMiB: entry["rss_mib"]?.intValue ?? 512, untouched: strings("untouched")))
            }
        }
        return all
    }()

    static let markers = ["/tmp/ditkit-pwned", "/tmp/ditkit-mdl-pwned"]

    @Test("every case exits with its code and message, no signal, within its time and memory", arguments: cases)
    func hostile(_ c: Case) throws {
        #expect(!c.args.isEmpty, "case has no arguments")
        guard !c.args.isEmpty else { return }
        let scratch = TemporaryDirectory()
        let dir = "fixtures/hostile/" + c.folder
        let expand: (String) -> String = {
            $0.replacingOccurrences(of: "{dir}", with: dir).replacingOccurrences(of: "{tmp}", with: scratch.path)
        }
        for marker in Self.markers { try? FileManager.default.removeItem(atPath: marker) }
        let result = try DitkitBinary.run(
            c.args.map(expand), environment: ["DITKIT_REPORT_PEAK_RSS": "1"], timeout: c.seconds)
        #expect(!result.timedOut, "still running after \(c.seconds) s")
        #expect(!result.signaled, "killed by signal \(result.status): \(result.stderr.suffix(600))")
        guard !result.timedOut, !result.signaled else { return }
        #expect(result.status == c.exit, "exit \(result.status), expected \(c.exit): \(result.stderr.suffix(600))")
        for text in c.mentions {
            #expect(result.stderr.contains(text), "stderr lacks \"\(text)\": \(result.stderr.suffix(600))")
        }
        for text in c.stdoutMentions {
            #expect(result.stdout.contains(text), "stdout lacks \"\(text)\"")
        }
        if let peak = result.peakKiB {
            #expect(peak <= c.rssMiB * 1024, "peak RSS \(peak / 1024) MiB over \(c.rssMiB) MiB")
        } else {
            Issue.record("no peak RSS reported: \(result.stderr.suffix(300))")
        }
        for marker in Self.markers {
            #expect(!FileManager.default.fileExists(atPath: marker), "a pickle's command ran (\(marker) exists)")
        }
        for path in c.untouched.map(expand) {
            let full = path.hasPrefix("/") ? path : Fixtures.packageRoot + "/" + path
            #expect(FileManager.default.fileExists(atPath: full), "\(path) was removed")
        }
    }
}
