import Checkpoints
import Reference
import Tensors

/// Reading and writing traces: safetensors files of float32 layers named as in DESIGN.md.
public enum TraceFile {
    /// The order layers are compared and reported in.
    public static func order(_ names: [String]) -> [String] {
        func rank(_ name: String) -> (Int, Int) {
            switch name {
            case "input.x": return (0, 0)
            case "input.t": return (0, 1)
            case "input.y": return (0, 2)
            case "t_embed": return (1, 0)
            case "y_embed": return (1, 1)
            case "cond": return (1, 2)
            case "patch_embed": return (2, 0)
            case "final": return (4, 0)
            case "output": return (5, 0)
            default:
                if name.hasPrefix("blocks."), let i = Int(name.dropFirst("blocks.".count)) { return (3, i) }
                return (6, 0)
            }
        }
        return names.sorted { rank($0) < rank($1) }
    }

    public static func write(_ trace: Trace, to path: String, metadata: [(String, String)], overwrite: Bool) throws {
        let outputs = trace.layers.map { layer in
            OutputTensor(name: layer.name, dtype: .f32, shape: layer.shape) { sink in
                try layer.values.withUnsafeBytes { try sink.write($0) }
            }
        }
        try SafetensorsWriter.write(outputs, metadata: [("ditkit.trace", "1")] + metadata, to: path, overwrite: overwrite)
    }

    /// Reads every layer as float32 (any float dtype is widened).
    public static func read(_ path: String) throws -> (trace: Trace, metadata: [(String, String)]) {
        let checkpoint = try Checkpoint.open(path)
        let trace = Trace()
        for name in order(checkpoint.tensors.map(\.name)) {
            let tensor = checkpoint.tensor(named: name)!
            trace.append(name, tensor.shape, try tensor.float32())
        }
        return (trace, checkpoint.metadata)
    }

    /// The inputs a trace holds (`input.x`, `input.t`, `input.y`), for running another model on them.
    public static func inputs(of trace: Trace) -> DiTInputs? {
        guard let x = trace.layer("input.x"), let t = trace.layer("input.t"), let y = trace.layer("input.y") else { return nil }
        return DiTInputs(x: x.values, t: t.values, y: y.values.map { Int($0.rounded()) })
    }
}
