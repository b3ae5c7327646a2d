import Checkpoints
import Models
import Reference

extension VQVAEFamily: VerifiableFamily {
    /// GroupNorm's eps and group count where a layer runs a GroupNorm (every decoder layer from `decoder.mid`, every
    /// encoder layer from `encoder.down.0`). The original and diffusers share every other choice.
    public static func likelyCauses(layer: String, _ a: VQVAEConfig, _ b: VQVAEConfig, configA: VQVAEConfig?, configB: VQVAEConfig?) -> [String] {
        let normed = layer == "decoder.mid" || layer.hasPrefix("decoder.up.") || layer == "output" || layer.hasPrefix("encoder.down.")
            || layer == "encoder.mid" || layer == "encoder.conv_out" || layer == "quant_conv"
        guard normed else { return [] }
        let chain = layer == "output" || layer.hasPrefix("decoder.") ? "decoder" : "encoder"
        var causes: [String] = []
        if a.normEps != b.normEps { causes.append("\(chain): GroupNorm eps \(format(a.normEps)) vs \(format(b.normEps))") }
        if a.normGroups != b.normGroups { causes.append("\(chain): GroupNorm groups \(a.normGroups) vs \(b.normGroups)") }
        return causes
    }

    private static func format(_ v: Double) -> String { v == 1e-6 ? "1e-6" : v == 1e-5 ? "1e-5" : "\(v)" }

    /// After a first divergence, the causes at the first normalised layer of each chain are named too.
    public static let causeFollowUps = ["decoder.mid", "encoder.down.0"]

    /// A trace's `ditkit.config` (the full config), for the GroupNorm numerics weights cannot give.
    public static func traceConfig(_ metadata: [(String, String)], like config: VQVAEConfig) -> VQVAEConfig? {
        guard let text = Dictionary(metadata, uniquingKeysWith: { a, _ in a })["ditkit.config"], let json = try? JSONParser.parse(text),
            let read = try? VQVAEConfig(json: json)
        else { return nil }
        return withNumerics(config, of: read)
    }
}

extension VQVAEFamily: TraceTopology {
    /// Two chains: the decoder (`quantized` → `post_quant_conv` → `decoder.conv_in` → `decoder.mid` → `decoder.up.0`
    /// → … → `output`) and the encoder (`encoder.conv_in` → `encoder.down.0` → … → `encoder.mid` → `encoder.conv_out`
    /// → `quant_conv`).
    public static func link(of layer: String, among names: [String]) -> LayerLink? {
        func last(_ prefix: String) -> Int? { names.compactMap { $0.hasPrefix(prefix) ? Int($0.dropFirst(prefix.count)) : nil }.max() }
        switch layer {
        case "quantized": return LayerLink(series: "decoder", feeders: [])
        case "post_quant_conv": return LayerLink(series: "decoder", feeders: ["quantized"])
        case "decoder.conv_in": return LayerLink(series: "decoder", feeders: ["post_quant_conv"])
        case "decoder.mid": return LayerLink(series: "decoder", feeders: ["decoder.conv_in"])
        case "output": return LayerLink(series: "decoder", feeders: [last("decoder.up.").map { "decoder.up.\($0)" } ?? "decoder.mid"])
        case "encoder.conv_in": return LayerLink(series: "encoder", feeders: [])
        case "encoder.mid": return LayerLink(series: "encoder", feeders: [last("encoder.down.").map { "encoder.down.\($0)" } ?? "encoder.conv_in"])
        case "encoder.conv_out": return LayerLink(series: "encoder", feeders: ["encoder.mid"])
        case "quant_conv": return LayerLink(series: "encoder", feeders: ["encoder.conv_out"])
        default:
            if layer.hasPrefix("decoder.up."), let k = Int(layer.dropFirst("decoder.up.".count)) {
                return LayerLink(series: "decoder", feeders: [k == 0 ? "decoder.mid" : "decoder.up.\(k - 1)"])
            }
            if layer.hasPrefix("encoder.down."), let i = Int(layer.dropFirst("encoder.down.".count)) {
                return LayerLink(series: "encoder", feeders: [i == 0 ? "encoder.conv_in" : "encoder.down.\(i - 1)"])
            }
            return nil
        }
    }
}
