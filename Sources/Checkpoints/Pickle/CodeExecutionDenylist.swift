/// The denylist: callables a pickle may name that would execute code, touch files or the network, or load more
/// pickles if called. Calling one makes the pickle HOSTILE, whatever `PicklePolicy` (the allowlist) allows; the
/// list only decides how a refusal is reported, since the policy refuses every callable it does not allow anyway.
package enum CodeExecutionDenylist {
    /// Modules whose every callable can run code, touch files or the network, or load more pickles.
    static let modules: Set<String> = [
        "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "pty", "importlib", "runpy", "pickle", "_pickle",
        "cPickle", "marshal", "ctypes", "_ctypes", "code", "codeop", "commands", "webbrowser", "multiprocessing",
        "asyncio", "types", "operator", "functools", "io", "_io", "pathlib", "tempfile", "urllib", "urllib2", "http",
        "ftplib", "smtplib", "telnetlib", "imaplib", "poplib", "nntplib", "requests", "ssl", "platform", "signal",
        "threading", "_thread", "timeit", "pdb", "bdb", "trace", "profile", "cProfile", "inspect", "gc", "weakref",
        "site", "sysconfig", "distutils", "setuptools", "pip", "ensurepip", "venv", "zipimport", "glob", "fileinput",
        "linecache", "tokenize", "ast", "dill", "cloudpickle", "yaml", "posixpath", "ntpath", "genericpath",
        "builtins.object", "imp", "pkgutil", "sqlite3", "_sqlite3", "shelve", "dbm", "pydoc", "doctest", "idlelib",
        "uuid", "mailcap", "cgi", "cgitb", "xmlrpc", "logging.config", "zipfile", "tarfile", "__builtins__",
        "torch.hub", "torch.jit", "torch.ops", "torch.classes", "torch._C", "torch.utils.cpp_extension",
        "torch.utils.collect_env", "torch.serialization", "torch._dynamo", "torch._inductor", "torch.package",
        "torch.fx", "torch.distributed", "torch.utils.data",
        "numpy.testing", "numpy.f2py", "numpy.distutils", "numpy.ctypeslib", "numpy.lib.npyio", "numpy.lib.format",
        "_posixsubprocess", "select", "selectors", "mmap", "fcntl", "resource", "_winapi", "winreg", "msvcrt",
    ]

    /// Single functions of otherwise data-only modules that read files, load pickles or run code.
    static let functions: Set<String> = [
        "numpy.load", "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.memmap", "numpy.save",
        "numpy.savez", "numpy.tofile", "torch.load", "torch.save", "torch.from_file",
    ]

    /// The `builtins` that only build data (the one allowlist inside the denylist); every other builtin (`eval`, `exec`, `getattr`, `__import__`,
    /// `open`, `compile`, …) counts as code execution.
    static let dataBuiltins: Set<String> = [
        "set", "frozenset", "bytearray", "bytes", "list", "dict", "tuple", "int", "float", "complex", "str", "bool",
        "slice", "range", "object", "NoneType",
    ]

    /// Components of the longest module path in `modules` and `functions`.
    static let maxListedComponents = (modules.union(functions))
        .map { $0.split(separator: ".").count }.max() ?? 1

    /// Whether calling `global` could execute code (then the pickle is HOSTILE, whatever the mode). Unpickling
    /// imports `module` and resolves a dotted `name` by getattr (`STACK_GLOBAL('torch', 'os.system')` is
    /// `os.system` when torch imported os), so the whole name and every suffix that starts inside `name` are
    /// candidates; a dunder anywhere (`__globals__`, `__import__`, `__reduce__`) is never data, except the module
    /// `__main__` itself (classes of a training script, `__main__.Args`: unknown, so the caller can allow them by
    /// name).
    package static func contains(_ global: PickleGlobal) -> Bool {
        let moduleParts = global.module.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let all = moduleParts + global.name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let scriptModule = moduleParts == ["__main__"] || moduleParts == ["__mp_main__"]
        if all.dropFirst(scriptModule ? 1 : 0).contains(where: { $0.count > 4 && $0.hasPrefix("__") && $0.hasSuffix("__") }) {
            return true
        }
        let name = all[all.count - 1]
        // Only module paths as long as the longest listed one can match: the loops stay linear in the name's length
        // (a hostile name of thousands of components would otherwise cost a join per pair of components).
        for start in [0] + Array(moduleParts.count..<(all.count - 1)) {
            let module = all[start..<(all.count - 1)]
            guard !module.isEmpty else { continue }
            if module.count <= maxListedComponents {
                let joined = module.joined(separator: ".")
                if joined == "builtins" || joined == "__builtin__" {
                    if !dataBuiltins.contains(name) { return true }
                    continue
                }
                if functions.contains(joined + "." + name) { return true }
            }
            for end in stride(from: module.startIndex + min(module.count, maxListedComponents), to: module.startIndex, by: -1)
            where modules.contains(module[module.startIndex..<end].joined(separator: ".")) {
                return true
            }
        }
        return false
    }
}
