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
/// 4. named by the caller (`allowed`, from `OpenOptions.allow`): kept as an opaque value. Importing a class imports its module,
///    so an allowed class also lets the other classes of the same module be instantiated (the submodules of a
///    pickled model). Never under `strict`, and never for a known code-execution primitive.
///
/// Everything else is refused: as HOSTILE when `CodeExecutionDenylist` knows it as a code-execution primitive
/// (whatever this policy allows), otherwise as an unknown callable the caller may allow by name. `strict` keeps
/// only 1 and 2 (torch's weights-only set). This type is the allowlist; the denylist is `CodeExecutionDenylist`.
/// A name that is only referenced (pushed, stored, passed as an argument) and never called stays a named value.
package struct PicklePolicy: Sendable {
    /// Refuse every callable outside torch's weights-only set (no data classes, no `allowed`).
    package var strict: Bool
    /// Callables the user allows (`module.name`), kept as opaque values; never a code-execution primitive.
    package var allowed: Set<String>

    package init(strict: Bool = false, allowed: Set<String> = []) {
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
}
