import Checkpoints
import Models
import Reference
import Tensors

/// Reading and writing traces: safetensors files of float32 layers (input.x, input.t, input.y, t_embed, y_embed,
/// cond, patch_embed, blocks.{i}, final, output), the format scripts/torch-trace.py describes and writes.
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

    /// The inputs a trace holds (`input.x`, `input.t`, `input.y`), for running another model on them; nil when one
    /// is missing or a class id is not an integer.
    public static func inputs(of trace: Trace) -> DiTInputs? {
        guard let x = trace.layer("input.x"), let t = trace.layer("input.t"), let y = trace.layer("input.y") else { return nil }
        var ids: [Int] = []
        for v in y.values {
            guard v.rounded() == v, abs(v) < 0x1p31 else { return nil }
            ids.append(Int(v))
        }
        return DiTInputs(x: x.values, t: t.values, y: ids)
    }

    /// The shape each layer of the trace format has for `config` and a batch of `n` (`blocks.{i}` for i < depth).
    public static func expectedShape(_ name: String, config c: DiTConfig, batch n: Int) -> [Int]? {
        let (d, t, s) = (c.hiddenSize, c.tokens, c.inputSize)
        switch name {
        case "input.x": return [n, c.inChannels, s, s]
        case "input.t", "input.y": return [n]
        case "t_embed", "y_embed", "cond": return [n, d]
        case "patch_embed": return [n, t, d]
        case "final": return [n, t, c.patchSize * c.patchSize * c.outChannels]
        case "output": return [n, c.outChannels, s, s]
        default:
            guard name.hasPrefix("blocks."), let i = Int(name.dropFirst("blocks.".count)), i >= 0, i < c.depth,
                  name == "blocks.\(i)" else { return nil }
            return [n, t, d]
        }
    }

    /// Reads a trace to verify a model of `config` against, checking it before use: the batch N is `input.t`'s
    /// length; every tensor must be a known layer with a float dtype and the shape that layer has for `config`
    /// and N; a `ditkit.config` in the metadata must be valid; the inputs must be in range
    /// (`DiTInputs.problems(for:)`). Values are read only after the shapes are checked. Throws `ModelError.trace`
    /// naming the file and each problem.
    public static func load(_ path: String, for config: DiTConfig) throws -> (trace: Trace, metadata: [(String, String)], inputs: DiTInputs) {
        let checkpoint = try Checkpoint.open(path)
        func fail(_ problems: [String]) -> ModelError { ModelError.trace(path: path, problems: problems) }
        if let text = checkpoint.metadata.first(where: { $0.0 == "ditkit.config" })?.1 {
            let json: JSONValue
            do { json = try JSONParser.parse(text) } catch {
                throw ModelError.invalidConfig(origin: "\(path): metadata ditkit.config", problems: ["not valid JSON (\(error))"])
            }
            _ = try DiTConfig(json: json, origin: "\(path): metadata ditkit.config")
        }
        guard let t = checkpoint.tensor(named: "input.t"), checkpoint.tensor(named: "input.x") != nil, checkpoint.tensor(named: "input.y") != nil else {
            throw fail(["it has no input.x, input.t and input.y to run on"])
        }
        guard t.shape.count == 1, t.shape[0] >= 1 else { throw fail(["input.t has shape \(t.shape), expected (N) with N ≥ 1"]) }
        let n = t.shape[0]
        var problems: [String] = []
        for tensor in checkpoint.tensors {
            guard let expected = expectedShape(tensor.name, config: config, batch: n) else {
                problems.append("\(tensor.name) is not a layer of the trace format for this model (depth \(config.depth))")
                continue
            }
            if !tensor.dtype.isFloatingPoint { problems.append("\(tensor.name) has dtype \(tensor.dtype.rawValue), expected a float dtype") }
            if tensor.shape != expected {
                problems.append("\(tensor.name) has shape \(tensor.shape), expected \(expected) for batch \(n) of this model ("
                    + "D=\(config.hiddenSize), \(config.tokens) tokens, \(config.inChannels)→\(config.outChannels) channels, input \(config.inputSize))")
            }
            if problems.count > 12 { break }
        }
        guard problems.isEmpty else { throw fail(problems) }
        let trace = Trace()
        for name in order(checkpoint.tensors.map(\.name)) {
            trace.append(name, checkpoint.tensor(named: name)!.shape, try checkpoint.tensor(named: name)!.float32())
        }
        guard let inputs = inputs(of: trace) else {
            let bad = trace.layer("input.y")?.values.enumerated().first { $0.element.rounded() != $0.element || abs($0.element) >= 0x1p31 }
            throw fail(["input.y[\(bad?.offset ?? 0)] = \(bad?.element ?? .nan) is not an integer class id"])
        }
        let inputProblems = inputs.problems(for: config)
        guard inputProblems.isEmpty else { throw fail(inputProblems) }
        return (trace, checkpoint.metadata, inputs)
    }
}
