import Checkpoints
import Models
import Tensors

/// The text of a whole file's components, extras and training state, for `inspect`, `convert` and `params`.
enum BundleText {
    /// Whether a bundle is more than one model: several components, extras beside a model, or optimizer state.
    static func isWhole(_ bundle: ModelBundle) -> Bool {
        !bundle.components.isEmpty && (bundle.components.count > 1 || !bundle.extras.isEmpty)
    }

    /// The components, extras by kind, optimizers and training values, every line indented.
    static func render(_ bundle: ModelBundle) -> String {
        var out: [String] = ["components (\(bundle.components.count) models in the file):"]
        var rows: [[String]] = []
        for c in bundle.listed {
            let place = c.match.prefix.isEmpty ? "at the top level" : "under \"\(c.match.prefix)\""
            let weights = c.weights == .only ? "" : c.weights == .ema ? ", EMA weights" : ", raw weights"
            let read = c.problem.map { problem -> String in
                if case .sizeNeeded(_, let field, _)? = problem as? ModelError { return " (its config needs \(field), which the weights cannot give)" }
                return " — not read: " + String(describing: problem).split(separator: "\n").prefix(2).joined(separator: " ")
            } ?? ""
            rows.append([
                "  " + c.name, "\(c.match.summary) \(place): \(NumberFormat.grouped(c.tensorNames.count)) tensors\(weights)"
                    + (c.selected && c.weights != .only ? " (read by default)" : "") + read,
            ])
        }
        out.append(TextTable.render(rows))
        if !bundle.extras.isEmpty {
            var order: [String] = []
            var byKind: [String: (tensors: Int, bytes: Int, names: [String])] = [:]
            for extra in bundle.extras {
                let key = extra.role.description
                if byKind[key] == nil { order.append(key); byKind[key] = (0, 0, []) }
                byKind[key]!.tensors += 1
                byKind[key]!.bytes = Checked.saturatingAdd(byKind[key]!.bytes, extra.tensor.byteCount)
                if byKind[key]!.names.count < 3 { byKind[key]!.names.append(extra.tensor.name) }
            }
            out.append("extras (\(bundle.extras.count) tensors no model claims):")
            out.append(TextTable.render(order.map { key in
                let e = byKind[key]!
                return ["  " + key, NumberFormat.grouped(e.tensors), NumberFormat.binaryBytes(e.bytes),
                        e.names.joined(separator: ", ") + (e.tensors > e.names.count ? ", …" : "")]
            }, rightAligned: [1, 2]))
        }
        for o in bundle.optimizers {
            out.append("optimizer under \"\(o.path)\": \(o.kind), state of \(o.parameters) parameters in \(o.stateTensors) tensors "
                + "(\(NumberFormat.binaryBytes(o.stateBytes))), \(o.groups.count) parameter \(o.groups.count == 1 ? "group" : "groups")")
            for (i, group) in o.groups.enumerated() {
                out.append("  group \(i): " + group.map { "\($0.0)=\($0.1)" }.joined(separator: ", "))
            }
        }
        for scheduler in bundle.schedulers {
            out.append("scheduler under \"\(scheduler.path)\": \(scheduler.kind)")
            out.append("  " + scheduler.values.map { "\($0.0)=\($0.1)" }.joined(separator: ", "))
        }
        if !bundle.trainingValues.isEmpty {
            out.append("training state:")
            out.append(TextTable.render(bundle.trainingValues.map { ["  " + $0.0, $0.1] }))
        }
        for note in bundle.notes { out.append("note: " + note) }
        return out.joined(separator: "\n")
    }
}
