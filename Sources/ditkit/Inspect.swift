import ArgumentParser
import Checkpoints
import Models
import Tensors

/// `ditkit inspect PATH`: format, layout, tensors, totals and non-tensor values, without reading tensor data.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a checkpoint holds: format, layout, every tensor, totals and non-tensor values.",
        discussion: """
            PATH is a .pt/.pth/.bin file (zip or legacy torch.save), a .safetensors file or index, a Cerebras .mdl \
            (HDF5, formats 0.5 and 0.4), a diffusers component folder (config.json + weights) or pipeline folder \
            (model_index.json). The format is taken from the bytes, not the extension. No tensor data is read \
            (unless --check-data) and no pickle code is executed.
            """)

    @Argument(help: "Checkpoint file or diffusers folder.")
    var path: String

    @OptionGroup var output: JSONOptionGroup

    @Flag(name: .long, help: "Only the summary and group subtotals, not every tensor.")
    var summary = false

    @Flag(name: .long, help: ArgumentHelp(
        "Also read every tensor's bytes, as a conversion would (inflating, decompressing and checking each entry or "
            + "chunk), writing nothing: a file whose data is damaged fails here (exit 3)."))
    var checkData = false

    @OptionGroup var open: OpenOptionGroup

    func run() throws {
        let checkpoint = try Checkpoint.open(path, options: open.openOptions)
        let report = InspectReport(checkpoint)
        let check = checkData ? try Inspect.readAll(checkpoint) : nil
        if output.json {
            var json = report.json
            if case .object(var fields) = json {
                if let bundle = try? ModelBundle.open(checkpoint, readModels: false), BundleText.isWhole(bundle) {
                    fields.append(("bundle", bundle.json))
                }
                if let check {
                    fields.append(("data_check", .object([
                        ("tensors", .int(check.tensors)), ("bytes", .int(check.bytes)), ("seconds", .double(check.seconds)),
                    ])))
                }
                json = .object(fields)
            }
            print(json.serialized(pretty: true))
        } else {
            print(render(report))
            if let check {
                print("\ndata: \(NumberFormat.grouped(check.tensors)) tensors read, \(NumberFormat.binaryBytes(check.bytes)) "
                    + "(\(NumberFormat.grouped(check.bytes)) bytes) in \(NumberFormat.fixed(check.seconds, fractionDigits: 2)) s: every tensor's data is readable")
            }
        }
        // Done: exit here, leaving the checkpoint's tables (thousands of names, attributes and sources for a large
        // .mdl) to the system instead of freeing them one by one — a tenth of an inspect's time.
        Ditkit.terminate(0)
    }

    /// Streams every tensor's bytes through its reader into nothing (a storage viewed by several tensors is read
    /// once per tensor, as a conversion reads it); throws the first read error, naming the file and tensor.
    static func readAll(_ checkpoint: Checkpoint) throws -> (tensors: Int, bytes: Int, seconds: Double) {
        let clock = ContinuousClock()
        let start = clock.now
        var bytes = 0
        for tensor in checkpoint.tensors {
            do {
                try tensor.stream { bytes += $0.count }
            } catch let error as CheckpointError {
                throw error
            } catch {
                throw CheckpointError.malformed(path: checkpoint.path, location: "tensor \(tensor.name)", reason: "\(error)")
            }
        }
        let elapsed = clock.now - start
        return (checkpoint.tensors.count, bytes, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    func render(_ report: InspectReport) -> String {
        let c = report.checkpoint
        var out: [String] = []
        let storages = c.storageSummary
        var header: [[String]] = [
            ["file", c.path],
            ["format", "\(c.format.rawValue) — \(c.format.summary)" + (c.variant.map { ", variant \($0)" } ?? "")],
        ]
        if report.layouts.isEmpty {
            header.append(["layout", "unknown (no DiT key pattern found)"])
        } else {
            for (i, m) in report.layouts.enumerated() {
                let place = m.prefix.isEmpty ? "at the top level" : "under \"\(m.prefix)\""
                header.append([
                    i == 0 ? "layout" : "",
                    "\(m.summary) \(place): \(m.depth) blocks, \(m.matchedTensors) of \(m.tensorsUnderPrefix) tensors",
                ])
            }
        }
        if c.files.count > 1 { header.append(["files", c.files.joined(separator: ", ")]) }
        header.append([
            "tensors",
            "\(NumberFormat.grouped(c.tensors.count)) tensors, \(NumberFormat.grouped(c.elementCount)) elements, "
                + "\(NumberFormat.binaryBytes(c.tensorBytes)) (\(NumberFormat.grouped(c.tensorBytes)) bytes)",
        ])
        if storages.count != c.tensors.count || storages.bytes != c.tensorBytes {
            header.append(["storage", "\(NumberFormat.grouped(storages.count)) storages, \(NumberFormat.grouped(storages.bytes)) bytes (shared or larger than their views)"])
        }
        let dtypes = Dictionary(grouping: c.tensors, by: \.dtype).map { ($0.key, $0.value.count) }.sorted { ($0.1, $1.0.rawValue) > ($1.1, $0.0.rawValue) }
        if !dtypes.isEmpty { header.append(["dtypes", dtypes.map { "\($0.0.rawValue) ×\($0.1)" }.joined(separator: ", ")]) }
        out.append(TextTable.render(header))

        if !report.groups.isEmpty {
            out.append("")
            out.append(
                TextTable.render(
                    report.groups.map { [$0.name, NumberFormat.grouped($0.tensors), NumberFormat.grouped($0.elements), NumberFormat.binaryBytes($0.bytes)] },
                    header: ["group", "tensors", "elements", "bytes"], rightAligned: [1, 2, 3]))
        }
        var bundleShown = false
        if let bundle = try? ModelBundle.open(c, readModels: false), BundleText.isWhole(bundle) || !bundle.optimizers.isEmpty {
            out.append("")
            out.append(BundleText.render(bundle))
            bundleShown = true
        }
        if !summary && !c.tensors.isEmpty {
            out.append("")
            out.append(
                TextTable.render(
                    c.tensors.map { t in
                        var extra = ""
                        if !t.geometry.isContiguous { extra = "strides \(TextTable.shape(t.geometry.strides))" }
                        if t.geometry.offset != 0 { extra += (extra.isEmpty ? "" : ", ") + "offset \(t.geometry.offset)" }
                        return [t.name, t.dtype.rawValue, TextTable.shape(t.shape), NumberFormat.grouped(t.byteCount), extra]
                    },
                    header: ["tensor", "dtype", "shape", "bytes", ""], rightAligned: [3]))
        }
        if !c.values.isEmpty && summary && bundleShown {
            // The bundle above already shows the training state, optimizer and scheduler values.
            out.append("")
            out.append("values   \(NumberFormat.grouped(c.values.count)) (not tensors), summarised above; all of them without --summary")
        } else if !c.values.isEmpty {
            out.append("")
            out.append("values (not tensors):")
            out.append(TextTable.render(Inspect.compactValues(c.values).map { ["  " + $0.0, $0.1] }))
        }
        if !c.metadata.isEmpty {
            out.append("")
            out.append("metadata:")
            out.append(TextTable.render(c.metadata.map { ["  " + $0.0, $0.1.count > 120 ? String($0.1.prefix(117)) + "…" : $0.1] }))
        }
        if !c.configs.isEmpty {
            out.append("")
            out.append("configs: " + c.configs.map { "\($0.0)" + ($0.1["_class_name"]?.stringValue.map { " (\($0))" } ?? "") }.joined(separator: ", "))
        }
        if !c.notes.isEmpty {
            out.append("")
            out.append(contentsOf: c.notes.map { "note: \($0)" })
        }
        return out.joined(separator: "\n")
    }

    /// Values as (path, text) rows, with runs of list items (`params.0`, `params.1`, …) shown as one list.
    static func compactValues(_ values: [CheckpointValue]) -> [(String, String)] { Inspectable.compactValues(values) }
}
