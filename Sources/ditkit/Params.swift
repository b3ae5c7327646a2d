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
        var presets: [Preset] = []
        var views: [ModelView<DiTFamily>] = []
        if items.isEmpty { presets = Preset.all }
        for item in items {
            if let preset = Preset.named(item), !FileSystem.exists(item) {
                presets.append(preset)
            } else {
                views.append(try modelView(try Checkpoint.open(item, options: open.openOptions), model.modelOptions))
            }
        }
        let report = ParamsReport(presets: presets, checkpoints: views)
        if output.json {
            print(report.json.serialized(pretty: true))
            return
        }
        var sections: [String] = []
        if !presets.isEmpty {
            let rows = presets.map { p -> [String] in
                let count = ParameterCount(config: p.config, layout: p.layout)
                let diffusers = p.layout == .original ? NumberFormat.grouped(ParameterCount(config: p.config, layout: .diffusers).total) : "—"
                return [p.name, p.layout.rawValue, "\(p.config.inputSize * 8)", NumberFormat.grouped(count.total), NumberFormat.grouped(count.trainable),
                        NumberFormat.grouped(count.frozen), decimalText(count.gflops), diffusers]
            }
            sections.append(TextTable.render(
                rows, header: ["preset", "layout", "px", "total", "trainable", "frozen", "Gflops", "diffusers total"],
                rightAligned: [2, 3, 4, 5, 6, 7]))
        }
        for entry in report.checkpointEntries {
            var text = "\(entry.view.checkpoint.path): \(entry.view.layoutSummary)"
                + (entry.view.prefix.isEmpty ? "" : " under \"\(entry.view.prefix)\"") + "\n"
            text += TextTable.render(
                entry.groups.map { [$0.name, NumberFormat.grouped($0.parameters)] } + [
                    ["total", NumberFormat.grouped(entry.total)], ["trainable", NumberFormat.grouped(entry.trainable)],
                    ["frozen", NumberFormat.grouped(entry.total - entry.trainable)],
                    ["stored in the file", NumberFormat.grouped(entry.stored)], ["Gflops", decimalText(entry.gflops)],
                ], header: ["group", "parameters"], rightAligned: [1])
            sections.append(text)
        }
        print(sections.joined(separator: "\n\n"))
    }
}
