import Checkpoints
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
            if a.numHeads != b.numHeads { causes.append("blocks.*: attention heads \(a.numHeads) vs \(b.numHeads)") }
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

    /// Heads cannot be read from weights: when one side's head count was assumed and the other's was read, and the
    /// hidden sizes agree, both run with the read one.
    public static func reconcile(_ a: DiTConfig, assumed assumedA: [Assumption], _ b: DiTConfig, assumed assumedB: [Assumption])
        -> (a: DiTConfig, b: DiTConfig, notes: [String])
    {
        let headsA = assumedA.contains { $0.field == "num_heads" }, headsB = assumedB.contains { $0.field == "num_heads" }
        guard a.numHeads != b.numHeads, a.hiddenSize == b.hiddenSize, headsA != headsB else { return (a, b, []) }
        var (x, y) = (a, b)
        if headsA {
            x.numHeads = b.numHeads
            return (x, y, ["a's head count \(a.numHeads) was assumed; b's \(b.numHeads) was read: both run with \(b.numHeads) heads"])
        }
        y.numHeads = a.numHeads
        return (x, y, ["b's head count \(b.numHeads) was assumed; a's \(a.numHeads) was read: both run with \(a.numHeads) heads"])
    }

    /// With an assumed head count and a divergence at the first attention (block 0), every other head count dividing D.
    public static func alternatives(_ config: DiTConfig, assumed: [Assumption], divergedAt layer: String) -> [(config: DiTConfig, change: String)] {
        guard assumed.contains(where: { $0.field == "num_heads" }), layer == "blocks.0" else { return [] }
        return (1...config.hiddenSize).filter { config.hiddenSize % $0 == 0 && $0 != config.numHeads }.map { heads in
            var c = config
            c.numHeads = heads
            return (c, "num_heads = \(heads)")
        }
    }

    /// A ditkit trace's `ditkit.config` (the full config), or `scripts/torch-trace.py`'s `ditkit.trace.model` (the
    /// sizes the PyTorch model was built with), read for the values weights cannot give (heads).
    public static func traceConfig(_ metadata: [(String, String)], like config: DiTConfig) -> DiTConfig? {
        let values = Dictionary(metadata, uniquingKeysWith: { a, _ in a })
        for key in ["ditkit.config", "ditkit.trace.model"] {
            guard let text = values[key], let json = try? JSONParser.parse(text),
                let heads = json["num_heads"]?.intValue, let hidden = json["hidden_size"]?.intValue
            else { continue }
            guard hidden == config.hiddenSize, heads >= 1, hidden % heads == 0 else { return nil }
            var c = config
            c.numHeads = heads
            return c
        }
        return nil
    }
}
