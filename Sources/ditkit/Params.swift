import ArgumentParser
import Checkpoints
import Models

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

    @Flag(name: .long, help: "Print JSON (schemas/params.schema.json).")
    var json = false

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
        if json {
            print(report.json.serialized(pretty: true))
            return
        }
        var sections: [String] = []
        if !presets.isEmpty {
            let rows = presets.map { p -> [String] in
                let count = ParameterCount(config: p.config, layout: p.layout)
                let diffusers = p.layout == .original ? Format.grouped(ParameterCount(config: p.config, layout: .diffusers).total) : "—"
                return [p.name, p.layout.rawValue, "\(p.config.inputSize * 8)", Format.grouped(count.total), Format.grouped(count.trainable),
                        Format.grouped(count.frozen), String(format2: count.gflops), diffusers]
            }
            sections.append(Format.table(
                rows, header: ["preset", "layout", "px", "total", "trainable", "frozen", "Gflops", "diffusers total"],
                rightAligned: [2, 3, 4, 5, 6, 7]))
        }
        for entry in report.checkpointEntries {
            var text = "\(entry.view.checkpoint.path): \(entry.view.layoutSummary)"
                + (entry.view.prefix.isEmpty ? "" : " under \"\(entry.view.prefix)\"") + "\n"
            text += Format.table(
                entry.groups.map { [$0.name, Format.grouped($0.parameters)] } + [
                    ["total", Format.grouped(entry.total)], ["trainable", Format.grouped(entry.trainable)],
                    ["frozen", Format.grouped(entry.total - entry.trainable)],
                    ["stored in the file", Format.grouped(entry.stored)], ["Gflops", String(format2: entry.gflops)],
                ], header: ["group", "parameters"], rightAligned: [1])
            sections.append(text)
        }
        print(sections.joined(separator: "\n\n"))
    }
}

extension String {
    /// Two decimals (four significant digits below 0.1, for tiny models).
    init(format2 value: Double) { self = formatGflops(value) }
}

func formatGflops(_ value: Double) -> String {
    if value > 0 && value < 0.1 {
        var digits = 2
        var scaled = value * 100
        while scaled < 100 && digits < 12 {
            scaled *= 10
            digits += 1
        }
        let text = String(Int(scaled.rounded()))
        return "0." + String(repeating: "0", count: max(0, digits - text.count)) + text
    }
    let hundredths = Int((value * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
}
