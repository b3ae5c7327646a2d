/// Which pickle callables are data constructors, which are code execution, and which torch names are known.
public enum Allowlist {
    /// Modules whose every callable can run code, touch files or the network, or load more pickles.
    /// A REDUCE/NEWOBJ of any of these (or of a submodule) is refused as hostile in every mode.
    static let codeExecutionModules: Set<String> = [
        "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "pty", "importlib", "runpy", "pickle", "_pickle",
        "cPickle", "marshal", "ctypes", "code", "codeop", "commands", "webbrowser", "multiprocessing", "asyncio",
        "types", "operator", "functools", "io", "_io", "pathlib", "tempfile", "urllib", "urllib2", "http", "ftplib",
        "smtplib", "telnetlib", "requests", "ssl", "platform", "signal", "threading", "_thread", "timeit", "pdb", "bdb",
        "trace", "profile", "cProfile", "inspect", "gc", "weakref", "site", "sysconfig", "distutils", "setuptools",
        "pip", "zipimport", "glob", "fileinput", "linecache", "tokenize", "ast", "dill", "cloudpickle", "yaml",
        "posixpath", "ntpath", "genericpath", "builtins.object", "imp", "pkgutil", "sqlite3", "shelve", "dbm",
        "torch.hub", "torch.jit", "torch.ops", "torch.classes", "torch._C", "torch.utils.cpp_extension",
        "torch.serialization", "torch._dynamo", "torch.package", "numpy.testing", "numpy.f2py", "numpy.distutils",
        "_posixsubprocess", "select", "selectors", "mmap", "fcntl", "resource", "_winapi", "winreg", "msvcrt",
    ]

    /// The `builtins` that only build data; every other builtin (`eval`, `exec`, `getattr`, `__import__`,
    /// `open`, `compile`, …) counts as code execution.
    static let dataBuiltins: Set<String> = [
        "set", "frozenset", "bytearray", "bytes", "list", "dict", "tuple", "int", "float", "complex", "str", "bool",
        "slice", "range", "object", "NoneType",
    ]

    /// Whether calling `global` could execute code (then the pickle is hostile, whatever the mode).
    public static func isCodeExecution(_ global: PickleGlobal) -> Bool {
        if global.module == "builtins" { return !dataBuiltins.contains(global.name) }
        var module = global.module
        while true {
            if codeExecutionModules.contains(module) { return true }
            guard let dot = module.lastIndex(of: ".") else { break }
            module = String(module[..<dot])
        }
        // Dunder names (`__import__`, `__reduce__`, `__getattribute__`, …) are never data constructors.
        return global.name.hasPrefix("__") && global.name.hasSuffix("__")
    }
}
