import Checkpoints
import Foundation
import Models
import DitkitTestSupport
import Testing

/// The one validation of `DiTConfig`: each field's range (the same as the schema's), the rules between fields,
/// overflow-checked sizes, and the readers that feed it (canonical metadata, layout detection).
@Suite("config validation")
struct ConfigValidationTests {
    /// A valid canonical config (DiT-S/2's sizes), as JSON, with `key` (dotted for `norm_eps.*`) set to `value`.
    static func json(_ key: String? = nil, _ value: JSONValue? = nil) -> JSONValue {
        var config = Preset.named("DiT-S/2")!.config
        config.sourceLayout = .original
        guard case .object(var pairs) = config.json, let key, let value else { return config.json }
        let parts = key.split(separator: ".").map(String.init)
        // An optional field the config omits at its default (diffusion_steps) is added.
        guard let index = pairs.firstIndex(where: { $0.0 == parts[0] }) else { return .object(pairs + [(key, value)]) }
        if parts.count == 2, case .object(var inner) = pairs[index].1 {
            inner[inner.firstIndex { $0.0 == parts[1] }!].1 = value
            pairs[index].1 = .object(inner)
        } else {
            pairs[index].1 = value
        }
        return .object(pairs)
    }

    static func problem(_ json: JSONValue) -> String? {
        do {
            _ = try DiTConfig(json: json, origin: "test.safetensors: metadata ditkit.config")
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test("every preset is valid, and survives its own JSON")
    func presets() throws {
        for preset in Preset.all {
            #expect(preset.config.problems().isEmpty, "\(preset.name): \(preset.config.problems())")
            #expect(try DiTConfig(json: preset.config.json) == preset.config, "\(preset.name)")
        }
    }

    @Test("each field just outside its range is refused, naming the origin, field, value and range", arguments: DiTConfig.fields.map(\.key))
    func outside(_ key: String) throws {
        let field = try #require(DiTConfig.fields.first { $0.key == key })
        let integer = !key.hasPrefix("norm_eps") && key != "max_period"
        let below = field.exclusiveMinimum ? field.minimum : field.minimum - 1
        let above = integer ? field.maximum + 1 : field.maximum * 2
        for value in [below, above, -Double(1 << 62)] {
            let json: JSONValue = integer ? .int(Int(value)) : .double(value)
            let message = try #require(Self.problem(Self.json(key, json)), "\(key) = \(value) was accepted")
            #expect(message.contains("test.safetensors: metadata ditkit.config"), "\(message)")
            #expect(message.contains("\(key) = "), "\(message)")
            #expect(message.contains(field.allowed), "\(message)")
        }
    }

    @Test("the ranges are the schema's (minimum, maximum, exclusiveMinimum)", arguments: DiTConfig.fields.map(\.key))
    func schema(_ key: String) throws {
        let field = try #require(DiTConfig.fields.first { $0.key == key })
        let text = try #require(FileManager.default.contents(atPath: Fixtures.packageRoot + "/schemas/model-config.schema.json"))
        var node: JSONValue? = try JSONParser.parse([UInt8](text))
        for part in key.split(separator: ".") { node = node?["properties"]?[String(part)] }
        let property = try #require(node, "schema has no \(key)")
        if field.exclusiveMinimum {
            #expect(property["exclusiveMinimum"]?.doubleValue == field.minimum && property["minimum"] == nil)
        } else {
            #expect(property["minimum"]?.doubleValue == field.minimum)
        }
        #expect(property["maximum"]?.doubleValue == field.maximum)
    }

    static let crossRules: [(String, @Sendable (inout DiTConfig) -> Void, String)] = [
        ("heads divide D", { $0.numHeads = 5 }, "num_heads = 5 does not divide hidden_size = 384"),
        ("heads past D", { $0.numHeads = 768 }, "num_heads = 768 does not divide hidden_size = 384"),
        ("D a multiple of 4", { $0.hiddenSize = 390; $0.numHeads = 6 }, "hidden_size = 390 is not a multiple of 4"),
        ("patch divides the input", { $0.patchSize = 3 }, "patch_size = 3 does not divide input_size = 32"),
        ("Cout is C or 2C", { $0.outChannels = 5 }, "out_channels = 5 must be in_channels = 4 or twice it"),
        ("the sinusoid is even", { $0.frequencyEmbeddingSize = 255 }, "frequency_embedding_size = 255 must be even"),
        ("half − shift > 0", { $0.frequencyEmbeddingSize = 2; $0.timestepShift = 1 }, "leaves no frequency"),
        ("a label row", { $0.numClasses = 0; $0.hasNullClass = false }, "label table empty"),
        ("tensor sizes", { $0.hiddenSize = 1 << 20; $0.numHeads = 1 }, "attn.qkv.weight would have shape [3145728, 1048576]"),
        ("tokens", { $0.inputSize = 1 << 20; $0.patchSize = 1 }, "pos_embed would have shape [1, 1099511627776, 384]"),
    ]

    @Test("each rule between fields is checked (no division by zero, no overflow)", arguments: crossRules.indices)
    func cross(_ i: Int) {
        let (_, mutate, expected) = Self.crossRules[i]
        var config = Preset.named("DiT-S/2")!.config
        mutate(&config)
        let problems = config.problems()
        #expect(problems.contains { $0.contains(expected) }, "\(Self.crossRules[i].0): \(problems)")
    }

    @Test("options and config.json keys are named as the user wrote them")
    func names() {
        var config = Preset.named("DiT-S/2")!.config
        config.numHeads = 0
        #expect(config.problems(names: ["num_heads": "--heads"]) == ["--heads (num_heads) = 0 is outside 1…1048576"])
    }

    @Test("canonical metadata: malformed JSON, wrong types, unknown keys and learn_sigma lies name the field")
    func types() {
        #expect(Self.problem(Self.json("hidden_size", .string("8")))?.contains("hidden_size = \"8\" is not an integer") == true)
        #expect(Self.problem(Self.json("gelu", .string("relu")))?.contains("gelu = \"relu\"") == true)
        #expect(Self.problem(Self.json("learn_sigma", .bool(false)))?.contains("learn_sigma = false contradicts") == true)
        #expect(Self.problem(Self.json("max_period", .string("x")))?.contains("max_period = \"x\" is not a number") == true)
        guard case .object(var pairs) = Self.json() else { return }
        pairs.append(("extra", .int(1)))
        #expect(Self.problem(.object(pairs))?.contains("unknown field extra") == true)
        #expect(Self.problem(.array([]))?.contains("expected a JSON object") == true)
    }

    @Test("layout detection over 40,000 names under 10,000 candidate prefixes is near-linear")
    func detectorScales() {
        var names: [String] = []
        for k in 0..<10_000 {
            let prefix = "m\(k)."
            names += ["x_embedder.proj.weight", "t_embedder.mlp.0.weight", "final_layer.linear.weight", "blocks.0.attn.qkv.weight"].map { prefix + $0 }
        }
        let start = Date()
        let matches = LayoutDetector.detect(names)
        let seconds = Date().timeIntervalSince(start)
        #expect(matches.count == 10_000 && matches.allSatisfy { $0.depth == 1 && $0.tensorsUnderPrefix == 4 })
        #expect(matches.first?.prefix == "m0." && matches.last?.prefix == "m9999.")
        #expect(seconds < 5, "took \(seconds) s")
    }
}
