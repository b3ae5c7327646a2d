import Models
import Reference

extension DiTFamily: VerifiableFamily {
    /// The numeric differences between the two sides that can make `layer` diverge first.
    public static func likelyCauses(layer: String, _ a: DiTConfig, _ b: DiTConfig, configA: DiTConfig?, configB: DiTConfig?) -> [String] {
        var causes: [String] = []
        func fmt(_ v: Double) -> String { v == 1e-6 ? "1e-6" : v == 1e-5 ? "1e-5" : "\(v)" }
        if layer == "t_embed" || layer == "cond" {
            if a.timestepShift != b.timestepShift { causes.append("t_embed: timestep frequency shift \(a.timestepShift) vs \(b.timestepShift)") }
            if a.maxPeriod != b.maxPeriod { causes.append("t_embed: max period \(a.maxPeriod) vs \(b.maxPeriod)") }
            if a.timestepInput != b.timestepInput { causes.append("t_embed: timestep input \(a.timestepInput.rawValue) vs \(b.timestepInput.rawValue)") }
        }
        if layer.hasPrefix("blocks.") {
            if a.attentionNormEps != b.attentionNormEps { causes.append("blocks.*: attention norm eps \(fmt(a.attentionNormEps)) vs \(fmt(b.attentionNormEps))") }
            if a.mlpNormEps != b.mlpNormEps { causes.append("blocks.*: MLP norm eps \(fmt(a.mlpNormEps)) vs \(fmt(b.mlpNormEps))") }
            if a.gelu != b.gelu { causes.append("blocks.*: GELU \(a.gelu.rawValue) vs \(b.gelu.rawValue)") }
        }
        if layer == "final" || layer == "output" {
            if a.finalNormEps != b.finalNormEps { causes.append("final: norm eps \(fmt(a.finalNormEps)) vs \(fmt(b.finalNormEps))") }
        }
        if layer == "patch_embed", let ca = configA, let cb = configB, ca.posEmbed != cb.posEmbed {
            causes.append("patch_embed: position table \(ca.posEmbed.rawValue) vs \(cb.posEmbed.rawValue)")
        }
        return causes
    }

    /// After a first divergence, the causes at the timestep embedding, the first block and the final layer are named too.
    public static let causeFollowUps = ["t_embed", "blocks.0", "final"]
}
