import ArgumentParser
import Checkpoints
import Models
import Tensors
import Verification

/// `ditkit diff A B`: are these the same weights? Every canonical tensor compared, no forward pass.
struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare the weights of two checkpoints tensor by tensor (any layouts of one family; no forward pass).",
        discussion: """
            Both sides are mapped to canonical names. Each tensor is bit-identical, equal after dtype widening (bf16 \
            values stored as f32), a frozen table one side stores and the other's layout recomputes (equal within \
            1e-6), different (max |Δ|, relative L2 ‖a−b‖/‖a‖), of another shape, or only on one side. Streams in \
            chunks: memory stays small whatever the checkpoints' size. Exit 0 when the weights are the same, 1 when not. \
            --a-key/--b-key read one side's sub-dict of a training checkpoint (does this file hold the EMA weights?).
            """)

    @Argument(help: "Checkpoint A.")
    var a: String

    @Argument(help: "Checkpoint B.")
    var b: String

    @Option(name: .customLong("a-key"), help: ArgumentHelp("Sub-dict of A to read (ema or model), instead of --key.", valueName: "key"))
    var aKey: String?

    @Option(name: .customLong("b-key"), help: ArgumentHelp("Sub-dict of B to read (ema or model), instead of --key.", valueName: "key"))
    var bKey: String?

    @Flag(name: .long, help: "List every tensor, bit-identical ones included (by default only those that are not).")
    var all = false

    @OptionGroup var output: JSONOptionGroup
    @OptionGroup var open: OpenOptionGroup
    @OptionGroup var model: ModelOptionGroup

    func run() throws {
        let viewA = try openSide(a, key: aKey)
        let viewB = try openSide(b, key: bKey)
        let report = try WeightDiff.compare(viewA, viewB, names: (a, b))
        print(output.json ? report.json.serialized(pretty: true) : report.text(all: all))
        try report.requireSame()
    }

    func openSide(_ path: String, key: String?) throws -> any AnyModelView {
        var options = model.modelOptions
        if let key { options.key = key }
        return try ModelFamilies.open(try Checkpoint.open(path, options: open.openOptions), options: options)
    }
}

/// Writes a model's choices made without being asked (a variant read because it was the only one present) to stderr,
/// for commands whose report does not list the model's notes (trace, verify).
func writeAssumptions(of view: any AnyModelView) {
    for note in view.checkpoint.assumed { writeStandardError("ditkit: note: \(view.checkpoint.path): \(note)\n") }
}
