import ArgumentParser
import Checkpoints
import Models
import Reference
import Tensors


/// The `ditkit` command. Exit codes (`ErrorKind.exitCode`, README "Exit codes"): 0 success, 1 verification failed,
/// 2 usage, 3 unreadable or hostile input, 4 I/O; 70 (EX_SOFTWARE) for an internal error, an error of a type that
/// does not conform to `DitkitError` (a bug: every error ditkit throws should say what kind it is).
@main
struct Ditkit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ditkit",
        abstract: "Open, inspect, convert and verify Diffusion Transformer (DiT) checkpoints.",
        discussion: """
            Exit codes: 0 success, 1 verification failed, 2 usage, 3 unreadable or hostile input, 4 I/O, \
            70 internal error (a bug: please report it).
            """,
        version: "0.1.0",
        subcommands: [Inspect.self, Convert.self, Params.self, Synth.self, TraceCommand.self, Verify.self, Diff.self, Bench.self])

    /// Old spellings that still work, hidden from `--help` and completion: subcommand → [old option: new option].
    /// `synth --layout` became `--to` (the same choice as convert's). Each use writes a note to stderr.
    static let deprecatedSpellings: [String: [String: String]] = ["synth": ["--layout": "--to"]]

    /// `arguments` with the deprecated option names of their subcommand replaced (`--layout X` and `--layout=X`
    /// alike), up to a `--` terminator. Option values are never touched: ArgumentParser reads a token starting with
    /// `--` as an option name wherever it is.
    static func replacingDeprecatedSpellings(_ arguments: [String]) -> [String] {
        guard let subcommand = arguments.first, let renames = deprecatedSpellings[subcommand] else { return arguments }
        var out = [subcommand]
        var terminated = false
        for argument in arguments.dropFirst() {
            if terminated || argument == "--" {
                terminated = true
                out.append(argument)
                continue
            }
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if let new = renames[name] {
                writeStandardError("ditkit: note: \(subcommand) \(name) is deprecated; use \(new)\n")
                out.append(new + argument.dropFirst(name.count))
            } else {
                out.append(argument)
            }
        }
        return out
    }

    /// The exit code of an error whose type does not conform to `DitkitError` (sysexits.h EX_SOFTWARE).
    static let internalErrorCode: Int32 = 70

    /// The kernels of this run's forward passes: `DITKIT_KERNELS=baseline|avx2|avx512` forces a level (refused when
    /// the CPU lacks it); unset, empty or `automatic`, the best this CPU runs. Set once at startup.
    nonisolated(unsafe) static var kernels = KernelChoice.automatic

    /// The choice `DITKIT_KERNELS` asks for (`value` is its value, nil when unset).
    static func kernelChoice(fromEnvironment value: String?) throws -> KernelChoice {
        guard let value, !value.isEmpty, value != "automatic" else { return .automatic }
        let names = KernelLevel.allCases.map(\.description).joined(separator: ", ")
        guard let level = KernelLevel(name: value) else {
            throw CLIError.usage("DITKIT_KERNELS=\(value) is not a kernel level (\(names), or automatic)")
        }
        do {
            return try KernelChoice(level: level)
        } catch {
            throw CLIError.usage("DITKIT_KERNELS=\(value): \(error); unset it or set a level this CPU runs")
        }
    }

    static func main() {
        // Process-wide settings the library leaves to its user: OpenBLAS's workers sleep between products instead of
        // spinning (see OpenBLASThreads.shortenSpinWait), and the kernel level from DITKIT_KERNELS.
        OpenBLASThreads.shortenSpinWait()
        do {
            kernels = try kernelChoice(fromEnvironment: Platform.environment("DITKIT_KERNELS"))
        } catch {
            let (message, code) = report(error)
            fail(message, code: code)
        }
        do {
            var command = try parseAsRoot(replacingDeprecatedSpellings(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch let error where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            // ArgumentParser's own: help and version (0), usage errors (its 64 becomes ditkit's usage code, 2).
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                terminate(0)
            }
            fail(fullMessage(for: error), code: code == .validationFailure ? ErrorKind.usage.exitCode : code.rawValue, prefix: false)
        } catch {
            let (message, code) = report(error)
            fail(message, code: code)
        }
        terminate(0)
    }

    /// The message and exit code for an error of ditkit's own: its kind's code and its description, plus the CLI's
    /// advice where the library's words name no flag; "internal error" and 70 for an error of another type.
    static func report(_ error: Error) -> (message: String, code: Int32) {
        guard let error = error as? any DitkitError else {
            return ("internal error (\(type(of: error))): \(error)", internalErrorCode)
        }
        return (error.description + (Advice.text(for: error).map { " (\($0))" } ?? ""), error.kind.exitCode)
    }

    static func fail(_ message: String, code: Int32, prefix: Bool = true) -> Never {
        writeStandardError((prefix ? "ditkit: error: " : "") + message + "\n")
        terminate(code)
    }

    /// Flushes stdout and exits. With `DITKIT_REPORT_PEAK_RSS` set, first writes this process's peak resident
    /// set (VmHWM from /proc/self/status) to stderr: exact for this process, unlike a parent's rusage, which
    /// counts the pages a forked child inherits before exec.
    static func terminate(_ code: Int32) -> Never {
        if Platform.environment("DITKIT_REPORT_PEAK_RSS") != nil, let peak = peakResidentKiB() {
            writeStandardError("ditkit: peak RSS \(peak) KiB\n")
        }
        Platform.flushAll()
        Platform.exit(code)
    }
}

/// Writes diagnostics and progress to file descriptor 2 (unbuffered), flushing stdout first so the two
/// streams interleave in order.
func writeStandardError(_ text: String) {
    Platform.flushAll()
    var copy = text
    copy.withUTF8 { Platform.writeAll(2, UnsafeRawBufferPointer($0)) }
}

/// VmHWM of this process in KiB, from /proc/self/status (Linux).
func peakResidentKiB() -> Int? {
    for text in Platform.lines(ofFile: "/proc/self/status") ?? [] where text.hasPrefix("VmHWM:") {
        return Int(text.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first ?? "")
    }
    return nil
}

/// A CLI-level failure with its exit code; its message names the file itself.
struct CLIError: DitkitError {
    let message: String
    let code: Int32

    var description: String { message }
    var kind: ErrorKind { ErrorKind.allCases.first { $0.exitCode == code } ?? .input }
    var file: String? { nil }
    var location: String? { nil }

    static func usage(_ message: String) -> CLIError { CLIError(message: message, code: 2) }
    static func io(_ message: String) -> CLIError { CLIError(message: message, code: 4) }
}
