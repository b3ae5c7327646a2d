import Checkpoints
import Models
import Reference

extension VQDiffusionFamily: VerifiableFamily {
    /// The numeric differences between the two sides that can make `layer` diverge first: the activation and every
    /// block norm's eps at the blocks, late timesteps (t ≥ steps) at the blocks too (every block reads t), the output
    /// norm's eps and the output form (mask row and clamp) at `output`; the head count wherever attention runs.
    public static func likelyCauses(layer: String, _ a: VQDiffusionConfig, _ b: VQDiffusionConfig, configA: VQDiffusionConfig?, configB: VQDiffusionConfig?) -> [String] {
        var causes: [String] = []
        func fmt(_ v: Double) -> String { v == 1e-6 ? "1e-6" : v == 1e-5 ? "1e-5" : "\(v)" }
        if layer.hasPrefix("blocks.") {
            if a.numHeads != b.numHeads { causes.append("blocks.*: attention heads \(a.numHeads) vs \(b.numHeads)") }
            if a.adaNormEps != b.adaNormEps { causes.append("blocks.*: adaptive norm (norm1, norm2) eps \(fmt(a.adaNormEps)) vs \(fmt(b.adaNormEps))") }
            if a.ffNormEps != b.ffNormEps { causes.append("blocks.*: MLP norm (norm3) eps \(fmt(a.ffNormEps)) vs \(fmt(b.ffNormEps))") }
            if a.activation != b.activation { causes.append("blocks.*: MLP activation \(a.activation.rawValue) vs \(b.activation.rawValue)") }
            if a.lateTimesteps != b.lateTimesteps {
                causes.append("blocks.*: timesteps ≥ \(a.diffusionSteps) (the tables' rows) \(a.lateTimesteps.rawValue) vs \(b.lateTimesteps.rawValue) "
                    + "(the original uses each table's mean for the whole batch when its first timestep is late)")
            }
        }
        if layer == "output" {
            if a.outNormEps != b.outNormEps { causes.append("output: output norm eps \(fmt(a.outNormEps)) vs \(fmt(b.outNormEps))") }
            if a.output != b.output {
                causes.append("output: output form \(a.output.rawValue) vs \(b.output.rawValue) (the original appends a row of −70 for "
                    + "the mask class and clamps to [−70, 0])")
            }
        }
        return causes
    }

    /// After a first divergence, the causes at the first block and the output are named too.
    public static let causeFollowUps = ["blocks.0", "output"]

    /// A trace's `ditkit.config` (written by ditkit and by the fixture scripts), read for the values weights cannot
    /// give (heads) and the trace's numerics, when its sizes are this config's.
    public static func traceConfig(_ metadata: [(String, String)], like config: VQDiffusionConfig) -> VQDiffusionConfig? {
        let values = Dictionary(metadata, uniquingKeysWith: { a, _ in a })
        guard let text = values["ditkit.config"], let json = try? JSONParser.parse(text),
            let read = try? VQDiffusionConfig(json: json, origin: "trace metadata ditkit.config")
        else { return nil }
        guard read.hiddenSize == config.hiddenSize, read.depth == config.depth, read.codes == config.codes,
            read.tokens == config.tokens, read.contextDim == config.contextDim
        else { return nil }
        var c = config.withNumerics(of: read)
        c.numHeads = read.numHeads
        return c
    }
}

extension VQDiffusionFamily: TraceTopology {
    /// One chain: `latent_embed` → `blocks.0` → … → `output`.
    public static func link(of layer: String, among names: [String]) -> LayerLink? {
        switch layer {
        case "latent_embed": return LayerLink(series: "blocks", feeders: [])
        case "output":
            let last = names.compactMap { $0.hasPrefix("blocks.") ? Int($0.dropFirst("blocks.".count)) : nil }.max()
            return LayerLink(series: "blocks", feeders: [last.map { "blocks.\($0)" } ?? "latent_embed"])
        default:
            guard layer.hasPrefix("blocks."), let i = Int(layer.dropFirst("blocks.".count)) else { return nil }
            return LayerLink(series: "blocks", feeders: [i == 0 ? "latent_embed" : "blocks.\(i - 1)"])
        }
    }
}
