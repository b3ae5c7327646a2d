import ArgumentParser
import Checkpoints
import Models
import Tensors

/// `ditkit params [PRESET…|PATH…]`: parameter counts and Gflops.
struct Params: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parameter counts (total, trainable, frozen) and Gflops of presets or real checkpoints.",
        discussion: """
            With no argument: every DiT preset (256 and 512 px) with its diffusers-layout total, and the Cerebras \
            configs. With paths: a per-group breakdown (embedders, each block, final layer) of each checkpoint. \
            Gflops are multiply-adds of one forward pass, as the DiT paper counts them.
            """)

    @Argument(help: "Preset names and/or checkpoint paths.")
    var items: [String] = []

    @OptionGroup var output: JSONOptionGroup

    @OptionGroup var open: OpenOptionGroup
    @OptionGroup var model: ModelOptionGroup

    func run() throws {
        try model.requireCount("params")
        var presets: [any AnyPreset] = []
        var views: [any AnyModelView] = []
        if items.isEmpty { presets = ModelFamilies.presets }
        for item in items {
            if let preset = ModelFamilies.preset(named: item), !FileSystem.exists(item) {
                presets.append(preset)
            } else if !FileSystem.exists(item), !FileSystem.fileName(item).contains(".") {
                // Neither a file nor a preset, and not named like a file: most likely a mistyped preset.
                throw ModelError.unknownPreset(item, nearest: ModelFamilies.nearestPresets(to: item))
            } else {
                views += try openModels(item)
            }
        }
        if output.json {
            let json = JSONValue.object([
                ("presets", .array(presets.map(\.json))), ("checkpoints", .array(views.map { $0.parameterEntry().json })),
            ])
            print(json.serialized(pretty: true))
            return
        }
        var sections: [String] = []
        if !presets.isEmpty {
            let rows = presets.map { p -> [String] in
                let count = p.count
                return [p.name, p.layout.rawValue, p.imageSize.map { "\($0)" } ?? "—", NumberFormat.grouped(count.total),
                        NumberFormat.grouped(count.trainable), NumberFormat.grouped(count.frozen), decimalText(count.gflops),
                        p.comparison.map { NumberFormat.grouped($0.count.total) } ?? "—"]
            }
            let other = Set(presets.compactMap { $0.comparison?.layout.rawValue }).sorted().joined(separator: "/")
            sections.append(TextTable.render(
                rows, header: ["preset", "layout", "px", "total", "trainable", "frozen", "Gflops", other.isEmpty ? "other layout" : "\(other) total"],
                rightAligned: [2, 3, 4, 5, 6, 7]))
        }
        for view in views {
            let entry = view.parameterEntry()
            var text = "\(view.checkpoint.path): \(view.layoutSummary)" + (view.prefix.isEmpty ? "" : " under \"\(view.prefix)\"") + "\n"
            text += TextTable.render(
                entry.groups.map { [$0.name, NumberFormat.grouped($0.parameters)] } + [
                    ["total", NumberFormat.grouped(entry.total)], ["trainable", NumberFormat.grouped(entry.trainable)],
                    ["frozen", NumberFormat.grouped(entry.total - entry.trainable)],
                    ["stored in the file", NumberFormat.grouped(entry.stored)], ["Gflops", decimalText(entry.gflops)],
                ], header: ["group", "parameters"], rightAligned: [1])
            for note in view.notes { text += "\nnote: " + note }
            sections.append(text)
        }
        print(sections.joined(separator: "\n\n"))
    }

    /// The model at `path`, or every model of a whole file (a training checkpoint's raw and EMA weights, a solver
    /// checkpoint's transformer, embeddings and VQ-VAE, a pipeline's components), each counted on its own.
    func openModels(_ path: String) throws -> [any AnyModelView] {
        if ModelBundle.isCanonicalFolder(path) {
            return try ModelBundle.openCanonicalFolder(path, options: open.openOptions).listed.compactMap(\.view)
        }
        let checkpoint = try Checkpoint.open(path, options: open.openOptions)
        if checkpoint.metadata.contains(where: { $0.0 == "ditkit.config" }) { return [try openModel(path, open, model)] }
        let bundle = try ModelBundle.open(checkpoint, options: model.modelOptions)
        guard bundle.components.count > 1 else { return [try ModelFamilies.open(checkpoint, options: model.modelOptions)] }
        return try bundle.listed.map { component in
            guard let view = component.view else { throw component.problem ?? ModelError.config("\(component.name) could not be read") }
            return view
        }
    }
}
