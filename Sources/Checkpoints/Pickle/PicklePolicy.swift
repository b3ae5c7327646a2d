/// What a pickle may call. Nothing of a pickle is ever executed: a call the policy allows builds data (a dict,
/// a tensor, an opaque named object); any other call is refused before anything else happens.
///
/// A callable reached by REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ (or whose instance gets BUILD, which would call its
/// `__setstate__`) may be called only if it is
/// 1. a rebuild function of the host (torch: `torch._utils._rebuild_tensor_v2/_v3`, `_rebuild_parameter`,
///    `_rebuild_parameter_with_state`, `_rebuild_from_type_v2` — whose inner function goes through this same policy
///    —, `torch.Size`, `torch.device`);
/// 2. a generic data builtin: `collections.OrderedDict`, `builtins.dict/set/frozenset/list/tuple/bytes/bytearray`,
///    `_codecs.encode`, and `copyreg._reconstructor(cls, builtins.object, None)` for an allowed `cls`;
/// 3. one of the data classes real checkpoints contain (`dataClasses`, kept as opaque objects): `argparse.Namespace`
///    (training arguments), numpy scalar, dtype and array reconstruction (`numpy.core.multiarray.scalar`,
///    `numpy._core.multiarray.scalar`, `numpy.dtype`, `numpy.core.multiarray._reconstruct`,
///    `numpy._core.multiarray._reconstruct`, `numpy.ndarray`), `collections.defaultdict`, `collections.Counter`,
///    `builtins.complex/slice/range`; and, as instances only (NEWOBJ, `copyreg._reconstructor`, as
///    `torch.save(model)` writes them), the classes of torch's own `torch.nn.modules.<file>` modules;
/// 4. named by the user (`--allow NAME`, `allowed`): kept as an opaque value. Importing a class imports its module,
///    so an allowed class also lets the other classes of the same module be instantiated (the submodules of a
///    pickled model). Never under `strict`, and never for a known code-execution primitive.
///
/// Everything else is refused: as HOSTILE when `isCodeExecution` knows it as a code-execution primitive, otherwise
/// as an unknown callable with the advice to pass `--allow`. `strict` keeps only 1 and 2 (torch's weights-only set).
/// A name that is only referenced (pushed, stored, passed as an argument) and never called stays a named value.
public struct PicklePolicy: Sendable {
    /// Refuse every callable outside torch's weights-only set (no data classes, no `allowed`).
    public var strict: Bool
    /// Callables the user allows (`module.name`), kept as opaque values; never a code-execution primitive.
    public var allowed: Set<String>

    public init(strict: Bool = false, allowed: Set<String> = []) {
        self.strict = strict
        self.allowed = allowed
    }

    /// How a pickle reaches a callable: calling it with arguments, or creating an instance (`cls.__new__(cls)`).
    enum CallKind {
        case call
        case instance
    }

    /// Data classes real checkpoints contain; calling them builds a value and runs no code of the file's choosing.
    static let dataClasses: Set<String> = [
        "argparse.Namespace",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype", "numpy.ndarray",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "collections.defaultdict", "collections.Counter",
        "builtins.complex", "builtins.slice", "builtins.range",
    ]

    /// Whether `global` may become an opaque object when reached as `kind` (rule 3 and 4 above).
    func keepsOpaque(_ global: PickleGlobal, _ kind: CallKind) -> Bool {
        guard !strict else { return false }
        let name = global.description
        if PicklePolicy.dataClasses.contains(name) || allowed.contains(name) { return true }
        guard kind == .instance, !global.name.contains(".") else { return false }
        let parts = global.module.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, parts[0] == "torch", parts[1] == "nn", parts[2] == "modules" { return true }
        return allowed.contains { $0.hasPrefix(global.module + ".") && !$0.dropFirst(global.module.count + 1).contains(".") }
    }

    /// Modules whose every callable can run code, touch files or the network, or load more pickles.
    static let codeExecutionModules: Set<String> = [
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
    static let codeExecutionFunctions: Set<String> = [
        "numpy.load", "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.memmap", "numpy.save",
        "numpy.savez", "numpy.tofile", "torch.load", "torch.save", "torch.from_file",
    ]

    /// The `builtins` that only build data; every other builtin (`eval`, `exec`, `getattr`, `__import__`,
    /// `open`, `compile`, …) counts as code execution.
    static let dataBuiltins: Set<String> = [
        "set", "frozenset", "bytearray", "bytes", "list", "dict", "tuple", "int", "float", "complex", "str", "bool",
        "slice", "range", "object", "NoneType",
    ]

    /// Whether calling `global` could execute code (then the pickle is HOSTILE, whatever the mode). Unpickling
    /// imports `module` and resolves a dotted `name` by getattr (`STACK_GLOBAL('torch', 'os.system')` is
    /// `os.system` when torch imported os), so the whole name and every suffix that starts inside `name` are
    /// candidates; a dunder anywhere (`__globals__`, `__import__`, `__reduce__`) is never data, except the module
    /// `__main__` itself (classes of a training script, `__main__.Args`: unknown, so `--allow` can keep them).
    /// Components of the longest module path in `codeExecutionModules` and `codeExecutionFunctions`.
    static let maxListedComponents = (codeExecutionModules.union(codeExecutionFunctions))
        .map { $0.split(separator: ".").count }.max() ?? 1

    public static func isCodeExecution(_ global: PickleGlobal) -> Bool {
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
                if codeExecutionFunctions.contains(joined + "." + name) { return true }
            }
            for end in stride(from: module.startIndex + min(module.count, maxListedComponents), to: module.startIndex, by: -1)
            where codeExecutionModules.contains(module[module.startIndex..<end].joined(separator: ".")) {
                return true
            }
        }
        return false
    }
}
